//! `greenlet::pool`: Group and Pool membership, join/kill, the Pool's
//! concurrency bound, map/imap ordering, and what dropping one does.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{LONG, PROMPT, Reports, TICK, assert_band, assert_tick, quiet, timed};
use greenlet::pool::{Group, Pool};
use greenlet::{GreenletError, KillOptions, WaitError, sleep, spawn};

const ZERO: Duration = Duration::ZERO;

#[greenlet::test]
fn finished_members_leave_the_group_by_themselves() {
    let group = Group::new();
    let a = group.spawn(|| 1);
    let b = group.spawn(|| sleep(Duration::from_millis(10)));
    let outside = spawn(|| ());
    assert_eq!(group.len(), 2);
    assert!(group.contains(&a) && group.contains(&b) && !group.contains(&outside));
    assert_eq!(group.iter().count(), 2);
    sleep(Duration::from_millis(1));
    assert_eq!(group.len(), 1, "a left on its own");
    assert!(!group.contains(&a));
    group.join(None, false).unwrap();
    assert!(group.is_empty());
    assert_eq!(a.get().unwrap(), 1);
    quiet();
}

#[greenlet::test]
fn add_discard_and_finished_greenlets() {
    let group = Group::new();
    let g = spawn(|| sleep(Duration::from_millis(5)));
    group.add(&g);
    group.add(&g);
    assert_eq!(group.len(), 1);
    assert!(group.discard(&g));
    assert!(!group.discard(&g));
    assert!(!g.has_links(), "discard removes the group's link");
    let done = spawn(|| ());
    done.join().unwrap();
    group.add(&done); // already finished: leaves on the next turn
    assert_eq!(group.len(), 1);
    sleep(ZERO);
    assert!(group.is_empty());
    g.join().unwrap();
    quiet();
}

#[greenlet::test]
fn join_times_out_in_band_and_raises_the_first_error() {
    let reports = Reports::install();
    let group = Group::new();
    group.spawn(|| sleep(LONG));
    let (r, took) = timed(|| group.join(Some(TICK), false));
    assert!(matches!(r, Err(GreenletError::Timeout(_))));
    assert_tick("Group::join timeout", took);
    group.kill().unwrap();
    assert!(group.is_empty());

    group.spawn(|| -> () { panic!("member failed") });
    group.spawn(|| sleep(Duration::from_millis(5)));
    let r = group.join(Some(PROMPT), true);
    assert!(matches!(r, Err(GreenletError::Panicked(_))), "{r:?}");
    assert_eq!(reports.take().len(), 1);
    quiet();
}

#[greenlet::test]
fn kill_kills_every_member_and_those_added_meanwhile() {
    let group = Group::new();
    let killed = Rc::new(Cell::new(0));
    for _ in 0..5 {
        let (group2, killed) = (group.clone(), killed.clone());
        group.spawn(move || {
            struct OnDrop(Rc<Cell<u32>>);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            let _d = OnDrop(killed);
            drop(group2); // a member may hold its group
            sleep(LONG);
        });
    }
    sleep(ZERO);
    let (r, took) = timed(|| group.kill());
    r.unwrap();
    assert!(took < PROMPT);
    assert_eq!(killed.get(), 5);
    assert!(group.is_empty());

    let g = group.spawn(|| sleep(LONG));
    group.kill_with(KillOptions::new().nowait()).unwrap();
    assert_eq!(group.len(), 1, "nowait: still dying");
    group.join(Some(PROMPT), false).unwrap();
    assert!(g.is_dead() && g.is_successful());

    let one = group.spawn(|| sleep(LONG));
    let other = group.spawn(|| sleep(Duration::from_millis(5)));
    group.killone(&one).unwrap();
    assert!(one.is_dead());
    assert!(!other.is_ready());
    group.join(None, false).unwrap();
    quiet();
}

#[greenlet::test]
fn dropping_a_group_detaches_its_members_which_run_on() {
    let group = Group::new();
    let gs: Vec<_> = (0..3)
        .map(|i| {
            group.spawn(move || {
                sleep(Duration::from_millis(5));
                i
            })
        })
        .collect();
    assert!(gs.iter().all(|g| g.has_links()));
    drop(group);
    assert!(gs.iter().all(|g| !g.has_links()), "links removed");
    let results: Vec<i32> = gs.iter().map(|g| g.get().unwrap()).collect();
    assert_eq!(results, [0, 1, 2]);
    quiet(); // nothing left behind: no greenlet, timer or callback
}

#[greenlet::test]
fn dropping_a_pool_detaches_and_the_scope_still_owns_the_members() {
    let g = {
        let pool = Pool::new(1);
        pool.spawn(|| sleep(LONG)).unwrap()
    };
    assert!(!g.has_links());
    assert!(!g.is_ready());
    g.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn the_pool_bound_is_respected() {
    let pool = Pool::new(3);
    let running = Rc::new(Cell::new(0));
    let peak = Rc::new(Cell::new(0));
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut gs = Vec::new();
    for i in 0..12u64 {
        let (running, peak, order) = (running.clone(), peak.clone(), order.clone());
        assert!(pool.len() <= 3);
        gs.push(
            pool.spawn(move || {
                running.set(running.get() + 1);
                peak.set(peak.get().max(running.get()));
                order.borrow_mut().push(i);
                sleep(Duration::from_millis(2 + i % 3));
                running.set(running.get() - 1);
            })
            .unwrap(),
        );
        assert!(pool.len() + pool.free_count() <= 3);
    }
    pool.join(None, false).unwrap();
    assert_eq!(peak.get(), 3);
    assert_eq!(*order.borrow(), (0..12).collect::<Vec<_>>());
    assert_eq!(pool.free_count(), 3);
    quiet();
}

#[greenlet::test]
fn spawners_waiting_for_a_slot_are_served_in_order_and_killed_ones_take_none() {
    let pool = Pool::new(1);
    let blocker = pool.spawn(|| sleep(Duration::from_millis(20))).unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let spawners: Vec<_> = (0..4)
        .map(|i| {
            let (pool, order) = (pool.clone(), order.clone());
            spawn(move || {
                let order2 = order.clone();
                pool.spawn(move || order2.borrow_mut().push(i)).unwrap()
            })
        })
        .collect();
    sleep(ZERO);
    spawners[1].kill().unwrap(); // while waiting for a slot
    let timed_out = {
        let pool = pool.clone();
        spawn(move || {
            pool.spawn_timeout(|| (), Duration::from_millis(5))
                .map(|_| ())
        })
    };
    sleep(Duration::from_millis(10));
    assert!(matches!(
        timed_out.get().unwrap(),
        Err(WaitError::Elapsed(_))
    ));
    blocker.join().unwrap();
    for (i, s) in spawners.iter().enumerate() {
        if i != 1 {
            s.get().unwrap().join().unwrap();
        }
    }
    pool.join(None, false).unwrap();
    assert_eq!(*order.borrow(), [0, 2, 3]);
    assert_eq!((pool.free_count(), pool.len()), (1, 0));
    quiet();
}

#[greenlet::test]
fn a_spawner_killed_after_being_handed_a_slot_passes_it_on() {
    let pool = Pool::new(1);
    let blocker = pool.spawn(|| sleep(Duration::from_millis(5))).unwrap();
    let victim = {
        let pool = pool.clone();
        spawn(move || pool.spawn(|| "victim").map(|_| ()))
    };
    let next = {
        let pool = pool.clone();
        spawn(move || pool.spawn(|| "next").unwrap())
    };
    sleep(ZERO);
    blocker.join().unwrap(); // its link hands the slot to victim
    sleep(ZERO); // run the link
    victim
        .kill_with_options(KillOptions::new().nowait())
        .unwrap();
    victim.join().unwrap();
    assert_eq!(next.get().unwrap().get().unwrap(), "next");
    pool.join(None, false).unwrap();
    assert_eq!(pool.free_count(), 1);
    quiet();
}

#[greenlet::test]
fn wait_available_waits_in_band() {
    let pool = Pool::new(1);
    pool.spawn(|| sleep(TICK)).unwrap();
    assert!(pool.full());
    let (n, took) = timed(|| pool.wait_available(Some(PROMPT)).unwrap());
    assert_eq!(n, 1);
    assert_tick("wait_available", took);
    pool.spawn(|| sleep(LONG)).unwrap();
    let (r, took) = timed(|| pool.wait_available(Some(TICK)));
    assert!(matches!(r, Err(WaitError::Elapsed(_))));
    assert_tick("wait_available timeout", took);
    pool.kill().unwrap();
    quiet();
}

#[test]
fn a_full_pool_on_the_native_stack_gets_loop_exit() {
    greenlet::run(|| {
        let pool = Pool::new(1);
        let stuck = greenlet::queue::Queue::<()>::new();
        let s2 = stuck.clone();
        pool.spawn(move || s2.get()).unwrap();
        let r = pool.spawn(|| ());
        assert!(matches!(r, Err(WaitError::LoopExit(_))), "{r:?}");
        assert_eq!(pool.free_count(), 0);
        pool.kill().unwrap();
        assert_eq!(pool.free_count(), 1);
        quiet();
    });
}

#[greenlet::test]
fn map_and_imap_keep_input_order_imap_unordered_completion_order() {
    let pool = Pool::new(4);
    let delays = [80u64, 20, 60, 40, 1];
    let nap = |ms: u64| {
        sleep(Duration::from_millis(ms));
        ms
    };
    let (r, took) = timed(|| pool.map(nap, delays).unwrap());
    assert_eq!(r, delays);
    // 4 at a time: 80 | 20 then 1 | 60 | 40: the longest chain is 80 ms.
    assert_band(
        "map",
        took,
        Duration::from_millis(80),
        Duration::from_millis(240),
    );
    let ordered: Vec<u64> = pool.imap(nap, delays).map(Result::unwrap).collect();
    assert_eq!(ordered, delays);
    let unordered: Vec<u64> = pool
        .imap_unordered(nap, delays)
        .map(Result::unwrap)
        .collect();
    // 80, 20, 60, 40 start; 20 ends → 1 starts and ends at ~21.
    assert_eq!(unordered, [20, 1, 40, 60, 80]);
    assert_eq!(pool.free_count(), 4);
    quiet();
}

#[greenlet::test]
fn imap_respects_the_bound_and_reports_failures_in_place() {
    let reports = Reports::install();
    let pool = Pool::new(2);
    let running = Rc::new(Cell::new(0));
    let peak = Rc::new(Cell::new(0));
    let (r2, p2) = (running.clone(), peak.clone());
    let out: Vec<Result<u32, GreenletError>> = pool
        .imap(
            move |i: u32| {
                r2.set(r2.get() + 1);
                p2.set(p2.get().max(r2.get()));
                sleep(Duration::from_millis(2));
                r2.set(r2.get() - 1);
                if i == 3 {
                    panic!("job 3 failed");
                }
                i * 10
            },
            0..8,
        )
        .collect();
    assert_eq!(peak.get(), 2);
    assert_eq!(out.len(), 8);
    for (i, r) in out.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, i as u32 * 10),
            Err(e) => {
                assert_eq!(i, 3);
                assert!(matches!(e, GreenletError::Panicked(_)));
            }
        }
    }
    assert_eq!(reports.take().len(), 1);
    quiet();
}

#[greenlet::test]
fn apply_and_apply_async() {
    let pool = Pool::new(1);
    assert_eq!(pool.apply(|| 6 * 7).unwrap(), 42);
    let blocker = pool.spawn(|| sleep(Duration::from_millis(10))).unwrap();
    // apply_async never blocks, even when full.
    let (a, took) = timed(|| pool.apply_async(|| "later"));
    assert!(took < Duration::from_millis(5));
    assert!(!a.is_ready());
    assert_eq!(a.take().unwrap().unwrap(), "later");
    assert!(blocker.is_ready(), "ran after the blocker freed the slot");
    quiet();
}

#[greenlet::test]
fn killing_a_pool_frees_every_slot() {
    let pool = Pool::new(3);
    let gs: Vec<_> = (0..3)
        .map(|_| pool.spawn(|| sleep(LONG)).unwrap())
        .collect();
    let waiting = {
        let pool = pool.clone();
        spawn(move || pool.spawn(|| "after kill").unwrap().get())
    };
    sleep(ZERO);
    assert!(pool.full());
    let (r, took) = timed(|| pool.kill());
    r.unwrap();
    assert!(took < PROMPT);
    assert!(gs.iter().all(|g| g.is_dead()));
    // The waiting spawner got a slot once the members died; its greenlet
    // was added after the kill began, so it was killed too (gevent loops
    // while the group is not empty).
    let late = waiting.get().unwrap();
    assert!(matches!(late, Err(GreenletError::Killed(_))), "{late:?}");
    assert!(pool.is_empty());
    assert_eq!(pool.free_count(), 3);
    quiet();
}

/// gevent `test__pool.py::test_reentrant`: a member applying to its own
/// pool of one runs the function inline instead of waiting for a slot
/// that only it could free.
#[greenlet::test]
fn apply_from_a_member_of_a_full_pool_runs_inline() {
    let pool = greenlet::pool::Pool::new(1);
    let inner = pool.clone();
    let result = pool
        .apply(move || inner.apply(|| 5 + 1).expect("inline apply"))
        .expect("outer apply");
    assert_eq!(result, 6);
    let evt = std::rc::Rc::new(greenlet::event::Event::new());
    let setter = evt.clone();
    let _ = pool.apply_async(move || setter.set());
    evt.wait().unwrap();
    // From outside the pool, apply still runs in a member.
    let current_is_member = {
        let p = pool.clone();
        pool.apply(move || p.apply(|| greenlet::getcurrent().is_main()).unwrap())
            .unwrap()
    };
    assert!(
        !current_is_member,
        "runs in the member, not on the native stack"
    );
}
