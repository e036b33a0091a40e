//! Regression tests from an adversarial review (each was a bug, now fixed): a panic from user code *inside* scope end (`teardown::shutdown`)
//! escapes `greenlet::run` before the scope is closed.
//!
//! `shutdown` kills every live greenlet; for a greenlet that was scheduled
//! but never switched in, `Shared::kill_nowait` -> `die_unstarted` ->
//! `body.discard()` drops the user's closure right there, outside any
//! `catch_unwind`. If a captured value's `Drop` panics, the panic unwinds out
//! of `end_scope()`: `set_in_scope(false)` never runs, the rest of the live
//! greenlets are never killed (their frames stay suspended, with borrows),
//! and the thread keeps `IN_SCOPE == true` forever.

#![allow(dead_code)]
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use greenlet::{sleep, spawn};

const FOREVER: Duration = Duration::from_secs(3600);

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("PanicOnDrop");
    }
}

thread_local! {
    static DATA: RefCell<Vec<u64>> = RefCell::new(vec![7; 1000]);
    static SHARED: Vec<u64> = vec![7; 1000];
}

/// After the escape, the suspended greenlet is never killed: its guard is
/// never dropped and `run` is refused on this thread forever, while `spawn`
/// outside any scope is accepted (the implicit hub of issue 11 is back).
#[test]
fn panic_in_unstarted_body_drop_at_scope_end_leaves_scope_open() {
    std::thread::spawn(|| {
        let dropped = std::rc::Rc::new(std::cell::Cell::new(false));
        let d2 = dropped.clone();
        struct SetOnDrop(std::rc::Rc<std::cell::Cell<bool>>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            greenlet::run(move || {
                let _a = spawn(move || {
                    let _g = SetOnDrop(d2);
                    sleep(FOREVER);
                });
                sleep(Duration::ZERO); // A suspends with its guard
                let p = PanicOnDrop;
                let _b = spawn(move || {
                    let _p = &p;
                });
                // return: scope end kills A (queued throw) and cancels B
                // (its closure is dropped -> panics)
            })
        }));
        // The Drop panic is reported by scope end, not propagated: the
        // scope ends whole.
        assert!(r.is_ok(), "the Drop panic escaped run");
        let mut broken = Vec::new();
        // Contract: every greenlet ended before `run` returned/unwound.
        if !dropped.get() {
            broken.push("greenlet A's destructors never ran: it outlived its scope");
        }
        // Contract: spawning outside a scope fails.
        if greenlet::Builder::new().spawn(|| ()).is_ok() {
            broken.push("spawn outside any scope was accepted after the escape");
        }
        // Contract: a new scope can be opened.
        if catch_unwind(|| greenlet::run(|| ())).is_err() {
            broken.push("greenlet::run is refused on this thread forever");
        }
        assert!(broken.is_empty(), "{broken:#?}");
    })
    .join()
    .unwrap();
}

/// The UAF this enables: the leaked greenlet lends a thread-local to a
/// scoped thread and is never resumed; the OS thread exits, its TLS is
/// freed, the scoped thread keeps reading it. Run under ASan:
/// `RUSTFLAGS=-Zsanitizer=address cargo +nightly test --target
/// x86_64-unknown-linux-gnu --test break_scope_escape -- --ignored uaf`
/// → heap-use-after-free in the scoped thread.
#[test]
fn uaf_thread_local_lent_to_scoped_thread_after_scope_escape() {
    std::thread::spawn(|| {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            greenlet::run(|| {
                let _a = spawn(|| {
                    SHARED.with(|d| {
                        std::thread::scope(|s| {
                            s.spawn(move || {
                                let mut sum = 0u64;
                                for _ in 0..400 {
                                    sum = sum.wrapping_add(d.iter().sum::<u64>());
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                                std::hint::black_box(sum);
                            });
                            sleep(FOREVER);
                        })
                    })
                });
                sleep(Duration::ZERO);
                let p = PanicOnDrop;
                let _b = spawn(move || {
                    let _p = &p;
                });
            })
        }));
        // thread exits: DATA is freed while the scoped thread still reads it
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
}
