//! `event::Event` and `event::AsyncResult`: FIFO wake order, a set before a
//! wait is not lost, exactly-once wake-ups and links, timing bands, kill and
//! timeout while queued, LoopExit instead of a hang, `wait`/`iwait` over a
//! mix of greenlets and events in readiness order.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{LONG, PROMPT, TICK, TICK_UPPER, quiet};
use greenlet::event::{AsyncResult, Event};
use greenlet::{
    GreenletError, KillOptions, WaitError, Waitable, iwait, sleep, spawn, wait, with_timeout,
};

const ZERO: Duration = Duration::ZERO;

#[greenlet::test]
fn set_wakes_every_waiter_in_fifo_order_exactly_once() {
    let e = Rc::new(Event::new());
    let order = Rc::new(RefCell::new(Vec::new()));
    let gs: Vec<_> = (0..5)
        .map(|i| {
            let (e, order) = (e.clone(), order.clone());
            spawn(move || {
                e.wait().unwrap();
                order.borrow_mut().push(i);
            })
        })
        .collect();
    sleep(ZERO);
    assert_eq!(e.waiters(), 5);
    assert!(order.borrow().is_empty());
    e.set();
    e.set(); // idempotent
    greenlet::joinall(&gs).unwrap();
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
    assert_eq!(e.waiters(), 0);
    quiet();
}

#[greenlet::test]
fn a_set_before_wait_is_not_lost_and_clear_blocks_again() {
    let e = Event::new();
    e.set();
    let (r, took) = common::timed(|| e.wait());
    r.unwrap();
    assert!(took < Duration::from_millis(20));
    e.clear();
    assert!(!e.is_set());
    let (r, took) = common::timed(|| e.wait_timeout(TICK));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert!(took >= TICK && took < TICK_UPPER, "{took:?}");
    assert_eq!(e.waiters(), 0);
    quiet();
}

#[greenlet::test]
fn set_then_clear_in_one_turn_still_wakes_the_waiters() {
    let e = Rc::new(Event::new());
    let e1 = e.clone();
    let g = spawn(move || e1.wait_timeout(LONG).is_ok());
    sleep(ZERO);
    e.set();
    e.clear();
    let (ok, took) = common::timed(|| g.get().unwrap());
    assert!(ok);
    assert!(took < PROMPT);
    assert!(!e.is_set());
    quiet();
}

#[greenlet::test]
fn a_killed_or_timed_out_waiter_takes_no_wake_up_from_others() {
    let e = Rc::new(Event::new());
    let woke = Rc::new(Cell::new(0));
    let mk = |timeout: Option<Duration>| {
        let (e, woke) = (e.clone(), woke.clone());
        spawn(move || {
            let r = match timeout {
                Some(t) => e.wait_timeout(t),
                None => e.wait(),
            };
            if r.is_ok() {
                woke.set(woke.get() + 1);
            }
            r.is_ok()
        })
    };
    let a = mk(None);
    let short = mk(Some(Duration::from_millis(5)));
    let victim = mk(None);
    let b = mk(None);
    sleep(ZERO);
    assert_eq!(e.waiters(), 4);
    victim.kill().unwrap();
    assert!(!short.get().unwrap());
    assert_eq!(e.waiters(), 2);
    e.set();
    assert!(a.get().unwrap() && b.get().unwrap());
    assert_eq!(woke.get(), 2);
    quiet();
}

#[greenlet::test]
fn kill_after_set_in_the_same_turn_leaves_no_trace() {
    // The waiter was handed its wake-up and killed before it ran: it dies
    // (the kill wins over returning) and the others still wake.
    let e = Rc::new(Event::new());
    let e1 = e.clone();
    let victim = spawn(move || e1.wait());
    let e2 = e.clone();
    let other = spawn(move || e2.wait().is_ok());
    sleep(ZERO);
    e.set();
    victim
        .kill_with_options(KillOptions::new().nowait())
        .unwrap();
    victim.join().unwrap();
    assert!(victim.is_successful() && victim.value().is_none());
    assert!(other.get().unwrap());
    assert_eq!(e.waiters(), 0);
    quiet();
}

#[greenlet::test]
fn an_outer_timeout_while_queued_unwinds_and_leaves_the_queue() {
    let e = Event::new();
    let (r, took) = common::timed(|| with_timeout(TICK, || e.wait()));
    assert!(r.is_err());
    assert!(took >= TICK && took < TICK_UPPER, "{took:?}");
    assert_eq!(e.waiters(), 0);
    quiet();
}

#[greenlet::test]
fn kill_and_timeout_due_in_one_turn_on_a_waiter() {
    let e = Rc::new(Event::new());
    let e1 = e.clone();
    let g = spawn(move || e1.wait_timeout(Duration::from_millis(10)));
    sleep(ZERO);
    std::thread::sleep(Duration::from_millis(15)); // the timer is due now
    g.kill_with_options(KillOptions::new().nowait()).unwrap();
    g.join().unwrap();
    assert!(g.is_ready());
    assert_eq!(e.waiters(), 0);
    e.set(); // wakes nobody, loses nothing
    quiet();
}

#[test]
fn the_native_stack_waiting_on_an_event_nothing_can_set_gets_loop_exit() {
    greenlet::run(|| {
        let e = Event::new();
        let (r, took) = common::timed(|| e.wait());
        match r {
            Err(WaitError::LoopExit(e)) => {
                assert!(e.to_string().contains("Event::wait"), "{e}")
            }
            other => panic!("expected LoopExit, got {other:?}"),
        }
        assert!(took < PROMPT);
        assert_eq!(e.waiters(), 0);
        let r: AsyncResult<u8> = AsyncResult::new();
        assert!(matches!(r.get(), Err(GreenletError::LoopExit(_))));
    });
}

#[greenlet::test]
fn async_result_delivers_a_value_or_an_error_to_every_waiter() {
    let r: AsyncResult<String> = AsyncResult::new();
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let r = r.clone();
            spawn(move || r.get())
        })
        .collect();
    sleep(ZERO);
    assert!(!r.is_ready() && r.try_get().is_none());
    r.set("v".to_string());
    for g in &getters {
        assert_eq!(g.get().unwrap().unwrap(), "v");
    }
    assert!(r.is_ready() && r.is_successful());
    assert_eq!(r.value().as_deref(), Some("v"));
    assert!(r.exception().is_none());

    #[derive(Debug, Clone, PartialEq)]
    enum FetchError {
        Refused,
        Wait(String),
    }
    impl From<WaitError> for FetchError {
        fn from(e: WaitError) -> Self {
            FetchError::Wait(e.to_string())
        }
    }
    let r: AsyncResult<u8, FetchError> = AsyncResult::new();
    let r1 = r.clone();
    let g = spawn(move || r1.get());
    sleep(ZERO);
    r.set_exception(FetchError::Refused);
    assert_eq!(g.get().unwrap(), Err(FetchError::Refused));
    assert!(r.is_ready() && !r.is_successful());
    assert_eq!(r.exception(), Some(FetchError::Refused));
    let r2: AsyncResult<u8, FetchError> = AsyncResult::new();
    let (got, took) = common::timed(|| r2.get_timeout(TICK));
    assert!(matches!(got, Err(FetchError::Wait(_))), "{got:?}");
    assert!(took >= TICK && took < TICK_UPPER, "{took:?}");
    quiet();
}

#[greenlet::test]
fn async_result_links_fire_once_in_order_by_outcome() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let r: AsyncResult<u8, &'static str> = AsyncResult::new();
    let l = log.clone();
    r.link(move |r| l.borrow_mut().push(format!("any {:?}", r.value())));
    let l = log.clone();
    r.link_value(move |r| l.borrow_mut().push(format!("value {}", r.value().unwrap())));
    let l = log.clone();
    r.link_exception(move |_| l.borrow_mut().push("exception".into()));
    let l = log.clone();
    let gone = r.rawlink(move || l.borrow_mut().push("unlinked".into()));
    let l = log.clone();
    r.rawlink(move || l.borrow_mut().push("raw".into()));
    assert!(r.unlink(gone));
    assert!(!r.unlink(gone));
    r.set(7);
    assert!(log.borrow().is_empty(), "links run on the hub, not in set");
    sleep(ZERO);
    assert_eq!(*log.borrow(), ["any Some(7)", "value 7", "raw"]);
    // Linked after it is set: fires on the next turn, once.
    let l = log.clone();
    r.link(move |_| l.borrow_mut().push("late".into()));
    sleep(ZERO);
    sleep(ZERO);
    assert_eq!(log.borrow().len(), 4);
    assert_eq!(log.borrow()[3], "late");
    assert!(!r.has_links());

    let e: AsyncResult<u8, &'static str> = AsyncResult::new();
    let l = log.clone();
    e.link_value(move |_| l.borrow_mut().push("bad".into()));
    let l = log.clone();
    e.link_exception(move |r| {
        l.borrow_mut()
            .push(format!("exc {}", r.exception().unwrap()))
    });
    e.set_exception("boom");
    sleep(ZERO);
    assert_eq!(log.borrow()[4..], ["exc boom"]);
    quiet();
}

#[greenlet::test]
fn wait_and_iwait_over_greenlets_and_events_come_in_readiness_order() {
    let e1 = Rc::new(Event::new());
    let r: AsyncResult<u8> = AsyncResult::new();
    let g_fast = spawn(|| sleep(Duration::from_millis(10)));
    let g_slow = spawn(|| sleep(Duration::from_millis(60)));
    let (e, rr) = (e1.clone(), r.clone());
    spawn(move || {
        sleep(Duration::from_millis(30));
        e.set();
        sleep(Duration::from_millis(60));
        rr.set(1);
    });
    let objects: [&dyn Waitable; 4] = [&*e1, &r, &g_slow, &g_fast];
    let t0 = Instant::now();
    let order: Vec<usize> = iwait(objects)
        .map(|o| {
            let o = o.unwrap();
            objects
                .iter()
                .position(|x| std::ptr::addr_eq(*x, o))
                .unwrap()
        })
        .collect();
    assert_eq!(order, [3, 0, 2, 1]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(90) && took < Duration::from_millis(250),
        "{took:?}"
    );

    // `wait` with a count over a cleared-and-set event and a greenlet.
    let e2 = Rc::new(Event::new());
    let g = spawn(|| sleep(Duration::from_millis(40)));
    let e = e2.clone();
    spawn(move || {
        sleep(Duration::from_millis(5));
        e.set();
    });
    let objects: [&dyn Waitable; 2] = [&g, &*e2];
    let ready = greenlet::wait_with(objects, greenlet::WaitOptions::new().count(1)).unwrap();
    assert_eq!(ready.len(), 1);
    assert!(std::ptr::addr_eq(ready[0], &*e2 as &dyn Waitable));
    assert!(!g.is_ready());
    wait(objects).unwrap();
    quiet();
}

#[greenlet::test]
fn event_rawlink_fires_once_when_it_becomes_set_again_after_clear() {
    let e = Event::new();
    let hits = Rc::new(Cell::new(0));
    e.set();
    e.clear();
    let h = hits.clone();
    e.rawlink(Box::new(move || h.set(h.get() + 1)));
    sleep(ZERO);
    assert_eq!(hits.get(), 0, "not ready: waits for the next set");
    e.set();
    e.clear();
    e.set();
    sleep(ZERO);
    sleep(ZERO);
    assert_eq!(hits.get(), 1);
    let h = hits.clone();
    let id = e.rawlink(Box::new(move || h.set(h.get() + 10)));
    // Queued but not run yet: an unlink still stops it, as in gevent (and
    // as for greenlet links): "notification must not happen after unlink
    // even though notification process has been already started".
    assert!(e.unlink(id), "pending until its callback runs");
    sleep(ZERO);
    assert_eq!(hits.get(), 1);
    assert!(!e.unlink(id), "gone");
    quiet();
}

#[greenlet::test]
fn many_waiters_killed_and_timed_out_at_random_leave_the_queue_empty() {
    let e = Rc::new(Event::new());
    let gs: Vec<_> = (0..60)
        .map(|i| {
            let e = e.clone();
            spawn(move || match i % 3 {
                0 => e.wait().is_ok(),
                1 => e.wait_timeout(Duration::from_millis(2)).is_ok(),
                _ => e.wait().is_ok(),
            })
        })
        .collect();
    sleep(ZERO);
    for g in gs.iter().skip(2).step_by(3) {
        g.kill_nowait();
    }
    sleep(Duration::from_millis(10));
    assert_eq!(e.waiters(), 20);
    e.set();
    let mut woke = 0;
    for (i, g) in gs.iter().enumerate() {
        g.join().unwrap();
        match i % 3 {
            0 => {
                assert!(g.get().unwrap());
                woke += 1;
            }
            1 => assert!(!g.get().unwrap()),
            _ => assert!(g.value().is_none()),
        }
    }
    assert_eq!(woke, 20);
    assert_eq!(e.waiters(), 0);
    quiet();
}

/// gevent `test__event.py::test_wait_while_notifying` (gevent#1520): a wait
/// on an event that is set while the waiters it woke have not run yet
/// returns after them, in one trip and without a timer.
#[greenlet::test]
fn a_wait_while_waiters_are_being_notified_runs_after_them() {
    let event = Rc::new(Event::new());
    let results = Rc::new(RefCell::new(Vec::new()));
    let wait_then_append = |arg: u32| {
        let (event, results) = (event.clone(), results.clone());
        move || {
            event.wait().unwrap();
            results.borrow_mut().push(arg);
        }
    };
    let a = greenlet::spawn(wait_then_append(1));
    let b = greenlet::spawn(wait_then_append(2));
    greenlet::idle();
    event.set();
    wait_then_append(3)();
    assert_eq!(*results.borrow(), [1, 2, 3]);
    a.join().unwrap();
    b.join().unwrap();
    // Nobody left to notify: a wait on the set event returns at once.
    let switches = greenlet::hub::stats().switches;
    event.wait().unwrap();
    assert_eq!(greenlet::hub::stats().switches, switches);
}

/// The same for `AsyncResult::wait`, and a woken waiter killed before it
/// ran does not make later waits yield for ever.
#[greenlet::test]
fn async_result_wait_while_notifying_and_a_killed_woken_waiter() {
    let r: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
    let order = Rc::new(RefCell::new(Vec::new()));
    let spawn_waiter = |tag: u32| {
        let (r, order) = (r.clone(), order.clone());
        greenlet::spawn(move || {
            r.wait().unwrap();
            order.borrow_mut().push(tag);
        })
    };
    let first = spawn_waiter(1);
    let doomed = spawn_waiter(2);
    let third = spawn_waiter(3);
    greenlet::idle();
    r.set(7);
    doomed.kill_nowait();
    r.wait().unwrap();
    order.borrow_mut().push(0);
    assert_eq!(*order.borrow(), [1, 3, 0]);
    first.join().unwrap();
    third.join().unwrap();
    let _ = doomed.join();
    assert_eq!(
        *order.borrow(),
        [1, 3, 0],
        "the killed waiter never appended"
    );
    // Everyone ran: a wait on the set result returns at once.
    let switches = greenlet::hub::stats().switches;
    assert_eq!(r.try_get(), Some(Ok(7)));
    r.wait().unwrap();
    assert_eq!(greenlet::hub::stats().switches, switches);
}
