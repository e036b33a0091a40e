//! Shared helpers of the reliability suite (`tests/reliability_*.rs`,
//! `tests/model_proptest.rs`): hub-counter baselines, an error-report
//! recorder, drop counters, timing bands, running a scenario twice, and
//! re-running one test in a child process to read its stderr.
//!
//! Heap leak checkers cannot see into greenlet stacks, so every scenario
//! takes a [`Baseline`] first and checks it after `hub::join()`.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::process::{Command, Output};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, Stats};

/// Hub counters at the start of a scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Baseline {
    pub(crate) stats: Stats,
}

impl Baseline {
    /// Records the counters; the hub must be quiet already (nothing left
    /// over from an earlier scenario on this thread).
    #[track_caller]
    pub(crate) fn take() -> Baseline {
        let stats = hub::stats();
        assert!(
            stats.is_quiet(),
            "hub not quiet before the scenario: {stats:?}"
        );
        Baseline { stats }
    }

    /// Runs the hub dry, then checks every counter is back: no live
    /// greenlet, timer, fd or queued callback, every mapped stack idle in the
    /// pool, and no stack leaked since [`Baseline::take`].
    #[track_caller]
    pub(crate) fn check(&self) {
        hub::join();
        self.check_now();
    }

    /// [`Baseline::check`] without running the hub first.
    #[track_caller]
    pub(crate) fn check_now(&self) {
        let s = hub::stats();
        assert_eq!(s.greenlets, 0, "live greenlets left: {s:?}");
        assert_eq!(s.timers, 0, "timers left: {s:?}");
        assert_eq!(s.fds, 0, "fds left: {s:?}");
        assert_eq!(s.callbacks, 0, "callbacks left: {s:?}");
        assert_eq!(s.stacks_allocated, s.stacks_pooled, "stacks in use: {s:?}");
        assert!(s.is_quiet(), "{s:?}");
    }
}

/// Runs `scenario` twice in a row on the same thread (and so the same hub):
/// a second pass catches state the first one left behind.
pub(crate) fn twice(scenario: impl Fn()) {
    scenario();
    scenario();
}

/// One report received by the hub's error handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) context: &'static str,
    pub(crate) greenlet: String,
    pub(crate) text: String,
}

/// Installs an error handler that records every report; restores the
/// default handler when dropped.
pub(crate) struct Reports {
    log: Rc<RefCell<Vec<Report>>>,
}

impl Reports {
    pub(crate) fn install() -> Reports {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = Rc::clone(&log);
        hub::set_error_handler(move |r| {
            l.borrow_mut().push(Report {
                context: r.context,
                greenlet: r.greenlet.clone(),
                text: r.to_string(),
            });
        });
        Reports { log }
    }

    pub(crate) fn all(&self) -> Vec<Report> {
        self.log.borrow().clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.log.borrow().len()
    }

    /// Reports of one context (`"greenlet"`, `"link callback"`, ...).
    pub(crate) fn count(&self, context: &str) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|r| r.context == context)
            .count()
    }

    /// Reports whose text contains `needle`.
    pub(crate) fn containing(&self, needle: &str) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|r| r.text.contains(needle))
            .count()
    }

    pub(crate) fn clear(&self) {
        self.log.borrow_mut().clear();
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        hub::reset_error_handler();
    }
}

/// A shared counter (`Rc<Cell<usize>>`) with a readable API.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counter(Rc<Cell<usize>>);

impl Counter {
    pub(crate) fn new() -> Counter {
        Counter::default()
    }

    pub(crate) fn hit(&self) {
        self.0.set(self.0.get() + 1);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.get()
    }

    /// A value that bumps this counter when dropped.
    pub(crate) fn guard(&self) -> DropGuard {
        DropGuard(self.clone())
    }
}

/// Bumps its counter when dropped: proves destructors on a greenlet stack
/// (or captured by an unrun body) ran, and ran once.
#[derive(Debug)]
pub(crate) struct DropGuard(Counter);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.hit();
    }
}

/// An append-only event log shared by greenlets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub(crate) fn new() -> Log {
        Log::default()
    }

    pub(crate) fn push(&self, event: impl Into<String>) {
        self.0.borrow_mut().push(event.into());
    }

    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

/// Asserts `lo <= elapsed < hi`.
#[track_caller]
pub(crate) fn assert_band(elapsed: Duration, lo: Duration, hi: Duration) {
    assert!(
        elapsed >= lo && elapsed < hi,
        "took {elapsed:?}, expected [{lo:?}, {hi:?})"
    );
}

/// Upper bound for a call that must return without waiting for any of the
/// (much longer) timers in the scenario. Generous: the tests share two cores
/// with parallel builds.
pub(crate) const PROMPT: Duration = Duration::from_millis(150);

/// Upper bound for "did not hang" around an expected panic on the native
/// stack: printing it (with a backtrace under `RUST_BACKTRACE=1`) can take
/// hundreds of milliseconds on a loaded machine.
pub(crate) const NO_HANG: Duration = Duration::from_secs(5);

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Env var set in the child process of [`run_child`].
pub(crate) const CHILD_ENV: &str = "GREENLET_RELIABILITY_CHILD";

/// `true` inside a child started by [`run_child`].
pub(crate) fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Re-runs exactly one test of the current test binary in a child process,
/// uncaptured, and returns its output (to read what it wrote on stderr).
/// `--include-ignored` so that an `#[ignore]`d test run by hand with
/// `--ignored` still runs its child half.
pub(crate) fn run_child(test_name: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    Command::new(exe)
        .args([
            test_name,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("the test binary can be re-run")
}
