//! Timer fire cost: gevent's `benchmarks/micro_sleep.sh` (`sleep(0.00001)`,
//! `sleep(0.0001)`, ...) and `bench_sleep0.py` with a positive argument.
//!
//! `sleep(1 ns)` is due by the time the loop looks at its timers, so it
//! measures the timer path without any OS wait: insert, loop turn, fire,
//! wake, switch back. `sleep_100us` shows the latency of a real wait
//! (overshoot included). `timers_1000` keeps 1000 greenlets sleeping 1 ns
//! in a loop: per sleep, with a timer structure of 1000 entries.
//!
//! ```sh
//! cargo bench --bench sleep -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use greenlet::{sleep, spawn};

const TINY: Duration = Duration::from_nanos(1);

fn sleep_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("sleep");

    // On the native stack: arm, run the loop inline, fire, return.
    group.bench_function("fire_1ns_native_stack", |b| {
        b.iter(|| sleep(black_box(TINY)));
    });

    // In a greenlet: arm, switch to the loop, fire, switch back.
    group.bench_function("fire_1ns_greenlet", |b| {
        b.iter_custom(|iters| {
            let g = spawn(move || {
                let t = Instant::now();
                for _ in 0..iters {
                    sleep(TINY);
                }
                t.elapsed()
            });
            g.get().expect("the timing greenlet does not fail")
        });
    });

    // 1000 greenlets sleeping 1 ns in a loop; per sleep.
    group.bench_function("timers_1000", |b| {
        const K: u64 = 1000;
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(K).max(1);
            let t = Instant::now();
            let gs: Vec<_> = (0..K)
                .map(|_| {
                    spawn(move || {
                        for _ in 0..rounds {
                            sleep(TINY);
                        }
                    })
                })
                .collect();
            for g in &gs {
                g.join().unwrap();
            }
            t.elapsed().mul_f64(iters as f64 / (rounds * K) as f64)
        });
    });

    // A real 100 µs wait (gevent's sleep(0.0001)): wall time per sleep.
    group.bench_function("sleep_100us", |b| {
        b.iter(|| sleep(Duration::from_micros(100)));
    });

    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // One hub scope around the whole run: criterion calls the bodies on
    // this thread, and the greenlets they leave end with the scope.
    greenlet::run(|| sleep_benches(&mut c));
    c.final_summary();
}
