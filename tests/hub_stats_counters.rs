//! The loop counters of `hub::stats()`: switches, loop iterations, the
//! longest loop turn, timers fired and stack memory move as expected.

use std::time::Duration;

use greenlet::hub::{self, Stats};
use greenlet::{Builder, sleep, spawn};

#[greenlet::test]
fn a_fresh_hub_starts_at_zero() {
    assert_eq!(hub::stats(), Stats::default());
}

#[greenlet::test]
fn switches_and_loop_iterations_count_each_sleep_zero() {
    let before = hub::stats();
    let g = spawn(|| {
        for _ in 0..100 {
            sleep(Duration::ZERO);
        }
    });
    g.join().unwrap();
    let after = hub::stats();
    // 1 start + 100 resumes after `sleep(0)`; each `sleep(0)` needs a new
    // loop iteration.
    assert_eq!(after.switches - before.switches, 101);
    let iterations = after.loop_iterations - before.loop_iterations;
    assert!((100..=110).contains(&iterations), "{iterations}");
}

#[greenlet::test]
fn timers_fired_counts_expired_timers_not_cancelled_ones() {
    let before = hub::stats().timers_fired;
    for _ in 0..3 {
        sleep(Duration::from_millis(1));
    }
    assert_eq!(hub::stats().timers_fired - before, 3);
    // A sleeper killed before its deadline: its timer is cancelled.
    let g = spawn(|| sleep(Duration::from_secs(60)));
    sleep(Duration::ZERO);
    g.kill().unwrap();
    assert_eq!(hub::stats().timers_fired - before, 3);
    assert_eq!(hub::stats().timers, 0);
}

#[greenlet::test]
fn the_longest_loop_turn_records_a_greenlet_that_blocked_its_thread() {
    let short = hub::stats().longest_loop_turn;
    assert!(short < Duration::from_millis(40), "{short:?}");
    spawn(|| std::thread::sleep(Duration::from_millis(60)))
        .join()
        .unwrap();
    let long = hub::stats().longest_loop_turn;
    // The coarse clock ticks every 1-4 ms.
    assert!(long >= Duration::from_millis(55), "{long:?}");
    assert!(long < Duration::from_secs(5), "{long:?}");
    // Waiting in the hub is not part of a turn.
    sleep(Duration::from_millis(100));
    assert_eq!(hub::stats().longest_loop_turn, long);
}

#[greenlet::test]
fn stack_bytes_cover_running_suspended_and_pooled_stacks() {
    assert_eq!(hub::stats().stack_bytes, 0);
    let size = hub::default_stack_size();
    let sleepers: Vec<_> = (0..3)
        .map(|_| spawn(|| sleep(Duration::from_secs(60))))
        .collect();
    let big = Builder::new()
        .stack_size(4 * size)
        .spawn(move || hub::stats().stack_bytes)
        .unwrap();
    sleep(Duration::ZERO);
    // Seen from inside `big` (its stack is out of its slot, running).
    assert_eq!(big.get().unwrap(), 3 * size + 4 * size);
    let s = hub::stats();
    assert_eq!(s.greenlets, 3);
    for g in &sleepers {
        g.kill().unwrap();
    }
    // The stacks are pooled (or spare until the loop waits), still mapped.
    let s2 = hub::stats();
    assert!(s2.stack_bytes >= 3 * size, "{s2:?} (before: {s:?})");
    assert_eq!(s2.greenlets, 0);
}
