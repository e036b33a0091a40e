//! Thread-pool jobs that outlive `hub::destroy()` (break review). Each was
//! a bug: a job captures the hub handle it posts its completion through;
//! `destroy` closes that handle and hands out new ones, so the post failed,
//! and the waiter (which only polled when the *current* handle was closed)
//! waited out its whole timeout, or got `LoopExit`, for a job that had
//! finished.

mod break_common;

use std::time::{Duration, Instant};

use break_common::child_must_succeed;
use greenlet::hub;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn job_running_across_destroy_is_not_lost() {
    child_must_succeed("job_running_across_destroy_is_not_lost", LIMIT, || {
        greenlet::run(|| {
            let job = greenlet::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(50));
                1
            });
            std::thread::sleep(Duration::from_millis(5)); // it runs now
            hub::destroy();
            let t = Instant::now();
            let r = job.get_timeout(Duration::from_secs(5));
            assert_eq!(r.ok(), Some(1));
            assert!(
                t.elapsed() < Duration::from_millis(200),
                "{:?}",
                t.elapsed()
            );
        });
    });
}

#[test]
fn job_of_a_user_pool_across_destroy() {
    child_must_succeed("job_of_a_user_pool_across_destroy", LIMIT, || {
        greenlet::run(|| {
            let pool = greenlet::threadpool::ThreadPool::new(1);
            let job = pool.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                2
            });
            let queued = pool.spawn(|| 3);
            std::thread::sleep(Duration::from_millis(5));
            hub::destroy();
            let t = Instant::now();
            let r = job.get_timeout(Duration::from_secs(5));
            let q = queued.get_timeout(Duration::from_secs(5));
            assert_eq!(r.ok(), Some(2));
            assert_eq!(q.ok(), Some(3));
            assert!(
                t.elapsed() < Duration::from_millis(200),
                "{:?}",
                t.elapsed()
            );
            let again = pool.spawn(|| 4).get_timeout(Duration::from_secs(5));
            assert_eq!(again.ok(), Some(4));
        });
    });
}

#[test]
fn job_waited_without_timeout_across_destroy_does_not_hang() {
    child_must_succeed(
        "job_waited_without_timeout_across_destroy_does_not_hang",
        LIMIT,
        || {
            greenlet::run(|| {
                let job = greenlet::spawn_blocking(|| {
                    std::thread::sleep(Duration::from_millis(50));
                    1
                });
                std::thread::sleep(Duration::from_millis(5));
                hub::destroy();
                assert_eq!(job.get().ok(), Some(1));
            });
        },
    );
}

#[test]
fn pool_join_across_destroy_sees_jobs_of_the_old_handle_end() {
    child_must_succeed(
        "pool_join_across_destroy_sees_jobs_of_the_old_handle_end",
        LIMIT,
        || {
            greenlet::run(|| {
                let pool = greenlet::threadpool::ThreadPool::new(2);
                let slow = pool.spawn(|| std::thread::sleep(Duration::from_millis(60)));
                std::thread::sleep(Duration::from_millis(5));
                hub::destroy();
                // a new job under the new handle ends first
                let fast = pool.spawn(|| ());
                let t = Instant::now();
                pool.join_timeout(Duration::from_secs(5)).unwrap();
                assert!(
                    t.elapsed() < Duration::from_millis(300),
                    "{:?}",
                    t.elapsed()
                );
                assert!(fast.is_ready());
                slow.take().unwrap();
            });
        },
    );
}
