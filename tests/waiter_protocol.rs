//! The public waiter protocol: `WaitQueue` hand-off under kill and timeout,
//! `Links`, `hub::run_callback`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::waiter::{Links, WaitQueue};
use greenlet::{KillOptions, Timeout, WaitError, sleep, spawn};

const ZERO: Duration = Duration::ZERO;

#[greenlet::test]
fn waiters_are_served_in_fifo_order() {
    let q = Rc::new(WaitQueue::<u32>::new());
    let order = Rc::new(RefCell::new(Vec::new()));
    let gs: Vec<_> = (0..5)
        .map(|i| {
            let (q, order) = (q.clone(), order.clone());
            spawn(move || {
                let v = q.wait(None, "fifo", |_| ()).unwrap();
                order.borrow_mut().push((i, v));
            })
        })
        .collect();
    sleep(ZERO);
    assert_eq!(q.len(), 5);
    for v in 10..15 {
        q.notify_one(v).unwrap();
    }
    greenlet::joinall(&gs).unwrap();
    assert_eq!(
        *order.borrow(),
        [(0, 10), (1, 11), (2, 12), (3, 13), (4, 14)]
    );
    assert!(q.is_empty());
}

#[greenlet::test]
fn a_waiter_killed_after_the_hand_off_gives_the_value_back() {
    let q = Rc::new(WaitQueue::<u32>::new());
    let returned = Rc::new(RefCell::new(Vec::new()));
    let (q1, r1) = (q.clone(), returned.clone());
    let victim = spawn(move || q1.wait(None, "victim", |v| r1.borrow_mut().push(v)));
    let q2 = q.clone();
    let second = spawn(move || q2.wait(None, "second", |_| unreachable!()).unwrap());
    sleep(ZERO);
    q.notify_one(1).unwrap(); // handed to victim, which has not run yet
    victim
        .kill_with_options(KillOptions::new().nowait())
        .unwrap();
    victim.join().unwrap();
    assert_eq!(*returned.borrow(), [1]);
    // The second waiter was not consumed by the dead one.
    assert_eq!(q.len(), 1);
    q.notify_one(2).unwrap();
    assert_eq!(second.get().unwrap(), 2);
}

#[greenlet::test]
fn the_give_back_can_hand_the_value_to_the_next_waiter() {
    let q = Rc::new(WaitQueue::<&'static str>::new());
    let wait_forwarding = |q: Rc<WaitQueue<&'static str>>| {
        spawn(move || {
            let fwd = q.clone();
            q.wait(None, "fwd", move |v| {
                let _ = fwd.notify_one(v);
            })
        })
    };
    let a = wait_forwarding(q.clone());
    let b = wait_forwarding(q.clone());
    sleep(ZERO);
    q.notify_one("token").unwrap();
    a.kill_with_options(KillOptions::new().nowait()).unwrap();
    assert_eq!(b.get().unwrap().unwrap(), "token");
    a.join().unwrap();
    assert!(a.is_ready());
}

#[greenlet::test]
fn a_waiter_whose_outer_timeout_fires_after_the_hand_off_gives_back() {
    let q = Rc::new(WaitQueue::<u32>::new());
    let returned = Rc::new(Cell::new(0));
    let (q1, r1) = (q.clone(), returned.clone());
    let g = spawn(move || {
        greenlet::with_timeout(Duration::from_millis(20), || {
            q1.wait(None, "outer", |v| r1.set(v)).unwrap()
        })
    });
    sleep(Duration::from_millis(1));
    let t0 = Instant::now();
    // Wait until just before the outer timeout; then notify in the same
    // turn as it fires: block the thread past the deadline first.
    while t0.elapsed() < Duration::from_millis(25) {
        std::thread::yield_now();
    }
    let _ = q.notify_one(7);
    let r = g.get().unwrap();
    match r {
        Ok(v) => assert_eq!(v, 7),
        Err(_) => assert_eq!(returned.get(), 7, "value neither returned nor given back"),
    }
}

#[greenlet::test]
fn timeout_removes_the_waiter_and_a_hand_off_in_the_same_turn_wins() {
    let q = WaitQueue::<u32>::new();
    let t = Instant::now();
    let r = q.wait(Some(Duration::from_millis(50)), "timed", |_| ());
    let took = t.elapsed();
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_millis(160),
        "{took:?}"
    );
    assert!(q.is_empty());
    assert_eq!(q.notify_one(1), Err(1));

    // Hand-off and timer due in one turn: the value wins.
    let q = Rc::new(WaitQueue::<u32>::new());
    let q1 = q.clone();
    let g = spawn(move || q1.wait(Some(Duration::from_millis(10)), "race", |_| panic!("lost")));
    sleep(ZERO);
    std::thread::sleep(Duration::from_millis(15)); // timer due at the next turn
    q.notify_one(3).unwrap();
    assert_eq!(g.get().unwrap().unwrap(), 3);
}

#[greenlet::test]
fn an_inner_timeout_on_the_wait_is_elapsed_not_a_throw() {
    let q = WaitQueue::<()>::new();
    let timeout = Timeout::new(Duration::from_secs(5));
    timeout.start().unwrap();
    let r = q.wait(Some(Duration::from_millis(5)), "inner", |_| ());
    assert!(matches!(r, Err(WaitError::Elapsed(_))));
    timeout.cancel();
}

#[test]
fn the_native_stack_waiting_on_nothing_gets_loop_exit() {
    greenlet::run(|| {
        let q = WaitQueue::<u32>::new();
        let r = q.wait(None, "empty gate", |_| ());
        match r {
            Err(WaitError::LoopExit(e)) => assert!(e.to_string().contains("empty gate"), "{e}"),
            other => panic!("expected LoopExit, got {other:?}"),
        }
        assert!(q.is_empty());
    });
}

#[greenlet::test]
fn notify_all_skips_waiters_that_left() {
    let q = Rc::new(WaitQueue::<()>::new());
    let gs: Vec<_> = (0..4)
        .map(|i| {
            let q = q.clone();
            spawn(move || {
                q.wait(
                    Some(Duration::from_millis(if i % 2 == 0 { 1 } else { 500 })),
                    "n",
                    |_| (),
                )
                .is_ok()
            })
        })
        .collect();
    sleep(Duration::from_millis(20));
    assert_eq!(q.len(), 2);
    assert_eq!(q.notify_all(|| ()), 2);
    let got: Vec<bool> = gs.iter().map(|g| g.get().unwrap()).collect();
    assert_eq!(got, [false, true, false, true]);
}

#[greenlet::test]
fn many_cancelled_waiters_are_compacted() {
    let q = Rc::new(WaitQueue::<u32>::new());
    let gs: Vec<_> = (0..200)
        .map(|_| {
            let q = q.clone();
            spawn(move || q.wait(Some(Duration::from_millis(1)), "c", |_| ()).is_err())
        })
        .collect();
    assert!(greenlet::joinall(&gs).is_ok());
    assert!(gs.iter().all(|g| g.get().unwrap()));
    assert!(q.is_empty());
    assert_eq!(q.notify_one(1), Err(1));
}

#[greenlet::test]
fn links_fire_in_order_on_a_later_turn_and_remove_works() {
    let links = Links::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    for i in 0..3 {
        let log = log.clone();
        links.add(Box::new(move || log.borrow_mut().push(i)));
    }
    let removed = links.add(Box::new(|| panic!("removed link fired")));
    assert!(links.remove(removed));
    assert!(!links.remove(removed));
    assert_eq!(links.len(), 3);
    links.fire();
    assert!(links.is_empty());
    assert!(log.borrow().is_empty());
    sleep(ZERO);
    assert_eq!(*log.borrow(), [0, 1, 2]);
}

#[greenlet::test]
fn run_callback_runs_in_fifo_order_and_cannot_block() {
    let log = Rc::new(RefCell::new(Vec::new()));
    for i in 0..3 {
        let log = log.clone();
        greenlet::hub::run_callback(move || log.borrow_mut().push(i));
    }
    sleep(ZERO);
    assert_eq!(*log.borrow(), [0, 1, 2]);
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    greenlet::hub::set_error_handler(move |rep| r.borrow_mut().push(rep.to_string()));
    greenlet::hub::run_callback(|| sleep(Duration::from_millis(1)));
    sleep(ZERO);
    greenlet::hub::reset_error_handler();
    assert_eq!(reports.borrow().len(), 1);
    assert!(
        reports.borrow()[0].contains("cannot block inside a hub callback"),
        "{:?}",
        reports.borrow()
    );
}

#[test]
fn run_callback_outside_a_scope_panics_naming_run() {
    let e = std::panic::catch_unwind(|| greenlet::hub::run_callback(|| ())).unwrap_err();
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("greenlet::run"), "{msg}");
}
