//! Break: a caught kill payload is `Send` (every panic payload is), and its
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

use greenlet::{sleep, spawn};
use break_common::child_must_succeed;

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
#[ignore = "bug: dropping a kill payload on another thread corrupts that thread's hub (swallowed/unwinding flags); a cooperative greenlet is then aborted as 'refuses to die'"]
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
