//! Spawn cost: gevent's `benchmarks/bench_spawn.py` (spawn N, then let them
//! run) and `micro.sh` (`spawn(f).join()`, `spawn_raw(f)`).
//!
//! Figures are per greenlet. Batches are capped at [`BATCH`] greenlets (the
//! N of `bench_spawn.py`), well under the process's stack budget, and every
//! batch ends with the hub quiet again.
//!
//! ```sh
//! cargo bench --bench spawn -- --warm-up-time 1 --measurement-time 3
//! ```

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use greenlet::{Builder, hub, spawn, spawn_raw};

/// Greenlets per batch (gevent's `bench_spawn.py` N).
const BATCH: u64 = 10_000;

/// Runs `iters` greenlets in batches of at most [`BATCH`]: `batch(k)` spawns
/// `k` of them and returns the time to count; the batch is then run to the
/// end (`hub::join`) outside the timing if `batch` did not.
fn batched(iters: u64, mut batch: impl FnMut(u64) -> Duration) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(BATCH);
        total += batch(k);
        hub::join();
        left -= k;
    }
    // Outside the timed part, and checked in every profile (`cargo bench`
    // has no debug assertions): each batch ran to the end.
    let stats = hub::stats();
    assert!(stats.is_quiet(), "a batch left work behind: {stats:?}");
    total
}

fn spawn_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    let counter = Rc::new(Cell::new(0u64));

    // micro.sh `spawn(f).join()`: one greenlet at a time, start to finish.
    // Its stack comes from the pool every time.
    group.bench_function("spawn_join", |b| {
        b.iter(|| spawn(|| black_box(5)).join());
    });

    // The same with the typed result read back (`get()`).
    group.bench_function("spawn_get", |b| {
        b.iter(|| spawn(|| black_box(5)).get());
    });

    // bench_spawn.py "gevent sleep": spawn a batch, then run it all (the
    // workloads binary's spawn_join, at batch scale).
    group.bench_function("spawn_batch_run", |b| {
        let n = counter.clone();
        b.iter_custom(|iters| {
            batched(iters, |k| {
                let t = Instant::now();
                for _ in 0..k {
                    let n = n.clone();
                    spawn(move || n.set(n.get() + 1));
                }
                hub::join();
                t.elapsed()
            })
        });
    });

    // bench_spawn.py "gevent spawn": the spawn calls alone (running the
    // batch is not timed).
    group.bench_function("spawn_only", |b| {
        let n = counter.clone();
        b.iter_custom(|iters| {
            batched(iters, |k| {
                let t = Instant::now();
                for _ in 0..k {
                    let n = n.clone();
                    black_box(spawn(move || n.set(n.get() + 1)));
                }
                t.elapsed()
            })
        });
    });

    // bench_spawn.py "geventraw": spawn_raw (no handle, no result, no
    // links), batch spawned and run.
    group.bench_function("spawn_raw_batch_run", |b| {
        let n = counter.clone();
        b.iter_custom(|iters| {
            batched(iters, |k| {
                let t = Instant::now();
                for _ in 0..k {
                    let n = n.clone();
                    spawn_raw(move || n.set(n.get() + 1));
                }
                hub::join();
                t.elapsed()
            })
        });
    });

    // micro.sh `spawn_raw(f)`: the spawn_raw calls alone.
    group.bench_function("spawn_raw_only", |b| {
        let n = counter.clone();
        b.iter_custom(|iters| {
            batched(iters, |k| {
                let t = Instant::now();
                for _ in 0..k {
                    let n = n.clone();
                    spawn_raw(move || n.set(n.get() + 1));
                }
                t.elapsed()
            })
        });
    });

    // Builder with a name: the fallible spawn path plus a name allocation.
    group.bench_function("builder_named_spawn_join", |b| {
        b.iter(|| {
            Builder::new()
                .name("bench")
                .spawn(|| black_box(5))
                .expect("the budget has room for one greenlet")
                .join()
        });
    });

    group.finish();
    black_box(counter.get());
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // One hub scope around the whole run: criterion calls the bodies on
    // this thread, and the greenlets they leave end with the scope.
    greenlet::run(|| spawn_benches(&mut c));
    c.final_summary();
}
