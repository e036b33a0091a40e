//! The hub scope, `greenlet::run`: it returns the closure's value; every
//! greenlet left behind is killed, its destructors and links run, before
//! `run` returns (also when the closure panics); scopes do not nest; nothing
//! spawns outside a scope; a thread may run scopes one after another, and
//! threads run scopes side by side.
//!
//! These tests use plain `#[test]` and call `greenlet::run` themselves: most
//! of them leave greenlets behind on purpose, which `#[greenlet::test]`'s
//! leak check would refuse, and they look at the state after `run` returns.

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{DropLog, LONG, Log, PROMPT, assert_contains, expect_panic, panic_message, timed};
use greenlet::{
    Builder, Greenlet, GreenletError, KillError, SpawnErrorKind, hub, sleep, spawn, spawn_later,
    spawn_raw,
};

/// A destructor that blocks cooperatively for `0` and logs when it is done.
struct SlowDrop(Duration, Log);

impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.1.push("slow drop start");
        sleep(self.0);
        self.1.push("slow drop done");
    }
}

#[test]
fn run_returns_the_closures_value() {
    assert_eq!(greenlet::run(|| 42), 42);
    let owned = greenlet::run(|| {
        let a = spawn(|| String::from("from a greenlet"));
        a.get().expect("finished")
    });
    assert_eq!(owned, "from a greenlet");
    // A non-'static borrow from the caller's stack is fine: run is not
    // spawn.
    let local = [1, 2, 3];
    let sum: i32 = greenlet::run(|| local.iter().sum());
    assert_eq!(sum, 6);
}

#[test]
fn leftovers_are_killed_and_their_destructors_run_before_run_returns() {
    let log = Log::new();
    let l = log.clone();
    let (sleeper, never, value) = greenlet::run(move || {
        let l1 = l.clone();
        let sleeper = spawn(move || {
            let _g = DropLog::new("sleeper", &l1);
            sleep(LONG);
            l1.push("sleeper woke");
        });
        sleep(Duration::ZERO);
        // Spawned but never run: killed before start, its capture dropped.
        let guard = DropLog::new("never", &l);
        let l2 = l.clone();
        let never = spawn(move || {
            let _keep = guard;
            l2.push("never ran");
        });
        l.push("closure returns");
        (sleeper, never, 7)
    });
    // Everything below happened inside run, before it returned.
    assert_eq!(value, 7);
    let mut entries = log.take();
    assert_eq!(entries.first().map(String::as_str), Some("closure returns"));
    entries[1..].sort();
    assert_eq!(entries, ["closure returns", "drop never", "drop sleeper"]);
    assert!(sleeper.is_ready() && sleeper.is_dead());
    assert!(
        matches!(
            sleeper.try_get(),
            Some(Err(GreenletError::Killed(KillError::GreenletExit)))
        ),
        "{:?}",
        sleeper.try_get()
    );
    assert!(never.is_ready(), "a never-run greenlet is dead too");
    assert_eq!(hub::stats().greenlets, 0);
    assert_eq!(hub::stats().timers, 0);
}

#[test]
fn links_of_killed_leftovers_fire_before_run_returns() {
    let log = Log::new();
    let l = log.clone();
    greenlet::run(move || {
        for name in ["a", "b"] {
            let g = spawn(|| sleep(LONG));
            let l1 = l.clone();
            g.link(move |g| l1.push(format!("link {name} ready={}", g.is_ready())));
            let l2 = l.clone();
            g.rawlink(move || l2.push(format!("rawlink {name}")));
        }
        sleep(Duration::ZERO);
        l.push("closure returns");
    });
    assert_eq!(
        log.take(),
        [
            "closure returns",
            "link a ready=true",
            "rawlink a",
            "link b ready=true",
            "rawlink b"
        ]
    );
    assert_eq!(hub::stats().callbacks, 0);
}

#[test]
fn a_panicking_closure_still_ends_its_greenlets_then_the_panic_propagates() {
    let log = Log::new();
    let l = log.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        greenlet::run(move || {
            let l1 = l.clone();
            let g = spawn(move || {
                let _g = DropLog::new("leftover", &l1);
                sleep(LONG);
            });
            let l2 = l.clone();
            g.link(move |_| l2.push("link"));
            sleep(Duration::ZERO);
            l.push("panicking");
            panic!("closure boom");
        })
    }));
    let payload = outcome.expect_err("the closure's panic propagates out of run");
    assert_eq!(panic_message(payload.as_ref()), "closure boom");
    assert_eq!(log.take(), ["panicking", "drop leftover", "link"]);
    assert_eq!(hub::stats().greenlets, 0);
    // The scope was left: the thread can open a new one.
    assert_eq!(greenlet::run(|| spawn(|| 5).get().expect("ran")), 5);
}

#[test]
fn a_nested_run_panics_naming_greenlet_run() {
    let log = Log::new();
    let l = log.clone();
    greenlet::run(move || {
        let msg = expect_panic("nested run on the main greenlet", || {
            greenlet::run(|| l.push("nested body ran"))
        });
        assert_contains(&msg, &["greenlet::run", "already inside a hub scope"]);

        // Inside a greenlet too: the greenlet fails with that panic.
        let reports = common::Reports::install();
        let l2 = l.clone();
        let g = spawn(move || greenlet::run(|| l2.push("nested body ran in a greenlet")));
        let err = g.get().expect_err("nested run panics");
        let p = err.as_panic().expect("a panic");
        assert_contains(
            p.message(),
            &["greenlet::run", "already inside a hub scope"],
        );
        assert_eq!(reports.take_one().context, "greenlet");
        drop(reports);

        // The outer scope is intact.
        assert_eq!(spawn(|| 1).get().expect("ran"), 1);
        let ((), took) = timed(|| sleep(Duration::from_millis(5)));
        assert!(took >= Duration::from_millis(5));
    });
    assert!(log.is_empty(), "a nested body must not run: {log:?}");
}

/// Asserts `f` panics with a message that names the fix.
#[track_caller]
fn assert_no_scope_panic<R>(what: &str, f: impl FnOnce() -> R) {
    let msg = expect_panic(what, f);
    assert_contains(&msg, &["no hub scope", "greenlet::run"]);
}

/// Every way to create or start a greenlet fails outside a scope.
fn check_nothing_spawns_outside_a_scope(ran: &Rc<Cell<u32>>) {
    let r = ran.clone();
    let e = Builder::new()
        .name("outside")
        .spawn(move || r.set(r.get() + 1))
        .expect_err("Builder::spawn outside a scope");
    assert_eq!(e.kind(), SpawnErrorKind::NoScope);
    assert_contains(&e.to_string(), &["no hub scope", "greenlet::run"]);
    let r = ran.clone();
    let e = Builder::new()
        .spawn_later(Duration::ZERO, move || r.set(r.get() + 1))
        .expect_err("Builder::spawn_later outside a scope");
    assert_eq!(e.kind(), SpawnErrorKind::NoScope);

    let r = ran.clone();
    assert_no_scope_panic("spawn", || spawn(move || r.set(r.get() + 1)));
    let r = ran.clone();
    assert_no_scope_panic("Greenlet::spawn", || {
        Greenlet::spawn(move || r.set(r.get() + 1))
    });
    let r = ran.clone();
    assert_no_scope_panic("spawn_later", || {
        spawn_later(Duration::ZERO, move || r.set(r.get() + 1))
    });
    let r = ran.clone();
    assert_no_scope_panic("spawn_raw", || spawn_raw(move || r.set(r.get() + 1)));

    // An unstarted greenlet may be built anywhere; starting it needs a scope.
    let r = ran.clone();
    let g = Greenlet::new(move || r.set(r.get() + 1));
    assert_no_scope_panic("Greenlet::start", || g.start());
    assert!(!g.is_started(), "a failed start leaves it new");
    let r = ran.clone();
    let g = Greenlet::new(move || r.set(r.get() + 1));
    assert_no_scope_panic("Greenlet::start_later", || g.start_later(Duration::ZERO));
    assert!(!g.is_started());
    assert_eq!(ran.get(), 0, "no body ran");
}

#[test]
fn nothing_spawns_outside_a_scope() {
    let ran = Rc::new(Cell::new(0));
    check_nothing_spawns_outside_a_scope(&ran);
    // After a scope has ended, the thread is outside again.
    greenlet::run(|| assert_eq!(spawn(|| 2).get().expect("ran"), 2));
    check_nothing_spawns_outside_a_scope(&ran);
    // Also after a scope that panicked.
    let _ = catch_unwind(|| greenlet::run(|| panic!("scope boom")));
    check_nothing_spawns_outside_a_scope(&ran);
    // And on another thread.
    std::thread::spawn(|| check_nothing_spawns_outside_a_scope(&Rc::default()))
        .join()
        .expect("thread");
}

#[test]
fn an_unstarted_greenlet_built_outside_can_start_inside_a_scope() {
    let g = Greenlet::new(|| 3);
    let v = greenlet::run(|| {
        g.start();
        g.get().expect("ran")
    });
    assert_eq!(v, 3);
}

/// One scope's work; the same body runs in consecutive scopes.
fn scope_body(log: &Log) -> (hub::Stats, u64, Greenlet<()>) {
    let at_start = hub::stats();
    let l = log.clone();
    let leftover = spawn(move || {
        let _g = DropLog::new("leftover", &l);
        sleep(LONG);
    });
    let sum: u64 = (0..10u64)
        .map(|i| {
            spawn(move || {
                sleep(Duration::from_millis(i % 3));
                i
            })
        })
        .collect::<Vec<_>>()
        .iter()
        .map(|g| g.get().expect("ran"))
        .sum();
    let ((), took) = timed(|| sleep(Duration::from_millis(5)));
    assert!(took >= Duration::from_millis(5));
    (at_start, sum, leftover)
}

#[test]
fn two_scopes_in_sequence_on_one_thread() {
    let log = Log::new();
    let (first_start, first_sum, first_left) = greenlet::run(|| scope_body(&log));
    assert_eq!(log.take(), ["drop leftover"]);
    let (second_start, second_sum, second_left) = greenlet::run(|| {
        // A handle from the first scope: dead, and inert in this one.
        let fresh = spawn(|| {
            sleep(Duration::from_millis(20));
            "fresh"
        });
        sleep(Duration::ZERO);
        first_left.kill_nowait();
        assert!(first_left.is_ready());
        assert_eq!(fresh.get().expect("not killed by a stale handle"), "fresh");
        scope_body(&log)
    });
    assert_eq!(log.take(), ["drop leftover"]);
    assert_eq!((first_sum, second_sum), (45, 45));
    assert!(first_left.is_ready() && second_left.is_ready());
    assert_eq!(first_start.greenlets, 0);
    assert_eq!(second_start.greenlets, 0, "`fresh` has finished");
}

#[test]
fn hub_counters_are_fresh_at_the_start_of_a_second_scope() {
    let first = greenlet::run(|| {
        let fresh = hub::stats();
        // Leave everything behind: greenlets, timers, pooled stacks,
        // pending callbacks.
        for _ in 0..5 {
            spawn(|| sleep(LONG));
        }
        let done = spawn(|| ());
        done.rawlink(|| ());
        for i in 0..5 {
            assert_eq!(spawn(move || i).get().expect("ran"), i);
        }
        sleep(Duration::ZERO);
        let busy = hub::stats();
        assert!(busy.greenlets == 5 && busy.timers == 5, "{busy:?}");
        assert!(busy.stacks_allocated >= 6, "{busy:?}");
        fresh
    });
    let second = greenlet::run(hub::stats);
    assert_eq!(first, hub::Stats::default(), "a fresh hub");
    assert_eq!(
        second, first,
        "the second scope starts as fresh as the first"
    );
}

#[test]
fn scopes_on_eight_threads_run_side_by_side() {
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let log = Log::new();
                let l = log.clone();
                let out = greenlet::run(move || {
                    let at_start = hub::stats().greenlets;
                    let l1 = l.clone();
                    spawn(move || {
                        let _g = DropLog::new("leftover", &l1);
                        sleep(LONG);
                    });
                    let gs: Vec<_> = (0..50u64)
                        .map(|i| {
                            spawn(move || {
                                sleep(Duration::from_millis(20));
                                i * t as u64
                            })
                        })
                        .collect();
                    // Every thread is inside its scope at the same time.
                    barrier.wait();
                    let sum: u64 = gs.iter().map(|g| g.get().expect("ran")).sum();
                    (at_start, sum, hub::stats().greenlets)
                });
                (out, log.take())
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        let ((at_start, sum, alive_at_end), log) = h.join().expect("scope thread");
        assert_eq!(at_start, 0, "thread {t}: hubs are per thread");
        assert_eq!(sum, 1225 * t as u64, "thread {t}");
        assert_eq!(alive_at_end, 1, "thread {t}: only its own leftover");
        assert_eq!(log, ["drop leftover"], "thread {t}");
    }
    assert!(t0.elapsed() < PROMPT, "{:?}", t0.elapsed());
}

#[test]
fn scope_end_waits_for_a_destructor_that_sleeps() {
    let log = Log::new();
    let l = log.clone();
    let slow = Duration::from_millis(200);
    let ((), took) = timed(|| {
        greenlet::run(move || {
            let l1 = l.clone();
            spawn(move || {
                let _slow = SlowDrop(slow, l1);
                sleep(LONG);
            });
            sleep(Duration::ZERO);
            l.push("closure returns");
        })
    });
    assert_eq!(
        log.take(),
        ["closure returns", "slow drop start", "slow drop done"]
    );
    assert!(
        took >= slow,
        "run returned after {took:?}, before the destructor"
    );
    assert!(took < PROMPT, "{took:?}");
}

#[test]
fn scope_end_waits_for_a_destructor_slower_than_one_second() {
    let log = Log::new();
    let l = log.clone();
    let slow = Duration::from_millis(1500);
    let ((), took) = timed(|| {
        greenlet::run(move || {
            let l1 = l.clone();
            spawn(move || {
                let _slow = SlowDrop(slow, l1);
                sleep(LONG);
            });
            sleep(Duration::ZERO);
        })
    });
    assert_eq!(log.take(), ["slow drop start", "slow drop done"]);
    assert!(took >= slow, "{took:?}");
}

#[test]
fn a_greenlet_spawned_while_the_scope_ends_does_not_outlive_it() {
    let log = Log::new();
    let l = log.clone();
    greenlet::run(move || {
        let g = spawn(|| sleep(LONG));
        let l1 = l.clone();
        g.link(move |_| {
            // A link that respawns a worker during scope end.
            let l2 = l1.clone();
            spawn(move || {
                let _g = DropLog::new("respawned", &l2);
                sleep(LONG);
            });
        });
        sleep(Duration::ZERO);
    });
    assert_eq!(log.take(), ["drop respawned"]);
    let s = hub::stats();
    assert_eq!((s.greenlets, s.timers, s.callbacks), (0, 0, 0), "{s:?}");
}
