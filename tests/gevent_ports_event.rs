//! Ports of gevent's `src/gevent/tests/test__event.py` to `greenlet::event`.
//!
//! Not ported: the cross-thread tests (`TestAsyncResultCrossThread`,
//! `TestEventCrossThread`: `Event` and `AsyncResult` are `!Send` by design;
//! OS threads use `queue::thread_channel` or `HubHandle::post`),
//! `test_weakref`, `test_cover`, `test_link` (a `None` callback does not
//! type-check). `AsyncResult.get(block=False)` raising `Timeout` is
//! `try_get()` returning `None`.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{Log, Reports, TICK, assert_tick, quiet, timed};
use greenlet::event::{AsyncResult, Event};
use greenlet::{
    GreenletError, Timeout, WaitError, WaitOptions, Waitable, sleep, spawn, spawn_later, wait,
    wait_with, with_timeout_value,
};

const ZERO: Duration = Duration::ZERO;
const MS: Duration = Duration::from_millis(1);
/// gevent's `DELAY = SMALL_TICK + SMALL_TICK_MAX_ADJ`, scaled.
const DELAY: Duration = Duration::from_millis(60);

#[derive(Debug, Clone, PartialEq)]
struct MyException(&'static str);
impl std::fmt::Display for MyException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MyException({})", self.0)
    }
}
impl std::error::Error for MyException {}
impl From<WaitError> for MyException {
    fn from(_: WaitError) -> Self {
        MyException("wait failed")
    }
}

/// `timing.py::AbstractGenericWaitTestCase::test_returns_none_after_timeout`
/// for one timed wait: it gives up after `TICK`, in band.
#[track_caller]
fn generic_wait(what: &str, f: impl FnOnce(Duration)) {
    let ((), took) = timed(|| f(TICK));
    assert_tick(what, took);
}

/// `test__event.py::TestEventWait`, `TestGeventWaitOnEvent`,
/// `TestAsyncResultWait`, `TestWaitAsyncResult`.
#[greenlet::test]
fn test_returns_none_after_timeout() {
    generic_wait("Event::wait_timeout", |t| {
        assert!(matches!(
            Event::new().wait_timeout(t),
            Err(WaitError::Elapsed(_))
        ))
    });
    generic_wait("wait([Event])", |t| {
        let e = Event::new();
        assert!(
            wait_with([&e], WaitOptions::new().timeout(t))
                .unwrap()
                .is_empty()
        )
    });
    generic_wait("AsyncResult::wait_timeout", |t| {
        let ar = AsyncResult::<u8>::new();
        assert!(matches!(ar.wait_timeout(t), Err(WaitError::Elapsed(_))))
    });
    generic_wait("wait([AsyncResult])", |t| {
        let ar = AsyncResult::<u8>::new();
        assert!(
            wait_with([&ar], WaitOptions::new().timeout(t))
                .unwrap()
                .is_empty()
        )
    });
    quiet();
}

/// `test__event.py::TestAsyncResultGet` (`AbstractGenericGetTestCase`):
/// `get` gives up on its own timeout, a `Timeout` around it, a customised
/// one, and an outer timeout is not lost.
#[greenlet::test]
fn test_async_result_get_interrupted() {
    let ar = AsyncResult::<u8, MyException>::new();
    let (r, took) = timed(|| ar.get_timeout(TICK));
    assert_eq!(r, Err(MyException("wait failed")));
    assert_tick("get_timeout", took);
    let (r, took) = timed(|| Timeout::new(TICK).scope(|| ar.get()));
    assert_eq!(r.unwrap_err().duration(), Some(TICK));
    assert_tick("Timeout around get", took);
    let (r, took) = timed(|| Timeout::with_error(TICK, MyException("expected")).scope(|| ar.get()));
    let e = r.unwrap_err();
    assert_eq!(
        e.error().unwrap().downcast_ref::<MyException>(),
        Some(&MyException("expected"))
    );
    assert_tick("custom Timeout around get", took);
    let (r, took) = timed(|| {
        Timeout::new(MS)
            .unref()
            .scope(|| ar.get_timeout(Duration::from_secs(1)))
    });
    assert_eq!(r.unwrap_err().duration(), Some(MS));
    assert!(took < Duration::from_millis(500), "{took:?}");
    quiet();
}

/// `test__event.py::TestGeventWaitOnEvent::test_set_during_wait`.
#[greenlet::test]
fn test_set_during_wait() {
    let event = Rc::new(Event::new());
    let e = event.clone();
    let waiter = spawn(move || {
        let setter = {
            let e = e.clone();
            spawn(move || e.set())
        };
        e.wait().unwrap();
        assert!(e.is_set());
        setter.join().unwrap();
        e.clear();
        assert!(!e.is_set());
        let o = wait_with([&*e], WaitOptions::new().timeout(Duration::from_millis(10))).unwrap();
        assert!(!e.is_set());
        o.len()
    });
    assert_eq!(waiter.get().unwrap(), 0);
    quiet();
}

/// `test__event.py::TestAsyncResult::test_set_exc`: a waiter in `get` gets
/// the exception.
#[greenlet::test]
fn test_set_exc() {
    let log = Log::new();
    let e = AsyncResult::<u8, MyException>::new();
    assert_eq!(e.exception(), None);
    {
        let (e, log) = (e.clone(), log.clone());
        spawn(move || {
            if let Err(exc) = e.get() {
                log.push(format!("caught {exc}"));
            }
        });
    }
    e.set_exception(MyException("obj"));
    sleep(ZERO);
    assert_eq!(log.entries(), ["caught MyException(obj)"]);
    assert_eq!(e.exception(), Some(MyException("obj")));
    quiet();
}

/// `test__event.py::TestAsyncResult::test_set`: a zero `Timeout` with a
/// custom error interrupts `get`.
#[greenlet::test]
fn test_set() {
    let event1 = AsyncResult::<&str>::new();
    let setter = {
        let e = event1.clone();
        spawn_later(DELAY, move || e.set("hello event1"))
    };
    let r = Timeout::with_error(ZERO, MyException("interrupted")).scope(|| event1.get());
    let e = r.unwrap_err();
    assert_eq!(
        e.error().unwrap().downcast_ref::<MyException>(),
        Some(&MyException("interrupted"))
    );
    setter.kill().unwrap();
    quiet();
}

/// `test__event.py::TestAsyncResult::test_set_with_timeout`.
#[greenlet::test]
fn test_set_with_timeout() {
    let event2 = AsyncResult::<&str>::new();
    let (result, took) = timed(|| with_timeout_value(DELAY, "X", || event2.get().unwrap()));
    assert_eq!(result, "X");
    assert!(
        took >= DELAY && took < DELAY + Duration::from_millis(110),
        "{took:?}"
    );
    quiet();
}

/// `test__event.py::TestAsyncResult::test_nonblocking_get`.
#[greenlet::test]
fn test_nonblocking_get() {
    let ar = AsyncResult::<u8>::new();
    assert!(ar.try_get().is_none());
    quiet();
}

/// `test__event.py::TestAsyncResultAsLinkTarget::test_set`: a greenlet's
/// links feed `AsyncResult`s; `link_exception` never fires on success.
#[greenlet::test]
fn test_async_result_as_link_target_set() {
    let g = spawn(|| 1);
    let (s1, s2, s3) = (
        AsyncResult::<i32>::new(),
        AsyncResult::<i32>::new(),
        AsyncResult::<i32>::new(),
    );
    for (s, kind) in [(&s1, 0), (&s2, 1), (&s3, 2)] {
        let s = s.clone();
        let feed = move |g: &greenlet::Greenlet<i32>| match g.get() {
            Ok(v) => s.set(v),
            Err(e) => s.set_exception(e),
        };
        match kind {
            0 => g.link(feed),
            1 => g.link_value(feed),
            _ => g.link_exception(feed),
        };
    }
    assert_eq!(s1.get().unwrap(), 1);
    assert_eq!(s2.get().unwrap(), 1);
    assert!(with_timeout_value(DELAY, None, || Some(s3.get())).is_none());
    quiet();
}

/// `test__event.py::TestAsyncResultAsLinkTarget::test_set_exception`.
#[greenlet::test]
fn test_async_result_as_link_target_set_exception() {
    let reports = Reports::install();
    let g = spawn(|| -> i32 { panic!("ExpectedException") });
    let (s1, s2, s3) = (
        AsyncResult::<i32>::new(),
        AsyncResult::<i32>::new(),
        AsyncResult::<i32>::new(),
    );
    for (s, kind) in [(&s1, 0), (&s2, 1), (&s3, 2)] {
        let s = s.clone();
        let feed = move |g: &greenlet::Greenlet<i32>| match g.get() {
            Ok(v) => s.set(v),
            Err(e) => s.set_exception(e),
        };
        match kind {
            0 => g.link(feed),
            1 => g.link_value(feed),
            _ => g.link_exception(feed),
        };
    }
    assert!(matches!(s1.get(), Err(GreenletError::Panicked(_))));
    assert!(with_timeout_value(DELAY, None, || Some(s2.get())).is_none());
    assert!(matches!(s3.get(), Err(GreenletError::Panicked(_))));
    assert_eq!(reports.take().len(), 1);
    quiet();
}

/// `test__event.py::TestEvent_SetThenClear` (1, 100, 1000 waiters): a
/// `set` immediately followed by `clear` still wakes every waiter.
#[greenlet::test]
fn test_set_then_clear() {
    for n in [1, 100, 1000] {
        let e = Rc::new(Event::new());
        let waiters: Vec<_> = (0..n)
            .map(|_| {
                let e = e.clone();
                spawn(move || e.wait())
            })
            .collect();
        sleep(MS);
        e.set();
        e.clear();
        for g in &waiters {
            g.get().unwrap().unwrap();
        }
    }
    quiet();
}

/// `test__event.py::TestWait` (`count` None, 1, 2; `timeout` 1 s and
/// none): `wait` on a mix of events and results returns what became ready.
#[greenlet::test]
fn test_wait() {
    const N: usize = 5;
    let period = Duration::from_millis(10);
    for (count, timeout) in [
        (None, Some(Duration::from_secs(1))),
        (None, None),
        (Some(1), Some(Duration::from_secs(1))),
        (Some(2), Some(Duration::from_secs(1))),
    ] {
        let events: Vec<Rc<Event>> = (0..N).map(|_| Rc::new(Event::new())).collect();
        let asyncs: Vec<AsyncResult<()>> = (0..N).map(|_| AsyncResult::new()).collect();
        let sender = {
            let mut events = events.clone();
            let mut asyncs = asyncs.clone();
            spawn(move || {
                while !events.is_empty() || !asyncs.is_empty() {
                    sleep(period);
                    if let Some(e) = events.pop() {
                        e.set();
                    }
                    sleep(period);
                    if let Some(a) = asyncs.pop() {
                        a.set(());
                    }
                }
            })
        };
        let mut objects: Vec<&dyn Waitable> = Vec::new();
        objects.extend(events.iter().map(|e| &**e as &dyn Waitable));
        objects.extend(asyncs.iter().map(|a| a as &dyn Waitable));
        let mut options = WaitOptions::new();
        if let Some(c) = count {
            options = options.count(c);
        }
        if let Some(t) = timeout {
            options = options.timeout(t);
        }
        let results = wait_with(objects.iter().copied(), options).unwrap();
        match count {
            None => {
                assert!(sender.is_ready());
                assert_eq!(results.len(), 2 * N);
            }
            Some(c) => {
                assert!(!sender.is_ready());
                sender.kill().unwrap();
                assert_eq!(results.len(), c);
            }
        }
    }
    quiet();
}

/// `test__event.py::TestEventBasics::test_wait_while_notifying` (without
/// the check watcher): a wait on an event whose woken waiters have not run
/// yet returns after them.
#[greenlet::test]
fn test_wait_while_notifying() {
    let event = Rc::new(Event::new());
    let results = Rc::new(RefCell::new(Vec::new()));
    let wait_then_append = {
        let (event, results) = (event.clone(), results.clone());
        move |arg: i32| {
            event.wait().unwrap();
            results.borrow_mut().push(arg);
        }
    };
    for arg in [1, 2] {
        let f = wait_then_append.clone();
        spawn(move || f(arg));
    }
    greenlet::idle();
    assert_eq!(event.waiters(), 2);
    event.set();
    wait_then_append(3);
    assert_eq!(*results.borrow(), [1, 2, 3]);
    quiet();
}

/// `test__event.py::TestEventBasics::test_gevent_wait_twice_when_already_set`.
#[greenlet::test]
fn test_gevent_wait_twice_when_already_set() {
    let event = Event::new();
    event.set();
    assert_eq!(wait([&event]).unwrap().len(), 1);
    assert_eq!(wait([&event]).unwrap().len(), 1);
    quiet();
}

/// gevent notifies an event's links, blocked waiters included, in the
/// order they were registered (`AbstractLinkable._notify_links`): a
/// `rawlink` added before a waiter runs before it, one added after runs
/// after it.
#[greenlet::test]
fn links_and_waiters_are_notified_in_registration_order() {
    let event = Rc::new(Event::new());
    let log = Log::new();
    let l = log.clone();
    event.rawlink(Box::new(move || l.push("link 1")));
    let w1 = {
        let (e, log) = (event.clone(), log.clone());
        spawn(move || {
            e.wait().unwrap();
            log.push("waiter 1");
        })
    };
    sleep(ZERO);
    let l = log.clone();
    event.rawlink(Box::new(move || l.push("link 2")));
    let w2 = {
        let (e, log) = (event.clone(), log.clone());
        spawn(move || {
            e.wait().unwrap();
            log.push("waiter 2");
        })
    };
    sleep(ZERO);
    let l = log.clone();
    let gone = event.rawlink(Box::new(move || l.push("unlinked")));
    let l = log.clone();
    event.rawlink(Box::new(move || l.push("link 3")));
    assert!(event.unlink(gone));
    event.set();
    assert!(log.is_empty(), "set does not switch");
    w1.join().unwrap();
    w2.join().unwrap();
    sleep(ZERO);
    assert_eq!(
        log.entries(),
        ["link 1", "waiter 1", "link 2", "waiter 2", "link 3"]
    );
    quiet();
}

/// The same for `AsyncResult`: `link`, `rawlink` and waiters in `get`, in
/// registration order; a waiter killed while queued leaves no trace.
#[greenlet::test]
fn async_result_links_and_waiters_in_registration_order() {
    let ar = AsyncResult::<i32>::new();
    let log = Log::new();
    let l = log.clone();
    ar.link(move |r| l.push(format!("link {}", r.get().unwrap())));
    let w1 = {
        let (ar, log) = (ar.clone(), log.clone());
        spawn(move || log.push(format!("waiter {}", ar.get().unwrap())))
    };
    let killed = {
        let (ar, log) = (ar.clone(), log.clone());
        spawn(move || log.push(format!("killed {}", ar.get().unwrap())))
    };
    sleep(ZERO);
    let l = log.clone();
    ar.rawlink(move || l.push("rawlink"));
    killed.kill().unwrap();
    ar.set(7);
    w1.join().unwrap();
    sleep(ZERO);
    assert_eq!(log.entries(), ["link 7", "waiter 7", "rawlink"]);
    quiet();
}

/// Stress: 40 waiters and links registered alternately; some waiters are
/// killed, some time out, some links are removed, all before the `set`.
/// The survivors are notified exactly once each, in registration order.
#[greenlet::test]
fn registration_order_survives_kills_timeouts_and_unlinks() {
    let event = Rc::new(Event::new());
    let log = Log::new();
    let mut expected = Vec::new();
    let mut waiters = Vec::new();
    let mut to_kill = Vec::new();
    for i in 0..40 {
        if i % 2 == 0 {
            let (e, log) = (event.clone(), log.clone());
            let timed_out = i % 6 == 2;
            let g = spawn(move || {
                let r = if timed_out {
                    e.wait_timeout(ZERO)
                } else {
                    e.wait()
                };
                if r.is_ok() {
                    log.push(format!("w{i}"));
                }
            });
            sleep(ZERO); // g is now blocked (or timing out)
            if i % 6 == 4 {
                to_kill.push(g);
            } else {
                if !timed_out {
                    expected.push(format!("w{i}"));
                }
                waiters.push(g);
            }
        } else {
            let l = log.clone();
            let id = event.rawlink(Box::new(move || l.push(format!("l{i}"))));
            if i % 4 == 3 {
                assert!(event.unlink(id));
            } else {
                expected.push(format!("l{i}"));
            }
        }
    }
    sleep(Duration::from_millis(2)); // the zero timeouts fire
    for g in &to_kill {
        g.kill().unwrap();
    }
    event.set();
    for g in &waiters {
        g.join().unwrap();
    }
    sleep(ZERO);
    assert_eq!(log.entries(), expected);
    assert_eq!(event.waiters(), 0);
    quiet();
}
