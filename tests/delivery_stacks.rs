//! Issue 12 §4: stacks are trimmed to the cache limit whenever the loop goes
//! idle, so a burst of finished greenlets does not keep every stack mapped
//! (today 30,717 stayed pooled after `hub::join()` and another thread then
//! failed its first spawn).
//!
//! The stack budget is process-wide, so the tests of this file run one at a
//! time (a lock), and each burst stays well under the budget.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use greenlet::{hub, sleep, spawn};

/// Greenlets alive at once in a burst: each needs its own stack.
const BURST: usize = 20_000;

/// A burst for the lowered limit: a second, smaller round trip.
const SMALL_BURST: usize = 5_000;

/// The burst (and the thread after it) must stay within a few seconds.
const FEW_SECONDS: Duration = Duration::from_secs(10);

/// Serialises the bursts: the process-wide budget is ~30k stacks.
static BUDGET: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    BUDGET.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns `n` greenlets that each switch once (so all `n` stacks are mapped
/// at the same time) and then finish; returns the peak of mapped stacks.
fn burst(n: usize) -> usize {
    let gs: Vec<_> = (0..n)
        .map(|i| {
            spawn(move || {
                sleep(Duration::ZERO);
                i
            })
        })
        .collect();
    sleep(Duration::ZERO); // every greenlet runs to its first switch
    let peak = hub::stats().stacks_allocated;
    hub::join();
    assert!(gs.iter().all(|g| g.is_ready() && g.is_successful()));
    peak
}

/// What another thread, in its own scope, can spawn right after: `n`
/// greenlets alive at once.
fn other_thread_spawns(n: usize) -> Result<usize, String> {
    std::thread::spawn(move || {
        greenlet::run(|| {
            let gs: Vec<_> = (0..n)
                .map(|_| greenlet::Builder::new().spawn(|| sleep(Duration::ZERO)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{e}"))?;
            sleep(Duration::ZERO);
            hub::join();
            Ok(gs.iter().filter(|g| g.is_ready()).count())
        })
    })
    .join()
    .expect("the other thread does not panic")
}

#[greenlet::test]
fn finished_burst_is_trimmed_to_the_default_cache_limit() {
    let _budget = lock();
    let t0 = Instant::now();
    {
        let peak = burst(BURST);
        let s = hub::stats();
        assert!(peak >= BURST, "setup: {peak} stacks mapped at the peak");
        assert!(
            s.stacks_allocated <= hub::DEFAULT_STACK_CACHE_LIMIT,
            "after hub::join() {} stacks stay mapped (limit {}): {s:?}",
            s.stacks_allocated,
            hub::DEFAULT_STACK_CACHE_LIMIT
        );
        assert_eq!(s.stacks_allocated, s.stacks_pooled, "every stack pooled");
        assert!(s.is_quiet(), "{s:?}");
        // Another thread can spawn a burst of its own right after.
        assert_eq!(other_thread_spawns(BURST), Ok(BURST));
    }
    assert!(t0.elapsed() < FEW_SECONDS, "took {:?}", t0.elapsed());
}

#[greenlet::test]
fn finished_burst_is_trimmed_to_a_lowered_cache_limit() {
    let _budget = lock();
    hub::set_stack_cache_limit(16);
    let t0 = Instant::now();
    for _ in 0..2 {
        let peak = burst(SMALL_BURST);
        let s = hub::stats();
        assert!(
            peak >= SMALL_BURST,
            "setup: {peak} stacks mapped at the peak"
        );
        assert!(
            s.stacks_allocated <= 16,
            "after hub::join() {} stacks stay mapped (limit 16): {s:?}",
            s.stacks_allocated
        );
        assert_eq!(s.stacks_allocated, s.stacks_pooled, "every stack pooled");
        assert!(s.is_quiet(), "{s:?}");
        assert_eq!(other_thread_spawns(SMALL_BURST), Ok(SMALL_BURST));
    }
    hub::set_stack_cache_limit(hub::DEFAULT_STACK_CACHE_LIMIT);
    assert!(t0.elapsed() < FEW_SECONDS, "took {:?}", t0.elapsed());
}

/// Lowering the limit on an idle hub trims at once.
#[greenlet::test]
fn lowering_the_cache_limit_trims_the_idle_pool() {
    let _budget = lock();
    burst(2_000);
    assert!(hub::stats().stacks_pooled > 16, "setup: a pool to trim");
    hub::set_stack_cache_limit(16);
    let s = hub::stats();
    assert!(s.stacks_allocated <= 16, "{s:?}");
    assert_eq!(s.stacks_allocated, s.stacks_pooled);
    hub::set_stack_cache_limit(hub::DEFAULT_STACK_CACHE_LIMIT);
}
