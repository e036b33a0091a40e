//! Adversarial interleavings, part three: a timeout or a kill landing in the
//! same loop turn as a hand-off (semaphore, event, AsyncResult, Channel),
//! and the observability paths (dump_on_signal, the monitor) under churn.

mod break_common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use break_common::child_must_succeed;
use greenlet::event::{AsyncResult, Event};
use greenlet::lock::Semaphore;
use greenlet::queue::Channel;
use greenlet::{hub, sleep, spawn};

const LIMIT: Duration = Duration::from_secs(30);
const T: Duration = Duration::from_millis(2);

/// Blocks the hub thread until `T` has surely passed: every timer of `T`
/// is due in the next turn, with whatever this turn hands off.
fn let_deadlines_pass() {
    std::thread::sleep(T + Duration::from_millis(1));
}

#[test]
fn semaphore_release_and_timeout_or_kill_in_one_turn() {
    child_must_succeed(
        "semaphore_release_and_timeout_or_kill_in_one_turn",
        LIMIT,
        || {
            greenlet::run(|| {
                for round in 0..100 {
                    let sem = Rc::new(Semaphore::new(0));
                    let held = Rc::new(Cell::new(0u32));
                    let waiters: Vec<_> = (0..3)
                        .map(|i| {
                            let (s, h) = (sem.clone(), held.clone());
                            spawn(move || {
                                let r = if i == 0 {
                                    s.acquire_timeout(T)
                                } else {
                                    s.acquire()
                                };
                                if r.is_ok() {
                                    h.set(h.get() + 1);
                                }
                            })
                        })
                        .collect();
                    sleep(Duration::ZERO);
                    let_deadlines_pass();
                    sem.release().unwrap();
                    if round % 2 == 0 {
                        waiters[1].kill_nowait();
                    }
                    sem.release().unwrap();
                    sleep(Duration::from_millis(1));
                    sleep(Duration::ZERO);
                    for w in &waiters {
                        w.kill().unwrap();
                    }
                    // two permits: each is held by one finished waiter or
                    // still in the semaphore, never both, never lost
                    assert_eq!(
                        held.get() as usize + sem.counter(),
                        2,
                        "round {round}: held {} counter {}",
                        held.get(),
                        sem.counter()
                    );
                }
            });
        },
    );
}

#[test]
fn event_set_and_timeout_in_one_turn() {
    child_must_succeed("event_set_and_timeout_in_one_turn", LIMIT, || {
        greenlet::run(|| {
            for _ in 0..100 {
                let ev = Rc::new(Event::new());
                let e2 = ev.clone();
                let w = spawn(move || e2.wait_timeout(T));
                sleep(Duration::ZERO);
                let_deadlines_pass();
                ev.set();
                let r = w.get().unwrap();
                // either is fine; the wait must end, and say so
                let _ = r;
                assert_eq!(ev.waiters(), 0);
            }
        });
    });
}

#[test]
fn async_result_set_and_kill_in_one_turn() {
    child_must_succeed("async_result_set_and_kill_in_one_turn", LIMIT, || {
        greenlet::run(|| {
            for round in 0..100 {
                let ar: Rc<AsyncResult<Vec<u32>>> = Rc::new(AsyncResult::new());
                let a2 = ar.clone();
                let w = spawn(move || a2.get_timeout(T));
                let a3 = ar.clone();
                let w2 = spawn(move || a3.get());
                sleep(Duration::ZERO);
                let_deadlines_pass();
                ar.set(vec![round; 4]);
                if round % 2 == 1 {
                    w.kill_nowait();
                }
                let _ = w.join();
                assert_eq!(w2.get().unwrap().unwrap(), vec![round; 4]);
                assert_eq!(ar.get().unwrap(), vec![round; 4]);
            }
        });
    });
}

#[test]
fn channel_rendezvous_against_timeout_and_kill() {
    child_must_succeed("channel_rendezvous_against_timeout_and_kill", LIMIT, || {
        greenlet::run(|| {
            let mut delivered = 0u32;
            let mut returned = 0u32;
            for round in 0..200u32 {
                let ch: Rc<Channel<u32>> = Rc::new(Channel::new());
                let c2 = ch.clone();
                let putter = spawn(move || match c2.put_timeout(round, T) {
                    Ok(()) => None,
                    Err(e) => Some(e.into_inner()),
                });
                sleep(Duration::ZERO);
                let_deadlines_pass();
                let c3 = ch.clone();
                let getter = spawn(move || c3.get_timeout(Duration::from_millis(20)).ok());
                if round % 3 == 0 {
                    getter.kill_nowait();
                }
                let back = match putter.get() {
                    Ok(b) => b,
                    Err(e) => panic!("{e:?}"),
                };
                let got = getter.get().ok().flatten();
                match (got, back) {
                    (Some(v), None) => {
                        assert_eq!(v, round);
                        delivered += 1;
                    }
                    (None, Some(v)) => {
                        assert_eq!(v, round);
                        returned += 1;
                    }
                    other => panic!("round {round}: item lost or doubled: {other:?}"),
                }
                assert_eq!(ch.balance(), 0, "round {round}");
            }
            eprintln!("delivered {delivered}, returned {returned}");
        });
    });
}

#[test]
fn dump_on_signal_storm_while_greenlets_churn() {
    child_must_succeed("dump_on_signal_storm_while_greenlets_churn", LIMIT, || {
        greenlet::run(|| {
            hub::dump_on_signal(libc::SIGUSR2).unwrap();
            let pid = std::process::id();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s2 = stop.clone();
            let sender = std::thread::spawn(move || {
                let mut n = 0;
                while !s2.load(std::sync::atomic::Ordering::Relaxed) && n < 300 {
                    let _ = greenlet::send_signal(pid, libc::SIGUSR2);
                    std::thread::sleep(Duration::from_micros(300));
                    n += 1;
                }
            });
            let others: Vec<_> = (0..3)
                .map(|_| {
                    std::thread::spawn(|| {
                        for _ in 0..20 {
                            greenlet::run(|| {
                                let gs: Vec<_> =
                                    (0..50).map(|_| spawn(|| sleep(Duration::ZERO))).collect();
                                greenlet::joinall(&gs).unwrap();
                            });
                        }
                    })
                })
                .collect();
            for _ in 0..50 {
                let gs: Vec<_> = (0..50)
                    .map(|i| spawn(move || sleep(Duration::from_micros(i * 10))))
                    .collect();
                sleep(Duration::from_micros(200));
                greenlet::killall(&gs).unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            sender.join().unwrap();
            for t in others {
                t.join().unwrap();
            }
        });
    });
}

#[test]
fn monitor_with_many_short_lived_hub_threads() {
    child_must_succeed("monitor_with_many_short_lived_hub_threads", LIMIT, || {
        hub::set_max_blocking_time(Some(Duration::from_millis(1)));
        let ts: Vec<_> = (0..16)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10 {
                        greenlet::run(|| {
                            let g = spawn(|| std::thread::sleep(Duration::from_millis(3)));
                            g.join().unwrap();
                        });
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn pool_spawner_killed_while_a_slot_frees_keeps_the_bound() {
    child_must_succeed(
        "pool_spawner_killed_while_a_slot_frees_keeps_the_bound",
        LIMIT,
        || {
            greenlet::run(|| {
                for round in 0..100 {
                    let pool = Rc::new(greenlet::pool::Pool::new(1));
                    let member = pool.spawn(|| sleep(T)).unwrap();
                    let p2 = pool.clone();
                    let spawner = spawn(move || {
                        if round % 2 == 0 {
                            p2.spawn(|| ()).map(|_| ())
                        } else {
                            p2.spawn_timeout(|| (), T).map(|_| ())
                        }
                    });
                    sleep(Duration::ZERO);
                    let_deadlines_pass();
                    // the member's sleep ends, its slot frees, and the
                    // spawner is killed (or times out), all in one turn
                    spawner.kill_nowait();
                    member.join().unwrap();
                    let _ = spawner.join();
                    pool.join(Some(Duration::from_secs(1)), false).unwrap();
                    assert_eq!(pool.free_count(), 1, "round {round}: a slot leaked");
                    let again = pool
                        .spawn_timeout(|| 7, Duration::from_millis(100))
                        .unwrap();
                    assert_eq!(again.get().unwrap(), 7);
                }
            });
        },
    );
}

#[test]
fn rlock_release_to_a_waiter_killed_in_the_same_turn() {
    child_must_succeed(
        "rlock_release_to_a_waiter_killed_in_the_same_turn",
        LIMIT,
        || {
            greenlet::run(|| {
                for round in 0..100 {
                    let lock = Rc::new(greenlet::lock::RLock::new());
                    lock.acquire().unwrap();
                    lock.acquire().unwrap();
                    let l2 = lock.clone();
                    let b = spawn(move || {
                        let g = l2.lock();
                        sleep(Duration::ZERO);
                        drop(g);
                    });
                    let l3 = lock.clone();
                    let c = spawn(move || l3.lock_timeout(Duration::from_millis(200)).map(drop));
                    sleep(Duration::ZERO);
                    lock.release().unwrap();
                    lock.release().unwrap();
                    if round % 2 == 0 {
                        b.kill_nowait();
                    }
                    b.join().unwrap();
                    c.get().unwrap().unwrap();
                    assert!(!lock.is_locked(), "round {round}");
                    assert!(lock.try_acquire(), "round {round}: ownership leaked");
                    lock.release().unwrap();
                }
            });
        },
    );
}

#[test]
fn joinable_queue_task_done_against_kills() {
    child_must_succeed("joinable_queue_task_done_against_kills", LIMIT, || {
        greenlet::run(|| {
            let q: greenlet::queue::Queue<u32> = greenlet::queue::Queue::new();
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let q = q.clone();
                    spawn(move || {
                        while let Ok(_item) = q.get() {
                            sleep(Duration::from_micros(50));
                            q.task_done().unwrap();
                        }
                    })
                })
                .collect();
            for i in 0..200 {
                q.put(i).unwrap();
            }
            let joiners: Vec<_> = (0..5)
                .map(|_| {
                    let q = q.clone();
                    spawn(move || q.join())
                })
                .collect();
            sleep(Duration::from_millis(1));
            joiners[0].kill_nowait();
            joiners[1].kill_nowait();
            q.join_timeout(Duration::from_secs(5)).unwrap();
            for j in &joiners[2..] {
                j.get().unwrap().unwrap();
            }
            assert_eq!(q.unfinished_tasks(), 0);
            greenlet::killall(&workers).unwrap();
        });
    });
}

#[test]
fn one_thread_receiver_shared_by_two_hubs_and_a_plain_thread() {
    child_must_succeed(
        "one_thread_receiver_shared_by_two_hubs_and_a_plain_thread",
        LIMIT,
        || {
            use std::sync::Arc;
            let (tx, rx) = greenlet::queue::thread_channel::<u32>();
            let rx = Arc::new(rx);
            let receivers: Vec<_> = (0..3)
                .map(|k| {
                    let rx = rx.clone();
                    std::thread::spawn(move || {
                        if k == 2 {
                            // a plain OS thread, no hub
                            return rx.iter().map(u64::from).sum::<u64>();
                        }
                        greenlet::run(|| {
                            let gs: Vec<_> = (0..4)
                                .map(|_| {
                                    let rx = rx.clone();
                                    spawn(move || {
                                        let mut sum = 0u64;
                                        loop {
                                            match rx.recv_timeout(Duration::from_millis(1)) {
                                                Ok(v) => sum += u64::from(v),
                                                Err(greenlet::queue::RecvTimeoutError::Timeout) => {
                                                }
                                                Err(_) => return sum,
                                            }
                                        }
                                    })
                                })
                                .collect();
                            gs.iter().map(|g| g.get().unwrap()).sum::<u64>()
                        })
                    })
                })
                .collect();
            let senders: Vec<_> = (0..3)
                .map(|s| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for i in 0..5000u32 {
                            tx.send(s * 5000 + i).unwrap();
                            if i % 500 == 0 {
                                std::thread::yield_now();
                            }
                        }
                    })
                })
                .collect();
            drop(tx);
            for s in senders {
                s.join().unwrap();
            }
            let total: u64 = receivers.into_iter().map(|r| r.join().unwrap()).sum();
            let want: u64 = (0..15_000u64).sum();
            assert_eq!(total, want, "items lost or doubled");
        },
    );
}
