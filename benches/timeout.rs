//! Timeout cost: arm and cancel a [`Timeout`] (the common case: the guarded
//! operation finishes in time), and an expiry delivered by unwinding.
//! gevent has no dedicated benchmark; these follow `micro.sh`'s style.
//!
//! ```sh
//! cargo bench --bench timeout -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use greenlet::{Timeout, sleep, spawn, with_timeout};

/// Long enough never to fire during a benchmark.
const LONG: Duration = Duration::from_secs(3600);

fn timeout_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("timeout");

    // One Timeout armed and cancelled again and again (timer insert +
    // remove), on the native stack.
    group.bench_function("start_cancel", |b| {
        let t = Timeout::new(LONG);
        b.iter(|| {
            t.start().unwrap(); // cancelled below, so never already pending
            t.cancel();
        });
    });

    // gevent's `Timeout.start_new(d)` then cancel by drop: includes
    // creating the Timeout (id, error slot).
    group.bench_function("start_new_drop", |b| {
        b.iter(|| drop(black_box(Timeout::start_new(LONG))));
    });

    // with_timeout around work that finishes in time: arm, run, cancel,
    // plus the scope's catch_unwind.
    group.bench_function("with_timeout_ok", |b| {
        b.iter(|| with_timeout(LONG, || black_box(1)));
    });

    // The same inside a greenlet (the slot is a greenlet, not the native
    // stack). 1000 scopes per greenlet; per scope.
    group.bench_function("with_timeout_ok_in_greenlet", |b| {
        b.iter_custom(|iters| {
            let g = spawn(move || {
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(with_timeout(LONG, || black_box(1)).is_ok());
                }
                t.elapsed()
            });
            g.get().expect("the timing greenlet does not fail")
        });
    });

    // An expiry: the timer fires at the next loop turn, the throw is set,
    // the sleeper is woken and unwinds into with_timeout's catch.
    group.bench_function("expire_unwind", |b| {
        b.iter(|| {
            let r = with_timeout(Duration::from_nanos(1), || sleep(LONG));
            assert!(r.is_err());
        });
    });

    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // One hub scope around the whole run: criterion calls the bodies on
    // this thread, and the greenlets they leave end with the scope.
    greenlet::run(|| timeout_benches(&mut c));
    c.final_summary();
}
