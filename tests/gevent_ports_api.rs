//! Ports of gevent's `src/gevent/tests/test__api.py` to the Rust API.
//!
//! Not ported: the "invalid switch" tests (`test_sleep_invalid_switch`,
//! `test_invalid_switch_*`): nothing can switch into a blocked greenlet
//! here but the hub.

mod common;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use common::{Log, quiet};
use greenlet::{sleep, spawn, spawn_later, with_timeout, with_timeout_value};

const DELAY: Duration = Duration::from_millis(100);

/// `test__api.py::Test::test_killing_dormant`: `kill` waits until the
/// greenlet has handled the kill and finished.
#[greenlet::test]
fn test_killing_dormant() {
    let state = Log::new();
    let s = state.clone();
    let g = spawn(move || {
        s.push("start");
        if catch_unwind(AssertUnwindSafe(|| sleep(DELAY * 3))).is_err() {
            s.push("except");
        }
        s.push("finished");
    });
    sleep(DELAY / 2);
    assert_eq!(state.entries(), ["start"]);
    g.kill().unwrap();
    assert_eq!(state.entries(), ["start", "except", "finished"]);
    quiet();
}

/// `test__api.py::Test::test_nested_with_timeout`: the outer, shorter
/// timeout fires through an inner `with_timeout_value`.
#[greenlet::test]
fn test_nested_with_timeout() {
    let func = || {
        with_timeout_value(Duration::from_millis(200), 1, || {
            sleep(Duration::from_secs(2));
            0
        })
    };
    let e = with_timeout(DELAY, func).unwrap_err();
    assert_eq!(e.duration(), Some(DELAY));
    quiet();
}

/// `test__api.py::TestTimers::test_timer_fired`.
#[greenlet::test]
fn test_timer_fired() {
    let lst = Rc::new(RefCell::new(vec![1]));
    let l = lst.clone();
    spawn(move || {
        let l2 = l.clone();
        spawn_later(Duration::from_millis(10), move || l2.borrow_mut().pop());
        sleep(Duration::from_millis(20));
    });
    assert_eq!(*lst.borrow(), [1], "func has not run yet");
    sleep(Duration::ZERO);
    sleep(DELAY);
    assert!(lst.borrow().is_empty());
    quiet();
}

/// `test__api.py::TestTimers::test_spawn_is_not_cancelled`: a greenlet
/// spawned by one that exits at once still runs.
#[greenlet::test]
fn test_spawn_is_not_cancelled() {
    let lst = Rc::new(RefCell::new(vec![1]));
    let l = lst.clone();
    spawn(move || {
        spawn(move || l.borrow_mut().pop());
    });
    sleep(DELAY);
    assert!(lst.borrow().is_empty());
    quiet();
}
