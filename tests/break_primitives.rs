//! Adversarial pass over the newest changes to the coordination primitives:
//! Event/AsyncResult's ordered registration list and `Notifying` count,
//! `Channel::put`'s yield after a hand-off, `Pool::apply_async`'s direct
//! spawn, `iwait` over ready objects, `Queue::shutdown_immediate`. Each test
//! asserts exact outcomes (exactly-once delivery, counts back to zero, no
//! extra switch) and is bounded (seeded loops, timeouts).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenlet::event::{AsyncResult, Event};
use greenlet::pool::Pool;
use greenlet::queue::{Channel, GetError, PutError, Queue};
use greenlet::{Timeout, WaitError, WaitOptions, Waitable, hub, iwait_with, sleep, spawn};

const ZERO: Duration = Duration::ZERO;
const MS: Duration = Duration::from_millis(1);

/// A tiny deterministic generator (xorshift), so the loops are seeded.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Switches the hub made while `f` ran.
fn switches_during(f: impl FnOnce()) -> u64 {
    let before = hub::stats().switches;
    f();
    hub::stats().switches - before
}

// ------------------------------------------------------- Event: Notifying

/// A waiter woken by `set` and killed before it runs gives its wake-up back
/// to the `Notifying` count: a later wait on the set event does not yield.
#[greenlet::test]
fn event_woken_waiter_killed_before_running_leaves_no_notifying() {
    let e = Rc::new(Event::new());
    let gs: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            spawn(move || e.wait().is_ok())
        })
        .collect();
    sleep(ZERO);
    assert_eq!(e.waiters(), 4);
    e.set();
    // Kill two of the woken waiters before they run.
    gs[1].kill_nowait();
    gs[3].kill_nowait();
    for g in &gs {
        g.join().unwrap();
    }
    assert!(gs[0].get().unwrap());
    assert!(gs[2].get().unwrap());
    // The killed ones never returned from their wait.
    assert!(gs[1].value().is_none() && gs[3].value().is_none());
    // Nobody woken is left to run: a wait on the set event returns at once.
    assert_eq!(switches_during(|| e.wait().unwrap()), 0);
    assert_eq!(e.waiters(), 0);
}

/// Waiters that time out in the same turn as the `set` still return `Ok`
/// (the wake-up wins) and the count returns to zero.
#[greenlet::test]
fn event_set_racing_timeouts_counts_every_wakeup_once() {
    let e = Rc::new(Event::new());
    for round in 0..20u64 {
        let oks = Rc::new(Cell::new(0));
        let errs = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..6)
            .map(|_| {
                let (e, oks, errs) = (e.clone(), oks.clone(), errs.clone());
                spawn(move || match e.wait_timeout(MS) {
                    Ok(()) => oks.set(oks.get() + 1),
                    Err(WaitError::Elapsed(_)) => errs.set(errs.get() + 1),
                    Err(other) => panic!("unexpected {other:?}"),
                })
            })
            .collect();
        sleep(ZERO);
        if round % 2 == 0 {
            // Let the timers expire while nothing runs the loop.
            std::thread::sleep(2 * MS);
        }
        e.set();
        for g in &gs {
            g.join().unwrap();
            assert!(g.is_successful(), "round {round}");
        }
        assert_eq!(oks.get() + errs.get(), 6);
        assert_eq!(e.waiters(), 0);
        assert_eq!(switches_during(|| e.wait().unwrap()), 0, "round {round}");
        e.clear();
    }
}

/// `clear` then `set` inside a link callback, and `set` twice: each waiter
/// is woken exactly once, links run exactly once, in registration order.
#[greenlet::test]
fn event_clear_and_set_inside_a_link_wakes_each_waiter_once() {
    let e = Rc::new(Event::new());
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let l = log.clone();
    let e2 = e.clone();
    e.rawlink(Box::new(move || {
        l.borrow_mut().push("link0".into());
        e2.clear();
        e2.set();
        e2.set();
    }));
    let gs: Vec<_> = (0..3)
        .map(|i| {
            let (e, log) = (e.clone(), log.clone());
            spawn(move || {
                e.wait().unwrap();
                log.borrow_mut().push(format!("w{i}"));
            })
        })
        .collect();
    sleep(ZERO);
    let l = log.clone();
    e.rawlink(Box::new(move || l.borrow_mut().push("link1".into())));
    e.set();
    greenlet::joinall(&gs).unwrap();
    sleep(ZERO);
    assert_eq!(*log.borrow(), ["link0", "w0", "w1", "w2", "link1"]);
    assert_eq!(switches_during(|| e.wait().unwrap()), 0);
}

/// A `wait` from a link callback on the set event returns at once (no
/// yield from a hub callback), even while woken waiters are pending.
#[greenlet::test]
fn event_wait_from_a_link_on_a_set_event_returns() {
    let e = Rc::new(Event::new());
    let g = {
        let e = e.clone();
        spawn(move || e.wait().is_ok())
    };
    sleep(ZERO);
    let seen = Rc::new(Cell::new(None));
    let (s, e2) = (seen.clone(), e.clone());
    e.rawlink(Box::new(move || s.set(Some(e2.wait().is_ok()))));
    e.set();
    assert!(g.get().unwrap());
    sleep(ZERO);
    assert_eq!(seen.get(), Some(true));
}

/// Many wait/timeout/kill cycles on one event: the registration list and
/// the wait queue keep nothing behind (the final `set` wakes exactly the
/// waiters blocked now, and nothing stays alive).
#[greenlet::test]
fn event_wait_timeout_kill_cycles_leave_nothing_behind() {
    let e = Rc::new(Event::new());
    let base = hub::stats().greenlets;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let woke = Rc::new(Cell::new(0));
    for _ in 0..200 {
        let gs: Vec<_> = (0..4)
            .map(|_| {
                let (e, woke) = (e.clone(), woke.clone());
                let t = rng.below(3);
                spawn(move || {
                    let r = if t == 0 {
                        e.wait()
                    } else {
                        e.wait_timeout(MS * t as u32)
                    };
                    if r.is_ok() {
                        woke.set(woke.get() + 1);
                    }
                })
            })
            .collect();
        sleep(ZERO);
        // Unlink a link registered between the waiters, too.
        let id = e.rawlink(Box::new(|| unreachable!("unlinked")));
        match rng.below(4) {
            0 => {
                e.set();
                gs[rng.below(4) as usize].kill_nowait();
                e.clear();
            }
            1 => {
                for g in &gs {
                    g.kill_nowait();
                }
            }
            _ => sleep(3 * MS),
        }
        e.unlink(id);
        for g in &gs {
            g.kill().unwrap();
        }
        assert_eq!(e.waiters(), 0);
    }
    assert_eq!(hub::stats().greenlets, base);
    // The registration list is empty: a set wakes exactly the new waiter,
    // and the next wait on the set event does not yield.
    let w = {
        let e = e.clone();
        spawn(move || e.wait().is_ok())
    };
    sleep(ZERO);
    e.set();
    assert!(w.get().unwrap());
    assert_eq!(switches_during(|| e.wait().unwrap()), 0);
}

// ------------------------------------------------ AsyncResult: Notifying

/// As for `Event`: woken waiters killed before they run give their count
/// back; a later `wait`/`get` on the ready result does not yield.
#[greenlet::test]
fn async_result_woken_waiters_killed_leave_no_notifying() {
    let r = AsyncResult::<u32>::new();
    let gs: Vec<_> = (0..5)
        .map(|i| {
            let r = r.clone();
            spawn(move || {
                if i % 2 == 0 {
                    r.wait_timeout(MS).is_ok()
                } else {
                    r.wait().is_ok()
                }
            })
        })
        .collect();
    sleep(ZERO);
    std::thread::sleep(2 * MS); // the timed waiters' deadlines pass
    r.set(7);
    gs[1].kill_nowait();
    gs[2].kill_nowait();
    for g in &gs {
        g.join().unwrap();
    }
    assert!(gs[0].get().unwrap());
    assert!(gs[3].get().unwrap());
    assert!(gs[4].get().unwrap());
    assert_eq!(switches_during(|| r.wait().unwrap()), 0);
    assert_eq!(r.value(), Some(7));
}

// ------------------------------------------------------------- Channel

/// A put that hands its item to a waiting getter and is then interrupted
/// by an outer `Timeout` during its yield must not report a failure for
/// an item that was delivered: the caller would send it again.
///
/// `Channel::put` hands the item over, then yields once so the getter runs
/// first (gevent's `test_send` order). An outer `Timeout` whose deadline has
/// passed fires during that yield; its expiry stays queued (it would be
/// raised at the putter's next switch) and is withdrawn when the `Timeout`
/// ends, so the put returns normally, as in gevent, where the hand-off and
/// the putter's resumption are one hub callback (`Channel._unlock`).
#[greenlet::test]
fn channel_put_under_an_expiring_outer_timeout_is_exactly_once() {
    let ch = Channel::<u32>::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let getter = {
        let (ch, got) = (ch.clone(), got.clone());
        spawn(move || {
            while let Ok(v) = ch.get_timeout(Duration::from_millis(200)) {
                got.borrow_mut().push(v);
            }
        })
    };
    sleep(ZERO);
    let mut reported = Vec::new();
    for v in 0..5 {
        // A zero timeout expires at the first switch: the put's yield.
        if let Ok(Ok(())) = Timeout::run(ZERO, || ch.put(v)) {
            reported.push(v);
        }
        sleep(ZERO);
    }
    getter.join().unwrap();
    assert_eq!(*got.borrow(), reported, "delivered vs reported delivered");
}

/// A putter killed during the yield that follows its hand-off: the item
/// was delivered, exactly once; the put returns (the kill is raised at the
/// putter's next switch, gevent's order: its `_unlock` resumes the putter
/// before the kill's callback runs), so a putter that never switches again
/// finishes its body.
#[greenlet::test]
fn channel_put_killed_during_its_yield_delivers_exactly_once() {
    let ch = Channel::<u32>::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let getter = {
        let (ch, got) = (ch.clone(), got.clone());
        spawn(move || {
            while let Ok(v) = ch.get_timeout(Duration::from_millis(100)) {
                got.borrow_mut().push(v);
            }
        })
    };
    sleep(ZERO);
    let after = Rc::new(Cell::new(0));
    let putter = {
        let (ch, after) = (ch.clone(), after.clone());
        spawn(move || {
            ch.put(1).unwrap();
            after.set(1);
        })
    };
    let killer = {
        let putter = putter.clone();
        // Runs right after the putter's hand-off, before its yield ends.
        spawn(move || putter.kill_nowait())
    };
    putter.join().unwrap();
    killer.join().unwrap();
    getter.join().unwrap();
    assert_eq!(*got.borrow(), [1]);
    assert_eq!(after.get(), 1, "the put returned: its item was delivered");
    assert_eq!(ch.balance(), 0);
}

/// Puts and gets with timeouts and kills racing, seeded: every item a put
/// reports as delivered is received exactly once, and every item a getter
/// received came from a put that reported delivery (or was killed after
/// handing it off).
#[greenlet::test]
fn channel_put_get_timeouts_and_kills_deliver_exactly_once() {
    let ch = Channel::<u64>::new();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let received = Rc::new(RefCell::new(Vec::new()));
    let sent = Rc::new(RefCell::new(Vec::new()));
    let lost_by_kill = Rc::new(RefCell::new(Vec::new()));
    for round in 0..60u64 {
        let mut gs = Vec::new();
        for k in 0..4u64 {
            let v = round * 10 + k;
            let (ch, sent, lost) = (ch.clone(), sent.clone(), lost_by_kill.clone());
            let t = rng.below(3);
            gs.push(spawn(move || {
                lost.borrow_mut().push(v); // unless it reports below
                let r = if t == 0 {
                    ch.put_timeout(v, MS)
                } else {
                    ch.put_timeout(v, 3 * MS)
                };
                lost.borrow_mut().retain(|x| *x != v);
                match r {
                    Ok(()) => sent.borrow_mut().push(v),
                    Err(PutError::Wait(item, WaitError::Elapsed(_))) => assert_eq!(item, v),
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }));
        }
        for _ in 0..rng.below(5) {
            let (ch, received) = (ch.clone(), received.clone());
            let t = rng.below(3) + 1;
            gs.push(spawn(move || match ch.get_timeout(MS * t as u32) {
                Ok(v) => received.borrow_mut().push(v),
                Err(GetError::Wait(WaitError::Elapsed(_))) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }));
        }
        sleep(ZERO);
        for _ in 0..rng.below(3) {
            gs[rng.below(gs.len() as u64) as usize].kill_nowait();
        }
        for g in &gs {
            g.join().unwrap();
        }
        // Anything left on offer was handed back by a killed getter.
        while let Ok(v) = ch.get_nowait() {
            received.borrow_mut().push(v);
        }
    }
    let mut received = received.borrow().clone();
    received.sort_unstable();
    let dups = received.windows(2).any(|w| w[0] == w[1]);
    assert!(!dups, "an item was received twice: {received:?}");
    for v in sent.borrow().iter() {
        assert!(received.contains(v), "{v} reported sent, never received");
    }
    for v in &received {
        assert!(
            sent.borrow().contains(v) || lost_by_kill.borrow().contains(v),
            "{v} received but its put reported a failure"
        );
    }
    assert_eq!(ch.balance(), 0);
}

// ---------------------------------------------------------------- iwait

/// `iwait` over ready and unready events with a timeout and kills of the
/// setters: ready ones come first without a switch, the rest in firing
/// order, and every link is unlinked afterwards.
#[greenlet::test]
fn iwait_mixes_ready_and_unready_with_timeout_and_kills() {
    let mut rng = Rng(42);
    for _ in 0..40 {
        let events: Vec<Rc<Event>> = (0..6).map(|_| Rc::new(Event::new())).collect();
        let mut expected_ready = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if rng.below(3) == 0 {
                e.set();
                expected_ready.push(i);
            }
        }
        let mut setters = Vec::new();
        let mut will_fire = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if e.is_set() {
                continue;
            }
            let e = e.clone();
            let delay = rng.below(3);
            let g = spawn(move || {
                sleep(MS * delay as u32);
                e.set();
            });
            if rng.below(4) == 0 {
                g.kill_nowait();
            } else if delay == 0 {
                will_fire.push(i);
            }
            setters.push(g);
        }
        let refs: Vec<&Event> = events.iter().map(|e| &**e).collect();
        let mut got = Vec::new();
        let first_switches = switches_during(|| {
            let mut it = iwait_with(refs.iter().copied(), WaitOptions::new().timeout(MS * 20));
            for _ in 0..expected_ready.len() {
                let e = it.next().unwrap().unwrap();
                got.push(refs.iter().position(|r| std::ptr::eq(*r, e)).unwrap());
            }
            for e in it {
                let e = e.unwrap();
                got.push(refs.iter().position(|r| std::ptr::eq(*r, e)).unwrap());
            }
        });
        assert_eq!(got[..expected_ready.len()], expected_ready[..]);
        assert!(first_switches > 0 || got.len() == expected_ready.len());
        for i in &will_fire {
            assert!(got.contains(i), "set at once but not reported: {i}");
        }
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "reported twice: {got:?}");
        for g in &setters {
            g.kill().unwrap();
        }
        // No link left behind: a set now runs nothing of the iwait's.
        for e in &events {
            e.clear();
            e.set();
        }
        sleep(ZERO);
    }
}

// ------------------------------------------------------------ Queue

/// `shutdown_immediate` with blocked putters, getters and joiners: each
/// returns an error (or `Ok` for the joiner), nobody hangs, and nothing
/// stays alive.
#[greenlet::test]
fn queue_shutdown_immediate_releases_every_blocked_party() {
    let base = hub::stats().greenlets;
    let q = Queue::<u32>::bounded(2);
    q.put(1).unwrap();
    q.put(2).unwrap();
    let putters: Vec<_> = (0..3)
        .map(|i| {
            let q = q.clone();
            spawn(move || q.put(10 + i))
        })
        .collect();
    let joiners: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            spawn(move || q.join_timeout(Duration::from_secs(2)))
        })
        .collect();
    sleep(ZERO);
    assert_eq!(q.putters(), 3);
    q.shutdown_immediate();
    for p in &putters {
        assert!(matches!(p.get().unwrap(), Err(PutError::ShutDown(_))));
    }
    for j in &joiners {
        assert!(j.get().unwrap().is_ok());
    }
    assert!(matches!(q.get(), Err(GetError::ShutDown)));
    let getters: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            spawn(move || q.get())
        })
        .collect();
    for g in &getters {
        assert!(matches!(g.get().unwrap(), Err(GetError::ShutDown)));
    }
    assert_eq!(q.len(), 0);
    assert_eq!(hub::stats().greenlets, base);
}

// --------------------------------------------------------------- Pool

/// `apply_async` storms with kills: the pool never holds more than its
/// size, every task runs at most once, and the pool is empty and fully
/// free at the end.
#[greenlet::test]
fn pool_apply_async_storm_with_kills_keeps_the_bound() {
    let pool = Pool::new(3);
    let running = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let ran = Rc::new(RefCell::new(Vec::new()));
    let mut rng = Rng(7);
    let mut handles = Vec::new();
    for i in 0..60u32 {
        let (running, peak, ran) = (running.clone(), peak.clone(), ran.clone());
        let d = rng.below(3) as u32;
        let g = pool.apply_async(move || {
            running.set(running.get() + 1);
            peak.set(peak.get().max(running.get()));
            ran.borrow_mut().push(i);
            let _dec = Dec(running);
            sleep(MS * d);
            i
        });
        if rng.below(5) == 0 {
            g.kill_nowait();
        }
        if rng.below(7) == 0 {
            sleep(ZERO);
        }
        handles.push(g);
    }
    for g in &handles {
        g.join().unwrap();
    }
    pool.join(Some(Duration::from_secs(2)), false).unwrap();
    assert!(peak.get() <= 3, "peak {}", peak.get());
    let mut r = ran.borrow().clone();
    r.sort_unstable();
    r.dedup();
    assert_eq!(r.len(), ran.borrow().len());
    assert_eq!(pool.len(), 0);
    assert_eq!(pool.free_count(), 3);
}

struct Dec(Rc<Cell<usize>>);

impl Drop for Dec {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

// ------------------------------------------------- seeded exactly-once

/// Random programs over one event (wait, timed wait, kill, set, clear,
/// rawlink, unlink, set/clear from a link): every link either runs once or
/// was unlinked (`unlink` returned `true`), never both, never twice; every
/// waiter's wait returns at most once; a final `set` releases everyone.
#[greenlet::test]
fn event_seeded_programs_links_and_waiters_exactly_once() {
    for seed in 1..=30u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let e = Rc::new(Event::new());
        let fired: Rc<RefCell<Vec<u32>>> = Rc::default();
        let mut links: Vec<(u32, greenlet::LinkId)> = Vec::new();
        let mut unlinked = Vec::new();
        let returned: Rc<RefCell<Vec<u32>>> = Rc::default();
        let mut gs = Vec::new();
        for step in 0..60u32 {
            match rng.below(9) {
                0 | 1 => {
                    let (e, returned) = (e.clone(), returned.clone());
                    let timed = rng.below(2) == 0;
                    gs.push(spawn(move || {
                        let r = if timed { e.wait_timeout(MS) } else { e.wait() };
                        if r.is_ok() || timed {
                            returned.borrow_mut().push(step);
                        }
                    }));
                }
                2 => e.set(),
                3 => e.clear(),
                4 => {
                    let f = fired.clone();
                    let e2 = e.clone();
                    let flip = rng.below(3) == 0;
                    let id = e.rawlink(Box::new(move || {
                        f.borrow_mut().push(step);
                        if flip {
                            e2.clear();
                            e2.set();
                        }
                    }));
                    links.push((step, id));
                }
                5 => {
                    if !links.is_empty() {
                        let (step, id) = links.remove(rng.below(links.len() as u64) as usize);
                        if e.unlink(id) {
                            unlinked.push(step);
                        }
                    }
                }
                6 => {
                    if !gs.is_empty() {
                        gs[rng.below(gs.len() as u64) as usize].kill_nowait();
                    }
                }
                7 => sleep(ZERO),
                _ => sleep(MS),
            }
        }
        e.set();
        for g in &gs {
            g.join().unwrap();
        }
        sleep(ZERO);
        let fired = fired.borrow();
        let mut sorted = fired.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), fired.len(), "seed {seed}: a link ran twice");
        for s in &unlinked {
            assert!(!fired.contains(s), "seed {seed}: link {s} unlinked but ran");
        }
        for (s, _) in &links {
            assert!(fired.contains(s), "seed {seed}: link {s} never ran");
        }
        let returned = returned.borrow();
        let mut r = returned.clone();
        r.sort_unstable();
        r.dedup();
        assert_eq!(
            r.len(),
            returned.len(),
            "seed {seed}: a wait returned twice"
        );
        assert_eq!(e.waiters(), 0);
        assert_eq!(switches_during(|| e.wait().unwrap()), 0, "seed {seed}");
    }
}

/// `wait`/`joinall` over objects that are all ready take them without a
/// switch, in the order given.
#[greenlet::test]
fn wait_over_ready_objects_does_not_switch() {
    let a = spawn(|| 1);
    let b = spawn(|| 2);
    a.join().unwrap();
    b.join().unwrap();
    let e = Event::new();
    e.set();
    let r = AsyncResult::<u8>::new();
    r.set(3);
    let objects: [&dyn Waitable; 4] = [&b, &e, &r, &a];
    let mut n = 0;
    let switched = switches_during(|| n = greenlet::wait(objects).unwrap().len());
    assert_eq!((n, switched), (4, 0));
    let switched = switches_during(|| n = greenlet::joinall([&a, &b]).unwrap().len());
    assert_eq!((n, switched), (2, 0));
}

/// `shutdown_immediate` drains the items and takes them off the unfinished
/// count; an item already handed out still counts until its `task_done`,
/// which then releases the joiners (Python's `Queue.shutdown(immediate)`).
#[greenlet::test]
fn queue_shutdown_immediate_then_task_done_releases_joiners() {
    let q = Queue::<u32>::new();
    for v in 0..3 {
        q.put(v).unwrap();
    }
    assert_eq!(q.get().unwrap(), 0); // handed out, not done
    let joiner = {
        let q = q.clone();
        spawn(move || q.join_timeout(Duration::from_secs(2)))
    };
    sleep(ZERO);
    q.shutdown_immediate();
    q.shutdown_immediate(); // idempotent: nothing more to drain
    sleep(ZERO);
    assert!(!joiner.is_ready(), "released with a task still unfinished");
    q.task_done().unwrap();
    assert!(joiner.get().unwrap().is_ok());
    assert!(q.task_done().is_err(), "more task_done calls than items");
    assert!(matches!(q.put(9), Err(PutError::ShutDown(9))));
}

/// An `iwait` whose greenlet is killed while parked, and one that times
/// out, leave no link on the objects they waited for.
#[greenlet::test]
fn iwait_killed_or_timed_out_leaves_no_links() {
    let results: Rc<Vec<AsyncResult<u8>>> = Rc::new((0..4).map(|_| AsyncResult::new()).collect());
    results[1].set(1); // ready: taken without a link
    let waiter = {
        let results = results.clone();
        spawn(move || {
            let mut n = 0;
            for r in greenlet::iwait(results.iter()) {
                r.unwrap();
                n += 1;
            }
            n
        })
    };
    sleep(ZERO);
    assert!(results[0].has_links() && !results[1].has_links());
    waiter.kill().unwrap();
    assert!(results.iter().all(|r| !r.has_links()));
    let mut it = iwait_with(results.iter(), WaitOptions::new().timeout(5 * MS));
    assert!(std::ptr::eq(it.next().unwrap().unwrap(), &results[1]));
    assert!(results[0].has_links());
    assert!(it.next().is_none()); // timed out
    assert!(results.iter().all(|r| !r.has_links()));
    drop(it);
    results[3].set(3);
    sleep(ZERO);
    assert!(results.iter().all(|r| !r.has_links()));
}

/// The link a link unlinks, once registered: (its step, its id).
type Target = Rc<Cell<Option<(u32, greenlet::LinkId)>>>;

/// Random programs over one `AsyncResult` (waits, timed waits, kills,
/// `link`/`link_value`/`link_exception`, unlink, an unlink from an earlier
/// link of the same notification): each link runs at most once, an
/// unlinked one never, value/exception links only for their outcome, and
/// every live waiter returns `Ok` exactly once.
#[greenlet::test]
fn async_result_seeded_programs_links_exactly_once() {
    let in_callback_unlinks = Rc::new(Cell::new(0));
    for seed in 1..=30u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let r = AsyncResult::<u32, String>::new();
        let ran: Rc<RefCell<Vec<u32>>> = Rc::default();
        let unlinked: Rc<RefCell<Vec<u32>>> = Rc::default();
        let mut links = Vec::new();
        let mut gs = Vec::new();
        let oks = Rc::new(Cell::new(0));
        let success = rng.below(2) == 0;
        let set_at = rng.below(30) as u32;
        let mut target: Option<Target> = None;
        for step in 0..40u32 {
            if step == set_at {
                if success {
                    r.set(step);
                } else {
                    r.set_exception(format!("e{step}"));
                }
            }
            match rng.below(7) {
                0 | 1 => {
                    let (r, oks) = (r.clone(), oks.clone());
                    let timed = rng.below(2) == 0;
                    gs.push(spawn(move || {
                        let w = if timed { r.wait_timeout(MS) } else { r.wait() };
                        if w.is_ok() {
                            oks.set(oks.get() + 1);
                        }
                        (timed, w.is_ok())
                    }));
                }
                2 => {
                    let ran = ran.clone();
                    let kind = rng.below(3);
                    let cb = move |_: &AsyncResult<u32, String>| ran.borrow_mut().push(step);
                    let id = match kind {
                        0 => r.link(cb),
                        1 => r.link_value(cb),
                        _ => r.link_exception(cb),
                    };
                    if let Some(target) = target.take() {
                        target.set(Some((step, id)));
                    }
                    links.push((step, kind, id));
                }
                3 => {
                    // A link that unlinks the link registered next (it runs
                    // later in the same notification), or, if none is
                    // registered after it, the one just before it.
                    let next: Target = Rc::default();
                    let prev = links.last().map(|&(s, _, id)| (s, id));
                    let (r2, unlinked, ran, n) =
                        (r.clone(), unlinked.clone(), ran.clone(), next.clone());
                    let hits = in_callback_unlinks.clone();
                    let id = r.link(move |_| {
                        ran.borrow_mut().push(step);
                        if let Some((s, id)) = n.get().or(prev)
                            && r2.unlink(id)
                        {
                            unlinked.borrow_mut().push(s);
                            hits.set(hits.get() + 1);
                        }
                    });
                    target = Some(next);
                    links.push((step, 0, id));
                }
                4 => {
                    if !links.is_empty() {
                        let (s, _, id) = links.remove(rng.below(links.len() as u64) as usize);
                        if r.unlink(id) {
                            unlinked.borrow_mut().push(s);
                        }
                    }
                }
                5 => {
                    if !gs.is_empty() {
                        gs[rng.below(gs.len() as u64) as usize].kill_nowait();
                    }
                }
                _ => sleep(if rng.below(2) == 0 { ZERO } else { MS }),
            }
        }
        if !r.is_ready() {
            r.set(99);
        }
        let success = r.is_successful();
        for g in &gs {
            g.join().unwrap();
        }
        sleep(ZERO);
        assert!(!r.has_links(), "seed {seed}: links left behind");
        let ran = ran.borrow();
        let unlinked = unlinked.borrow();
        let mut sorted = ran.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ran.len(), "seed {seed}: a link ran twice");
        for s in unlinked.iter() {
            assert!(!ran.contains(s), "seed {seed}: {s} unlinked but ran");
        }
        for (s, kind, _) in &links {
            let expected = match kind {
                0 => true,
                1 => success,
                _ => !success,
            };
            let was_unlinked = unlinked.contains(s);
            assert_eq!(
                ran.contains(s),
                expected && !was_unlinked,
                "seed {seed}: link {s} (kind {kind})"
            );
        }
        let mut returned_ok = 0;
        for g in &gs {
            if let Some((_, ok)) = g.value() {
                returned_ok += usize::from(ok);
            }
        }
        assert_eq!(returned_ok, oks.get(), "seed {seed}");
        assert_eq!(switches_during(|| r.wait().unwrap()), 0, "seed {seed}");
    }
    // The programs did exercise an unlink from an earlier link.
    assert!(in_callback_unlinks.get() > 0);
}

/// The kill that arrives during `Channel::put`'s post-hand-off yield is not
/// lost: it is raised at the putter's next switch, and the putter ends
/// killed there.
#[greenlet::test]
fn a_kill_deferred_by_channel_put_is_raised_at_the_next_switch() {
    let ch = Channel::<u32>::new();
    let getter = {
        let ch = ch.clone();
        spawn(move || ch.get().unwrap())
    };
    sleep(ZERO);
    let steps = Rc::new(Cell::new(0));
    let putter = {
        let (ch, steps) = (ch.clone(), steps.clone());
        spawn(move || {
            ch.put(7).unwrap();
            steps.set(1); // the put returned: the item is delivered
            sleep(ZERO); // the deferred kill is raised here
            steps.set(2);
        })
    };
    let killer = {
        let putter = putter.clone();
        spawn(move || putter.kill_nowait())
    };
    assert_eq!(getter.get().unwrap(), 7);
    killer.join().unwrap();
    let _ = putter.join();
    assert!(putter.is_dead());
    assert_eq!(steps.get(), 1, "killed at its next switch, not later");
}
