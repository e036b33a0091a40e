//! Regression tests from an adversarial review (each was a bug, now fixed): a greenlet that catches its kill and *keeps* the payload (stores
//! it instead of dropping it) counts as "unwinding" forever
//! (`Slot::unwinding` is cleared only by `Unwind::drop`). Scope end
//! (`teardown::shutdown`) skips greenlets that are unwinding ("already
//! dying") and waits for them cooperatively, so a greenlet that keeps one
//! kill payload and goes on working makes `greenlet::run` hang forever,
//! instead of the documented abort for greenlets that swallow kills.

mod break_common;

use std::any::Any;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use break_common::child_must_succeed;
use greenlet::{sleep, spawn};

thread_local! {
    static STASH: RefCell<Vec<Box<dyn Any + Send>>> = const { RefCell::new(Vec::new()) };
}

#[test]
fn kept_kill_payload_hangs_scope_end() {
    child_must_succeed(
        "kept_kill_payload_hangs_scope_end",
        Duration::from_secs(10),
        || {
            let r = catch_unwind(|| {
                greenlet::run(|| {
                    let g = spawn(|| {
                        if let Err(p) =
                            catch_unwind(AssertUnwindSafe(|| sleep(Duration::from_secs(3600))))
                        {
                            STASH.with(|s| s.borrow_mut().push(p)); // keep it
                        }
                        loop {
                            sleep(Duration::from_millis(10)); // a worker loop
                        }
                    });
                    sleep(Duration::ZERO);
                    g.kill_nowait();
                    sleep(Duration::from_millis(20));
                    // scope end: must kill `g` again or abort, not wait forever
                })
            });
            // Either outcome is fine for the contract (an abort would fail the
            // child too, but with a message): the bug is the hang.
            let _ = r;
        },
    );
}

/// Same root cause, no scope end involved: after `g` kept one kill payload,
/// a blocking `kill()` on it never returns.
#[test]
fn kept_kill_payload_makes_later_kills_wait_forever() {
    child_must_succeed(
        "kept_kill_payload_makes_later_kills_wait_forever",
        Duration::from_secs(10),
        || {
            greenlet::run(|| {
                let g = spawn(|| {
                    if let Err(p) =
                        catch_unwind(AssertUnwindSafe(|| sleep(Duration::from_secs(3600))))
                    {
                        STASH.with(|s| s.borrow_mut().push(p));
                    }
                    loop {
                        sleep(Duration::from_millis(10));
                    }
                });
                sleep(Duration::ZERO);
                g.kill_nowait();
                sleep(Duration::from_millis(20));
                let t = Instant::now();
                let r = g.kill_timeout(Duration::from_secs(2));
                assert!(
                    g.is_dead(),
                    "second kill not delivered after {:?}: {r:?}",
                    t.elapsed()
                );
                // the stash is a thread-local: drop it so the scope can end
                STASH.with(|s| s.borrow_mut().clear());
            });
        },
    );
}
