//! Regression tests from an adversarial review (each was a bug, now fixed): `teardown::reset` drops the old hub's leftovers (`drop(old)`: the
//! error handler, timers, queued callbacks, pooled stacks) *after* the hub
//! was replaced but *before* `run` clears `IN_SCOPE`. User `Drop`s that run
//! there (e.g. a value captured by the error handler) can
//! - spawn: the greenlet lands in the fresh hub, outlives the scope it was
//!   spawned in, and runs inside the *next* scope on this thread;
//! - panic: the panic escapes `end_scope()`, `set_in_scope(false)` is
//!   skipped, and the thread stays "in scope" forever (run refused, spawn
//!   outside a scope accepted).

use std::cell::Cell;
use std::panic::catch_unwind;
use std::rc::Rc;

use greenlet::hub;

struct SpawnOnDrop(Rc<Cell<u32>>);
impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let ran = self.0.clone();
        let _ = greenlet::Builder::new().spawn(move || ran.set(ran.get() + 1));
    }
}

#[test]
fn greenlet_spawned_from_error_handler_drop_outlives_scope() {
    std::thread::spawn(|| {
        let ran = Rc::new(Cell::new(0));
        let r2 = ran.clone();
        greenlet::run(move || {
            let guard = SpawnOnDrop(r2);
            hub::set_error_handler(move |_| {
                let _ = &guard;
            });
        });
        // The scope is over: nothing of it may be alive.
        let leftover = catch_unwind(|| hub::stats().greenlets).unwrap_or(0);
        greenlet::run(|| greenlet::sleep(std::time::Duration::ZERO));
        assert_eq!(
            (leftover, ran.get()),
            (0, 0),
            "a greenlet of scope 1 was alive after it ended and ran in scope 2"
        );
    })
    .join()
    .unwrap();
}

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("PanicOnDrop");
    }
}

#[test]
fn panic_in_error_handler_drop_leaves_thread_in_scope() {
    std::thread::spawn(|| {
        let r = catch_unwind(|| {
            greenlet::run(|| {
                let p = PanicOnDrop;
                hub::set_error_handler(move |_| {
                    let _ = &p;
                });
            })
        });
        // Reported by scope end, not propagated.
        assert!(r.is_ok(), "the Drop panic escaped run");
        let spawn_outside = greenlet::Builder::new().spawn(|| ()).is_ok();
        let run_again = catch_unwind(|| greenlet::run(|| ())).is_ok();
        assert!(
            !spawn_outside && run_again,
            "after the escape: spawn outside a scope accepted = {spawn_outside}, \
             run accepted = {run_again}"
        );
    })
    .join()
    .unwrap();
}

thread_local! {
    static SHARED: Vec<u64> = vec![7; 1000];
}

struct SpawnLenderOnDrop;
impl Drop for SpawnLenderOnDrop {
    fn drop(&mut self) {
        let _ = greenlet::Builder::new().spawn(|| {
            SHARED.with(|d| {
                std::thread::scope(|s| {
                    s.spawn(move || {
                        let mut sum = 0u64;
                        for _ in 0..400 {
                            sum = sum.wrapping_add(d.iter().sum::<u64>());
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        std::hint::black_box(sum);
                    });
                    greenlet::sleep(std::time::Duration::MAX);
                })
            })
        });
    }
}

/// No panic anywhere: the greenlet spawned during `reset` is started by a
/// plain `sleep(0)` on the native stack *outside any scope* (`park` /
/// `run_loop` never check `IN_SCOPE`; only `hub::start` does), suspends
/// while lending a thread-local to a scoped thread, and is leaked at thread
/// exit (`release_at_thread_exit` skips a hub with live greenlets). ASan:
/// `RUSTFLAGS=-Zsanitizer=address cargo +nightly test --target
/// x86_64-unknown-linux-gnu --test break_reset_drop -- --ignored uaf`
/// → heap-use-after-free read in the scoped thread, freed by the thread's
/// TLS destructors.
#[test]
fn uaf_via_greenlet_spawned_in_reset_and_started_outside_scope() {
    std::thread::spawn(|| {
        greenlet::run(|| {
            let guard = SpawnLenderOnDrop;
            hub::set_error_handler(move |_| {
                let _ = &guard;
            });
        });
        // Outside any scope: a clear error, and there is no leftover to
        // start (the Drop's spawn was refused: the scope was already closed).
        let outside = std::panic::catch_unwind(|| greenlet::sleep(std::time::Duration::ZERO));
        let message = outside.expect_err("sleep outside a scope is refused");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("greenlet::run"), "{message}");
        // thread exit: SHARED is freed; the scoped thread still reads it
    })
    .join()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
}
