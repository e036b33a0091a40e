//! `#[greenlet::main]` and `#[greenlet::test]`.
//!
//! Some `#[greenlet::test]` functions here are also called by plain tests,
//! which then check what happened after they returned (or panicked) on the
//! same thread; each says so. None is `#[ignore]`d: each passes on its own.

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

/// Also a test on its own (it must fail the leak check); called by
/// `leak_check_fails_at_once_on_an_unreferenced_leftover`, which checks the
/// message and the time.
#[greenlet::test]
#[should_panic(expected = "greenlet::test: the hub is not back to baseline after the test")]
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
    // No "still busy" above: the settle wait ran dry at once. (The bound
    // only catches a hang: printing the panic with a backtrace is slow.)
    assert!(
        elapsed < Duration::from_millis(500),
        "nothing referenced: no wait ({elapsed:?})"
    );
    // The scope killed the leftover: nothing outlives the test.
    assert!(hub::stats().is_quiet());
}

/// Also a test on its own (it must fail the leak check); called by
/// `leak_check_waits_briefly_for_referenced_work`, which checks the
/// message and the time.
#[greenlet::test]
#[should_panic(expected = "greenlet::test: the hub is not back to baseline after the test")]
fn leaks_a_referenced_sleeper() {
    spawn(|| sleep(Duration::from_secs(60)));
}

#[test]
fn leak_check_waits_briefly_for_referenced_work() {
    let started = Instant::now();
    let message = panic_message(catch_unwind(leaks_a_referenced_sleeper).unwrap_err());
    let elapsed = started.elapsed();
    assert!(
        message.contains("still busy 100 ms after the test body returned"),
        "{message}"
    );
    assert!(message.contains("timers: 1"), "{message}");
    // A leaky test costs the short settle bound, not a fixed second.
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    // (Printing the panic with a backtrace takes a few hundred ms.)
    assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
    assert!(hub::stats().is_quiet());
}

#[greenlet::test]
fn leak_check_ends_as_soon_as_the_work_finishes() {
    // Not joined: the settle wait (`hub::join_timeout`) returns when this
    // ends, well before its 100 ms bound; the check then passes.
    let started = Instant::now();
    spawn(|| sleep(Duration::from_millis(30)));
    let ran_dry = hub::join_timeout(Duration::from_millis(100));
    let elapsed = started.elapsed();
    assert!(ran_dry);
    assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(90),
        "returned early: {elapsed:?}"
    );
}

/// Also a test on its own (leak_check = false: it passes); called by
/// `leftovers_are_killed_when_the_test_ends`, which checks what happened
/// after it returned.
#[greenlet::test(leak_check = false)]
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

// A test returning `Err` fails when run on its own, and `#[should_panic]`
// needs `()`: so `returns_err_with_a_leftover` is a nested item, compiled
// with the macro but not registered with libtest (`unnameable_test_items`);
// only this test calls it.
#[test]
#[allow(unnameable_test_items)]
fn leak_check_is_skipped_when_the_test_returns_err() {
    #[greenlet::test]
    fn returns_err_with_a_leftover() -> Result<(), String> {
        spawn(|| sleep_unref(Duration::from_secs(60)));
        Err("the real failure".to_string())
    }

    assert_eq!(
        returns_err_with_a_leftover(),
        Err("the real failure".to_string())
    );
    assert!(
        hub::stats().is_quiet(),
        "the leftover was killed at the end"
    );
}

/// Also a test on its own; called by `every_test_starts_on_a_fresh_hub`
/// after a scope that left greenlets behind.
#[greenlet::test]
fn expects_a_fresh_hub() {
    let stats = hub::stats();
    assert!(stats.is_quiet(), "{stats:?}");
    assert_eq!(stats.greenlets, 0);
}

#[test]
fn every_test_starts_on_a_fresh_hub() {
    DROPS.set(0);
    // Leftovers in a scope on this thread, as a previous test could leave them.
    let live = greenlet::run(|| {
        spawn(|| {
            let _guard = Guard;
            sleep(Duration::from_secs(60));
        });
        sleep(Duration::ZERO);
        hub::stats().greenlets
    });
    assert_eq!(live, 1);
    assert_eq!(DROPS.get(), 1, "the old scope's greenlet was killed");
    expects_a_fresh_hub();
    assert!(hub::stats().is_quiet());
}

/// The example of the `#[greenlet::test]` docs (greenlet-macros/src/lib.rs),
/// compiled and run here: rustdoc strips `#[test]` items from doctests.
mod doc_example {
    use greenlet::{sleep, spawn};
    use std::time::Duration;

    #[greenlet::test]
    fn greenlets_finish() {
        let g = spawn(|| sleep(Duration::from_millis(1)));
        g.join().unwrap();
        assert!(g.is_successful());
    }

    #[greenlet::test(leak_check = false)]
    fn leaves_a_sleeper() {
        spawn(|| sleep(Duration::from_secs(60))); // killed when the test ends
    }
}

// ================================================================ main

mod app {
    use super::{DROPS, Guard};
    use greenlet::{hub, sleep, spawn};
    use std::time::Duration;

    /// A `main` with options, returning a value for the test to inspect.
    #[greenlet::main(stack_size = 96 * 1024, stack_cache_limit = 4)]
    pub(crate) fn main() -> Result<(usize, usize), String> {
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
        // stack_cache_limit = 4: ten stacks in use at once, then finished;
        // once the loop has waited (it trims then), at most 4 stay cached.
        let ten: Vec<_> = (0..10)
            .map(|_| spawn(|| sleep(Duration::from_millis(1))))
            .collect();
        for g in &ten {
            g.join().unwrap();
        }
        sleep(Duration::from_millis(1));
        let cached = hub::stats().stacks_pooled;
        Ok((stack, cached))
    }
}

#[test]
fn main_applies_options_and_kills_leftovers_on_return() {
    DROPS.set(0);
    let started = Instant::now();
    let (stack, cached) = app::main().expect("main succeeds");
    assert_eq!(stack, 96 * 1024);
    assert!(
        cached <= 4,
        "stack_cache_limit = 4, yet {cached} stacks cached"
    );
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

/// `#[greenlet::test(stack_size = …)]` and `#[greenlet::main(…)]` options
/// are hub settings: the next scope on the thread (the next test libtest
/// runs on it) must start with the defaults, as `greenlet::run` documents
/// ("the next scope on this thread starts fresh").
#[test]
fn settings_do_not_leak_into_the_next_scope() {
    greenlet::run(|| {
        hub::set_default_stack_size(64 * 1024);
        hub::set_stack_cache_limit(3);
    });
    let size = greenlet::run(hub::default_stack_size);
    // Restore for later tests on this thread whatever the outcome.
    hub::set_default_stack_size(hub::DEFAULT_STACK_SIZE);
    hub::set_stack_cache_limit(hub::DEFAULT_STACK_CACHE_LIMIT);
    assert_eq!(size, hub::DEFAULT_STACK_SIZE);
}
