//! Queue costs: `put`/`get` uncontended (no switch: the item sits in the
//! queue) and contended (a greenlet blocked in `get` on the other side, so
//! every item is a hand-off plus a switch), for `Queue` and `Channel`.
//!
//! ```sh
//! cargo bench --bench queue -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use greenlet::queue::{Channel, Queue};
use greenlet::spawn;

fn queue_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");

    // put then get on the same greenlet: store and take, no waiter.
    group.bench_function("put_get_uncontended", |b| {
        let q = Queue::<u64>::new();
        b.iter(|| {
            q.put(black_box(1)).unwrap();
            black_box(q.get().unwrap());
        });
    });

    // The same on a bounded queue (slot accounting on every get).
    group.bench_function("put_get_uncontended_bounded", |b| {
        let q = Queue::<u64>::bounded(16);
        b.iter(|| {
            q.put(black_box(1)).unwrap();
            black_box(q.get().unwrap());
        });
    });

    // put_nowait/get_nowait, the non-blocking forms.
    group.bench_function("nowait_uncontended", |b| {
        let q = Queue::<u64>::new();
        b.iter(|| {
            q.put_nowait(black_box(1)).unwrap();
            black_box(q.get_nowait().unwrap());
        });
    });

    // Contended: a consumer greenlet always waiting in `get`; each `put`
    // hands the item over directly and the producer (native stack) waits
    // for the echo on a second queue. Per item: two hand-offs, two switches.
    group.bench_function("put_get_contended_round_trip", |b| {
        b.iter_custom(|iters| {
            let (to, back) = (Queue::<u64>::new(), Queue::<u64>::new());
            let (rx, tx) = (to.clone(), back.clone());
            let echo = spawn(move || {
                for _ in 0..iters {
                    let v = rx.get().unwrap();
                    tx.put(v).unwrap();
                }
            });
            let t = Instant::now();
            for i in 0..iters {
                to.put(i).unwrap();
                black_box(back.get().unwrap());
            }
            let el = t.elapsed();
            echo.join().unwrap();
            el
        });
    });

    // Contended bounded queue: producer greenlet blocked on a full queue
    // of 1, consumer takes one item at a time (space hand-off).
    group.bench_function("bounded_full_producer", |b| {
        b.iter_custom(|iters| {
            let q = Queue::<u64>::bounded(1);
            let p = q.clone();
            let producer = spawn(move || {
                for i in 0..iters {
                    p.put(i).unwrap();
                }
            });
            let t = Instant::now();
            for _ in 0..iters {
                black_box(q.get().unwrap());
            }
            let el = t.elapsed();
            producer.join().unwrap();
            el
        });
    });

    // Channel rendezvous: every put meets a waiting getter.
    group.bench_function("channel_round_trip", |b| {
        b.iter_custom(|iters| {
            let (to, back) = (Channel::<u64>::new(), Channel::<u64>::new());
            let (rx, tx) = (to.clone(), back.clone());
            let echo = spawn(move || {
                for _ in 0..iters {
                    let v = rx.get().unwrap();
                    tx.put(v).unwrap();
                }
            });
            let t = Instant::now();
            for i in 0..iters {
                to.put(i).unwrap();
                black_box(back.get().unwrap());
            }
            let el = t.elapsed();
            echo.join().unwrap();
            el
        });
    });

    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    greenlet::run(|| queue_benches(&mut c));
    c.final_summary();
}
