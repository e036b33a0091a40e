//! Adversarial interleavings (break review, third landing): locals whose
//! destructors block, spawn, or get killed; pools killed from inside;
//! thread channels and thread pools racing scope end; paused clocks.
//! Every scenario runs in a child process with a time limit.

mod break_common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use break_common::child_must_succeed;
use greenlet::event::Event;
use greenlet::pool::{Group, Pool};
use greenlet::queue::{Queue, thread_channel};
use greenlet::{greenlet_local, hub, sleep, spawn};

const LIMIT: Duration = Duration::from_secs(20);

struct SleepyDrop(u64);
impl Drop for SleepyDrop {
    fn drop(&mut self) {
        sleep(Duration::from_millis(self.0));
    }
}

greenlet_local! {
    static SLEEPY: RefCell<Option<SleepyDrop>> = RefCell::new(None);
    static COUNT: Cell<u32> = Cell::new(0);
}

#[test]
fn kill_while_a_local_destructor_blocks_after_the_body_returned() {
    child_must_succeed(
        "kill_while_a_local_destructor_blocks_after_the_body_returned",
        LIMIT,
        || {
            greenlet::run(|| {
                let g = spawn(|| {
                    SLEEPY.set(Some(SleepyDrop(500)));
                    7
                });
                sleep(Duration::from_millis(20)); // body over, destructor sleeping
                assert!(!g.is_ready());
                let t = Instant::now();
                g.kill().unwrap();
                assert!(
                    t.elapsed() < Duration::from_millis(400),
                    "{:?}",
                    t.elapsed()
                );
                assert!(g.is_ready());
                eprintln!("result after kill in destructor: {:?}", g.try_get());
            });
        },
    );
}

struct SpawnsOnDrop;
impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let g = spawn(|| {
            COUNT.set(COUNT.get() + 1);
            SLEEPY.set(Some(SleepyDrop(5)));
            sleep(Duration::from_millis(5));
        });
        let _ = g.join();
    }
}

greenlet_local! {
    static SPAWNER: RefCell<Option<SpawnsOnDrop>> = RefCell::new(None);
}

#[test]
fn main_local_destructor_spawns_and_joins() {
    child_must_succeed("main_local_destructor_spawns_and_joins", LIMIT, || {
        greenlet::run(|| {
            SPAWNER.set(Some(SpawnsOnDrop));
            let _bg = spawn(|| sleep(Duration::from_secs(60)));
        });
    });
}

struct DestroysOnDrop;
impl Drop for DestroysOnDrop {
    fn drop(&mut self) {
        let _ = spawn(|| sleep(Duration::from_secs(60)));
        hub::destroy();
        let g = spawn(|| 5);
        assert_eq!(g.get().unwrap(), 5);
    }
}

greenlet_local! {
    static DESTROYER: RefCell<Option<DestroysOnDrop>> = RefCell::new(None);
}

#[test]
fn main_local_destructor_destroys_the_hub() {
    child_must_succeed("main_local_destructor_destroys_the_hub", LIMIT, || {
        greenlet::run(|| {
            DESTROYER.set(Some(DestroysOnDrop));
            let _bg = spawn(|| sleep(Duration::from_secs(60)));
        });
        greenlet::run(|| {
            let g = spawn(|| 1);
            assert_eq!(g.get().unwrap(), 1);
        });
    });
}

struct DumpsOnDrop;
impl Drop for DumpsOnDrop {
    fn drop(&mut self) {
        let d = hub::dump();
        let _ = d.lines();
        let _ = hub::live_greenlets();
    }
}

greenlet_local! {
    static DUMPER: RefCell<Option<DumpsOnDrop>> = RefCell::new(None);
}

#[test]
fn dump_from_local_destructors_during_scope_end() {
    child_must_succeed(
        "dump_from_local_destructors_during_scope_end",
        LIMIT,
        || {
            greenlet::run(|| {
                for _ in 0..50 {
                    spawn(|| {
                        DUMPER.set(Some(DumpsOnDrop));
                        sleep(Duration::from_secs(60));
                    });
                }
                DUMPER.set(Some(DumpsOnDrop));
                sleep(Duration::from_millis(1));
                let g = spawn(|| ());
                g.link(|_| {
                    let _ = hub::dump().lines();
                });
            });
        },
    );
}

#[test]
fn pool_killed_from_inside_a_member() {
    child_must_succeed("pool_killed_from_inside_a_member", LIMIT, || {
        greenlet::run(|| {
            let pool = Rc::new(Pool::new(4));
            for _ in 0..3 {
                pool.spawn(|| sleep(Duration::from_secs(60))).unwrap();
            }
            let p = pool.clone();
            let killer = pool
                .spawn(move || {
                    let _ = p.kill();
                    "survived"
                })
                .unwrap();
            let r = pool.join(Some(Duration::from_secs(5)), false);
            assert!(r.is_ok(), "{r:?}");
            assert!(pool.is_empty());
            assert!(killer.is_ready());
        });
    });
}

#[test]
fn member_spawning_into_its_own_full_pool_does_not_hang() {
    child_must_succeed(
        "member_spawning_into_its_own_full_pool_does_not_hang",
        LIMIT,
        || {
            greenlet::run(|| {
                let pool = Rc::new(Pool::new(1));
                let p = pool.clone();
                let g = pool.spawn(move || p.spawn(|| 1).map(|_| ())).unwrap();
                let t = Instant::now();
                let r = g.join();
                eprintln!("join -> {r:?} after {:?}", t.elapsed());
                assert!(
                    r.is_err(),
                    "nothing can ever free the slot: LoopExit expected"
                );
            });
        },
    );
}

#[test]
fn group_join_while_members_add_members_and_links_respawn() {
    child_must_succeed(
        "group_join_while_members_add_members_and_links_respawn",
        LIMIT,
        || {
            greenlet::run(|| {
                let group = Rc::new(Group::new());
                let left = Rc::new(Cell::new(200u32));
                fn add(group: &Rc<Group>, left: &Rc<Cell<u32>>) {
                    if left.get() == 0 {
                        return;
                    }
                    left.set(left.get() - 1);
                    let (g2, l2) = (group.clone(), left.clone());
                    let m = group.spawn(move || {
                        sleep(Duration::ZERO);
                        add(&g2, &l2);
                    });
                    let (g3, l3) = (group.clone(), left.clone());
                    m.link(move |_| add(&g3, &l3));
                }
                add(&group, &left);
                group.join(Some(Duration::from_secs(10)), true).unwrap();
                assert_eq!(left.get(), 0);
                assert!(group.is_empty(), "{}", group.len());
            });
        },
    );
}

#[test]
fn pool_dropped_during_imap() {
    child_must_succeed("pool_dropped_during_imap", LIMIT, || {
        greenlet::run(|| {
            let pool = Pool::new(2);
            let mut it = pool.imap(
                |i: u32| {
                    sleep(Duration::from_millis(u64::from(i % 3)));
                    i * 2
                },
                0..20u32,
            );
            let first = it.next();
            eprintln!("first {first:?}");
            drop(pool);
            let rest: Vec<_> = it.collect();
            eprintln!("rest {}", rest.len());
        });
    });
}

#[test]
fn thread_channel_senders_race_scope_end() {
    child_must_succeed("thread_channel_senders_race_scope_end", LIMIT, || {
        for round in 0..30 {
            let (tx, handles) = greenlet::run(|| {
                let (tx, rx) = thread_channel::<Vec<u8>>();
                let mut handles = Vec::new();
                for _ in 0..3 {
                    let tx = tx.clone();
                    handles.push(std::thread::spawn(move || {
                        let mut sent = 0usize;
                        while tx.send(vec![1; 64]).is_ok() {
                            sent += 1;
                            if sent > 2_000_000 {
                                break;
                            }
                        }
                        sent
                    }));
                }
                for _ in 0..(round * 7) {
                    rx.recv().unwrap();
                }
                if round % 2 == 0 {
                    drop(rx);
                } else {
                    drop(spawn(move || {
                        let _keep = rx;
                        sleep(Duration::from_secs(60));
                    }));
                }
                (tx, handles)
            });
            drop(tx);
            for h in handles {
                h.join().unwrap();
            }
        }
    });
}

#[test]
fn threadpool_waiter_killed_then_result_arrives_and_scope_ends_with_queued_jobs() {
    child_must_succeed(
        "threadpool_waiter_killed_then_result_arrives_and_scope_ends_with_queued_jobs",
        LIMIT,
        || {
            let done = Arc::new(AtomicUsize::new(0));
            greenlet::run(|| {
                let pool = greenlet::threadpool::ThreadPool::new(2);
                let pool = Rc::new(pool);
                let mut waiters = Vec::new();
                for i in 0..10 {
                    let p = pool.clone();
                    let d = done.clone();
                    waiters.push(spawn(move || {
                        let r = p.spawn(move || {
                            std::thread::sleep(Duration::from_millis(20));
                            d.fetch_add(1, Ordering::SeqCst);
                            vec![i; 100]
                        });
                        r.get()
                    }));
                }
                sleep(Duration::from_millis(10));
                for w in &waiters[..5] {
                    w.kill().unwrap();
                }
                // nested spawn_blocking inside a job (OS thread, no hub)
                let nested = greenlet::spawn_blocking(|| {
                    let inner =
                        std::panic::catch_unwind(|| greenlet::spawn_blocking(|| 3).into_result());
                    format!("{inner:?}")
                });
                eprintln!("nested: {:?}", nested.get());
                let _ = waiters[5].get();
            });
            eprintln!("done jobs {}", done.load(Ordering::SeqCst));
        },
    );
}

#[test]
fn paused_clock_with_threadpool_and_thread_channel() {
    child_must_succeed(
        "paused_clock_with_threadpool_and_thread_channel",
        LIMIT,
        || {
            greenlet::run(|| {
                hub::pause();
                let r = greenlet::spawn_blocking(|| {
                    std::thread::sleep(Duration::from_millis(50));
                    9
                });
                assert_eq!(r.get().unwrap(), 9);
                let (tx, rx) = thread_channel::<u32>();
                let h = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    tx.send(1).unwrap();
                });
                let sleeper = spawn(|| sleep(Duration::from_secs(3600)));
                assert_eq!(rx.recv().unwrap(), 1);
                h.join().unwrap();
                let advancer = spawn(|| {
                    hub::advance(Duration::from_secs(10));
                    sleep(Duration::from_secs(7200));
                });
                sleep(Duration::from_millis(1));
                sleeper.kill().unwrap();
                let _ = advancer; // scope end while paused
            });
            // the next scope is on real time
            greenlet::run(|| {
                let t = Instant::now();
                sleep(Duration::from_millis(20));
                assert!(t.elapsed() >= Duration::from_millis(20));
            });
        },
    );
}

#[test]
fn two_paused_hubs_on_two_threads() {
    child_must_succeed("two_paused_hubs_on_two_threads", LIMIT, || {
        let hs: Vec<_> = (0..2)
            .map(|k| {
                std::thread::spawn(move || {
                    greenlet::run(|| {
                        hub::pause();
                        let q = Queue::new();
                        for i in 0..50u32 {
                            let q = q.clone();
                            spawn(move || {
                                sleep(Duration::from_secs(u64::from(i + k)));
                                q.put(i).unwrap();
                            });
                        }
                        let mut got = Vec::new();
                        for _ in 0..50 {
                            got.push(q.get().unwrap());
                        }
                        assert_eq!(got, (0..50).collect::<Vec<_>>());
                    })
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn kill_lands_in_the_turn_of_a_handoff() {
    child_must_succeed("kill_lands_in_the_turn_of_a_handoff", LIMIT, || {
        greenlet::run(|| {
            for round in 0..200u32 {
                let q: Queue<u32> = Queue::new();
                let ev = Event::new();
                let got = Rc::new(Cell::new(0u32));
                let (q2, g2) = (q.clone(), got.clone());
                let getter = spawn(move || {
                    if let Ok(v) = q2.get() {
                        g2.set(g2.get() + v);
                    }
                });
                let (q3, g3) = (q.clone(), got.clone());
                let getter2 = spawn(move || {
                    if let Ok(v) = q3.get_timeout(Duration::from_millis(50)) {
                        g3.set(g3.get() + v);
                    }
                });
                sleep(Duration::ZERO);
                q.put_nowait(1).unwrap();
                if round % 2 == 0 {
                    getter.kill_nowait();
                } else {
                    ev.set();
                    getter.kill_nowait();
                    q.put_nowait(10).unwrap();
                }
                getter.join().unwrap();
                getter2.join().unwrap();
                let left: u32 = std::iter::from_fn(|| q.get_nowait().ok()).sum();
                let total = got.get() + left;
                let want = if round % 2 == 0 { 1 } else { 11 };
                assert_eq!(total, want, "round {round}: an item was lost");
            }
        });
    });
}

#[test]
fn many_threads_spawn_storms_concurrently() {
    child_must_succeed("many_threads_spawn_storms_concurrently", LIMIT, || {
        let hs: Vec<_> = (0..6)
            .map(|t| {
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        greenlet::run(|| {
                            let size = 16 * 1024 + 4096 * (t % 3) + 17;
                            let gs: Vec<_> = (0..400)
                                .map(|i| {
                                    greenlet::Builder::new()
                                        .stack_size(if i % 2 == 0 { size } else { 64 * 1024 })
                                        .spawn(|| sleep(Duration::from_secs(60)))
                                        .unwrap()
                                })
                                .collect();
                            sleep(Duration::ZERO);
                            greenlet::killall(&gs).unwrap();
                        });
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}
