//! Ports of gevent's `src/gevent/tests/test__semaphore.py`, `test__lock.py`
//! and the greenlet-expressible parts of `lock_tests.py` (the CPython lock
//! suite gevent runs on its locks) to `greenlet::lock`.
//!
//! Not ported: the multi-thread tests (`TestSemaphoreMultiThread`,
//! `TestRLockMultiThread`, `test_dueling_threads`: the greenlet locks are
//! `!Send` by design; OS threads use `queue::thread_channel` or std's
//! locks), `test_semaphore_weakref`, `test_semaphore_in_class_with_del`,
//! `TestLockReinitAfterFork`, `test_constructor` (a negative value does not
//! type-check).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{Log, TICK, assert_tick, quiet, timed};
use greenlet::lock::{BoundedSemaphore, Lock, RLock, ReleaseError, Semaphore};
use greenlet::{Greenlet, GreenletError, Timeout, WaitError, Waitable, joinall, sleep, spawn};

const ZERO: Duration = Duration::ZERO;

/// `test__semaphore.py::TestSemaphore::test_acquire_returns_false_after_timeout`
/// (`False` is `Err(Elapsed)`), with its timing band.
#[greenlet::test]
fn test_acquire_returns_false_after_timeout() {
    let s = Semaphore::new(0);
    let (r, took) = timed(|| s.acquire_timeout(TICK));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert_tick("acquire_timeout", took);
    assert_eq!(s.counter(), 0);
    quiet();
}

/// `test__semaphore.py::TestSemaphore::test_release_twice`: a link added
/// while the semaphore has permits fires, and so does one added before.
#[greenlet::test]
fn test_release_twice() {
    let s = Semaphore::new(1);
    let result = Log::new();
    let r = result.clone();
    s.rawlink(Box::new(move || r.push("a")));
    s.release().unwrap();
    let r = result.clone();
    s.rawlink(Box::new(move || r.push("b")));
    s.release().unwrap();
    sleep(Duration::from_millis(1));
    let mut got = result.entries();
    got.sort();
    assert_eq!(got, ["a", "b"]);
    quiet();
}

/// `test__semaphore.py::TestSemaphore::test_rawlink_on_unacquired_runs_notifiers`:
/// `wait([sem])` on a semaphore with a permit returns at once.
#[greenlet::test]
fn test_rawlink_on_unacquired_runs_notifiers() {
    let s = Semaphore::new(1);
    let ready = greenlet::wait([&s]).unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(s.counter(), 1, "waiting does not take the permit");
    quiet();
}

fn acquire_then_exit(sem: Rc<Semaphore>, should_quit: Rc<Cell<bool>>) {
    sem.acquire().unwrap();
    should_quit.set(true);
}

fn acquire_then_spawn(sem: Rc<Semaphore>, should_quit: Rc<Cell<bool>>) {
    if should_quit.get() {
        return;
    }
    sem.acquire().unwrap();
    let g = spawn(move || release_then_spawn(sem, should_quit));
    let _ = g.join();
}

fn release_then_spawn(sem: Rc<Semaphore>, should_quit: Rc<Cell<bool>>) {
    sem.release().unwrap();
    if should_quit.get() {
        return;
    }
    let g = spawn(move || acquire_then_spawn(sem, should_quit));
    let _ = g.join();
}

/// `test__semaphore.py::TestSemaphoreFair::test_fair_or_hangs`: two
/// greenlets passing the permit back and forth cannot starve a third
/// waiter; once it holds the permit for good, `joinall` on the native
/// stack is `LoopExit`.
#[greenlet::test]
fn test_fair_or_hangs() {
    let sem = Rc::new(Semaphore::new(1));
    let should_quit = Rc::new(Cell::new(false));
    let (s, q) = (sem.clone(), should_quit.clone());
    let keep_going1 = spawn(move || acquire_then_spawn(s, q));
    let (s, q) = (sem.clone(), should_quit.clone());
    let keep_going2 = spawn(move || acquire_then_spawn(s, q));
    let (s, q) = (sem.clone(), should_quit.clone());
    let exiting = spawn(move || acquire_then_exit(s, q));

    let r = joinall([&keep_going1, &keep_going2, &exiting]);
    assert!(matches!(r, Err(GreenletError::LoopExit(_))), "{r:?}");
    assert!(exiting.is_dead());
    assert!(keep_going2.is_dead());
    assert!(!keep_going1.is_dead());

    sem.release().unwrap();
    keep_going1.kill().unwrap();
    keep_going2.kill().unwrap();
    exiting.kill().unwrap();
    greenlet::idle();
    quiet();
}

// ------------------------------------------------- lock_tests.py (locks)

/// Runs `n` greenlets of `f` (lock_tests.py's `Bunch`).
fn bunch(n: usize, f: impl Fn() + Clone + 'static) -> Vec<Greenlet<()>> {
    (0..n).map(|_| spawn(f.clone())).collect()
}

/// `lock_tests.py::BaseLockTests::test_acquire_release`, `test_try_acquire`,
/// `test_try_acquire_contended`, `test_acquire_contended` for `Lock`.
#[greenlet::test]
fn test_lock_basics() {
    let lock = Rc::new(Lock::new());
    lock.acquire().unwrap();
    lock.release().unwrap();
    assert!(lock.try_acquire());
    lock.release().unwrap();

    lock.acquire().unwrap();
    let l = lock.clone();
    let g = spawn(move || l.try_acquire());
    assert!(!g.get().unwrap());
    lock.release().unwrap();

    lock.acquire().unwrap();
    let finished = Rc::new(Cell::new(0));
    let (l, f) = (lock.clone(), finished.clone());
    let gs = bunch(5, move || {
        l.acquire().unwrap();
        l.release().unwrap();
        f.set(f.get() + 1);
    });
    sleep(Duration::from_millis(10));
    assert_eq!(finished.get(), 0);
    lock.release().unwrap();
    joinall(&gs).unwrap();
    assert_eq!(finished.get(), 5);
    assert!(!lock.is_locked());
    quiet();
}

/// `lock_tests.py::BaseLockTests::test_with`: the guard releases on normal
/// exit and on unwinding.
#[greenlet::test]
fn test_with() {
    let lock = Lock::new();
    {
        let _g = lock.lock().unwrap();
        assert!(lock.is_locked());
    }
    assert!(!lock.is_locked());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = lock.lock().unwrap();
        panic!("TypeError");
    }));
    assert!(r.is_err());
    assert!(!lock.is_locked());
    assert!(lock.try_acquire());
    quiet();
}

/// `lock_tests.py::LockTests::test_reacquire`: a `Lock` is not reentrant.
#[greenlet::test]
fn test_lock_reacquire() {
    let lock = Rc::new(Lock::new());
    let phase = Rc::new(Cell::new(0));
    let (l, p) = (lock.clone(), phase.clone());
    let g = spawn(move || {
        l.acquire().unwrap();
        p.set(1);
        l.acquire().unwrap();
        p.set(2);
    });
    sleep(Duration::from_millis(10));
    assert_eq!(phase.get(), 1);
    lock.release().unwrap();
    sleep(Duration::from_millis(10));
    assert_eq!(phase.get(), 2);
    g.join().unwrap();
    quiet();
}

/// `lock_tests.py::LockTests::test_different_thread`: a `Lock` may be
/// released by another greenlet.
#[greenlet::test]
fn test_lock_different_thread() {
    let lock = Rc::new(Lock::new());
    lock.acquire().unwrap();
    let l = lock.clone();
    spawn(move || l.release().unwrap()).join().unwrap();
    lock.acquire().unwrap();
    lock.release().unwrap();
    // Released past its bound: gevent's RuntimeError/ValueError.
    assert_eq!(lock.release(), Err(ReleaseError::TooManyReleases));
    quiet();
}

/// `lock_tests.py::RLockTests::test_reacquire`, `test_release_unacquired`.
#[greenlet::test]
fn test_rlock_reacquire() {
    let lock = RLock::new();
    assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    lock.acquire().unwrap();
    lock.acquire().unwrap();
    lock.release().unwrap();
    lock.acquire().unwrap();
    lock.release().unwrap();
    lock.release().unwrap();
    assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    assert!(!lock.is_locked());
    quiet();
}

/// `lock_tests.py::RLockTests::test_different_thread`: another greenlet
/// cannot release an `RLock` it does not hold.
#[greenlet::test]
fn test_rlock_different_thread() {
    let lock = Rc::new(RLock::new());
    let l = lock.clone();
    let holder = spawn(move || {
        l.acquire().unwrap();
        sleep(Duration::from_secs(60));
    });
    sleep(ZERO);
    assert!(lock.is_locked());
    assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    holder.kill().unwrap();
    quiet();
}

/// `lock_tests.py::RLockTests::test__is_owned`.
#[greenlet::test]
fn test_rlock_is_owned() {
    let lock = Rc::new(RLock::new());
    assert!(!lock.is_owned());
    lock.acquire().unwrap();
    assert!(lock.is_owned());
    lock.acquire().unwrap();
    assert!(lock.is_owned());
    let l = lock.clone();
    assert!(!spawn(move || l.is_owned()).get().unwrap());
    lock.release().unwrap();
    assert!(lock.is_owned());
    lock.release().unwrap();
    assert!(!lock.is_owned());
    quiet();
}

// --------------------------------------------- lock_tests.py (semaphores)

/// `lock_tests.py::BaseSemaphoreTests::test_acquire`, `test_try_acquire`,
/// `test_default_value`.
#[greenlet::test]
fn test_semaphore_acquire() {
    let sem = Semaphore::new(2);
    assert!(sem.try_acquire());
    assert!(sem.try_acquire());
    assert!(!sem.try_acquire());
    sem.release().unwrap();
    assert!(sem.try_acquire());
    sem.release().unwrap();
    sem.release().unwrap();

    let sem = Rc::new(Semaphore::default());
    sem.acquire().unwrap();
    let s = sem.clone();
    let g = spawn(move || {
        s.acquire().unwrap();
        s.release().unwrap();
    });
    sleep(Duration::from_millis(10));
    assert!(!g.is_ready());
    sem.release().unwrap();
    g.join().unwrap();
    quiet();
}

/// `lock_tests.py::BaseSemaphoreTests::test_acquire_contended`: each release
/// lets exactly one more acquire through, in phases.
#[greenlet::test]
fn test_semaphore_acquire_contended() {
    let sem = Rc::new(Semaphore::new(7));
    sem.acquire().unwrap();
    let results1 = Rc::new(RefCell::new(Vec::new()));
    let results2 = Rc::new(RefCell::new(Vec::new()));
    let phase = Rc::new(Cell::new(0));
    let (s, r1, r2, p) = (
        sem.clone(),
        results1.clone(),
        results2.clone(),
        phase.clone(),
    );
    let gs = bunch(10, move || {
        s.acquire().unwrap();
        r1.borrow_mut().push(p.get());
        s.acquire().unwrap();
        r2.borrow_mut().push(p.get());
    });
    let total = || results1.borrow().len() + results2.borrow().len();
    let all = || {
        let mut v: Vec<i32> = results1.borrow().clone();
        v.extend(results2.borrow().iter());
        v.sort();
        v
    };
    sleep(Duration::from_millis(10));
    assert_eq!(total(), 6);
    assert_eq!(all(), [0; 6]);
    phase.set(1);
    for _ in 0..7 {
        sem.release().unwrap();
    }
    sleep(Duration::from_millis(10));
    assert_eq!(total(), 13);
    phase.set(2);
    for _ in 0..6 {
        sem.release().unwrap();
    }
    sleep(Duration::from_millis(10));
    assert_eq!(total(), 19);
    let mut expected = vec![0; 6];
    expected.extend([1; 7]);
    expected.extend([2; 6]);
    assert_eq!(all(), expected);
    assert!(!sem.try_acquire());
    sem.release().unwrap();
    joinall(&gs).unwrap();
    quiet();
}

/// `lock_tests.py::BaseSemaphoreTests::test_try_acquire_contended`.
#[greenlet::test]
fn test_semaphore_try_acquire_contended() {
    let sem = Rc::new(Semaphore::new(4));
    sem.acquire().unwrap();
    let results = Rc::new(RefCell::new(Vec::new()));
    let (s, r) = (sem.clone(), results.clone());
    let gs = bunch(5, move || {
        r.borrow_mut().push(s.try_acquire());
        r.borrow_mut().push(s.try_acquire());
    });
    joinall(&gs).unwrap();
    let mut got = results.borrow().clone();
    got.sort();
    let mut expected = vec![false; 7];
    expected.extend([true; 3]);
    assert_eq!(got, expected);
    quiet();
}

/// `lock_tests.py::BaseSemaphoreTests::test_with`.
#[greenlet::test]
fn test_semaphore_with() {
    let sem = Semaphore::new(2);
    {
        let _outer = sem.lock().unwrap();
        assert!(sem.try_acquire());
        sem.release().unwrap();
        let _inner = sem.lock().unwrap();
        assert!(!sem.try_acquire());
    }
    assert!(sem.try_acquire());
    sem.release().unwrap();
    assert_eq!(sem.counter(), 2);
    quiet();
}

/// `lock_tests.py::SemaphoreTests::test_release_unacquired` and
/// `BoundedSemaphoreTests::test_release_unacquired`.
#[greenlet::test]
fn test_release_unacquired() {
    let sem = Semaphore::new(1);
    sem.release().unwrap();
    sem.acquire().unwrap();
    sem.acquire().unwrap();
    sem.release().unwrap();
    assert_eq!(sem.counter(), 1);

    let sem = BoundedSemaphore::default();
    assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases));
    sem.acquire().unwrap();
    sem.release().unwrap();
    assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases));
    assert_eq!(sem.counter(), 1);
    quiet();
}

/// A semaphore waiter killed and one timed out in the same turn as the
/// release take no permit: the third waiter gets it, exactly once.
#[greenlet::test]
fn killed_and_timed_out_waiters_take_no_permit() {
    let sem = Rc::new(Semaphore::new(0));
    let got = Log::new();
    let spawn_waiter = |name: &'static str, timeout: Option<Duration>| {
        let (s, got) = (sem.clone(), got.clone());
        spawn(move || {
            let r = match timeout {
                Some(t) => Timeout::run(t, || s.acquire()).map(|r| r.is_ok()),
                None => Ok(s.acquire().is_ok()),
            };
            if matches!(r, Ok(true)) {
                got.push(name);
            }
        })
    };
    let killed = spawn_waiter("killed", None);
    let timed_out = spawn_waiter("timed out", Some(ZERO));
    let third = spawn_waiter("third", None);
    sleep(ZERO);
    sem.release().unwrap();
    killed.kill_nowait();
    third.join().unwrap();
    timed_out.join().unwrap();
    killed.join().unwrap();
    assert_eq!(got.entries(), ["third"]);
    assert_eq!(sem.counter(), 0);
    quiet();
}
