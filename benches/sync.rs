//! Events, semaphores and greenlet-locals: the cost of the coordination
//! primitives of `greenlet::event`, `greenlet::lock` and `greenlet_local!`.
//!
//! * `event/set_wait_clear_uncontended`: `set`, a `wait` that returns at
//!   once, `clear`, on the native stack (no switch).
//! * `event/wake_round_trip`: one wake-up each way between the native stack
//!   and a greenlet through two events (per iteration: two `set`s, two
//!   waits, two switches through the hub); `wake_round_trip_greenlets`:
//!   the same between two greenlets.
//! * `semaphore/acquire_release_uncontended`, `semaphore/guard_uncontended`:
//!   a free permit, taken and given back (no switch).
//! * `semaphore/contended_2` and `_16`: k greenlets share one permit; each
//!   takes it, yields the hub a turn while holding it, releases it (handing
//!   it to the next waiter). Per iteration: one acquisition, including its
//!   switch.
//! * `local/get`: `greenlet_local!` `Cell::get` on the native stack.
//!
//! ```sh
//! cargo bench --bench sync -- --warm-up-time 1 --measurement-time 3
//! ```

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use greenlet::event::Event;
use greenlet::lock::Semaphore;
use greenlet::{greenlet_local, sleep, spawn};

greenlet_local!(static COUNTER: Cell<u64> = Cell::new(0));

/// `k` greenlets contend for one permit, `rounds` acquisitions each;
/// returns the wall time of the whole run.
fn contended(k: u64, rounds: u64) -> Duration {
    let sem = Rc::new(Semaphore::new(1));
    let t = Instant::now();
    let gs: Vec<_> = (0..k)
        .map(|_| {
            let sem = sem.clone();
            spawn(move || {
                for _ in 0..rounds {
                    let _permit = sem.lock().unwrap();
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

fn events(c: &mut Criterion) {
    let mut group = c.benchmark_group("event");
    let e = Event::new();
    group.bench_function("set_wait_clear_uncontended", |b| {
        b.iter(|| {
            e.set();
            e.wait().unwrap();
            e.clear();
            black_box(&e);
        });
    });
    group.bench_function("wake_round_trip", |b| {
        b.iter_custom(|iters| {
            let ping = Rc::new(Event::new());
            let pong = Rc::new(Event::new());
            let (pi, po) = (ping.clone(), pong.clone());
            let g = spawn(move || {
                for _ in 0..iters {
                    pi.wait().unwrap();
                    pi.clear();
                    po.set();
                }
            });
            let t = Instant::now();
            for _ in 0..iters {
                ping.set();
                pong.wait().unwrap();
                pong.clear();
            }
            let took = t.elapsed();
            g.join().unwrap();
            took
        });
    });
    // The same between two greenlets (no native-stack loop entry).
    group.bench_function("wake_round_trip_greenlets", |b| {
        b.iter_custom(|iters| {
            let ping = Rc::new(Event::new());
            let pong = Rc::new(Event::new());
            let (pi, po) = (ping.clone(), pong.clone());
            let g = spawn(move || {
                for _ in 0..iters {
                    pi.wait().unwrap();
                    pi.clear();
                    po.set();
                }
            });
            let h = spawn(move || {
                let t = Instant::now();
                for _ in 0..iters {
                    ping.set();
                    pong.wait().unwrap();
                    pong.clear();
                }
                t.elapsed()
            });
            let took = h.get().unwrap();
            g.join().unwrap();
            took
        });
    });
    group.finish();
}

fn semaphores(c: &mut Criterion) {
    let mut group = c.benchmark_group("semaphore");
    let sem = Semaphore::new(1);
    group.bench_function("acquire_release_uncontended", |b| {
        b.iter(|| {
            sem.acquire().unwrap();
            sem.release().unwrap();
        });
    });
    group.bench_function("guard_uncontended", |b| {
        b.iter(|| drop(black_box(sem.lock().unwrap())));
    });
    for k in [2u64, 16] {
        group.bench_function(format!("contended_{k}"), |b| {
            b.iter_custom(|iters| {
                let rounds = iters.div_ceil(k).max(1);
                contended(k, rounds).mul_f64(iters as f64 / (rounds * k) as f64)
            });
        });
    }
    group.finish();
}

fn locals(c: &mut Criterion) {
    let mut group = c.benchmark_group("local");
    group.bench_function("get", |b| b.iter(|| black_box(COUNTER.get())));
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // One hub scope around the whole run (see benches/switch.rs).
    greenlet::run(|| {
        events(&mut c);
        semaphores(&mut c);
        locals(&mut c);
    });
    c.final_summary();
}
