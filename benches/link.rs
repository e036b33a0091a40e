//! Link cost: gevent's `benchmarks/micro_greenlet_link.sh` (add links to a
//! greenlet, let it finish so they fire).
//!
//! Links fire on the loop turn after the greenlet dies, on the hub.
//! `link_fire_*` figures are per link; the others per iteration (compare
//! `link_finish` with `spawn/spawn_join` for the cost of one link).
//!
//! ```sh
//! cargo bench --bench link -- --warm-up-time 1 --measurement-time 3
//! ```

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use greenlet::{Greenlet, sleep, spawn};

fn link_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("link");
    let fired = Rc::new(Cell::new(0u64));

    // Spawn, add one link, finish: the link fires on the next loop turn,
    // before join returns (join's own wake-up is queued after it).
    group.bench_function("link_finish", |b| {
        let fired = fired.clone();
        b.iter(|| {
            let g = spawn(|| black_box(5));
            let f = fired.clone();
            g.link(move |_| f.set(f.get() + 1));
            g.join().unwrap();
        });
    });

    // The same with link_value (the callback gets the greenlet and reads
    // its value).
    group.bench_function("link_value_finish", |b| {
        let fired = fired.clone();
        b.iter(|| {
            let g = spawn(|| black_box(5u64));
            let f = fired.clone();
            g.link_value(move |g| f.set(f.get() + g.value().unwrap_or(0)));
            g.join().unwrap();
        });
    });

    // micro_greenlet_link.sh: k links on one greenlet, then it finishes and
    // they all fire. Per link.
    for k in [10u64, 1000] {
        group.bench_function(format!("link_fire_{k}"), |b| {
            let fired = fired.clone();
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(k);
                    let t = Instant::now();
                    let g = spawn(|| black_box(5));
                    for _ in 0..batch {
                        let f = fired.clone();
                        g.link(move |_| f.set(f.get() + 1));
                    }
                    g.join().unwrap();
                    total += t.elapsed();
                    left -= batch;
                }
                total
            });
        });
    }

    // rawlink + unlink on a greenlet that has not finished: the link list
    // alone (the Waitable protocol wait/joinall are built on).
    group.bench_function("rawlink_unlink", |b| {
        let g: Greenlet<()> = spawn(|| sleep(Duration::from_secs(3600)));
        b.iter(|| {
            let id = g.rawlink(|| ());
            black_box(g.unlink(id));
        });
        g.kill().expect("the sleeper dies when killed");
    });

    group.finish();
    black_box(fired.get());
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // One hub scope around the whole run: criterion calls the bodies on
    // this thread, and the greenlets they leave end with the scope.
    greenlet::run(|| link_benches(&mut c));
    c.final_summary();
}
