//! `lock::{Semaphore, BoundedSemaphore, Lock, RLock}`: FIFO fairness (no
//! barging), exactly-once hand-off, timing bands, kill and timeout while
//! queued (no permit lost, no wake-up stolen), kill and timeout due in one
//! turn, guards, release errors, RLock ownership by greenlet identity.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{LONG, TICK, TICK_UPPER, quiet};
use greenlet::lock::{BoundedSemaphore, Lock, RLock, ReleaseError, Semaphore};
use greenlet::{KillOptions, WaitError, Waitable, sleep, spawn, with_timeout};

const ZERO: Duration = Duration::ZERO;

#[greenlet::test]
fn waiters_get_permits_in_fifo_order_and_late_comers_do_not_barge() {
    let sem = Rc::new(Semaphore::new(1));
    let order = Rc::new(RefCell::new(Vec::new()));
    sem.acquire().unwrap();
    let gs: Vec<_> = (0..4)
        .map(|i| {
            let (sem, order) = (sem.clone(), order.clone());
            spawn(move || {
                let _p = sem.lock().unwrap();
                order.borrow_mut().push(i);
                sleep(Duration::from_millis(1));
            })
        })
        .collect();
    sleep(ZERO);
    assert_eq!(sem.waiters(), 4);
    sem.release().unwrap();
    // Handed to waiter 0, which has not run yet: nobody may take it.
    assert_eq!(sem.counter(), 0);
    assert!(!sem.try_acquire(), "barged past a waiter");
    greenlet::joinall(&gs).unwrap();
    assert_eq!(*order.borrow(), [0, 1, 2, 3]);
    assert_eq!(sem.counter(), 1);
    assert_eq!(sem.waiters(), 0);
    quiet();
}

#[greenlet::test]
fn acquire_timeout_lasts_its_band_and_leaves_the_queue() {
    let lock = Lock::new();
    lock.acquire().unwrap();
    let (r, took) = common::timed(|| lock.acquire_timeout(TICK));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert!(took >= TICK && took < TICK_UPPER, "{took:?}");
    assert_eq!(lock.waiters(), 0);
    lock.release().unwrap();
    assert_eq!(lock.release(), Err(ReleaseError::TooManyReleases));
    assert!(!lock.is_locked());
    quiet();
}

#[greenlet::test]
fn a_waiter_killed_while_queued_loses_no_permit_and_steals_none() {
    let sem = Rc::new(Semaphore::new(0));
    let got = Rc::new(RefCell::new(Vec::new()));
    let mk = |name: &'static str, timeout: Option<Duration>| {
        let (sem, got) = (sem.clone(), got.clone());
        spawn(move || {
            let r = match timeout {
                Some(t) => sem.acquire_timeout(t),
                None => sem.acquire(),
            };
            if r.is_ok() {
                got.borrow_mut().push(name);
            }
        })
    };
    let killed = mk("killed", None);
    let timed_out = mk("timed_out", Some(Duration::from_millis(5)));
    let a = mk("a", None);
    let b = mk("b", None);
    sleep(ZERO);
    killed.kill().unwrap();
    timed_out.join().unwrap();
    assert_eq!(sem.waiters(), 2);
    sem.release().unwrap();
    sem.release().unwrap();
    greenlet::joinall([&a, &b]).unwrap();
    assert_eq!(*got.borrow(), ["a", "b"]);
    assert_eq!(sem.counter(), 0);
    assert_eq!(sem.waiters(), 0);
    quiet();
}

#[greenlet::test]
fn a_waiter_killed_after_the_hand_off_passes_the_permit_on() {
    let lock = Rc::new(Lock::new());
    lock.acquire().unwrap();
    let l1 = lock.clone();
    let victim = spawn(move || {
        let _g = l1.lock().unwrap();
        unreachable!("killed before it ran");
    });
    let l2 = lock.clone();
    let next = spawn(move || l2.lock().map(drop).is_ok());
    sleep(ZERO);
    lock.release().unwrap(); // handed to victim
    victim
        .kill_with_options(KillOptions::new().nowait())
        .unwrap();
    assert!(next.get().unwrap());
    victim.join().unwrap();
    assert!(!lock.is_locked());
    assert_eq!(lock.counter(), 1);
    quiet();
}

#[greenlet::test]
fn kill_and_timeout_due_in_one_turn_while_queued() {
    let sem = Rc::new(BoundedSemaphore::new(1));
    sem.acquire().unwrap();
    let s = sem.clone();
    let g = spawn(move || s.acquire_timeout(Duration::from_millis(10)));
    sleep(ZERO);
    std::thread::sleep(Duration::from_millis(15)); // its timer is due
    g.kill_with_options(KillOptions::new().nowait()).unwrap();
    g.join().unwrap();
    assert_eq!(sem.waiters(), 0);
    sem.release().unwrap();
    assert_eq!(sem.counter(), 1);
    assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases));

    // A hand-off and the waiter's own timer due in one turn: the permit
    // wins, exactly once.
    sem.acquire().unwrap();
    let s = sem.clone();
    let g = spawn(move || {
        let r = s.acquire_timeout(Duration::from_millis(10));
        if r.is_ok() {
            s.release().unwrap();
        }
        r.is_ok()
    });
    sleep(ZERO);
    std::thread::sleep(Duration::from_millis(15));
    sem.release().unwrap();
    assert!(g.get().unwrap());
    assert_eq!(sem.counter(), 1);
    quiet();
}

#[greenlet::test]
fn an_outer_timeout_while_queued_leaves_no_trace() {
    let sem = Semaphore::new(0);
    let (r, took) = common::timed(|| with_timeout(TICK, || sem.acquire()));
    assert!(r.is_err());
    assert!(took >= TICK && took < TICK_UPPER, "{took:?}");
    assert_eq!(sem.waiters(), 0);
    sem.release().unwrap();
    assert_eq!(sem.counter(), 1);
    quiet();
}

#[test]
fn the_native_stack_acquiring_a_lock_nothing_releases_gets_loop_exit() {
    greenlet::run(|| {
        let lock = Lock::new();
        lock.acquire().unwrap();
        match lock.acquire() {
            Err(WaitError::LoopExit(e)) => {
                assert!(e.to_string().contains("Lock::acquire"), "{e}")
            }
            other => panic!("expected LoopExit, got {other:?}"),
        }
        assert_eq!(lock.waiters(), 0);
        let r = RLock::new();
        let r2 = Rc::new(r);
        let r3 = r2.clone();
        let holder = spawn(move || r3.acquire());
        holder.get().unwrap().unwrap(); // died holding it
        assert!(matches!(r2.acquire(), Err(WaitError::LoopExit(_))));
    });
}

#[greenlet::test]
fn guards_release_on_drop_also_when_their_greenlet_is_killed() {
    let lock = Rc::new(Lock::new());
    let l = lock.clone();
    let holder = spawn(move || {
        let _g = l.lock().unwrap();
        sleep(LONG);
    });
    sleep(ZERO);
    assert!(lock.is_locked());
    holder.kill().unwrap();
    assert!(!lock.is_locked());
    let sem = BoundedSemaphore::new(2);
    {
        let _a = sem.lock().unwrap();
        let _b = sem.try_lock().unwrap();
        assert!(sem.try_lock().is_none());
        assert!(sem.lock_timeout(Duration::from_millis(1)).is_err());
    }
    assert_eq!(sem.counter(), 2);
    quiet();
}

#[greenlet::test]
fn rlock_is_reentrant_per_greenlet_and_only_its_owner_releases() {
    let lock = Rc::new(RLock::new());
    lock.acquire().unwrap();
    lock.acquire().unwrap();
    assert!(lock.try_acquire());
    assert_eq!(lock.count(), 3);
    assert!(lock.is_owned());
    let l = lock.clone();
    let other = spawn(move || (l.release(), l.is_owned(), l.try_acquire()));
    assert_eq!(
        other.get().unwrap(),
        (Err(ReleaseError::NotOwner), false, false)
    );
    // A waiter gets it only after the last release.
    let order = Rc::new(RefCell::new(Vec::new()));
    let (l, o) = (lock.clone(), order.clone());
    let waiter = spawn(move || {
        let _g = l.lock().unwrap();
        let _again = l.lock().unwrap();
        o.borrow_mut().push("waiter");
        l.count()
    });
    sleep(ZERO);
    lock.release().unwrap();
    lock.release().unwrap();
    sleep(ZERO);
    assert!(order.borrow().is_empty());
    order.borrow_mut().push("main");
    lock.release().unwrap();
    assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    // Handed to the waiter: main cannot take it back before it runs.
    assert!(!lock.try_acquire());
    assert_eq!(waiter.get().unwrap(), 2);
    assert_eq!(*order.borrow(), ["main", "waiter"]);
    assert!(!lock.is_locked() && lock.count() == 0);
    quiet();
}

#[greenlet::test]
fn rlock_owner_that_died_is_not_confused_with_a_greenlet_reusing_its_slot() {
    let lock = Rc::new(RLock::new());
    let l = lock.clone();
    let dead_owner = spawn(move || l.acquire().unwrap());
    dead_owner.join().unwrap();
    assert!(lock.is_locked());
    // Many later greenlets, some in the freed slot: none is the owner.
    for _ in 0..20 {
        let l = lock.clone();
        let g = spawn(move || (l.try_acquire(), l.release()));
        assert_eq!(g.get().unwrap(), (false, Err(ReleaseError::NotOwner)));
    }
    assert_eq!(lock.count(), 1);
    quiet();
}

#[greenlet::test]
fn a_semaphore_is_waitable_when_a_permit_is_free() {
    let sem = Rc::new(Semaphore::new(0));
    let hits = Rc::new(Cell::new(0));
    let h = hits.clone();
    sem.rawlink(Box::new(move || h.set(h.get() + 1)));
    let s = sem.clone();
    spawn(move || {
        sleep(Duration::from_millis(5));
        s.release().unwrap();
    });
    let (ready, took) = common::timed(|| greenlet::wait([&*sem]).unwrap());
    assert_eq!(ready.len(), 1);
    assert!(took >= Duration::from_millis(5), "{took:?}");
    assert_eq!(hits.get(), 1);
    assert_eq!(sem.counter(), 1, "wait does not take the permit");
    quiet();
}

#[greenlet::test]
fn contended_storm_keeps_mutual_exclusion_and_counts() {
    let sem = Rc::new(Semaphore::new(3));
    let inside = Rc::new(Cell::new(0usize));
    let max = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0usize));
    let gs: Vec<_> = (0..200)
        .map(|i| {
            let (sem, inside, max, done) = (sem.clone(), inside.clone(), max.clone(), done.clone());
            spawn(move || {
                let r = if i % 7 == 0 {
                    sem.lock_timeout(Duration::from_micros(200))
                } else {
                    sem.lock()
                };
                if let Ok(_g) = r {
                    inside.set(inside.get() + 1);
                    max.set(max.get().max(inside.get()));
                    sleep(ZERO);
                    inside.set(inside.get() - 1);
                    done.set(done.get() + 1);
                }
            })
        })
        .collect();
    sleep(ZERO);
    for g in gs.iter().skip(3).step_by(11) {
        g.kill_nowait();
    }
    for g in &gs {
        g.join().unwrap();
    }
    assert_eq!(max.get(), 3);
    assert_eq!(inside.get(), 0);
    assert!(done.get() > 150, "{}", done.get());
    assert_eq!(sem.counter(), 3);
    assert_eq!(sem.waiters(), 0);
    quiet();
}

#[greenlet::test]
fn a_failed_try_lock_releases_nothing() {
    let sem = Semaphore::new(1);
    let _held = sem.try_lock().unwrap();
    for _ in 0..3 {
        assert!(sem.try_lock().is_none());
    }
    assert_eq!(sem.counter(), 0);
    let l = Rc::new(RLock::new());
    let l2 = l.clone();
    let holder = spawn(move || {
        let _g = l2.lock().unwrap();
        sleep(LONG);
    });
    sleep(ZERO);
    assert!(l.try_lock().is_none());
    assert_eq!(l.count(), 1);
    holder.kill().unwrap();
    assert!(!l.is_locked());
    quiet();
}
