//! Regression tests from an adversarial review (each was a bug, now fixed): a caught kill payload is `Send` (every panic payload is), and its
//! `Drop` (`hub::Unwind::drop` -> `unwinding_ended(slot, generation, ..)`)
//! acts on *whatever hub the dropping thread has*, matching only by
//! `(slot, generation)`, which start at the same values on every fresh hub.
//! Dropping payloads caught on thread A on thread B marks B's unrelated,
//! well-behaved greenlet as having "swallowed" kills, and B's scope end then
//! aborts the process saying it "refuses to die".

mod break_common;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use break_common::child_must_succeed;
use greenlet::{sleep, spawn};

const FOREVER: Duration = Duration::from_secs(3600);

/// One scope on a fresh hub: its first greenlet catches its kill and hands
/// the payload out (then returns normally).
fn catch_one_kill_payload() -> Box<dyn Any + Send> {
    greenlet::run(|| {
        let g = spawn(|| catch_unwind(AssertUnwindSafe(|| sleep(FOREVER))).unwrap_err());
        sleep(Duration::ZERO);
        g.kill_nowait();
        g.take().expect("the greenlet returned its caught payload")
    })
}

#[test]
fn kill_payloads_dropped_on_another_thread_abort_an_innocent_greenlet() {
    child_must_succeed(
        "kill_payloads_dropped_on_another_thread_abort_an_innocent_greenlet",
        Duration::from_secs(20),
        || {
            let (tx, rx) = mpsc::channel::<Box<dyn Any + Send>>();
            std::thread::spawn(move || {
                for _ in 0..3 {
                    tx.send(catch_one_kill_payload()).unwrap();
                }
            })
            .join()
            .unwrap();
            std::thread::spawn(move || {
                greenlet::run(|| {
                    // An innocent greenlet at the same slot and generation.
                    let innocent = spawn(|| sleep(FOREVER));
                    sleep(Duration::ZERO);
                    for p in rx.try_iter() {
                        drop(p); // a foreign payload: must not touch this hub
                    }
                    let _ = innocent;
                    // scope end must kill `innocent` normally
                });
            })
            .join()
            .unwrap();
        },
    );
}

struct SlowDrop;
impl Drop for SlowDrop {
    fn drop(&mut self) {
        // a cooperative destructor: allowed to block during a kill-unwind
        sleep(Duration::from_millis(50));
    }
}

/// Same root cause on ONE thread: a kill payload kept across scopes
/// (`Hub::new()` restarts slots and generations) is dropped while a new
/// greenlet at the same (slot, generation) runs a blocking destructor
/// during its kill-unwind. The drop clears that greenlet's `unwinding` flag,
/// so a second kill is raised *inside its destructor* while it is already
/// panicking: the process aborts ("panic in a destructor during cleanup").
/// The contract says new throws aimed at an unwinding greenlet wait.
#[test]
fn stale_payload_across_scopes_aborts_an_unwinding_greenlet() {
    child_must_succeed(
        "stale_payload_across_scopes_aborts_an_unwinding_greenlet",
        Duration::from_secs(20),
        || {
            let stale = catch_one_kill_payload();
            greenlet::run(move || {
                let g = spawn(|| {
                    let _d = SlowDrop;
                    sleep(FOREVER);
                });
                sleep(Duration::ZERO);
                g.kill_nowait();
                sleep(Duration::from_millis(10)); // g is inside SlowDrop::drop
                drop(stale); // must not touch g
                g.kill_nowait(); // must wait until g's unwinding ends
                let _ = g.join();
            });
        },
    );
}
