//! Trying to break the ping-pong switch-path changes (issue 14): a
//! `WaitQueue` waiter without deadline queued inside the hub borrow that
//! parks it (`park_registering`), the workless iteration boundary that
//! skips the stack-room check, the turn clock (read at every turn: reading
//! it every 16th lost long turns and summed medium ones, the two
//! `longest_loop_turn` tests below), the out-of-line hub init. Kills and outer timeouts in every phase of a no-deadline wait,
//! blocking inside hub callbacks, `LoopExit` on the native stack, tiny
//! stacks while boundary work comes and goes, cross-thread posts, idle
//! waiters, the monitor, the counters, hub reuse, destroy, thread exit,
//! user `Drop`s that touch the hub, and fork. Scenarios that could abort or
//! hang run in a child process.

mod break_common;
mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use break_common::child_must_succeed;
use common::{Reports, assert_contains, quiet};
use greenlet::event::Event;
use greenlet::lock::{Lock, Semaphore};
use greenlet::queue::{Channel, GetError, Queue};
use greenlet::waiter::WaitQueue;
use greenlet::{Builder, Greenlet, GreenletError, WaitError, hub, sleep, spawn, with_timeout};

const CHILD_LIMIT: Duration = Duration::from_secs(30);

fn is_killed<T: std::fmt::Debug>(r: Result<T, GreenletError>) -> bool {
    matches!(r, Err(GreenletError::Killed(_)))
}

/// Two greenlets bouncing a counter through two queues with no-timeout
/// waits, `rounds` times; the pinger returns the last value it got.
fn ping_pong(rounds: u32) -> (Greenlet<u32>, Greenlet<()>) {
    let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
    let (i, o) = (q1.clone(), q2.clone());
    let ponger = spawn(move || {
        for _ in 0..rounds {
            let v = i.get().unwrap();
            o.put(v + 1).unwrap();
        }
    });
    let pinger = spawn(move || {
        let mut v = 0;
        for _ in 0..rounds {
            q1.put(v).unwrap();
            v = q2.get().unwrap();
        }
        v
    });
    (pinger, ponger)
}

// ======================================== kills and timeouts, every phase

#[greenlet::test]
fn wait_queue_no_deadline_kill_before_and_after_the_hand_off_loses_nothing() {
    let q = Rc::new(WaitQueue::<u32>::new());
    let given_back = Rc::new(RefCell::new(Vec::new()));
    let waiter = |name: &'static str| {
        let (q, gb) = (q.clone(), given_back.clone());
        spawn(move || {
            let v = q
                .wait(None, "wq", move |v| gb.borrow_mut().push((name, v)))
                .unwrap();
            (name, v)
        })
    };
    let (a, b, c) = (waiter("a"), waiter("b"), waiter("c"));
    sleep(Duration::ZERO);
    assert_eq!(q.len(), 3);
    // Before any hand-off: a leaves without a trace.
    a.kill().unwrap();
    assert!(is_killed(a.get()));
    assert_eq!(q.len(), 2);
    // Hand-off to b, and b killed in the same turn, before it runs: b gives
    // the value back through on_unclaimed; c is still first in line.
    q.notify_one(10).unwrap();
    b.kill_nowait();
    assert_eq!(q.len(), 1);
    sleep(Duration::ZERO);
    assert!(is_killed(b.get()));
    assert_eq!(*given_back.borrow(), [("b", 10)]);
    assert_eq!(q.len(), 1);
    q.notify_one(11).unwrap();
    assert_eq!(c.get().unwrap(), ("c", 11));
    assert!(q.is_empty());
    assert_eq!(q.notify_one(12), Err(12));
    // The spare entry is reused by many later waits: every hand-off lands.
    for round in 0..200u32 {
        let w = waiter("r");
        sleep(Duration::ZERO);
        if round % 3 == 0 {
            w.kill().unwrap();
            assert!(is_killed(w.get()));
        } else {
            q.notify_one(round).unwrap();
            assert_eq!(w.get().unwrap(), ("r", round));
        }
        assert!(q.is_empty());
    }
    assert_eq!(given_back.borrow().len(), 1);
    quiet();
}

#[greenlet::test]
fn outer_timeout_expiring_in_the_hand_off_turn_keeps_the_item_exactly_once() {
    // The getter's outer Timeout is due when the put hands it the item (the
    // main greenlet held the thread past it): the timer fires at the next
    // boundary, after the hand-off. Either the getter returns the item, or
    // it raises Elapsed and the item is back in the queue: never both,
    // never neither.
    for hog_ms in [0u64, 30] {
        let q = Queue::<u32>::new();
        let q2 = q.clone();
        let getter = spawn(move || with_timeout(Duration::from_millis(20), || q2.get().unwrap()));
        sleep(Duration::ZERO);
        assert_eq!(q.getters(), 1);
        std::thread::sleep(Duration::from_millis(hog_ms));
        q.put(7).unwrap();
        let r = getter.get().unwrap();
        match r {
            Ok(v) => {
                assert_eq!(v, 7);
                assert_eq!(q.qsize(), 0);
            }
            Err(_elapsed) => {
                assert_eq!(q.qsize(), 1, "hog {hog_ms}");
                assert_eq!(q.get_nowait().unwrap(), 7);
            }
        }
        assert_eq!(q.getters(), 0);
    }
    quiet();
}

#[greenlet::test]
fn kill_and_outer_timeout_of_no_deadline_waits_in_every_phase_of_every_primitive() {
    // Each phase: 0 = killed while queued, 1 = killed after the hand-off in
    // the same turn, 2 = outer Timeout while queued. A second waiter must
    // always get what the first did not take.
    for phase in 0..3 {
        // Queue::get
        let q = Queue::<u32>::new();
        let mk = |q: &Queue<u32>| {
            let q = q.clone();
            spawn(move || with_timeout(Duration::from_millis(15), || q.get().unwrap()))
        };
        let (first, second) = if phase == 2 {
            let q1 = q.clone();
            (
                spawn(move || with_timeout(Duration::from_millis(5), || q1.get().unwrap())),
                mk(&q),
            )
        } else {
            let q1 = q.clone();
            (spawn(move || Ok(q1.get().unwrap())), mk(&q))
        };
        sleep(Duration::ZERO);
        match phase {
            0 => first.kill().unwrap(),
            1 => {
                q.put(1).unwrap();
                first.kill_nowait();
            }
            _ => sleep(Duration::from_millis(8)),
        }
        if phase != 1 {
            q.put(1).unwrap();
        }
        assert_eq!(second.get().unwrap().unwrap(), 1, "queue phase {phase}");
        assert!(first.get().map_or(true, |r| r.is_err()), "phase {phase}");
        assert_eq!((q.qsize(), q.getters()), (0, 0));

        // Channel::get (put side: a putter blocks with no getter)
        let ch = Channel::<u32>::new();
        let c1 = ch.clone();
        let putter = spawn(move || c1.put(5));
        let c2 = ch.clone();
        let g1 = spawn(move || c2.get());
        let c3 = ch.clone();
        let g2 = spawn(move || c3.get());
        sleep(Duration::ZERO);
        putter.join().unwrap();
        // The putter handed to g1 directly; a second put goes to g2.
        let c4 = ch.clone();
        let p2 = spawn(move || c4.put(6));
        if phase == 1 {
            g2.kill_nowait();
        }
        let got: Vec<_> = [g1, g2]
            .into_iter()
            .filter_map(|g| g.get().ok().and_then(|r| r.ok()))
            .collect();
        if phase == 1 {
            assert_eq!(got, [5]);
            // g2 was killed before p2 could hand to it: p2 still waits.
            assert_eq!(ch.balance(), 1);
            assert_eq!(ch.get().unwrap(), 6);
        } else {
            assert_eq!(got, [5, 6]);
        }
        assert!(p2.get().unwrap().is_ok());
        assert_eq!(ch.balance(), 0);

        // Event / Lock / Semaphore: the waiter killed or timed out while
        // queued leaves the others their wake-up.
        let ev = Rc::new(Event::new());
        let lock = Rc::new(Lock::new());
        let sem = Rc::new(Semaphore::new(0));
        lock.acquire().unwrap();
        let (e1, l1, s1) = (ev.clone(), lock.clone(), sem.clone());
        let doomed = spawn(move || {
            with_timeout(Duration::from_millis(5), || {
                e1.wait().unwrap();
                l1.acquire().unwrap();
                s1.acquire().unwrap();
            })
        });
        let (e2, l2, s2) = (ev.clone(), lock.clone(), sem.clone());
        let survivor = spawn(move || {
            e2.wait().unwrap();
            l2.acquire().unwrap();
            s2.acquire().unwrap();
            l2.release().unwrap();
            7
        });
        sleep(Duration::ZERO);
        match phase {
            0 => doomed.kill().unwrap(),
            1 => {
                ev.set();
                doomed.kill_nowait();
            }
            _ => sleep(Duration::from_millis(8)),
        }
        ev.set();
        lock.release().unwrap();
        sem.release().unwrap();
        assert_eq!(survivor.get().unwrap(), 7, "phase {phase}");
        assert!(doomed.get().map_or(true, |r| r.is_err()));
        assert_eq!(sem.waiters(), 0);
    }
    quiet();
}

// ========================================= blocking in hub callbacks

#[greenlet::test]
fn no_deadline_waits_inside_hub_callbacks_panic_naming_the_api_and_change_nothing() {
    let reports = Reports::install();
    let q = Queue::<u32>::new();
    let full = Queue::<u32>::bounded(1);
    full.put_nowait(0).unwrap();
    let wq = Rc::new(WaitQueue::<u32>::new());
    let ch = Channel::<u32>::new();
    type Attempt = Rc<dyn Fn()>;
    let attempts: Vec<(&str, Attempt)> = vec![
        ("Queue::get", {
            let q = q.clone();
            Rc::new(move || drop(q.get()))
        }),
        ("Queue::put", {
            let f = full.clone();
            Rc::new(move || drop(f.put(1)))
        }),
        ("wq-in-callback", {
            let wq = wq.clone();
            Rc::new(move || drop(wq.wait(None, "wq-in-callback", |_| ())))
        }),
        ("Channel::get", {
            let ch = ch.clone();
            Rc::new(move || drop(ch.get()))
        }),
    ];
    for (api, attempt) in &attempts {
        // A link callback and a run_callback.
        let a = attempt.clone();
        let g = spawn(|| ());
        g.link(move |_| a());
        let a = attempt.clone();
        hub::run_callback(move || a());
        sleep(Duration::ZERO);
        sleep(Duration::ZERO);
        let all = reports.take();
        assert_eq!(all.len(), 2, "{api}: {all:#?}");
        for r in &all {
            assert_contains(&r.line, &[api, "cannot block inside a hub callback"]);
        }
        // Nothing registered, nothing consumed.
        assert_eq!(q.getters(), 0, "{api}");
        assert_eq!(full.putters(), 0, "{api}");
        assert_eq!(full.qsize(), 1, "{api}");
        assert!(wq.is_empty(), "{api}");
        assert_eq!(ch.balance(), 0, "{api}");
        q.put_nowait(3).unwrap();
        assert_eq!(q.get_nowait().unwrap(), 3);
        assert_eq!(wq.notify_one(1), Err(1));
    }
    // A post (Send: it blocks on primitives of its own).
    let handle = hub::handle();
    handle
        .post(|| drop(WaitQueue::<u32>::new().wait(None, "post-wq", |_| ())))
        .unwrap();
    handle.post(|| drop(Queue::<u32>::new().get())).unwrap();
    sleep(Duration::ZERO);
    sleep(Duration::ZERO);
    drop(handle);
    let all = reports.take();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_contains(
        &all[0].line,
        &["post-wq", "cannot block inside a hub callback"],
    );
    assert_contains(
        &all[1].line,
        &["Queue::get", "cannot block inside a hub callback"],
    );
    // And the primitives still work for greenlets afterwards.
    let (q2, wq2) = (q.clone(), wq.clone());
    let g = spawn(move || (q2.get().unwrap(), wq2.wait(None, "wq", |_| ()).unwrap()));
    sleep(Duration::ZERO);
    q.put(4).unwrap();
    sleep(Duration::ZERO);
    wq.notify_one(5).unwrap();
    assert_eq!(g.get().unwrap(), (4, 5));
    quiet();
}

// ========================================= the native stack: LoopExit

#[test]
fn no_deadline_waits_on_the_native_stack_get_loop_exit_twice_per_thread() {
    std::thread::spawn(|| {
        for _ in 0..2 {
            greenlet::run(|| {
                let q = Queue::<u32>::new();
                assert!(matches!(
                    q.get(),
                    Err(GetError::Wait(WaitError::LoopExit(_)))
                ));
                assert_eq!(q.getters(), 0);
                q.put_nowait(1).unwrap();
                assert_eq!(q.get().unwrap(), 1);
                let wq = WaitQueue::<u32>::new();
                assert!(matches!(
                    wq.wait(None, "wq", |_| ()),
                    Err(WaitError::LoopExit(_))
                ));
                assert!(wq.is_empty());
                assert_eq!(wq.notify_one(2), Err(2));
                let ch = Channel::<u32>::new();
                assert!(ch.put(3).is_err());
                assert!(ch.get().is_err());
                assert_eq!(ch.balance(), 0);
                // A ping-pong that ends with everyone blocked: main gets
                // LoopExit, then the hub still works.
                let (a, b) = ping_pong(100);
                assert_eq!(a.get().unwrap(), 100);
                b.join().unwrap();
                let q3 = q.clone();
                let stuck = spawn(move || q3.get());
                assert!(stuck.get().is_err()); // LoopExit: nothing can put
                assert_eq!(q.getters(), 1);
                stuck.kill().unwrap();
                quiet();
            });
        }
    })
    .join()
    .unwrap();
}

// ================================================= tiny stacks

/// Calls `f` under `depth` frames of 256 bytes each.
#[inline(never)]
fn with_depth<R>(depth: u32, f: impl FnOnce() -> R) -> R {
    let buf = std::hint::black_box([depth as u8; 256]);
    let r = if depth == 0 {
        f()
    } else {
        with_depth(depth - 1, f)
    };
    std::hint::black_box(&buf);
    r
}

#[test]
fn tiny_stacks_ping_pong_deep_while_timers_fds_posts_and_idlers_come_and_go() {
    child_must_succeed(
        "tiny_stacks_ping_pong_deep_while_timers_fds_posts_and_idlers_come_and_go",
        CHILD_LIMIT,
        || {
            greenlet::run(|| {
                let asan = std::env::var_os("GREENLET_UNDER_ASAN").is_some();
                // Calibrated on the debug build: with 16 KiB (the minimum)
                // the ping-pong's own frames overflow at 14 levels of 256
                // bytes, the same with and without the boundary's room
                // check on workless turns; 11 leaves the hub ~750 bytes.
                // (AddressSanitizer's redzones: only the mechanism.)
                let (depth, size) = if asan {
                    (0, 64 * 1024)
                } else {
                    (11, 16 * 1024)
                };
                let depth = std::env::var("BREAK_DEPTH").map_or(depth, |d| d.parse().unwrap());
                let b = Builder::new().stack_size(size);
                let stop = Rc::new(Cell::new(false));
                // Boundary work that appears and disappears.
                let s = stop.clone();
                let churn = spawn(move || {
                    let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
                    let mut n = 0u32;
                    while !s.get() {
                        match n % 4 {
                            0 => sleep(Duration::from_micros(200)),
                            1 => drop(greenlet::io::wait_read(
                                &r,
                                Some(Duration::from_micros(300)),
                            )),
                            2 => hub::idle(),
                            _ => sleep(Duration::ZERO),
                        }
                        n += 1;
                    }
                    n
                });
                let handle = hub::handle();
                let posted = Arc::new(AtomicUsize::new(0));
                let p = posted.clone();
                let poster = std::thread::spawn(move || {
                    for _ in 0..300 {
                        let p = p.clone();
                        if handle
                            .post(move || {
                                p.fetch_add(1, Ordering::SeqCst);
                            })
                            .is_err()
                        {
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(300));
                    }
                });
                let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
                let (i, o) = (q1.clone(), q2.clone());
                let ponger = b
                    .clone()
                    .spawn(move || {
                        let mut n = 0;
                        loop {
                            let v = with_depth(depth, || i.get().unwrap());
                            if v == u32::MAX {
                                return n;
                            }
                            n += 1;
                            with_depth(depth, || o.put(v + 1).unwrap());
                        }
                    })
                    .unwrap();
                let pinger = b
                    .spawn(move || {
                        let mut v = 0;
                        for _ in 0..20_000 {
                            with_depth(depth, || q1.put(v).unwrap());
                            v = with_depth(depth, || q2.get().unwrap());
                        }
                        q1.put(u32::MAX).unwrap();
                        v
                    })
                    .unwrap();
                assert_eq!(pinger.get().unwrap(), 20_000);
                assert_eq!(ponger.get().unwrap(), 20_000);
                stop.set(true);
                assert!(churn.get().unwrap() > 0);
                poster.join().unwrap();
                sleep(Duration::from_millis(5));
                assert_eq!(posted.load(Ordering::SeqCst), 300);
            });
        },
    );
}

// ============================================ posts, idle waiters

#[greenlet::test]
fn posts_from_another_thread_are_not_starved_by_a_workless_ping_pong() {
    // The ping-pong has no timer, fd or idle waiter: only the posts' flag
    // makes a boundary do work. Every post must run while it goes on.
    let handle = hub::handle();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let poster = std::thread::spawn(move || {
        for _ in 0..500 {
            let r = r.clone();
            handle
                .post(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            std::thread::yield_now();
        }
    });
    let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
    let (i, o) = (q1.clone(), q2.clone());
    let ponger = spawn(move || {
        while let Ok(v) = i.get() {
            if v == u32::MAX {
                break;
            }
            o.put(v + 1).unwrap();
        }
    });
    let seen = ran.clone();
    let started = Instant::now();
    let pinger = spawn(move || {
        let mut rounds = 0u32;
        while seen.load(Ordering::SeqCst) < 500 && started.elapsed() < Duration::from_secs(20) {
            q1.put(rounds).unwrap();
            assert_eq!(q2.get().unwrap(), rounds + 1);
            rounds += 1;
        }
        q1.put(u32::MAX).unwrap();
        rounds
    });
    let rounds = pinger.get().unwrap();
    ponger.join().unwrap();
    poster.join().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 500, "after {rounds} rounds");
    assert!(started.elapsed() < Duration::from_secs(20));
    quiet();
}

#[greenlet::test]
fn an_idle_waiter_returns_only_after_a_queue_ping_pong_ends() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let idler = spawn(move || {
        hub::idle();
        l.borrow_mut().push(u32::MAX);
    });
    sleep(Duration::ZERO);
    let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
    let (i, o) = (q1.clone(), q2.clone());
    let ponger = spawn(move || {
        for _ in 0..300 {
            let v = i.get().unwrap();
            o.put(v).unwrap();
        }
    });
    let l = log.clone();
    let pinger = spawn(move || {
        for v in 0..300 {
            q1.put(v).unwrap();
            l.borrow_mut().push(q2.get().unwrap());
        }
    });
    pinger.join().unwrap();
    ponger.join().unwrap();
    idler.join().unwrap();
    let log = log.borrow();
    assert_eq!(log.len(), 301);
    assert_eq!(*log.last().unwrap(), u32::MAX);
    assert!(log[..300].iter().copied().eq(0..300));
    quiet();
}

// ============================================ counters and the monitor

#[greenlet::test]
fn loop_iterations_count_every_workless_boundary_of_a_ping_pong() {
    let before = hub::stats();
    let (a, b) = ping_pong(1000);
    assert_eq!(a.get().unwrap(), 1000);
    b.join().unwrap();
    let after = hub::stats();
    // Every round parks each side once: at least one boundary per round.
    let turns = after.loop_iterations - before.loop_iterations;
    assert!(turns >= 1000, "{turns}");
    assert!(turns <= 2 * 2000 + 20, "{turns}");
    assert!(after.switches - before.switches >= 2000);
    assert!(after.longest_loop_turn >= before.longest_loop_turn);
    assert!(after.longest_loop_turn < Duration::from_secs(5));
    quiet();
}

#[test]
fn a_long_turn_right_before_the_loop_waits_is_recorded() {
    // A greenlet holds the thread, then the loop has nothing ready and
    // waits for a timer: the turn must be measured before the wait starts
    // a new one, whatever the iteration count (a clock read only every
    // 16th iteration lost it).
    // With the blocking monitor off (debug builds turn it on by default,
    // and then every turn is measured): a child process, since the
    // setting is process-wide.
    child_must_succeed(
        "a_long_turn_right_before_the_loop_waits_is_recorded",
        CHILD_LIMIT,
        || {
            hub::set_max_blocking_time(None);
            // One fresh hub (thread) per residue of the iteration count.
            for k in 0..16u32 {
                std::thread::spawn(move || {
                    greenlet::run(|| {
                        let before = hub::stats().longest_loop_turn;
                        assert!(before < Duration::from_millis(40), "round {k}: {before:?}");
                        for _ in 0..k {
                            sleep(Duration::ZERO); // shifts the iteration count
                        }
                        let hog = spawn(|| std::thread::sleep(Duration::from_millis(60)));
                        sleep(Duration::from_millis(100)); // the loop waits after the hog
                        hog.join().unwrap();
                        let s = hub::stats();
                        let long = s.longest_loop_turn;
                        let at = s.loop_iterations;
                        assert!(
                            long >= Duration::from_millis(55),
                            "round {k} ({at} turns): {long:?}"
                        );
                        assert!(long < Duration::from_secs(5), "round {k}: {long:?}");
                    });
                })
                .join()
                .unwrap();
            }
        },
    );
}

#[test]
fn the_monitor_names_the_hog_of_a_no_deadline_ping_pong_and_nothing_else() {
    child_must_succeed(
        "the_monitor_names_the_hog_of_a_no_deadline_ping_pong_and_nothing_else",
        CHILD_LIMIT,
        || {
            log::set_logger(&break_common::MonitorCapture).unwrap();
            log::set_max_level(log::LevelFilter::Warn);
            hub::set_max_blocking_time(Some(Duration::from_millis(150)));
            std::thread::Builder::new()
                .name("pp".into())
                .spawn(|| {
                    greenlet::run(|| {
                        // 300 ms of a fast ping-pong first: no report.
                        let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
                        let (i, o) = (q1.clone(), q2.clone());
                        let hog: Greenlet<()> = Builder::new()
                            .name("hog")
                            .spawn(move || {
                                let started = Instant::now();
                                let mut hogged = false;
                                while let Ok(v) = i.get() {
                                    if v == u32::MAX {
                                        break;
                                    }
                                    if !hogged && started.elapsed() > Duration::from_millis(300) {
                                        assert_eq!(
                                            break_common::MONITOR_LINES.lock().unwrap().len(),
                                            0
                                        );
                                        hogged = true;
                                        std::thread::sleep(Duration::from_millis(500));
                                    }
                                    o.put(v).unwrap();
                                }
                            })
                            .unwrap();
                        let pinger: Greenlet<()> = Builder::new()
                            .name("pinger")
                            .spawn(move || {
                                let started = Instant::now();
                                let mut v = 0;
                                while started.elapsed() < Duration::from_millis(900) {
                                    q1.put(v).unwrap();
                                    assert_eq!(q2.get().unwrap(), v);
                                    v += 1;
                                }
                                q1.put(u32::MAX).unwrap();
                            })
                            .unwrap();
                        pinger.join().unwrap();
                        hog.join().unwrap();
                        let long = hub::stats().longest_loop_turn;
                        assert!(long >= Duration::from_millis(490), "{long:?}");
                    });
                })
                .unwrap()
                .join()
                .unwrap();
            let lines = break_common::MONITOR_LINES.lock().unwrap().clone();
            let reports: Vec<_> = lines
                .iter()
                .filter(|l| l.contains("hub of thread \"pp\""))
                .collect();
            assert_eq!(reports.len(), 1, "{lines:#?}");
            assert!(reports[0].contains("hog"), "{reports:#?}");
            assert!(!reports[0].contains("pinger"), "{reports:#?}");
        },
    );
}

// =============================== hub reuse, destroy, thread exit, Drop

thread_local! {
    static TOUCHY_DROPS: Cell<usize> = const { Cell::new(0) };
}

/// An item whose `Drop` uses the hub (stats, and a spawn when allowed):
/// it must never be dropped inside a hub borrow.
struct Touchy {
    spawn_on_drop: bool,
}

impl Drop for Touchy {
    fn drop(&mut self) {
        let _ = hub::stats().greenlets;
        if self.spawn_on_drop {
            drop(spawn(|| ()));
        }
        TOUCHY_DROPS.with(|d| d.set(d.get() + 1));
    }
}

fn touchy_drops() -> usize {
    TOUCHY_DROPS.with(Cell::get)
}

#[test]
fn items_whose_drop_touches_the_hub_dropped_by_killed_waiters_and_spare_entries() {
    child_must_succeed(
        "items_whose_drop_touches_the_hub_dropped_by_killed_waiters_and_spare_entries",
        CHILD_LIMIT,
        || {
            greenlet::run(|| {
                let wq = Rc::new(WaitQueue::<Touchy>::new());
                let q = Queue::<Touchy>::new();
                for round in 0..50usize {
                    let base = touchy_drops();
                    // A waiter handed an item then killed: on_unclaimed drops it.
                    let w = wq.clone();
                    let g = spawn(move || w.wait(None, "touchy", drop).map(drop));
                    sleep(Duration::ZERO);
                    wq.notify_one(Touchy {
                        spawn_on_drop: true,
                    })
                    .ok()
                    .unwrap();
                    g.kill_nowait();
                    sleep(Duration::ZERO);
                    assert!(is_killed(g.get()));
                    assert_eq!(touchy_drops(), base + 1, "round {round}");
                    // A waiter that takes its item (the entry becomes the spare).
                    let w = wq.clone();
                    let g = spawn(move || w.wait(None, "touchy", drop).map(drop));
                    sleep(Duration::ZERO);
                    wq.notify_one(Touchy {
                        spawn_on_drop: true,
                    })
                    .ok()
                    .unwrap();
                    g.get().unwrap().unwrap();
                    assert_eq!(touchy_drops(), base + 2);
                    // A Queue getter killed after the hand-off gives it back.
                    let q2 = q.clone();
                    let g = spawn(move || q2.get().map(drop));
                    sleep(Duration::ZERO);
                    q.put(Touchy {
                        spawn_on_drop: round % 2 == 0,
                    })
                    .unwrap();
                    g.kill_nowait();
                    sleep(Duration::ZERO);
                    assert_eq!(q.qsize(), 1);
                    drop(q.get_nowait().unwrap());
                    assert_eq!(touchy_drops(), base + 3);
                    sleep(Duration::ZERO);
                }
                // Waiters handed items and left mid-flight when the hub is
                // destroyed.
                let base = touchy_drops();
                let gs: Vec<_> = (0..4)
                    .map(|_| {
                        let w = wq.clone();
                        spawn(move || w.wait(None, "touchy", drop).map(drop))
                    })
                    .collect();
                sleep(Duration::ZERO);
                wq.notify_one(Touchy {
                    spawn_on_drop: false,
                })
                .ok()
                .unwrap();
                wq.notify_one(Touchy {
                    spawn_on_drop: false,
                })
                .ok()
                .unwrap();
                let q3 = q.clone();
                let getter = spawn(move || q3.get().map(drop));
                sleep(Duration::ZERO);
                q.put_nowait(Touchy {
                    spawn_on_drop: false,
                })
                .ok()
                .unwrap();
                hub::destroy();
                assert!(gs.iter().all(Greenlet::is_ready));
                assert!(getter.is_ready());
                // Given back (dropped) or still in the queue: never lost,
                // never twice.
                assert_eq!(touchy_drops() + q.qsize(), base + 3);
                drop(q);
                assert_eq!(touchy_drops(), base + 3);
                assert!(wq.is_empty());
                drop(wq);
                quiet();
            });
        },
    );
}

#[test]
fn the_hub_reused_twice_and_a_thread_exit_mid_ping_pong() {
    let th = std::thread::spawn(|| {
        let mut results = Vec::new();
        for round in 0..2u32 {
            greenlet::run(|| {
                let (a, b) = ping_pong(500 + round);
                results.push(a.get().unwrap());
                b.join().unwrap();
                // Leave a ping-pong suspended mid-flight at scope end.
                let (q1, q2) = (Queue::<Touchy>::new(), Queue::<u32>::new());
                let (i, o) = (q1.clone(), q2.clone());
                spawn(move || {
                    while let Ok(t) = i.get() {
                        drop(t);
                        o.put(1).unwrap();
                    }
                });
                spawn(move || {
                    loop {
                        q1.put(Touchy {
                            spawn_on_drop: false,
                        })
                        .unwrap();
                        q2.get().unwrap();
                    }
                });
                sleep(Duration::ZERO);
                sleep(Duration::ZERO);
            });
        }
        // A third scope ended with a ping-pong mid-flight, then the
        // thread exits.
        greenlet::run(|| {
            let (a, _b) = ping_pong(1_000_000);
            sleep(Duration::ZERO);
            drop(a);
        });
        results
    });
    assert_eq!(th.join().unwrap(), [500, 501]);
}

// ================================================================= fork

#[test]
fn fork_in_the_middle_of_a_no_deadline_ping_pong() {
    child_must_succeed(
        "fork_in_the_middle_of_a_no_deadline_ping_pong",
        CHILD_LIMIT,
        || {
            greenlet::run(|| {
                let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
                let (i, o) = (q1.clone(), q2.clone());
                let ponger = spawn(move || {
                    let mut forked = None;
                    loop {
                        let v = i.get().unwrap();
                        if v == u32::MAX {
                            return forked;
                        }
                        if v == 500 {
                            match greenlet::fork().unwrap() {
                                greenlet::Fork::Child => {
                                    // The child's copy of the ping-pong
                                    // goes on: this greenlet answers, the
                                    // pinger's copy asks.
                                    o.put(v + 1).unwrap();
                                    let mut last = v;
                                    for _ in 0..100 {
                                        let v = i.get().unwrap();
                                        last = v;
                                        if v == u32::MAX {
                                            break;
                                        }
                                        o.put(v + 1).unwrap();
                                    }
                                    let code = if last >= 600 { 0 } else { 3 };
                                    // SAFETY: (test code) `_exit` ends the
                                    // child at once, running no destructor
                                    // and no exit hook.
                                    unsafe { libc::_exit(code) }
                                }
                                greenlet::Fork::Parent(pid) => forked = Some(pid),
                            }
                        }
                        o.put(v + 1).unwrap();
                    }
                });
                let pinger = spawn(move || {
                    let mut v = 0;
                    for _ in 0..1000 {
                        q1.put(v).unwrap();
                        v = q2.get().unwrap();
                        v += 1;
                    }
                    q1.put(u32::MAX).unwrap();
                    v
                });
                assert_eq!(pinger.get().unwrap(), 2000);
                let pid = ponger.get().unwrap().expect("forked");
                let status = greenlet::waitpid(pid).unwrap();
                assert_eq!(status.code(), Some(0));
            });
        },
    );
}

// ============== wake-ups from outside during a workless ping-pong

/// A queue ping-pong that runs until `done()` (or 10 s); the rounds it ran.
fn ping_pong_until(done: impl Fn() -> bool + 'static) -> u32 {
    let (q1, q2) = (Queue::<u32>::new(), Queue::<u32>::new());
    let (i, o) = (q1.clone(), q2.clone());
    let ponger = spawn(move || {
        while let Ok(v) = i.get() {
            if v == u32::MAX {
                break;
            }
            o.put(v + 1).unwrap();
        }
    });
    let started = Instant::now();
    let pinger = spawn(move || {
        let mut rounds = 0u32;
        while !done() && started.elapsed() < Duration::from_secs(10) {
            q1.put(rounds).unwrap();
            assert_eq!(q2.get().unwrap(), rounds + 1);
            rounds += 1;
        }
        q1.put(u32::MAX).unwrap();
        rounds
    });
    let rounds = pinger.get().unwrap();
    ponger.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{rounds} rounds"
    );
    rounds
}

#[test]
fn a_signal_is_handled_during_a_workless_ping_pong() {
    child_must_succeed(
        "a_signal_is_handled_during_a_workless_ping_pong",
        CHILD_LIMIT,
        || {
            greenlet::run(|| {
                let got = Rc::new(Cell::new(0u32));
                let g = got.clone();
                let handle = greenlet::signal(libc::SIGUSR1, move || g.set(g.get() + 1)).unwrap();
                let sender = std::thread::spawn(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    greenlet::send_signal(std::process::id(), libc::SIGUSR1).unwrap();
                });
                let g = got.clone();
                ping_pong_until(move || g.get() > 0);
                sender.join().unwrap();
                assert_eq!(got.get(), 1);
                handle.cancel();
            });
        },
    );
}

#[greenlet::test]
fn a_threadpool_result_arrives_during_a_workless_ping_pong() {
    let pool = greenlet::threadpool::ThreadPool::new(1);
    let r = Rc::new(pool.spawn(|| {
        std::thread::sleep(Duration::from_millis(20));
        42
    }));
    let r2 = r.clone();
    ping_pong_until(move || r2.is_ready());
    assert!(r.is_ready());
    assert_eq!(r.take().unwrap(), 42);
    pool.join().unwrap();
}

#[greenlet::test]
fn a_greenlet_that_kills_itself_then_waits_without_deadline_leaves_no_entry() {
    // The throw is queued before the park: `park_registering` queues the
    // entry and the park comes back at once to unwind; the entry must be
    // cancelled and the next item go to the next getter.
    let q = Queue::<u32>::new();
    let wq = Rc::new(WaitQueue::<u32>::new());
    for round in 0..20u32 {
        let (q1, wq1) = (q.clone(), wq.clone());
        let suicidal = common::spawn_self(move |me| {
            me.kill_nowait();
            if round % 2 == 0 {
                q1.get().map(drop).is_ok()
            } else {
                wq1.wait(None, "self-killed", |_| ()).is_ok()
            }
        });
        let (q2, wq2) = (q.clone(), wq.clone());
        let next = spawn(move || {
            if round % 2 == 0 {
                q2.get().unwrap()
            } else {
                wq2.wait(None, "next", |_| ()).unwrap()
            }
        });
        sleep(Duration::ZERO);
        assert!(is_killed(suicidal.get()), "round {round}");
        assert!(q.getters() + wq.len() == 1, "round {round}");
        if round % 2 == 0 {
            q.put(round).unwrap();
        } else {
            wq.notify_one(round).unwrap();
        }
        assert_eq!(next.get().unwrap(), round);
        assert_eq!((q.getters(), wq.len(), q.qsize()), (0, 0, 0));
    }
    quiet();
}

#[test]
fn medium_turns_are_not_summed_into_one_long_turn() {
    child_must_succeed(
        "medium_turns_are_not_summed_into_one_long_turn",
        CHILD_LIMIT,
        || {
            hub::set_max_blocking_time(None);
            std::thread::spawn(|| {
                greenlet::run(|| {
                    let g = spawn(|| {
                        for _ in 0..32 {
                            std::thread::sleep(Duration::from_millis(5));
                            sleep(Duration::ZERO); // one loop turn each
                        }
                    });
                    g.join().unwrap();
                    let long = hub::stats().longest_loop_turn;
                    // Each turn held the thread ~5 ms (coarse clock: 1-4 ms
                    // ticks, a loaded machine): never 16 of them.
                    assert!(long < Duration::from_millis(40), "{long:?}");
                });
            })
            .join()
            .unwrap();
        },
    );
}
