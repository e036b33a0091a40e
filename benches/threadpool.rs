//! Thread pool round trips: a greenlet hands a closure to a worker thread
//! and waits for its result (gevent's `threadpool.apply`, tokio's
//! `spawn_blocking(..).await`). Each figure includes the queue push, the
//! worker's wake-up, the cross-thread post back to the hub and the
//! greenlet's switch back in.
//!
//! ```sh
//! cargo bench --bench threadpool -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::Criterion;
use greenlet::threadpool::ThreadPool;
use greenlet::{spawn, spawn_blocking};

fn threadpool_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("threadpool");

    // One job at a time on a warm one-thread pool: the latency of a round
    // trip (the worker sleeps on its condvar between jobs).
    let pool = ThreadPool::new(1);
    group.bench_function("apply_round_trip", |b| {
        b.iter(|| pool.apply(|| black_box(5)).unwrap());
    });

    // Through the hub's default pool, as `spawn_blocking` users do.
    group.bench_function("spawn_blocking_take", |b| {
        b.iter(|| spawn_blocking(|| black_box(5)).take().unwrap());
    });

    // Throughput: 100 jobs in flight on 4 threads, per job.
    let wide = ThreadPool::new(4);
    group.bench_function("spawn_100_take_all_per_job", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            let mut left = iters;
            while left > 0 {
                let k = left.min(100);
                let jobs: Vec<_> = (0..k).map(|i| wide.spawn(move || black_box(i))).collect();
                for j in jobs {
                    j.take().unwrap();
                }
                left -= k;
            }
            start.elapsed()
        });
    });

    // From a greenlet rather than the native stack.
    group.bench_function("apply_from_greenlet", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            spawn(move || {
                let pool = greenlet::hub::threadpool();
                for _ in 0..iters {
                    pool.apply(|| black_box(5)).unwrap();
                }
            })
            .join()
            .unwrap();
            start.elapsed()
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // One hub scope around the whole run (criterion calls the bodies on
    // this thread); the pools' threads exit with it.
    greenlet::run(|| threadpool_benches(&mut c));
    c.final_summary();
}
