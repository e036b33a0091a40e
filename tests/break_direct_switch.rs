//! Trying to break the direct greenlet-to-greenlet switch (a blocking
//! greenlet picks the next ready one itself and transfers to it, running the
//! first half of the iteration boundary on its own stack): ordering against
//! the loop's semantics, kills and timeouts of greenlets reached by
//! transfer, unwinding, panics, locals, posts from other threads, the
//! monitor, fork, scope ends and thread exits mid-chain, overflows.
//! Scenarios that could abort or hang run in a child process.

mod break_common;
mod common;
mod soundness_common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use break_common::child_must_succeed;
use common::{Log, assert_band, quiet};
use greenlet::event::Event;
use greenlet::lock::{Lock, Semaphore};
use greenlet::queue::{Channel, Queue};
use greenlet::{
    Builder, Greenlet, GreenletError, Timeout, getcurrent, greenlet_local, hub, sleep, spawn,
    with_timeout,
};

const FOREVER: Duration = Duration::from_secs(3600);
const CHILD_LIMIT: Duration = Duration::from_secs(20);

/// The hub counters a test must leave as it found them.
fn baseline() -> (usize, usize, usize) {
    let s = hub::stats();
    (s.greenlets, s.timers, s.callbacks)
}

/// `n` greenlets that each log `name:round` then `sleep(0)`, `rounds` times.
fn yielders(log: &Log, names: &[&'static str], rounds: usize) -> Vec<Greenlet<()>> {
    names
        .iter()
        .map(|&name| {
            let log = log.clone();
            spawn(move || {
                for r in 0..rounds {
                    log.push(format!("{name}{r}"));
                    sleep(Duration::ZERO);
                }
            })
        })
        .collect()
}

#[greenlet::test]
fn sleep_zero_keeps_strict_fifo_round_robin_across_transfers() {
    let before = baseline();
    let log = Log::new();
    let gs = yielders(&log, &["a", "b", "c", "d"], 50);
    for g in &gs {
        g.join().unwrap();
    }
    let expected: Vec<String> = (0..50)
        .flat_map(|r| ["a", "b", "c", "d"].map(|n| format!("{n}{r}")))
        .collect();
    assert_eq!(log.entries(), expected);
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

#[greenlet::test]
fn a_greenlet_woken_during_a_batch_runs_after_the_batch_in_queue_order() {
    // a, b, c have run and are ready; a wakes w (suspended, has run) and
    // yields: w was queued before a's own entry, after b's and c's.
    let log = Log::new();
    let ev = Rc::new(Event::new());
    let (l, e) = (log.clone(), ev.clone());
    let w = spawn(move || {
        l.push("w-start");
        e.wait().unwrap();
        l.push("w-woken");
    });
    sleep(Duration::ZERO); // w runs and parks
    let mk = |name: &'static str, wake: bool| {
        let (l, e) = (log.clone(), ev.clone());
        spawn(move || {
            l.push(format!("{name}1"));
            sleep(Duration::ZERO);
            l.push(format!("{name}2"));
            if wake {
                e.set();
            }
            sleep(Duration::ZERO);
            l.push(format!("{name}3"));
        })
    };
    let gs = [mk("a", true), mk("b", false), mk("c", false)];
    for g in &gs {
        g.join().unwrap();
    }
    w.join().unwrap();
    assert_eq!(
        log.entries(),
        [
            "w-start", "a1", "b1", "c1", "a2", "b2", "c2", "w-woken", "a3", "b3", "c3"
        ]
    );
}

#[greenlet::test]
fn a_timer_due_mid_batch_fires_at_the_boundary_behind_the_requeued_greenlets() {
    // Virtual time: the clock jumps inside a's turn; the sleeper's timer
    // fires at the next boundary, so the sleeper runs after a and b.
    hub::pause();
    let log = Log::new();
    let l = log.clone();
    let t = spawn(move || {
        sleep(Duration::from_millis(10));
        l.push("t");
    });
    sleep(Duration::ZERO); // t arms its timer
    let (la, lb) = (log.clone(), log.clone());
    let a = spawn(move || {
        la.push("a1");
        sleep(Duration::ZERO);
        la.push("a2");
        hub::advance(Duration::from_millis(10));
        sleep(Duration::ZERO);
        la.push("a3");
        sleep(Duration::ZERO);
        la.push("a4");
    });
    let b = spawn(move || {
        for r in 1..=4 {
            lb.push(format!("b{r}"));
            sleep(Duration::ZERO);
        }
    });
    a.join().unwrap();
    b.join().unwrap();
    t.join().unwrap();
    hub::resume();
    assert_eq!(
        log.entries(),
        // advance yields twice: a's second yield is queued behind t, and
        // its `sleep(0)` behind b's fourth round.
        ["a1", "b1", "a2", "b2", "b3", "t", "b4", "a3", "a4"]
    );
}

#[greenlet::test]
fn getcurrent_dump_and_stats_name_the_greenlet_reached_by_transfer() {
    let q1 = Queue::<u32>::new();
    let q2 = Queue::<u32>::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (a_in, a_out, s) = (q1.clone(), q2.clone(), seen.clone());
    let b = Builder::new().name("b").spawn(move || {
        for _ in 0..20 {
            let v = a_in.get().unwrap();
            let me = getcurrent().name();
            let dump = hub::dump();
            let running: Vec<_> = dump
                .greenlets
                .iter()
                .filter(|g| g.state == hub::GreenletState::Running)
                .map(|g| g.id)
                .collect();
            s.borrow_mut()
                .push((v, me.as_deref() == Some("b"), running.len()));
            a_out.put(v + 1).unwrap();
        }
    });
    let b: Greenlet<()> = b.unwrap();
    let a = Builder::new().name("a").spawn(move || {
        let mut v = 0;
        for _ in 0..20 {
            q1.put(v).unwrap();
            v = q2.get().unwrap();
            assert_eq!(getcurrent().name().as_deref(), Some("a"));
        }
        v
    });
    let a: Greenlet<u32> = a.unwrap();
    assert_eq!(a.get().unwrap(), 20);
    b.join().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 20);
    for (i, &(v, is_current, running)) in seen.iter().enumerate() {
        assert_eq!(v, i as u32);
        assert!(is_current, "getcurrent() is the running greenlet");
        assert_eq!(running, 1, "exactly one greenlet shown running");
    }
}

#[greenlet::test]
fn a_greenlet_that_finishes_right_after_being_transferred_to_is_reaped_once() {
    let before = baseline();
    for n in [1usize, 2, 7] {
        let q = Queue::<usize>::new();
        let done = Rc::new(Cell::new(0));
        let links = Rc::new(Cell::new(0));
        let getters: Vec<_> = (0..n)
            .map(|_| {
                let (q, done) = (q.clone(), done.clone());
                let g = spawn(move || {
                    let v = q.get().unwrap();
                    done.set(done.get() + 1);
                    v
                });
                let l = links.clone();
                g.link(move |_| l.set(l.get() + 1));
                g
            })
            .collect();
        sleep(Duration::ZERO); // every getter parks
        let putter = spawn(move || {
            for i in 0..n {
                q.put(i).unwrap();
            }
            sleep(Duration::ZERO); // the getters finish, one after another
            7
        });
        assert_eq!(putter.get().unwrap(), 7);
        for (i, g) in getters.iter().enumerate() {
            assert_eq!(g.get().unwrap(), i);
        }
        sleep(Duration::ZERO);
        assert_eq!(done.get(), n);
        assert_eq!(links.get(), n);
    }
    assert_eq!(baseline(), before);
}

#[greenlet::test]
fn a_chain_where_each_link_finishes_after_waking_the_next() {
    // g[i] waits on ev[i], then sets ev[i + 1] and returns: every hand-over
    // is a transfer to a greenlet that finishes before the next one runs.
    let before = baseline();
    let n = 200;
    let evs: Vec<Rc<Event>> = (0..=n).map(|_| Rc::new(Event::new())).collect();
    let order = Log::new();
    let gs: Vec<_> = (0..n)
        .map(|i| {
            let (me, next, order) = (evs[i].clone(), evs[i + 1].clone(), order.clone());
            spawn(move || {
                me.wait().unwrap();
                order.push(i.to_string());
                next.set();
                i
            })
        })
        .collect();
    sleep(Duration::ZERO);
    evs[0].set();
    evs[n].wait().unwrap();
    for (i, g) in gs.iter().enumerate() {
        assert_eq!(g.get().unwrap(), i);
    }
    let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(order.entries(), expected);
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

#[greenlet::test]
fn a_panic_in_a_greenlet_reached_by_transfer_fails_only_that_greenlet() {
    quiet();
    let q = Queue::<u32>::new();
    let back = Queue::<u32>::new();
    let (qq, bb) = (q.clone(), back.clone());
    let victim = spawn(move || -> u32 {
        let v = qq.get().unwrap();
        bb.put(v).unwrap();
        let v = qq.get().unwrap();
        panic!("boom {v}");
    });
    let driver = spawn(move || {
        q.put(1).unwrap();
        let got = back.get().unwrap();
        q.put(2).unwrap();
        sleep(Duration::ZERO);
        got + 10
    });
    assert_eq!(driver.get().unwrap(), 11);
    match victim.get() {
        Err(GreenletError::Panicked(p)) => assert!(p.to_string().contains("boom 2"), "{p}"),
        other => panic!("expected the panic, got {other:?}"),
    }
}

#[greenlet::test]
fn kill_of_a_greenlet_parked_mid_ping_pong_lands_once_and_the_partner_goes_on() {
    let before = baseline();
    let (a_to_b, b_to_a) = (Queue::<u64>::new(), Queue::<u64>::new());
    let (inbox, outbox) = (a_to_b.clone(), b_to_a.clone());
    let exits = Rc::new(Cell::new(0));
    let e = exits.clone();
    struct CountExit(Rc<Cell<u32>>);
    impl Drop for CountExit {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let b = spawn(move || {
        let _c = CountExit(e);
        loop {
            let v = inbox.get().unwrap();
            outbox.put(v + 1).unwrap();
        }
    });
    let a = spawn(move || {
        let mut v = 0;
        for _ in 0..100 {
            a_to_b.put(v).unwrap();
            v = b_to_a.get().unwrap();
        }
        v
    });
    let killer = {
        let b = b.clone();
        spawn(move || {
            for _ in 0..37 {
                sleep(Duration::ZERO);
            }
            b.kill().unwrap();
            "killed"
        })
    };
    assert_eq!(killer.get().unwrap(), "killed");
    assert!(b.is_dead());
    assert_eq!(exits.get(), 1);
    // a is stuck on b_to_a now; time it out.
    let r = a.get_timeout(Duration::from_millis(20));
    assert!(r.is_err());
    a.kill().unwrap();
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

#[greenlet::test]
fn kill_and_timeout_in_one_turn_on_a_transfer_target_are_both_delivered_in_order() {
    hub::pause();
    let log = Log::new();
    let l = log.clone();
    let target = spawn(move || {
        let first = Timeout::new(Duration::from_millis(5)).scope(|| {
            sleep(FOREVER);
        });
        l.push(format!("first:{}", first.is_err()));
        // The kill queued behind the expiry arrives at the next switch.
        sleep(FOREVER);
        l.push("never");
    });
    sleep(Duration::ZERO);
    let t = target.clone();
    let pinger = spawn(move || {
        // Kill and the timer expiry in the same turn, while greenlets
        // transfer to one another.
        hub::advance(Duration::from_millis(5));
        t.kill_nowait();
        sleep(Duration::ZERO);
        sleep(Duration::ZERO);
    });
    pinger.join().unwrap();
    target.join().unwrap();
    hub::resume();
    assert!(matches!(target.get(), Err(ref e) if e.is_greenlet_exit()));
    assert_eq!(log.entries(), ["first:true"]);
}

struct BlockingDrop {
    log: Log,
}

impl Drop for BlockingDrop {
    fn drop(&mut self) {
        self.log.push("drop-start");
        // Blocks while its greenlet unwinds from a kill; others transfer.
        for _ in 0..5 {
            sleep(Duration::ZERO);
        }
        sleep(Duration::from_millis(2));
        self.log.push("drop-end");
    }
}

#[greenlet::test]
fn second_kill_mid_unwind_waits_until_the_unwinding_ends_while_others_ping_pong() {
    let before = baseline();
    let log = Log::new();
    let l = log.clone();
    let victim = spawn(move || {
        let _d = BlockingDrop { log: l.clone() };
        sleep(FOREVER);
    });
    let stop = Rc::new(Cell::new(false));
    let players: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            spawn(move || {
                let mut n = 0u32;
                while !stop.get() {
                    n += 1;
                    sleep(Duration::ZERO);
                }
                n
            })
        })
        .collect();
    sleep(Duration::ZERO);
    victim.kill_nowait();
    sleep(Duration::ZERO);
    sleep(Duration::ZERO); // victim is inside its Drop now
    victim.kill_nowait();
    victim.kill_nowait();
    victim.join().unwrap();
    stop.set(true);
    for p in &players {
        assert!(p.get().unwrap() > 3);
    }
    assert_eq!(log.entries(), ["drop-start", "drop-end"]);
    assert!(matches!(victim.get(), Err(ref e) if e.is_greenlet_exit()));
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

greenlet_local! {
    static WHO: Cell<u32> = Cell::new(0);
}

#[greenlet::test]
fn greenlet_locals_follow_the_greenlet_across_transfers() {
    let (q1, q2) = (Channel::<u32>::new(), Channel::<u32>::new());
    let (i1, o1) = (q1.clone(), q2.clone());
    WHO.with(|w| w.set(99));
    let b = spawn(move || {
        WHO.with(|w| w.set(2));
        for _ in 0..50 {
            let v = i1.get().unwrap();
            assert_eq!(WHO.with(Cell::get), 2);
            o1.put(v).unwrap();
            assert_eq!(WHO.with(Cell::get), 2);
        }
    });
    let a = spawn(move || {
        WHO.with(|w| w.set(1));
        for v in 0..50 {
            q1.put(v).unwrap();
            assert_eq!(WHO.with(Cell::get), 1);
            assert_eq!(q2.get().unwrap(), v);
            assert_eq!(WHO.with(Cell::get), 1);
        }
    });
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(WHO.with(Cell::get), 99);
}

#[greenlet::test]
fn a_50ms_sleep_keeps_its_band_while_greenlets_transfer_back_and_forth() {
    let stop = Rc::new(Cell::new(false));
    let players: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            spawn(move || {
                while !stop.get() {
                    sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    sleep(Duration::from_millis(50));
    let took = t0.elapsed();
    stop.set(true);
    for p in &players {
        p.join().unwrap();
    }
    assert_band(
        "sleep(50ms) under ping-pong",
        took,
        Duration::from_millis(50),
        Duration::from_millis(160),
    );
}

#[greenlet::test]
fn posts_from_another_thread_run_while_greenlets_ping_pong() {
    let handle = hub::handle();
    let got = Rc::new(Cell::new(0u32));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = counter.clone();
    let poster = std::thread::spawn(move || {
        for _ in 0..200 {
            let c = c.clone();
            handle
                .post(move || {
                    c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
                .unwrap();
        }
        tx.send(()).unwrap();
    });
    let stop = Rc::new(Cell::new(false));
    let (a_to_b, b_to_a) = (Queue::<u32>::new(), Queue::<u32>::new());
    let (i, o, s) = (a_to_b.clone(), b_to_a.clone(), stop.clone());
    let b = spawn(move || {
        while let Ok(v) = i.get() {
            if v == u32::MAX {
                return;
            }
            o.put(v).unwrap();
        }
    });
    let g = got.clone();
    let a = spawn(move || {
        let t0 = Instant::now();
        while !s.get() && t0.elapsed() < Duration::from_secs(5) {
            a_to_b.put(1).unwrap();
            g.set(g.get() + b_to_a.get().unwrap());
        }
        a_to_b.put(u32::MAX).unwrap();
    });
    let t0 = Instant::now();
    while counter.load(std::sync::atomic::Ordering::SeqCst) < 200 {
        assert!(t0.elapsed() < Duration::from_secs(5), "posts starved");
        sleep(Duration::from_millis(1));
    }
    stop.set(true);
    a.join().unwrap();
    b.join().unwrap();
    poster.join().unwrap();
    rx.recv().unwrap();
    assert!(got.get() > 0);
}

#[test]
fn the_hub_is_reused_twice_with_transfers_in_each_scope() {
    for round in 0..2u32 {
        let r = greenlet::run(move || {
            let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
            let (i, o) = (q1.clone(), q2.clone());
            let b = spawn(move || {
                for _ in 0..100 {
                    let v = i.get().unwrap();
                    o.put(v + 1).unwrap();
                }
            });
            let a = spawn(move || {
                let mut v = round;
                for _ in 0..100 {
                    q1.put(v).unwrap();
                    v = q2.get().unwrap();
                }
                v
            });
            // Leave a third one blocked: the scope end kills it.
            let _left = spawn(|| sleep(FOREVER));
            b.join().unwrap();
            a.get().unwrap()
        });
        assert_eq!(r, round + 100);
    }
}

#[test]
fn nested_scopes_on_other_threads_each_run_their_own_chains() {
    let threads: Vec<_> = (0..3u32)
        .map(|t| {
            std::thread::spawn(move || {
                greenlet::run(move || {
                    let log = Log::new();
                    let gs = yielders(&log, &["x", "y", "z"], 100);
                    // A thread inside the scope starts its own scope.
                    let inner = std::thread::spawn(move || {
                        greenlet::run(|| {
                            let log = Log::new();
                            let gs = yielders(&log, &["p", "q"], 50);
                            for g in &gs {
                                g.join().unwrap();
                            }
                            log.len()
                        })
                    });
                    for g in &gs {
                        g.join().unwrap();
                    }
                    let inner = loop {
                        if inner.is_finished() {
                            break inner.join().unwrap();
                        }
                        sleep(Duration::from_millis(1));
                    };
                    (t, log.len(), inner)
                })
            })
        })
        .collect();
    for (t, th) in threads.into_iter().enumerate() {
        assert_eq!(th.join().unwrap(), (t as u32, 300, 100));
    }
}

#[test]
fn scope_end_and_thread_exit_with_greenlets_mid_chain() {
    let th = std::thread::spawn(|| {
        let log = Log::new();
        let l = log.clone();
        greenlet::run(move || {
            let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
            for k in 0..4 {
                let (i, o, l) = (q1.clone(), q2.clone(), l.clone());
                spawn(move || {
                    struct Bye(Log, u32);
                    impl Drop for Bye {
                        fn drop(&mut self) {
                            // Blocks while the scope end kills it.
                            sleep(Duration::ZERO);
                            self.0.push(format!("bye{}", self.1));
                        }
                    }
                    let _b = Bye(l, k);
                    loop {
                        let v = i.get().unwrap();
                        o.put(v + 1).unwrap();
                    }
                });
            }
            q1.put(0).unwrap();
            // Return while the chain is suspended mid-flight.
            sleep(Duration::ZERO);
            sleep(Duration::ZERO);
        });
        let mut e = log.entries();
        e.sort();
        e
    });
    assert_eq!(th.join().unwrap(), ["bye0", "bye1", "bye2", "bye3"]);
}

#[test]
fn fork_from_a_greenlet_reached_by_transfer() {
    child_must_succeed(
        "fork_from_a_greenlet_reached_by_transfer",
        CHILD_LIMIT,
        || {
            greenlet::run(|| {
                let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
                let (i, o) = (q1.clone(), q2.clone());
                let forker = spawn(move || {
                    let v = i.get().unwrap(); // reached by transfer
                    let r = match greenlet::fork().unwrap() {
                        greenlet::Fork::Child => {
                            // The child goes on switching, then exits.
                            let p = spawn(|| {
                                for _ in 0..10 {
                                    sleep(Duration::ZERO);
                                }
                                5
                            });
                            for _ in 0..10 {
                                sleep(Duration::ZERO);
                            }
                            let code = p.get().unwrap();
                            // SAFETY: (test code) `_exit` ends the child at
                            // once, running no destructor and no exit hook
                            // (LeakSanitizer's would fail the child's status).
                            unsafe { libc::_exit(code) }
                        }
                        greenlet::Fork::Parent(pid) => greenlet::waitpid(pid).unwrap(),
                    };
                    o.put(v + u32::try_from(r.code().unwrap()).unwrap())
                        .unwrap();
                });
                let a = spawn(move || {
                    q1.put(1).unwrap();
                    q2.get().unwrap()
                });
                assert_eq!(a.get().unwrap(), 6);
                forker.join().unwrap();
            });
        },
    );
}

/// Timeout storms over every kind of wait while partners ping-pong.
#[greenlet::test]
fn timeout_storm_over_queues_channels_events_and_locks_loses_nothing() {
    let before = baseline();
    let q = Queue::<u32>::new();
    let ch = Channel::<u32>::new();
    let ev = Rc::new(Event::new());
    let lock = Rc::new(Lock::new());
    let sem = Rc::new(Semaphore::new(1));
    let got = Rc::new(Cell::new(0u32));
    let timeouts = Rc::new(Cell::new(0u32));
    let mut gs = Vec::new();
    for k in 0..20u32 {
        let (q, ch, ev, lock, sem) = (q.clone(), ch.clone(), ev.clone(), lock.clone(), sem.clone());
        let (got, timeouts) = (got.clone(), timeouts.clone());
        gs.push(spawn(move || {
            for r in 0..30u32 {
                let d = Duration::from_micros(u64::from((k * 7 + r * 13) % 5) * 100);
                let res = with_timeout(d, || match (k + r) % 5 {
                    0 => q.get().map(|_| 1).unwrap_or(0),
                    1 => ch.get().map(|_| 1).unwrap_or(0),
                    2 => {
                        ev.wait().unwrap();
                        0
                    }
                    3 => {
                        let _g = lock.lock().unwrap();
                        sleep(Duration::ZERO);
                        0
                    }
                    _ => {
                        let _g = sem.lock().unwrap();
                        sleep(Duration::ZERO);
                        0
                    }
                });
                match res {
                    Ok(n) => got.set(got.get() + n),
                    Err(_) => timeouts.set(timeouts.get() + 1),
                }
            }
        }));
    }
    let (q2, ch2) = (q.clone(), ch.clone());
    let producer = spawn(move || {
        let mut sent = 0u32;
        for i in 0..200u32 {
            if i % 2 == 0 {
                q2.put(i).unwrap();
                sent += 1;
            } else if ch2.put_timeout(i, Duration::from_micros(300)).is_ok() {
                sent += 1;
            }
            sleep(Duration::ZERO);
        }
        sent
    });
    for g in &gs {
        g.join().unwrap();
    }
    let sent = producer.get().unwrap();
    // Every item sent was received exactly once, or is still in the queue
    // (or on offer in the channel: a getter that timed out after an item
    // was handed to it leaves it there).
    let mut left = 0;
    while q.get_nowait().is_ok() {
        left += 1;
    }
    while ch.get_nowait().is_ok() {
        left += 1;
    }
    assert_eq!(got.get() + left, sent);
    assert!(!lock.is_locked());
    assert_eq!(sem.counter(), 1);
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

/// A seeded storm: ping-pong pairs over queues, random kills and timeouts.
#[greenlet::test]
fn seeded_ping_pong_storm_with_random_kills_and_timeouts() {
    let before = baseline();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let t0 = Instant::now();
    for _round in 0..150 {
        let pairs = 1 + rnd(4) as usize;
        let mut all: Vec<Greenlet<u64>> = Vec::new();
        let exits = Rc::new(Cell::new(0usize));
        for _ in 0..pairs {
            let (ab, ba) = (Queue::<u64>::new(), Queue::<u64>::new());
            let (i, o) = (ab.clone(), ba.clone());
            let tb = Duration::from_micros(rnd(3000));
            let ta = Duration::from_micros(rnd(3000));
            let (e1, e2) = (exits.clone(), exits.clone());
            struct Exit(Rc<Cell<usize>>);
            impl Drop for Exit {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            // Owned by the closure: dropped once, whether the body runs
            // or is discarded by a kill before its start.
            let exit = Exit(e1);
            all.push(spawn(move || {
                let _e = exit;
                let r = with_timeout(tb, || {
                    let mut n = 0;
                    while let Ok(v) = i.get() {
                        n += 1;
                        o.put(v + 1).unwrap();
                    }
                    n
                });
                r.unwrap_or(0)
            }));
            // Owned by the closure: dropped once, whether the body runs
            // or is discarded by a kill before its start.
            let exit = Exit(e2);
            all.push(spawn(move || {
                let _e = exit;
                let r = with_timeout(ta, || {
                    let mut v = 0;
                    loop {
                        ab.put(v).unwrap();
                        v = ba.get().unwrap();
                    }
                });
                r.unwrap_or(1)
            }));
        }
        let kills = rnd(3);
        for _ in 0..kills {
            for _ in 0..rnd(20) {
                sleep(Duration::ZERO);
            }
            let victim = &all[rnd(all.len() as u64) as usize];
            if rnd(2) == 0 {
                victim.kill_nowait();
            } else {
                victim.kill_timeout(Duration::from_secs(1)).unwrap();
            }
        }
        for g in &all {
            g.join_timeout(Duration::from_secs(2)).unwrap();
            assert!(g.is_dead());
        }
        assert_eq!(
            exits.get(),
            all.len(),
            "every greenlet unwound exactly once"
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "storm took too long");
    }
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

#[greenlet::test]
fn many_greenlets_chained_by_transfer_pass_a_token_around_a_ring() {
    let before = baseline();
    let n = 300;
    let chans: Vec<Queue<u32>> = (0..n).map(|_| Queue::new()).collect();
    let gs: Vec<_> = (0..n)
        .map(|i| {
            let (me, next) = (chans[i].clone(), chans[(i + 1) % n].clone());
            spawn(move || {
                let mut passes = 0u32;
                loop {
                    let v = me.get().unwrap();
                    if v >= 3000 {
                        next.put(v).unwrap();
                        return passes;
                    }
                    passes += 1;
                    next.put(v + 1).unwrap();
                }
            })
        })
        .collect();
    chans[0].put(0).unwrap();
    let total: u32 = gs.iter().map(|g| g.get().unwrap()).sum();
    assert_eq!(total, 3000);
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

#[greenlet::test]
fn small_stacks_park_and_transfer_with_timers_and_fds_registered() {
    // The boundary's first half (timers, posts, a poll that dispatches
    // events) runs on the parking greenlet's stack now. A greenlet with the
    // smallest stack, parked 4 KiB deep in it, must still fit: calibrated on
    // the debug build, where the loop-only switch parked 5 deep here, the
    // direct switch overflowed at 4 until `next_direct` left the boundary
    // to the loop when less than 8 KiB of stack is left. (AddressSanitizer's
    // redzones make frames far larger: it only checks the mechanism.)
    let asan = std::env::var_os("GREENLET_UNDER_ASAN").is_some();
    let (depth, size) = if asan { (0, 64 * 1024) } else { (4, 16 * 1024) };
    let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd_waiter =
        spawn(move || greenlet::io::wait_read(&r, Some(Duration::from_millis(300))).is_err());
    let timer = spawn(|| sleep(Duration::from_millis(200)));
    // A live handle makes the boundary poll through `polling` (deeper).
    let handle = hub::handle();
    let b = Builder::new().stack_size(size);
    let small: Vec<Greenlet<u32>> = (0..4)
        .map(|_| {
            b.clone()
                .spawn(move || {
                    let mut n = 0;
                    for _ in 0..50 {
                        n += with_depth(depth, || {
                            sleep(Duration::ZERO);
                            1
                        });
                    }
                    n
                })
                .unwrap()
        })
        .collect();
    for g in &small {
        assert_eq!(g.get().unwrap(), 50);
    }
    timer.kill().unwrap();
    assert!(fd_waiter.get().unwrap());
    drop(handle);
}

/// Calls `f` under `depth` frames of 1 KiB each.
#[inline(never)]
fn with_depth(depth: u32, f: impl FnOnce() -> u32) -> u32 {
    let buf = std::hint::black_box([depth as u8; 1024]);
    let r = if depth == 0 {
        f()
    } else {
        with_depth(depth - 1, f)
    };
    std::hint::black_box(&buf);
    r
}

#[greenlet::test]
fn elapsed_expiry_of_a_transfer_target_does_not_eat_its_wake_up() {
    // The consumer times out exactly while the item arrives: the item is
    // either taken by it or left in the queue for the next getter.
    hub::pause();
    let q = Queue::<u32>::new();
    let mut kept = 0;
    for round in 0..50u32 {
        let qq = q.clone();
        let consumer = spawn(move || qq.get_timeout(Duration::from_millis(1)).ok());
        sleep(Duration::ZERO);
        let qq = q.clone();
        let producer = spawn(move || {
            hub::advance(Duration::from_millis(1));
            if round % 2 == 0 {
                qq.put(round).unwrap();
            }
            sleep(Duration::ZERO);
        });
        producer.join().unwrap();
        let got = consumer.get().unwrap();
        let left = q.get_nowait().ok();
        if round % 2 == 0 {
            assert!(
                got.is_some() ^ left.is_some(),
                "round {round}: {got:?} {left:?}"
            );
            kept += usize::from(got.is_some());
        } else {
            assert_eq!((got, left), (None, None));
        }
    }
    hub::resume();
    let _ = kept;
}

#[greenlet::test]
fn with_timeout_of_a_greenlet_parked_behind_a_transfer_keeps_its_band() {
    let (ab, ba) = (Queue::<u32>::new(), Queue::<u32>::new());
    let (i, o) = (ab.clone(), ba.clone());
    let echo = spawn(move || {
        while let Ok(v) = i.get() {
            o.put(v).unwrap();
        }
    });
    let t0 = Instant::now();
    let r = with_timeout(Duration::from_millis(50), || {
        let mut v = 0;
        loop {
            ab.put(v).unwrap();
            v = ba.get().unwrap() + 1;
        }
    });
    let took = t0.elapsed();
    assert!(r.is_err());
    assert_band(
        "with_timeout(50ms) over ping-pong",
        took,
        Duration::from_millis(50),
        Duration::from_millis(160),
    );
    echo.kill().unwrap();
}

#[allow(dead_code)]
fn unused(_: Semaphore) {}

/// Recurses `n` levels with a 1 KiB local per frame.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let mut buf = [0u8; 1024];
    buf[(n % 1024) as usize] = n as u8;
    let buf = std::hint::black_box(buf);
    if n == 0 {
        return u64::from(buf[0]);
    }
    deep(n - 1) + u64::from(std::hint::black_box(buf)[(n % 7) as usize])
}

#[test]
fn an_overflow_in_a_greenlet_reached_by_transfer_names_that_greenlet() {
    use soundness_common as sc;
    if sc::in_child() {
        greenlet::run(|| {
            let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
            let (i, o) = (q1.clone(), q2.clone());
            let first = Builder::new().name("first").stack_size(128 * 1024);
            let first: Greenlet<()> = first
                .spawn(move || {
                    for v in 0..3 {
                        q1.put(v).unwrap();
                        q2.get().unwrap();
                    }
                    q1.put(99).unwrap();
                    sleep(FOREVER);
                })
                .unwrap();
            let b = Builder::new().name("target").stack_size(64 * 1024);
            let body = move || {
                loop {
                    let v = i.get().unwrap(); // reached by transfer
                    if v == 99 {
                        std::hint::black_box(deep(u64::MAX));
                    }
                    o.put(v).unwrap();
                }
            };
            let (target, line) = (b.spawn(body), line!());
            sc::print_spawn_line(line);
            let target: Greenlet<()> = target.unwrap();
            let _ = target.join();
            eprintln!("{}", sc::CONTINUED);
            drop(first);
        });
        eprintln!("{}", sc::CONTINUED);
        return;
    }
    let out = sc::run_child("an_overflow_in_a_greenlet_reached_by_transfer_names_that_greenlet");
    let stderr = sc::assert_aborted(&out);
    let line = sc::spawn_line(&stderr);
    let expected = format!(
        "greenlet target (spawned at tests/break_direct_switch.rs:{line}) overflowed its 64 KiB \
         stack; raise Builder::stack_size"
    );
    assert!(
        stderr.lines().any(|l| l == expected),
        "expected {expected:?} in:\n{stderr}"
    );
    assert!(!stderr.contains(sc::CONTINUED), "{stderr}");
}

#[test]
fn the_monitor_names_the_hog_reached_by_transfer_once() {
    child_must_succeed(
        "the_monitor_names_the_hog_reached_by_transfer_once",
        CHILD_LIMIT,
        || {
            log::set_logger(&break_common::MonitorCapture).unwrap();
            log::set_max_level(log::LevelFilter::Warn);
            hub::set_max_blocking_time(Some(Duration::from_millis(100)));
            std::thread::Builder::new()
                .name("mon".into())
                .spawn(|| {
                    greenlet::run(|| {
                        let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
                        let (i, o) = (q1.clone(), q2.clone());
                        let hog: Greenlet<()> = Builder::new()
                            .name("hog")
                            .spawn(move || {
                                for _ in 0..40 {
                                    let v = i.get().unwrap();
                                    if v == 20 {
                                        // Blocks the thread in a greenlet that
                                        // was switched to directly.
                                        std::thread::sleep(Duration::from_millis(400));
                                    }
                                    o.put(v).unwrap();
                                }
                            })
                            .unwrap();
                        let pinger: Greenlet<()> = Builder::new()
                            .name("pinger")
                            .spawn(move || {
                                for v in 0..40 {
                                    q1.put(v).unwrap();
                                    assert_eq!(q2.get().unwrap(), v);
                                }
                            })
                            .unwrap();
                        pinger.join().unwrap();
                        hog.join().unwrap();
                    });
                })
                .unwrap()
                .join()
                .unwrap();
            let lines = break_common::MONITOR_LINES.lock().unwrap().clone();
            let reports: Vec<_> = lines
                .iter()
                .filter(|l| l.contains("hub of thread \"mon\""))
                .collect();
            assert_eq!(reports.len(), 1, "{lines:#?}");
            assert!(reports[0].contains("hog"), "{reports:#?}");
            assert!(!reports[0].contains("pinger"), "{reports:#?}");
        },
    );
}

/// A panic payload (or a value) whose `Drop` panics.
struct PanicsOnDrop(&'static str);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{} dropped", self.0);
        }
    }
}

#[test]
fn a_raw_greenlet_reached_by_transfer_panicking_with_a_payload_that_panics_on_drop() {
    child_must_succeed(
        "a_raw_greenlet_reached_by_transfer_panicking_with_a_payload_that_panics_on_drop",
        CHILD_LIMIT,
        || {
            greenlet::run(|| {
                quiet();
                let reports = Rc::new(Cell::new(0));
                let r = reports.clone();
                hub::set_error_handler(move |_| r.set(r.get() + 1));
                let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
                let (i, o) = (q1.clone(), q2.clone());
                greenlet::spawn_raw(move || {
                    let v = i.get().unwrap(); // reached by transfer
                    o.put(v).unwrap();
                    let _ = i.get(); // reached by transfer again
                    std::panic::panic_any(PanicsOnDrop("raw payload"));
                });
                let a = spawn(move || {
                    q1.put(1).unwrap();
                    assert_eq!(q2.get().unwrap(), 1);
                    q1.put(2).unwrap();
                    for _ in 0..5 {
                        sleep(Duration::ZERO);
                    }
                    3
                });
                assert_eq!(a.get().unwrap(), 3);
                sleep(Duration::ZERO);
                assert!(reports.get() >= 1, "the panic was reported");
                assert_eq!(hub::stats().greenlets, 0);
            });
        },
    );
}

greenlet_local! {
    static PANICKY_LOCAL: RefCell<Option<PanicsOnDrop>> = RefCell::new(None);
}

#[test]
fn a_greenlet_reached_by_transfer_whose_value_and_local_both_panic_on_drop() {
    child_must_succeed(
        "a_greenlet_reached_by_transfer_whose_value_and_local_both_panic_on_drop",
        CHILD_LIMIT,
        || {
            greenlet::run(|| {
                quiet();
                hub::set_error_handler(|_| {});
                let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
                let (i, o) = (q1.clone(), q2.clone());
                let victim = spawn(move || {
                    PANICKY_LOCAL.with(|l| *l.borrow_mut() = Some(PanicsOnDrop("local")));
                    let v = i.get().unwrap();
                    o.put(v).unwrap();
                    let _ = i.get(); // reached by transfer
                    PanicsOnDrop("value")
                });
                let a = spawn(move || {
                    q1.put(1).unwrap();
                    assert_eq!(q2.get().unwrap(), 1);
                    q1.put(2).unwrap();
                    for _ in 0..5 {
                        sleep(Duration::ZERO);
                    }
                    3
                });
                assert_eq!(a.get().unwrap(), 3);
                victim.join().unwrap();
                match victim.take() {
                    Err(GreenletError::Panicked(p)) => {
                        assert!(p.to_string().contains("local dropped"), "{p}");
                    }
                    Err(e) => panic!("expected the local's panic, got {e:?}"),
                    Ok(_) => panic!("expected the local's panic, got a value"),
                }
                assert_eq!(hub::stats().greenlets, 0);
            });
        },
    );
}

#[greenlet::test]
fn main_gets_loop_exit_when_a_chain_ends_with_everyone_blocked_forever() {
    let (ab, ba) = (Queue::<u32>::new(), Queue::<u32>::new());
    let (i, o) = (ab.clone(), ba.clone());
    let never = Rc::new(Event::new());
    let n2 = never.clone();
    let b = spawn(move || {
        for _ in 0..10 {
            let v = i.get().unwrap();
            o.put(v).unwrap();
        }
        n2.wait()
    });
    let n1 = never.clone();
    let a = spawn(move || {
        for v in 0..10 {
            ab.put(v).unwrap();
            ba.get().unwrap();
        }
        // Parks last: its boundary finds nothing to run, nothing to wait for.
        n1.wait()
    });
    let t0 = Instant::now();
    let r = a.join();
    assert!(matches!(r, Err(greenlet::WaitError::LoopExit(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(1));
    never.set();
    a.get().unwrap().unwrap();
    b.get().unwrap().unwrap();
}

#[greenlet::test]
fn idle_returns_only_once_the_transferring_greenlets_stop() {
    let log = Log::new();
    let gs = yielders(&log, &["a", "b"], 30);
    let l = log.clone();
    let waiter = spawn(move || {
        hub::idle();
        l.push("idle");
    });
    for g in &gs {
        g.join().unwrap();
    }
    waiter.join().unwrap();
    let e = log.entries();
    assert_eq!(e.last().map(String::as_str), Some("idle"), "{e:?}");
    assert_eq!(e.len(), 61);
}

#[greenlet::test]
fn destroy_with_a_chain_suspended_mid_flight_then_a_fresh_chain_runs() {
    for round in 0..3u32 {
        let log = Log::new();
        let (ab, ba) = (Queue::<u32>::new(), Queue::<u32>::new());
        let (i, o, l) = (ab.clone(), ba.clone(), log.clone());
        let b = spawn(move || {
            let _d = common::DropLog::new("b", &l);
            loop {
                let v = i.get().unwrap();
                o.put(v + 1).unwrap();
            }
        });
        let l = log.clone();
        let a = spawn(move || {
            let _d = common::DropLog::new("a", &l);
            let mut v = 0;
            loop {
                ab.put(v).unwrap();
                v = ba.get().unwrap();
            }
        });
        for _ in 0..7 {
            sleep(Duration::ZERO);
        }
        hub::destroy();
        assert!(a.is_dead() && b.is_dead(), "round {round}");
        assert_eq!(log.len(), 2, "{:?}", log.entries());
        assert_eq!(hub::stats().greenlets, 0);
    }
}

/// While greenlets stay ready, the reactor is polled only every 61 ready
/// entries (tokio's `event_interval`) or when the ready queue drains, like
/// gevent's `_run_callbacks`, which keeps running callbacks (`sleep(0)`
/// included) until none is left or its switch interval is over before the
/// loop polls: the socket's waiter runs once the yielding greenlets are done.
#[greenlet::test]
fn a_socket_made_readable_mid_batch_wakes_its_waiter_after_the_requeued_greenlets() {
    use std::io::Write;
    let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    let log = Log::new();
    let l = log.clone();
    let waiter = spawn(move || {
        greenlet::io::wait_read(&r, Some(Duration::from_secs(5))).unwrap();
        l.push("w");
    });
    sleep(Duration::ZERO); // the waiter registers and parks
    let (la, lb) = (log.clone(), log.clone());
    let mut w = Some(w);
    let a = spawn(move || {
        for r in 1..=5 {
            la.push(format!("a{r}"));
            if r == 3 {
                w.take().unwrap().write_all(b"x").unwrap();
            }
            sleep(Duration::ZERO);
        }
    });
    let b = spawn(move || {
        for r in 1..=5 {
            lb.push(format!("b{r}"));
            sleep(Duration::ZERO);
        }
    });
    a.join().unwrap();
    b.join().unwrap();
    waiter.join().unwrap();
    assert_eq!(
        log.entries(),
        [
            "a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4", "a5", "b5", "w"
        ]
    );
}

#[greenlet::test]
fn a_getter_killed_after_its_item_was_handed_over_passes_it_on() {
    let before = baseline();
    for kill_first in [false, true] {
        let q = Queue::<u32>::new();
        let got = Log::new();
        let getters: Vec<_> = (0..3)
            .map(|k| {
                let (q, got) = (q.clone(), got.clone());
                spawn(move || {
                    let v = q.get().unwrap();
                    got.push(format!("g{k}:{v}"));
                })
            })
            .collect();
        sleep(Duration::ZERO); // all three park on the queue
        let victim = getters[0].clone();
        let qq = q.clone();
        let putter = spawn(move || {
            if kill_first {
                victim.kill_nowait();
                qq.put(7).unwrap();
            } else {
                qq.put(7).unwrap(); // handed to g0, which is then killed
                victim.kill_nowait();
            }
            sleep(Duration::ZERO);
        });
        putter.join().unwrap();
        getters[0].join().unwrap();
        sleep(Duration::ZERO);
        assert_eq!(got.entries(), ["g1:7"], "kill_first={kill_first}");
        assert!(q.is_empty());
        for g in &getters[1..] {
            g.kill().unwrap();
        }
    }
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

struct SlowLocal(Log);

impl Drop for SlowLocal {
    fn drop(&mut self) {
        // Blocks in the greenlet root's epilogue, after the body returned.
        sleep(Duration::ZERO);
        sleep(Duration::from_millis(1));
        self.0.push("local-dropped");
    }
}

greenlet_local! {
    static SLOW: RefCell<Option<SlowLocal>> = RefCell::new(None);
}

#[greenlet::test]
fn a_local_whose_drop_blocks_after_the_body_returned_while_others_transfer() {
    let before = baseline();
    let log = Log::new();
    let stop = Rc::new(Cell::new(false));
    let players: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            spawn(move || {
                while !stop.get() {
                    sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    let gs: Vec<_> = (0..5u32)
        .map(|k| {
            let l = log.clone();
            spawn(move || {
                SLOW.with(|s| *s.borrow_mut() = Some(SlowLocal(l)));
                sleep(Duration::ZERO);
                k
            })
        })
        .collect();
    for (k, g) in gs.iter().enumerate() {
        assert_eq!(g.get().unwrap(), k as u32);
    }
    stop.set(true);
    for p in &players {
        p.join().unwrap();
    }
    assert_eq!(log.count("local-dropped"), 5);
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

struct ParksWhileUnwinding(Rc<Queue<u32>>, Rc<Queue<u32>>);

impl Drop for ParksWhileUnwinding {
    fn drop(&mut self) {
        // Unwinding from a kill: hands over to the partner, which panics.
        self.0.put(1).unwrap();
        let _ = self.1.get_timeout(Duration::from_millis(50));
    }
}

#[greenlet::test]
fn a_transfer_target_panics_while_the_greenlet_that_switched_to_it_unwinds() {
    quiet();
    let before = baseline();
    let (to_p, from_p) = (Rc::new(Queue::<u32>::new()), Rc::new(Queue::<u32>::new()));
    let (i, o) = (to_p.clone(), from_p.clone());
    let partner = spawn(move || -> u32 {
        let v = i.get().unwrap(); // reached by transfer from an unwinding greenlet
        if v == 1 {
            panic!("partner panics");
        }
        o.put(v).unwrap();
        v
    });
    let (a, b) = (to_p.clone(), from_p.clone());
    let victim = spawn(move || {
        let _p = ParksWhileUnwinding(a, b);
        sleep(FOREVER);
    });
    sleep(Duration::ZERO);
    victim.kill().unwrap();
    assert!(matches!(victim.get(), Err(ref e) if e.is_greenlet_exit()));
    match partner.get() {
        Err(GreenletError::Panicked(p)) => assert!(p.to_string().contains("partner panics")),
        other => panic!("expected the partner's panic, got {other:?}"),
    }
    sleep(Duration::ZERO);
    assert_eq!(baseline(), before);
}

#[test]
fn signals_are_handled_while_greenlets_ping_pong() {
    child_must_succeed(
        "signals_are_handled_while_greenlets_ping_pong",
        CHILD_LIMIT,
        || {
            greenlet::run(|| {
                let hits = Rc::new(Cell::new(0u32));
                let h = hits.clone();
                let handle = greenlet::signal(libc::SIGUSR2, move || {
                    sleep(Duration::ZERO); // a handler may switch
                    h.set(h.get() + 1);
                })
                .unwrap();
                let stop = Rc::new(Cell::new(false));
                let (ab, ba) = (Queue::<u32>::new(), Queue::<u32>::new());
                let (i, o) = (ab.clone(), ba.clone());
                let b = spawn(move || {
                    while let Ok(v) = i.get() {
                        if v == u32::MAX {
                            return;
                        }
                        o.put(v).unwrap();
                    }
                });
                let s = stop.clone();
                let a = spawn(move || {
                    let t0 = Instant::now();
                    while !s.get() && t0.elapsed() < Duration::from_secs(5) {
                        ab.put(1).unwrap();
                        ba.get().unwrap();
                    }
                    ab.put(u32::MAX).unwrap();
                });
                let me = std::process::id();
                let t0 = Instant::now();
                for k in 1..=5 {
                    greenlet::send_signal(me, libc::SIGUSR2).unwrap();
                    while hits.get() < k {
                        assert!(
                            t0.elapsed() < Duration::from_secs(5),
                            "signal {k} not handled"
                        );
                        sleep(Duration::from_millis(1));
                    }
                }
                stop.set(true);
                a.join().unwrap();
                b.join().unwrap();
                handle.cancel();
                assert_eq!(hits.get(), 5);
            });
        },
    );
}

/// One greenlet of a random program: how many rounds it runs, and which
/// children it spawns in which round.
#[derive(Clone, Debug)]
struct Plan {
    rounds: u32,
    spawns: Vec<(u32, usize)>,
}

/// The FIFO model of `sleep(0)` and `spawn`: the greenlet at the front runs
/// one round (its spawns go to the back, then itself if it has rounds left).
fn model_order(plans: &[Plan], initial: usize) -> Vec<String> {
    let mut queue: std::collections::VecDeque<(usize, u32)> =
        (0..initial).map(|g| (g, 0)).collect();
    let mut log = Vec::new();
    while let Some((g, r)) = queue.pop_front() {
        log.push(format!("{g}:{r}"));
        for &(at, child) in &plans[g].spawns {
            if at == r {
                queue.push_back((child, 0));
            }
        }
        if r + 1 < plans[g].rounds {
            queue.push_back((g, r + 1));
        }
    }
    log
}

fn run_plan(
    plans: Rc<Vec<Plan>>,
    g: usize,
    log: Log,
    left: Rc<Cell<usize>>,
    all_done: Rc<Event>,
) -> Greenlet<()> {
    spawn(move || {
        let plan = plans[g].clone();
        for r in 0..plan.rounds {
            log.push(format!("{g}:{r}"));
            for &(at, child) in &plan.spawns {
                if at == r {
                    run_plan(
                        plans.clone(),
                        child,
                        log.clone(),
                        left.clone(),
                        all_done.clone(),
                    );
                }
            }
            if r + 1 < plan.rounds {
                sleep(Duration::ZERO);
            }
        }
        left.set(left.get() - 1);
        if left.get() == 0 {
            all_done.set();
        }
    })
}

#[greenlet::test]
fn seeded_random_yield_and_spawn_programs_follow_the_fifo_model() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _program in 0..60 {
        let total = 2 + rnd(12) as usize;
        let initial = 1 + rnd(total as u64) as usize;
        let mut plans: Vec<Plan> = (0..total)
            .map(|_| Plan {
                rounds: 1 + rnd(8) as u32,
                spawns: Vec::new(),
            })
            .collect();
        // Every later greenlet is spawned by an earlier one.
        for child in initial..total {
            let parent = rnd(child as u64) as usize;
            let at = rnd(u64::from(plans[parent].rounds)) as u32;
            plans[parent].spawns.push((at, child));
        }
        let expected = model_order(&plans, initial);
        let log = Log::new();
        let left = Rc::new(Cell::new(total));
        let done = Rc::new(Event::new());
        let plans = Rc::new(plans);
        for g in 0..initial {
            run_plan(plans.clone(), g, log.clone(), left.clone(), done.clone());
        }
        done.wait().unwrap();
        assert_eq!(log.entries(), expected, "plans: {plans:?}");
        sleep(Duration::ZERO);
        assert_eq!(hub::stats().greenlets, 0);
    }
}
