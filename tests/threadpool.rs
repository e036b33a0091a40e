//! `ThreadPool`, `spawn_blocking` and `net::lookup_host`: results and order,
//! bounded concurrency (measured), panics as errors, kill and timeout while
//! waiting, many short jobs, the pool not blocking the hub, `Waitable`.
//! Thread-count and fork scenarios are in `threadpool_process.rs`.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{TICK, TICK_UPPER, assert_band, assert_tick, timed};
use greenlet::threadpool::{ThreadError, ThreadPool};
use greenlet::{
    GreenletError, KillError, Timeout, Waitable, hub, iwait, net, sleep, spawn, spawn_blocking,
    with_timeout,
};

/// Counts drops of the values it is cloned into (on any thread).
#[derive(Clone)]
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A greenlet that records the longest gap between its 5 ms ticks until
/// the returned flag is set.
fn ticker() -> (Rc<Cell<bool>>, greenlet::Greenlet<(usize, Duration)>) {
    let stop = Rc::new(Cell::new(false));
    let flag = Rc::clone(&stop);
    let g = spawn(move || {
        let mut ticks = 0;
        let mut worst = Duration::ZERO;
        let mut last = Instant::now();
        while !flag.get() {
            sleep(Duration::from_millis(5));
            let now = Instant::now();
            worst = worst.max(now - last);
            last = now;
            ticks += 1;
        }
        (ticks, worst)
    });
    (stop, g)
}

#[greenlet::test]
fn results_come_back_in_order() {
    let pool = ThreadPool::new(4);
    // Later items finish first: map still returns them in item order.
    let out = pool
        .map(0..8u64, |i| {
            std::thread::sleep(Duration::from_millis(2 * (8 - i)));
            i * 10
        })
        .unwrap();
    assert_eq!(out, [0, 10, 20, 30, 40, 50, 60, 70]);
    let jobs: Vec<_> = (0..5)
        .map(|i| pool.spawn(move || format!("job {i}")))
        .collect();
    let got: Vec<String> = jobs.into_iter().map(|j| j.into_result().unwrap()).collect();
    assert_eq!(got, ["job 0", "job 1", "job 2", "job 3", "job 4"]);
    // get clones, take moves.
    let j = pool.spawn(|| vec![1u8, 2]);
    assert_eq!(j.get().unwrap(), [1, 2]);
    assert_eq!(j.get().unwrap(), [1, 2]);
    assert_eq!(j.take().unwrap(), [1, 2]);
    assert!(matches!(j.take(), Err(ThreadError::ValueTaken)));
    assert!(matches!(j.get(), Err(ThreadError::ValueTaken)));
}

#[greenlet::test]
fn at_most_maxsize_jobs_run_at_once() {
    let pool = ThreadPool::new(3);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (jobs, elapsed) = timed(|| {
        let jobs: Vec<_> = (0..12)
            .map(|_| {
                let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
                pool.spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(40));
                    running.fetch_sub(1, Ordering::SeqCst);
                    std::thread::current().id()
                })
            })
            .collect();
        assert!(pool.size() <= 3, "size {} > maxsize", pool.size());
        jobs.into_iter()
            .map(|j| j.into_result().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "exactly maxsize ran at once"
    );
    let mut threads = jobs.clone();
    threads.sort_by_key(|t| format!("{t:?}"));
    threads.dedup();
    assert_eq!(threads.len(), 3, "three threads, reused for 12 jobs");
    assert_eq!(pool.size(), 3);
    // 12 jobs of 40 ms, 3 at a time: 4 rounds.
    assert_band(
        "12 jobs on 3 threads",
        elapsed,
        Duration::from_millis(160),
        Duration::from_secs(3),
    );
    // Growing the pool lets more run at once.
    pool.set_maxsize(6);
    peak.store(0, Ordering::SeqCst);
    let jobs: Vec<_> = (0..6)
        .map(|_| {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            pool.spawn(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(60));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for j in jobs {
        j.take().unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 6);
}

#[greenlet::test]
fn a_panic_comes_back_as_an_error() {
    let pool = ThreadPool::new(1);
    let err = pool
        .apply(|| -> u32 { panic!("disk on fire: {}", 42) })
        .unwrap_err();
    let ThreadError::Panicked(p) = &err else {
        panic!("expected Panicked, got {err:?}");
    };
    assert_eq!(p.message(), "disk on fire: 42");
    assert!(
        p.location().is_some_and(|l| l.contains("threadpool.rs")),
        "location {:?}",
        p.location()
    );
    assert!(err.to_string().contains("disk on fire: 42"));
    let io: std::io::Error = err.into();
    assert!(io.to_string().contains("disk on fire"));
    // The worker survived and is reused.
    assert_eq!(pool.size(), 1);
    assert_eq!(pool.apply(|| 7).unwrap(), 7);
    assert_eq!(pool.size(), 1);
    // `get` repeats the error.
    let j = pool.spawn(|| -> u8 { panic!("again") });
    assert!(matches!(j.get(), Err(ThreadError::Panicked(_))));
    assert!(matches!(j.get(), Err(ThreadError::Panicked(_))));
}

#[greenlet::test]
fn a_waiter_killed_before_the_result_leaves_no_trace() {
    let pool = Rc::new(ThreadPool::new(2));
    let drops = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut waiters = Vec::new();
    for _ in 0..4 {
        let (pool, drops, finished) = (Rc::clone(&pool), Arc::clone(&drops), Arc::clone(&finished));
        waiters.push(spawn(move || {
            pool.apply(move || {
                std::thread::sleep(Duration::from_millis(40));
                finished.fetch_add(1, Ordering::SeqCst);
                DropCount(drops)
            })
            .map(drop)
        }));
    }
    sleep(Duration::from_millis(5));
    for w in &waiters {
        w.kill().unwrap();
        assert!(matches!(
            w.try_get(),
            Some(Err(GreenletError::Killed(KillError::GreenletExit)))
        ));
    }
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "killed before any result"
    );
    // The jobs finish later; their values are dropped exactly once each,
    // nobody is woken by mistake, and the pool goes on.
    let deadline = Instant::now() + Duration::from_secs(5);
    while drops.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
        sleep(Duration::from_millis(5));
    }
    assert_eq!(finished.load(Ordering::SeqCst), 4);
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    sleep(Duration::from_millis(20));
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    assert_eq!(pool.apply(|| 1).unwrap(), 1);
    assert_eq!(hub::stats().greenlets, 0);
}

#[greenlet::test]
fn kill_and_timeout_in_the_same_turn_while_waiting() {
    let pool = Rc::new(ThreadPool::new(1));
    let p = Rc::clone(&pool);
    let g = spawn(move || {
        with_timeout(Duration::from_millis(10), || {
            p.apply(|| std::thread::sleep(Duration::from_millis(30)))
        })
    });
    sleep(Duration::from_millis(10));
    g.kill().unwrap();
    assert!(g.is_dead());
    // The late result arrives into nothing.
    sleep(Duration::from_millis(40));
    assert_eq!(pool.apply(|| 2).unwrap(), 2);
}

#[greenlet::test]
fn apply_under_a_timeout() {
    let pool = ThreadPool::new(1);
    let (r, elapsed) = timed(|| {
        with_timeout(TICK, || {
            pool.apply(|| std::thread::sleep(Duration::from_millis(300)))
        })
    });
    assert!(r.is_err(), "the timeout expired first");
    assert_tick("apply under a 50 ms timeout", elapsed);
    // `take_timeout` keeps the handle usable.
    let j = pool.spawn(|| {
        std::thread::sleep(Duration::from_millis(20));
        5
    });
    let (e, elapsed) = timed(|| j.take_timeout(Duration::from_millis(5)).unwrap_err());
    assert!(matches!(e, ThreadError::Timeout(_)), "{e:?}");
    assert_band(
        "take_timeout 5 ms",
        elapsed,
        Duration::from_millis(5),
        TICK_UPPER,
    );
    // (it waits behind the 300 ms job on the pool's only thread)
    assert_eq!(j.take().unwrap(), 5);
    let io: std::io::Error =
        ThreadError::Timeout(with_timeout(Duration::ZERO, || sleep(TICK)).unwrap_err()).into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    // A Timeout object around join.
    let j = pool.spawn(|| std::thread::sleep(Duration::from_millis(200)));
    let t = Timeout::new(Duration::from_millis(10));
    assert!(t.scope(|| j.join()).is_err());
}

#[greenlet::test]
fn many_short_jobs() {
    let pool = ThreadPool::new(4);
    let jobs: Vec<_> = (0..10_000u64).map(|i| pool.spawn(move || i * 2)).collect();
    assert!(pool.size() <= 4);
    let sum: u64 = jobs.into_iter().map(|j| j.into_result().unwrap()).sum();
    assert_eq!(sum, 2 * (0..10_000u64).sum::<u64>());
    // One at a time through the default pool too.
    for i in 0..1_000u32 {
        assert_eq!(greenlet::threadpool::apply(move || i + 1).unwrap(), i + 1);
    }
    assert!(pool.size() <= 4);
}

#[greenlet::test]
fn a_blocking_job_blocks_only_its_waiter() {
    let (stop, tick) = ticker();
    let (r, elapsed) = timed(|| {
        spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(100));
            "done"
        })
        .into_result()
    });
    assert_eq!(r.unwrap(), "done");
    assert_band(
        "100 ms job",
        elapsed,
        Duration::from_millis(100),
        Duration::from_millis(300),
    );
    stop.set(true);
    let (ticks, worst) = tick.take().unwrap();
    assert!(ticks >= 10, "the ticker ran {ticks} times in 100 ms");
    assert!(worst < Duration::from_millis(50), "worst gap {worst:?}");
}

#[greenlet::test]
fn thread_results_are_waitable_with_greenlets() {
    // Wide gaps: the order must survive a loaded machine.
    let slow = spawn_blocking(|| std::thread::sleep(Duration::from_millis(250)));
    let fast = spawn_blocking(|| ());
    let g = spawn(|| sleep(Duration::from_millis(100)));
    let objects: [&dyn Waitable; 3] = [&slow, &g, &fast];
    let order: Vec<usize> = iwait(objects)
        .map(|r| {
            let w = r.unwrap();
            objects
                .iter()
                .position(|o| {
                    std::ptr::addr_eq(*o as *const dyn Waitable, w as *const dyn Waitable)
                })
                .unwrap()
        })
        .collect();
    assert_eq!(order, [2, 1, 0]);
    // Linking an already-ready result fires once, on a later turn.
    let fired = Rc::new(Cell::new(0));
    let f = Rc::clone(&fired);
    slow.rawlink(Box::new(move || f.set(f.get() + 1)));
    assert_eq!(fired.get(), 0);
    sleep(Duration::ZERO);
    sleep(Duration::ZERO);
    assert_eq!(fired.get(), 1);
    // Unlinking before it fires.
    let pending = spawn_blocking(|| std::thread::sleep(Duration::from_millis(10)));
    let id = pending.rawlink(Box::new(|| panic!("unlinked")));
    assert!(pending.unlink(id));
    assert!(!pending.unlink(id));
    pending.join().unwrap();
    sleep(Duration::ZERO);
}

#[greenlet::test]
fn idle_workers_exit_after_the_idle_timeout() {
    let pool = ThreadPool::new(2);
    pool.set_idle_timeout(Duration::from_millis(30));
    pool.map(0..2, |_| std::thread::sleep(Duration::from_millis(10)))
        .unwrap();
    assert_eq!(pool.size(), 2);
    let deadline = Instant::now() + Duration::from_secs(2);
    while pool.size() > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(5));
    }
    assert_eq!(pool.size(), 0, "idle workers exited");
    // And come back on demand.
    assert_eq!(pool.apply(|| 3).unwrap(), 3);
    assert_eq!(pool.size(), 1);
}

#[greenlet::test]
fn dropping_a_pool_cancels_its_queue_and_lets_running_jobs_finish() {
    let pool = ThreadPool::new(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let running = pool.spawn(|| {
        std::thread::sleep(Duration::from_millis(30));
        "ran"
    });
    let d = DropCount(Arc::clone(&drops));
    let queued = pool.spawn(move || drop(d));
    sleep(Duration::from_millis(5));
    assert_eq!(pool.queued(), 1);
    let (_, elapsed) = timed(|| drop(pool));
    assert!(
        elapsed < Duration::from_millis(20),
        "drop does not wait: {elapsed:?}"
    );
    assert!(matches!(queued.take(), Err(ThreadError::Cancelled)));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the cancelled closure was dropped"
    );
    assert_eq!(running.take().unwrap(), "ran");
}

#[greenlet::test]
fn the_hub_pool_is_shared_and_lazily_sized() {
    let a = hub::threadpool();
    let b = hub::threadpool();
    assert!(Rc::ptr_eq(&a, &b));
    assert_eq!(a.maxsize(), greenlet::threadpool::DEFAULT_MAXSIZE);
    assert_eq!(a.apply(|| 1).unwrap(), 1);
    assert!(a.size() >= 1);
}

#[test]
fn the_native_stack_waits_without_loop_exit() {
    // Nothing but the job can wake the native stack: no LoopExit meanwhile.
    let v = greenlet::run(|| {
        spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(30));
            9
        })
        .take()
    });
    assert_eq!(v.unwrap(), 9);
}

#[greenlet::test]
fn lookup_host_does_not_block_the_hub() {
    let (stop, tick) = ticker();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(60) || n < 5 {
        let addrs: Vec<_> = net::lookup_host("localhost:8080").unwrap().collect();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
            "{addrs:?}"
        );
        let addrs: Vec<_> = net::lookup_host_port("localhost", 9).unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        n += 1;
    }
    stop.set(true);
    let (ticks, worst) = tick.take().unwrap();
    assert!(ticks >= 5, "the ticker ran {ticks} times");
    assert!(worst < Duration::from_millis(50), "worst gap {worst:?}");
    // It ran on the hub's pool.
    assert!(hub::threadpool().size() >= 1);
    // Literal addresses need no lookup.
    let a: Vec<_> = net::lookup_host("127.0.0.1:1").unwrap().collect();
    assert_eq!(a, ["127.0.0.1:1".parse().unwrap()]);
    let a: Vec<_> = net::lookup_host_port("::1", 2).unwrap().collect();
    assert_eq!(a, ["[::1]:2".parse().unwrap()]);
}

#[greenlet::test]
fn lookup_host_reports_bad_names() {
    let e = net::lookup_host("localhost").unwrap_err(); // no port
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    let e = net::lookup_host("localhost:99999").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(net::lookup_host("no-such-host.invalid:80").is_err());
    assert!(net::lookup_host_port("no-such-host.invalid", 80).is_err());
    // The pool survives failed lookups.
    assert!(net::lookup_host("localhost:1").is_ok());
}

#[greenlet::test]
fn many_waiters_on_one_result_some_killed() {
    let job = Rc::new(spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(30));
        11
    }));
    let woken = Rc::new(Cell::new(0));
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let (job, woken) = (Rc::clone(&job), Rc::clone(&woken));
            spawn(move || {
                job.join().unwrap();
                woken.set(woken.get() + 1);
                job.get().unwrap()
            })
        })
        .collect();
    sleep(Duration::from_millis(5));
    for w in waiters.iter().step_by(2) {
        w.kill().unwrap();
    }
    for w in waiters.iter().skip(1).step_by(2) {
        assert_eq!(w.get().unwrap(), 11);
    }
    assert_eq!(woken.get(), 5, "each surviving waiter woke exactly once");
}

#[greenlet::test]
fn stress_kills_and_timeouts_while_waiting() {
    let pool = Rc::new(ThreadPool::new(4));
    let drops = Arc::new(AtomicUsize::new(0));
    let mut gs = Vec::new();
    for i in 0..200u64 {
        let (pool, drops) = (Rc::clone(&pool), Arc::clone(&drops));
        gs.push(spawn(move || {
            let d = DropCount(drops);
            let job = move || {
                std::thread::sleep(Duration::from_micros(200 * (i % 7)));
                d
            };
            match i % 3 {
                0 => pool.apply(job).map(drop).is_ok(),
                1 => with_timeout(Duration::from_micros(300 * (i % 5)), || pool.apply(job))
                    .map(|r| r.map(drop))
                    .is_ok(),
                _ => pool
                    .spawn(job)
                    .take_timeout(Duration::from_millis(1))
                    .map(drop)
                    .is_ok(),
            }
        }));
    }
    sleep(Duration::from_millis(1));
    for g in gs.iter().step_by(4) {
        g.kill_nowait();
    }
    greenlet::joinall(&gs).unwrap();
    // Every job ran once and its value was dropped once, whoever waited.
    let deadline = Instant::now() + Duration::from_secs(10);
    while drops.load(Ordering::SeqCst) < 200 && Instant::now() < deadline {
        sleep(Duration::from_millis(2));
    }
    sleep(Duration::from_millis(10));
    assert_eq!(drops.load(Ordering::SeqCst), 200);
    assert_eq!(pool.apply(|| 1).unwrap(), 1);
    assert!(pool.size() <= 4);
}

#[test]
fn a_result_read_after_its_scope_ended() {
    // The job finishes after the scope (its post is refused): reading the
    // result outside any scope still gives it once it is there.
    let job = greenlet::run(|| {
        let started = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&started);
        let job = spawn_blocking(move || {
            s.store(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            4
        });
        // Running, not queued (a queued job is cancelled at scope end).
        while started.load(Ordering::SeqCst) == 0 {
            sleep(Duration::from_millis(1));
        }
        job
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(job.take().unwrap(), 4);
}

#[greenlet::test]
fn join_waits_for_every_job_of_the_pool() {
    let pool = Rc::new(ThreadPool::new(2));
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..6u64 {
        let done = Arc::clone(&done);
        // Handles dropped: join is the only way to wait.
        drop(pool.spawn(move || {
            std::thread::sleep(Duration::from_millis(10 + 5 * (i % 3)));
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    assert_eq!(pool.len(), 6);
    assert!(matches!(
        pool.join_timeout(Duration::from_millis(5)),
        Err(ThreadError::Timeout(_))
    ));
    // Two joiners at once, one of them killed mid-wait.
    let p = Rc::clone(&pool);
    let other = spawn(move || p.join().map(|()| p.len()));
    let p = Rc::clone(&pool);
    let killed = spawn(move || p.join());
    sleep(Duration::from_millis(1));
    killed.kill().unwrap();
    let (r, elapsed) = timed(|| pool.join());
    r.unwrap();
    assert_eq!(
        done.load(Ordering::SeqCst),
        6,
        "every job ended before join returned"
    );
    assert!(pool.is_empty());
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(other.get().unwrap().unwrap(), 0);
    // Idle pool: at once.
    pool.join().unwrap();
    // Panicking and cancelled jobs leave the count too.
    drop(pool.spawn(|| panic!("counted out")));
    pool.join().unwrap();
    assert!(pool.is_empty());
}
