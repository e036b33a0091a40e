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
