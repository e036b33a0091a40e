//! Thread pools against the process: worker threads counted in
//! `/proc/self/task` at scope end and pool drop (no thread leak, no hang),
//! and a forked child getting fresh pools.
//!
//! `harness = false`: thread counts need a process with no other test
//! threads, and forking inside libtest's runner would copy threads that hold
//! locks. `main` runs each scenario in turn and exits non-zero naming the
//! failures; a watchdog thread ends a hung run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use greenlet::threadpool::{ThreadError, ThreadPool};
use greenlet::{Fork, fork, hub, sleep, spawn, spawn_blocking, waitpid};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Thread-pool worker threads of this process now (named
/// `greenlet-threadpool`; `comm` keeps 15 bytes of it). Other threads (the
/// harness's watchdog, the crate's monitor) come and go on their own
/// schedule and are not counted. A worker carries its parent's name for a
/// moment after it starts: the polling waits below absorb that.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("greenlet-thread"))
        .count()
}

/// Waits (on the native thread, outside any hub) until the thread count is
/// `want`; returns how long that took.
fn until_threads(want: usize, within: Duration) -> Duration {
    let start = Instant::now();
    while threads() != want {
        assert!(
            start.elapsed() < within,
            "{} threads after {within:?}, want {want}",
            threads()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// The scope ends while jobs run: it does not wait for them (their
/// waiters are killed, the pool is dropped); the jobs run to their end on
/// their threads, which then exit.
fn scope_end_with_running_jobs() {
    // Workers of the previous scenario finish exiting first.
    until_threads(0, Duration::from_secs(2));
    let baseline = threads();
    let started = Instant::now();
    greenlet::run(|| {
        for _ in 0..3 {
            // Handles dropped at once: the jobs run on regardless.
            drop(spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(300))
            }));
        }
        // A greenlet blocked on the pool when the scope ends.
        let _waiter = spawn(|| {
            greenlet::threadpool::apply(|| std::thread::sleep(Duration::from_millis(300)))
        });
        sleep(Duration::from_millis(10));
        assert_eq!(hub::threadpool().size(), 4);
    });
    let scope = started.elapsed();
    assert!(
        scope < Duration::from_millis(150),
        "the scope waited for the jobs: {scope:?}"
    );
    assert_eq!(threads(), baseline + 4, "the jobs still run");
    let back = until_threads(baseline, Duration::from_secs(5));
    let total = started.elapsed();
    assert!(
        total >= Duration::from_millis(290) && total < Duration::from_secs(2),
        "threads exited {back:?} after scope end, {total:?} after start"
    );
}

/// Idle workers of the hub's pool exit as soon as the scope ends, not after
/// the idle timeout; a new scope gets a new pool.
fn scope_end_idle_threads_exit_at_once() {
    // Workers of the previous scenario finish exiting first.
    until_threads(0, Duration::from_secs(2));
    let baseline = threads();
    greenlet::run(|| {
        hub::threadpool()
            .map(0..5, |_| std::thread::sleep(Duration::from_millis(10)))
            .unwrap();
        assert_eq!(hub::threadpool().size(), 5);
        assert_eq!(threads(), baseline + 5);
    });
    let back = until_threads(baseline, Duration::from_secs(1));
    assert!(
        back < Duration::from_millis(100),
        "idle threads took {back:?}"
    );
    greenlet::run(|| {
        assert_eq!(hub::threadpool().size(), 0, "a fresh pool");
        assert_eq!(hub::threadpool().apply(|| 1).unwrap(), 1);
    });
    until_threads(baseline, Duration::from_secs(1));
}

/// A greenlet killed at scope end whose destructor waits on the pool: the
/// hub's handles are closed by then, the wait still completes.
fn destructor_waits_on_the_pool_at_scope_end() {
    struct Cleanup(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let n = greenlet::threadpool::apply(|| {
                std::thread::sleep(Duration::from_millis(20));
                1
            })
            .unwrap();
            self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            // `join` too: its wake-up post is refused as well.
            let pool = hub::threadpool();
            let counter = std::sync::Arc::clone(&self.0);
            drop(pool.spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                counter.fetch_add(10, std::sync::atomic::Ordering::SeqCst);
            }));
            pool.join().unwrap();
            assert_eq!(self.0.load(std::sync::atomic::Ordering::SeqCst), 11);
        }
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = std::sync::Arc::clone(&done);
    let started = Instant::now();
    greenlet::run(move || {
        let _g = spawn(move || {
            let _cleanup = Cleanup(d);
            sleep(Duration::from_secs(60));
        });
        sleep(Duration::from_millis(5));
        // The hub's handles exist before the scope ends (and are closed
        // when it starts ending).
        assert_eq!(greenlet::threadpool::apply(|| 2).unwrap(), 2);
    });
    let elapsed = started.elapsed();
    assert_eq!(
        done.load(std::sync::atomic::Ordering::SeqCst),
        11,
        "the cleanup ran to its end"
    );
    assert!(
        elapsed >= Duration::from_millis(25) && elapsed < Duration::from_millis(500),
        "{elapsed:?}"
    );
}

/// Dropping a pool inside the scope stops its idle threads at once.
fn dropped_pool_threads_exit() {
    // Workers of the previous scenario finish exiting first.
    until_threads(0, Duration::from_secs(2));
    let baseline = threads();
    greenlet::run(|| {
        let pool = ThreadPool::new(4);
        pool.map(0..4, |_| std::thread::sleep(Duration::from_millis(10)))
            .unwrap();
        assert_eq!(threads(), baseline + 4);
        drop(pool);
        let back = until_threads(baseline, Duration::from_secs(1));
        assert!(back < Duration::from_millis(100), "{back:?}");
        // Many pools, one after the other: no thread accumulates.
        for _ in 0..50 {
            let pool = ThreadPool::new(2);
            pool.map(0..2, |x| x).unwrap();
        }
        until_threads(baseline, Duration::from_secs(1));
    });
}

/// The child of a fork has none of the parent's pool threads: its pools
/// start empty and work; jobs pending at the fork fail there with
/// `Forked` and complete normally in the parent.
fn fork_child_gets_a_fresh_pool() {
    let pool = hub::threadpool();
    assert_eq!(pool.apply(|| 1).unwrap(), 1);
    let mine = ThreadPool::new(2);
    mine.map(0..2, |_| std::thread::sleep(Duration::from_millis(5)))
        .unwrap();
    let pending = spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(150));
        5
    });
    std::thread::sleep(Duration::from_millis(5)); // it is running
    match fork().expect("fork") {
        Fork::Child => {
            let code = catch_unwind(AssertUnwindSafe(|| {
                if threads() != 0 {
                    return 10;
                }
                if pool.size() != 0 || mine.size() != 0 {
                    return 11;
                }
                if !matches!(pending.take(), Err(ThreadError::Forked)) {
                    return 12;
                }
                if pool.apply(|| 7).ok() != Some(7) || mine.apply(|| 8).ok() != Some(8) {
                    return 13;
                }
                if greenlet::net::lookup_host("localhost:1").is_err() {
                    return 14;
                }
                if mine.map(0..4, |x| x + 1).ok() != Some(vec![1, 2, 3, 4]) {
                    return 15;
                }
                0
            }))
            .unwrap_or(101);
            std::process::exit(code)
        }
        Fork::Parent(pid) => {
            assert_eq!(waitpid(pid).unwrap().code(), Some(0), "the child's checks");
            assert_eq!(pending.take().unwrap(), 5);
            assert_eq!(mine.apply(|| 3).unwrap(), 3);
        }
    }
}

type Scenario = (&'static str, fn(), bool);

fn main() {
    // The hub monitor's watchdog thread starts with the process's first hub
    // loop (the monitor is on by default) and stays: start it before any
    // scenario takes its thread-count baseline.
    greenlet::run(|| sleep(Duration::ZERO));
    // A new thread carries its parent's name until it renames itself.
    let named = Instant::now();
    while greenlet::hub::max_blocking_time().is_some()
        && !std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .any(|name| name.starts_with("greenlet-monit"))
    {
        assert!(
            named.elapsed() < Duration::from_secs(5),
            "no monitor thread"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // (name, body, runs inside a scope)
    let scenarios: [Scenario; 5] = [
        (
            "scope_end_with_running_jobs",
            scope_end_with_running_jobs,
            false,
        ),
        (
            "destructor_waits_on_the_pool_at_scope_end",
            destructor_waits_on_the_pool_at_scope_end,
            false,
        ),
        (
            "scope_end_idle_threads_exit_at_once",
            scope_end_idle_threads_exit_at_once,
            false,
        ),
        (
            "dropped_pool_threads_exit",
            dropped_pool_threads_exit,
            false,
        ),
        (
            "fork_child_gets_a_fresh_pool",
            fork_child_gets_a_fresh_pool,
            true,
        ),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _, _) in &scenarios {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        println!("threadpool_process: still running after {WATCHDOG:?}");
        std::process::exit(2);
    });
    let mut failed = Vec::new();
    for (name, scenario, scoped) in scenarios {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        let outcome = if scoped {
            catch_unwind(|| greenlet::run(scenario))
        } else {
            catch_unwind(scenario)
        };
        match outcome {
            Ok(()) => println!("test {name} ... ok ({:?})", start.elapsed()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        println!("failures: {}", failed.join(", "));
        std::process::exit(1);
    }
}
