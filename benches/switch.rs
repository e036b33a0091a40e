//! Switch cost through the hub: gevent's `benchmarks/bench_sleep0.py`
//! (`sleep(0)`) and `bench_hub.py` (`switch`).
//!
//! Every figure is per switch: one greenlet (or the native stack) giving the
//! hub a turn with `sleep(Duration::ZERO)` and being resumed: greenlet →
//! next greenlet directly, or through the loop for the native stack. `iter_custom` returns the time divided so
//! that criterion's per-iteration figure is per switch; the constant cost of
//! spawning and joining the greenlets is removed by criterion's slope fit.
//!
//! ```sh
//! cargo bench --bench switch -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use greenlet::{sleep, spawn};

/// `k` greenlets each yield `rounds` times, round robin; returns the wall
/// time of the whole run (spawn to last join).
fn ring(k: u64, rounds: u64) -> Duration {
    let t = Instant::now();
    let gs: Vec<_> = (0..k)
        .map(|_| {
            spawn(move || {
                for _ in 0..rounds {
                    sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    for g in &gs {
        g.join().unwrap();
    }
    t.elapsed()
}

/// Time for `iters` switches spread over `k` greenlets (whole rounds,
/// scaled back to `iters`).
fn switches(k: u64, iters: u64) -> Duration {
    let rounds = iters.div_ceil(k).max(1);
    ring(k, rounds).mul_f64(iters as f64 / (rounds * k) as f64)
}

fn switch(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch");

    // The workload of the peer comparison: two greenlets alternating
    // (A → hub → B → hub → A ...).
    group.bench_function("sleep0_two_greenlets", |b| {
        b.iter_custom(|iters| switches(2, iters));
    });

    // One greenlet alone: it goes back to the hub, which resumes it at once.
    group.bench_function("sleep0_one_greenlet", |b| {
        b.iter_custom(|iters| switches(1, iters));
    });

    // gevent's micro_sleep.sh `sleep(0)`: the native stack (the "main
    // greenlet") yields; it runs the loop inline until its turn comes back.
    group.bench_function("sleep0_native_stack", |b| {
        b.iter(|| sleep(black_box(Duration::ZERO)));
    });

    // Many live greenlets: every switch lands on another stack, so the
    // cost includes cache misses on stack pages and greenlet state. The
    // pool (1024 stacks) covers 1000 greenlets: no mmap after the first run.
    for k in [100u64, 1000] {
        group.bench_function(format!("sleep0_ring_{k}"), |b| {
            b.iter_custom(|iters| switches(k, iters));
        });
    }

    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // One hub scope around the whole run: criterion calls the bodies on
    // this thread, and the greenlets they leave end with the scope.
    greenlet::run(|| switch(&mut c));
    c.final_summary();
}
