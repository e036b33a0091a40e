//! `#[greenlet::main]` and `#[greenlet::test]`.
//!
//! Some `#[greenlet::test]` functions here are `#[ignore]`d and called by
//! plain tests instead, which then check what happened after they returned
//! (or panicked) on the same thread.

use greenlet::{getcurrent, hub, sleep, sleep_unref, spawn};
use std::cell::Cell;
use std::panic::catch_unwind;
use std::time::{Duration, Instant};

thread_local! {
    /// Destructors of leftover greenlets that ran on this thread.
    static DROPS: Cell<u32> = const { Cell::new(0) };
}

/// Counts into `DROPS` when dropped.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        DROPS.set(DROPS.get() + 1);
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

// ================================================================ test

#[greenlet::test]
fn runs_on_the_main_greenlet_with_a_quiet_hub() {
    assert!(getcurrent().is_main());
    assert!(hub::stats().is_quiet());
    let g = spawn(|| {
        sleep(Duration::from_millis(1));
        7
    });
    assert_eq!(g.get().unwrap(), 7);
}

#[greenlet::test]
fn what_the_test_started_may_finish_after_the_body() {
    // Not joined: the check lets it finish (well within its 1 s bound).
    spawn(|| sleep(Duration::from_millis(20)));
}

#[greenlet::test(stack_size = 64 * 1024)]
fn stack_size_option_sets_the_default_stack_size() {
    assert_eq!(hub::default_stack_size(), 64 * 1024);
}

#[greenlet::test]
#[should_panic(expected = "boom")]
fn other_attributes_are_kept() {
    panic!("boom");
}

#[greenlet::test]
fn result_returning_test() -> Result<(), std::num::ParseIntError> {
    let g = spawn(|| "42".parse::<u32>());
    assert_eq!(g.get().unwrap()?, 42);
    Ok(())
}

#[greenlet::test]
#[ignore = "called by leak_check_fails_at_once_on_an_unreferenced_leftover"]
fn leaks_an_unreferenced_sleeper() {
    spawn(|| sleep_unref(Duration::from_secs(60)));
}

#[test]
fn leak_check_fails_at_once_on_an_unreferenced_leftover() {
    let started = Instant::now();
    let message = panic_message(catch_unwind(leaks_an_unreferenced_sleeper).unwrap_err());
    let elapsed = started.elapsed();
    assert!(
        message.starts_with("greenlet::test: the hub is not back to baseline after the test: "),
        "{message}"
    );
    assert!(message.contains("greenlets: 1"), "{message}");
    assert!(message.contains("leak_check = false"), "{message}");
    assert!(!message.contains("still busy"), "{message}");
    assert!(
        elapsed < Duration::from_millis(500),
        "nothing referenced: no wait ({elapsed:?})"
    );
    hub::destroy();
    assert!(hub::stats().is_quiet());
}

#[greenlet::test]
#[ignore = "called by leak_check_waits_one_second_for_referenced_work"]
fn leaks_a_referenced_sleeper() {
    spawn(|| sleep(Duration::from_secs(60)));
}

#[test]
fn leak_check_waits_one_second_for_referenced_work() {
    let started = Instant::now();
    let message = panic_message(catch_unwind(leaks_a_referenced_sleeper).unwrap_err());
    let elapsed = started.elapsed();
    assert!(
        message.contains("still busy 1 s after the test body returned"),
        "{message}"
    );
    assert!(message.contains("timers: 1"), "{message}");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    hub::destroy();
    assert!(hub::stats().is_quiet());
}

#[greenlet::test(leak_check = false)]
#[ignore = "called by leftovers_are_killed_when_the_test_ends"]
fn leaves_a_guarded_sleeper() {
    spawn(|| {
        let _guard = Guard;
        sleep(Duration::from_secs(60));
    });
    sleep(Duration::ZERO); // let it start, so it holds the guard
    assert_eq!(DROPS.get(), 0);
}

#[test]
fn leftovers_are_killed_when_the_test_ends() {
    DROPS.set(0);
    let started = Instant::now();
    leaves_a_guarded_sleeper();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no wait without leak_check"
    );
    assert_eq!(
        DROPS.get(),
        1,
        "the leftover's destructors ran exactly once"
    );
    assert!(hub::stats().is_quiet());
}

#[greenlet::test]
#[ignore = "called by leak_check_is_skipped_when_the_test_returns_err"]
fn returns_err_with_a_leftover() -> Result<(), String> {
    spawn(|| sleep_unref(Duration::from_secs(60)));
    Err("the real failure".to_string())
}

#[test]
fn leak_check_is_skipped_when_the_test_returns_err() {
    DROPS.set(0);
    assert_eq!(
        returns_err_with_a_leftover(),
        Err("the real failure".to_string())
    );
    assert!(
        hub::stats().is_quiet(),
        "the leftover was killed at the end"
    );
}

#[greenlet::test]
#[ignore = "called by every_test_starts_on_a_fresh_hub"]
fn expects_a_fresh_hub() {
    let stats = hub::stats();
    assert!(stats.is_quiet(), "{stats:?}");
    assert_eq!(stats.greenlets, 0);
}

#[test]
fn every_test_starts_on_a_fresh_hub() {
    DROPS.set(0);
    // Leftovers on this thread's hub, as a previous test could leave them.
    spawn(|| {
        let _guard = Guard;
        sleep(Duration::from_secs(60));
    });
    sleep(Duration::ZERO);
    assert_eq!(hub::stats().greenlets, 1);
    expects_a_fresh_hub();
    assert_eq!(DROPS.get(), 1, "the old hub's greenlet was killed");
    assert!(hub::stats().is_quiet());
}

// ================================================================ main

mod app {
    use super::{DROPS, Guard};
    use greenlet::{hub, sleep, spawn};
    use std::time::Duration;

    /// A `main` with options, returning a value for the test to inspect.
    #[greenlet::main(stack_size = 96 * 1024, stack_cache_limit = 4)]
    pub(crate) fn main() -> Result<usize, String> {
        let stack = hub::default_stack_size();
        // A leftover: main does not wait for it, and it is killed on return.
        spawn(|| {
            let _guard = Guard;
            sleep(Duration::from_secs(60));
        });
        let quick = spawn(|| 5);
        if quick.get().map_err(|e| e.to_string())? != 5 {
            return Err("wrong value".into());
        }
        assert_eq!(DROPS.get(), 0, "the leftover is alive while main runs");
        Ok(stack)
    }
}

#[test]
fn main_applies_options_and_kills_leftovers_on_return() {
    DROPS.set(0);
    let started = Instant::now();
    assert_eq!(app::main(), Ok(96 * 1024));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "main does not wait"
    );
    assert_eq!(
        DROPS.get(),
        1,
        "the leftover's destructors ran before main returned"
    );
    assert!(hub::stats().is_quiet());
    hub::set_default_stack_size(hub::DEFAULT_STACK_SIZE);
    hub::set_stack_cache_limit(hub::DEFAULT_STACK_CACHE_LIMIT);
}
