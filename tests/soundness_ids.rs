//! Issue 11 §7: timer and `Timeout` ids never collide across
//! `hub::destroy()`. A `Timeout` started before the reset and dropped after
//! it must not cancel (or withdraw the throw of) anything in the new hub.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{Timeout, hub, sleep, spawn};

const TICK: Duration = Duration::from_millis(50);
const TICK_UPPER: Duration = Duration::from_millis(160);
/// Enough timers on each side that the old and new id sequences overlap
/// whatever the core allocates for internal switches.
const N: usize = 8;

#[track_caller]
fn assert_tick(what: &str, elapsed: Duration) {
    assert!(
        elapsed >= TICK && elapsed < TICK_UPPER,
        "{what}: took {elapsed:?}, expected [{TICK:?}, {TICK_UPPER:?})"
    );
}

#[test]
fn timeout_dropped_after_destroy_does_not_cancel_a_new_sleep() {
    greenlet::run(|| {
        // Started on the native stack in the old hub: their timers take the
        // first ids.
        let stale: Vec<Timeout> = (0..N)
            .map(|_| Timeout::start_new(Duration::from_secs(3600)))
            .collect();
        hub::destroy();
        // destroy ends greenlets; the main greenlet's own timeouts stay armed.
        let stats = hub::stats();
        assert_eq!((stats.greenlets, stats.timers), (0, N), "{stats:?}");
        assert!(stale.iter().all(Timeout::pending));

        // After destroy: greenlets whose sleep timers could reuse old ids.
        let took: Rc<RefCell<Vec<Duration>>> = Rc::default();
        let sleepers: Vec<_> = (0..N)
            .map(|_| {
                let took = Rc::clone(&took);
                spawn(move || {
                    let start = Instant::now();
                    sleep(TICK);
                    took.borrow_mut().push(start.elapsed());
                })
            })
            .collect();
        // Let every sleeper arm its timer, then drop the stale timeouts.
        let started = Rc::new(Cell::new(false));
        let s = Rc::clone(&started);
        let marker = spawn(move || s.set(true));
        marker.join().unwrap();
        assert!(started.get());
        drop(stale);

        for g in &sleepers {
            g.get().expect("sleeper ends normally");
        }
        let took = took.borrow().clone();
        assert_eq!(took.len(), N);
        for (i, t) in took.iter().enumerate() {
            assert_tick(&format!("sleeper {i}"), *t);
        }
        hub::join();
        assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
    });
}

#[test]
fn timeout_dropped_after_destroy_does_not_cancel_a_native_sleep() {
    greenlet::run(|| {
        let stale: Vec<Timeout> = (0..N)
            .map(|_| Timeout::start_new(Duration::from_secs(3600)))
            .collect();
        hub::destroy();
        // A greenlet drops the stale timeouts while the native stack sleeps
        // on a timer of the new hub.
        let cell = Rc::new(RefCell::new(Some(stale)));
        let c = Rc::clone(&cell);
        let dropper = spawn(move || {
            sleep(Duration::from_millis(10));
            drop(c.borrow_mut().take());
        });
        let start = Instant::now();
        sleep(TICK);
        assert_tick("native sleep", start.elapsed());
        dropper.get().expect("dropper ends normally");
        assert!(cell.borrow().is_none());
        hub::join();
        assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
    });
}

#[test]
fn timeout_from_a_killed_greenlet_dropped_after_destroy_leaves_new_timeouts_alone() {
    // A `Timeout` started inside a greenlet of the old hub (same slot number
    // as a greenlet of the new hub) and dropped after the reset must not
    // cancel the new greenlet's own, unrelated timeout.
    greenlet::run(|| {
        let stash: Rc<RefCell<Vec<Timeout>>> = Rc::default();
        let s = Rc::clone(&stash);
        let old = spawn(move || {
            for _ in 0..N {
                s.borrow_mut()
                    .push(Timeout::start_new(Duration::from_secs(3600)));
            }
            sleep(Duration::from_secs(3600));
        });
        sleep(Duration::ZERO);
        assert_eq!(stash.borrow().len(), N);
        hub::destroy();
        assert!(old.is_ready());

        // The new greenlet's timeout (40 ms) must interrupt its 1 s sleep.
        let s = Rc::clone(&stash);
        let fresh = spawn(move || {
            let start = Instant::now();
            let outcome = Timeout::new(Duration::from_millis(40)).scope(|| {
                sleep(Duration::from_millis(5));
                drop(std::mem::take(&mut *s.borrow_mut())); // the stale ones
                sleep(Duration::from_secs(1));
            });
            (outcome.is_err(), start.elapsed())
        });
        let (expired, took) = fresh.get().expect("fresh greenlet ends normally");
        assert!(expired, "the new timeout was cancelled by a stale one");
        assert!(
            took >= Duration::from_millis(40) && took < TICK_UPPER,
            "took {took:?}"
        );
        hub::join();
        assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
    });
}
