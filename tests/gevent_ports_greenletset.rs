//! Ports of gevent's `src/gevent/tests/test__greenletset.py` (`pool.Group`
//! and `killall`) to the Rust API. Timings are scaled down (gevent's
//! `LARGE_TICK` of 200 ms is 50 ms here).
//!
//! gevent's `Undead` catches every exception but `SpecialError`; here it
//! swallows kills until a flag says the next one is special.

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::time::Duration;

use common::{Reports, assert_band, quiet, timed};
use greenlet::pool::Group;
use greenlet::{
    Greenlet, GreenletError, KillOptions, WaitError, killall_with, sleep, spawn, with_timeout_value,
};

const TICK: Duration = Duration::from_millis(50);
const DELAY: Duration = TICK;

/// `test__greenletset.py::Test::test_basic`: members leave as they finish.
#[greenlet::test]
fn test_basic() {
    let s = Group::new();
    s.spawn(|| sleep(TICK));
    assert_eq!(s.len(), 1);
    s.spawn(|| sleep(TICK * 5));
    assert_eq!(s.len(), 2);
    sleep(Duration::ZERO);
    sleep(TICK * 2 + TICK / 2);
    assert_eq!(s.len(), 1);
    sleep(TICK * 5 + TICK / 2);
    assert!(s.is_empty());
    quiet();
}

/// `test__greenletset.py::Test::test_waitall`: `join(raise_error)` waits
/// for the last member.
#[greenlet::test]
fn test_waitall() {
    let s = Group::new();
    s.spawn(|| sleep(DELAY));
    s.spawn(|| sleep(DELAY * 2));
    assert_eq!(s.len(), 2);
    let (r, took) = timed(|| s.join(None, true));
    r.unwrap();
    assert!(s.is_empty());
    assert_band(
        "Group::join",
        took,
        DELAY * 2,
        DELAY * 2 + Duration::from_millis(110),
    );
    quiet();
}

/// `test__greenletset.py::Test::test_kill_block`.
#[greenlet::test]
fn test_kill_block() {
    let s = Group::new();
    s.spawn(|| sleep(DELAY));
    s.spawn(|| sleep(DELAY * 2));
    let (r, took) = timed(|| s.kill());
    r.unwrap();
    assert!(s.is_empty());
    assert!(took < DELAY * 8 / 10, "{took:?}");
    quiet();
}

/// `test__greenletset.py::Test::test_kill_noblock`: members leave on the
/// next loop turn.
#[greenlet::test]
fn test_kill_noblock() {
    let s = Group::new();
    s.spawn(|| sleep(DELAY));
    s.spawn(|| sleep(DELAY * 2));
    s.kill_with(KillOptions::new().nowait()).unwrap();
    assert_eq!(s.len(), 2);
    sleep(Duration::from_micros(100));
    assert!(s.is_empty());
    quiet();
}

/// gevent's `Undead`: swallows kills (counting them) until `special`.
fn undead(shot_count: Rc<Cell<u32>>, special: Rc<Cell<bool>>) -> impl FnOnce() + 'static {
    move || {
        loop {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| sleep(Duration::from_secs(1)))) {
                if special.get() {
                    resume_unwind(payload);
                }
                drop(payload);
                shot_count.set(shot_count.get() + 1);
            }
        }
    }
}

/// `test__greenletset.py::Test::test_kill_fires_once`: a group kills each
/// member once, however many times it is asked to.
#[greenlet::test]
fn test_kill_fires_once() {
    let (u1, u2) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let special = Rc::new(Cell::new(false));
    let p1 = spawn(undead(u1.clone(), special.clone()));
    let p2 = spawn(undead(u2.clone(), special.clone()));
    let check = |c1: u32, c2: u32| {
        assert!(p1.is_active() && p2.is_active());
        assert!(!p1.is_dead() && !p2.is_dead());
        assert_eq!((u1.get(), u2.get()), (c1, c2));
    };
    sleep(Duration::from_millis(10));
    let s = Group::new();
    s.add(&p1);
    s.add(&p2);
    assert_eq!(s.len(), 2);
    check(0, 0);
    s.killone_with(&p1, KillOptions::new().nowait()).unwrap();
    check(0, 0);
    sleep(Duration::ZERO);
    check(1, 0);
    s.killone(&p1).unwrap();
    check(1, 0);
    s.killone(&p1).unwrap();
    check(1, 0);
    for _ in 0..3 {
        s.kill_with(KillOptions::new().nowait()).unwrap();
    }
    check(1, 0);
    sleep(DELAY);
    check(1, 1);
    let kill_result = with_timeout_value(DELAY, Err(WaitError::JoinSelf), || s.kill());
    assert!(matches!(kill_result, Err(WaitError::JoinSelf)), "timed out");
    assert_eq!(s.len(), 2);
    check(1, 1);
    special.set(true);
    p1.kill().unwrap();
    p2.kill().unwrap();
    quiet();
}

/// `test__greenletset.py::Test::test_killall_subclass`: killing a group
/// with a failed member and a sleeping one.
#[greenlet::test]
fn test_killall_subclass() {
    let reports = Reports::install();
    let p1: Greenlet<i32> = spawn(|| panic!("division by zero"));
    let p2: Greenlet<i32> = spawn(|| {
        sleep(Duration::from_secs(10));
        0
    });
    let s = Group::new();
    s.add(&p1);
    s.add(&p2);
    s.kill().unwrap();
    assert!(p1.is_dead() && p2.is_dead());
    assert!(s.is_empty());
    // Killed before it ever ran: its body (and its panic) never happened.
    assert!(matches!(p1.get(), Err(e) if e.is_greenlet_exit()));
    assert!(reports.take().is_empty());
    quiet();
}

/// `test__greenletset.py::Test::test_killall_iterable_argument_non_block`.
#[greenlet::test]
fn test_killall_iterable_argument_non_block() {
    let gs = [
        spawn(|| sleep(Duration::from_millis(100))),
        spawn(|| sleep(Duration::from_millis(100))),
    ];
    killall_with(&gs, KillOptions::new().nowait()).unwrap();
    sleep(Duration::from_millis(100));
    assert!(gs.iter().all(Greenlet::is_dead));
    quiet();
}

/// gevent's `f`: a sleep whose kill is swallowed into another sleep.
fn stubborn_sleeper() {
    if catch_unwind(AssertUnwindSafe(|| sleep(Duration::from_millis(300)))).is_err() {
        sleep(Duration::from_millis(200));
    }
}

/// `test__greenletset.py::Test::test_killall_iterable_argument_timeout_not_started`:
/// greenlets killed before they ran die at once.
#[greenlet::test]
fn test_killall_iterable_argument_timeout_not_started() {
    let gs = [spawn(stubborn_sleeper), spawn(stubborn_sleeper)];
    let (r, took) =
        timed(|| killall_with(&gs, KillOptions::new().timeout(Duration::from_millis(100))));
    r.unwrap();
    assert!(took < Duration::from_millis(50), "{took:?}");
    assert!(gs.iter().all(Greenlet::is_dead));
    quiet();
}

/// `test__greenletset.py::Test::test_killall_iterable_argument_timeout_started`:
/// a `killall` that times out leaves the survivors running.
#[greenlet::test]
fn test_killall_iterable_argument_timeout_started() {
    let gs = [spawn(stubborn_sleeper), spawn(stubborn_sleeper)];
    sleep(Duration::from_millis(1));
    let (r, took) =
        timed(|| killall_with(&gs, KillOptions::new().timeout(Duration::from_millis(100))));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert_band(
        "killall timeout",
        took,
        Duration::from_millis(100),
        Duration::from_millis(210),
    );
    assert!(gs.iter().all(|g| !g.is_dead()));
    for g in &gs {
        g.join().unwrap();
    }
    quiet();
}

/// gevent's `Group.join(raise_error=True)` checks the members' failures
/// after the wait even when it timed out: the failure wins.
#[greenlet::test]
fn join_raise_error_prefers_a_failure_over_the_timeout() {
    let reports = Reports::install();
    let s = Group::new();
    let _failing: Greenlet<()> = s.spawn(|| {
        sleep(Duration::from_millis(5));
        panic!("failed member")
    });
    let sleeper = s.spawn(|| sleep(Duration::from_secs(10)));
    let (r, took) = timed(|| s.join(Some(TICK), true));
    match r {
        Err(GreenletError::Panicked(p)) => assert_eq!(p.message(), "failed member"),
        other => panic!("{other:?}"),
    }
    assert_band(
        "join(timeout, raise_error)",
        took,
        TICK,
        Duration::from_millis(160),
    );
    // Without raise_error the timeout is reported.
    assert!(matches!(
        s.join(Some(Duration::from_millis(5)), false),
        Err(GreenletError::Timeout(_))
    ));
    sleeper.kill().unwrap();
    assert_eq!(reports.take().len(), 1);
    quiet();
}
