//! Helpers shared by the behaviour tests (`mod common;` in each test file).
//!
//! Every test runs inside a hub scope of its own (`#[greenlet::test]`, or
//! `#[test]` calling `greenlet::run`); the helpers below only ever look at
//! the calling thread's hub. A thread a test starts needs its own
//! `greenlet::run` to spawn greenlets.
//!
//! Rule for the suite: greenlet bodies and hub callbacks (links, posts,
//! error handlers) only *record* (a [`Log`], a `Cell`, a return value);
//! the assertions run on the test's own stack. A panic inside a callback
//! is caught and reported by the hub, so an `assert!` there cannot fail
//! the test.
#![allow(dead_code, unreachable_pub)]

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::GreenletError;
use greenlet::hub::{self, ErrorReport};

/// The wait most timing tests use.
pub const TICK: Duration = Duration::from_millis(50);
/// Upper bound for a [`TICK`] wait on a loaded 2-core machine.
pub const TICK_UPPER: Duration = Duration::from_millis(160);
/// "Much longer than any test": a wait that must be interrupted.
pub const LONG: Duration = Duration::from_secs(30);
/// An upper bound for "returned promptly instead of waiting [`LONG`]".
pub const PROMPT: Duration = Duration::from_secs(5);

/// Runs the hub until nothing is left, then asserts every counter is back to
/// baseline (no live greenlet, timer, fd or callback; every stack pooled).
#[track_caller]
pub fn quiet() {
    hub::join();
    assert_quiet();
}

/// Asserts the counters are at baseline now, without running the hub.
#[track_caller]
pub fn assert_quiet() {
    let s = hub::stats();
    assert!(
        s.is_quiet(),
        "hub counters not back to baseline: {} live greenlets, {} timers, {} fds, \
         {} callbacks, {} stacks allocated but only {} pooled ({s:?})",
        s.greenlets,
        s.timers,
        s.fds,
        s.callbacks,
        s.stacks_allocated,
        s.stacks_pooled
    );
}

/// Runs `f` and measures how long it took.
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

/// Asserts `at_least <= elapsed < below`, naming `what` on failure.
#[track_caller]
pub fn assert_band(what: &str, elapsed: Duration, at_least: Duration, below: Duration) {
    assert!(
        elapsed >= at_least,
        "{what}: took {elapsed:?}, expected at least {at_least:?} (returned early)"
    );
    assert!(
        elapsed < below,
        "{what}: took {elapsed:?}, expected less than {below:?}"
    );
}

/// Asserts a [`TICK`] wait lasted `>= TICK` and `< TICK_UPPER`.
#[track_caller]
pub fn assert_tick(what: &str, elapsed: Duration) {
    assert_band(what, elapsed, TICK, TICK_UPPER);
}

/// An ordered event log shared by greenlets of one thread.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    /// A copy of the entries so far.
    pub fn entries(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// The entries so far, clearing the log.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// How many entries equal `entry`.
    pub fn count(&self, entry: &str) -> usize {
        self.0.borrow().iter().filter(|e| *e == entry).count()
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.borrow().iter()).finish()
    }
}

/// Logs `"drop <name>"` when dropped: proves destructors ran on unwinding.
pub struct DropLog {
    name: &'static str,
    log: Log,
}

impl DropLog {
    pub fn new(name: &'static str, log: &Log) -> DropLog {
        DropLog {
            name,
            log: log.clone(),
        }
    }
}

impl Drop for DropLog {
    fn drop(&mut self) {
        self.log.push(format!("drop {}", self.name));
    }
}

/// One report received by the error handler.
#[derive(Debug, Clone)]
pub struct Report {
    pub context: &'static str,
    pub greenlet: String,
    pub error: GreenletError,
    /// The report's `Display` line.
    pub line: String,
}

/// Installs an error handler that records reports (instead of printing
/// them); the default handler is restored on drop.
pub struct Reports(Rc<RefCell<Vec<Report>>>);

impl Reports {
    pub fn install() -> Reports {
        let seen: Rc<RefCell<Vec<Report>>> = Rc::default();
        let s = Rc::clone(&seen);
        hub::set_error_handler(move |r: &ErrorReport<'_>| {
            s.borrow_mut().push(Report {
                context: r.context,
                greenlet: r.greenlet.clone(),
                error: r.error.clone(),
                line: r.to_string(),
            });
        });
        Reports(seen)
    }

    pub fn all(&self) -> Vec<Report> {
        self.0.borrow().clone()
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    pub fn take(&self) -> Vec<Report> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    /// Asserts exactly one report arrived, takes and returns it.
    #[track_caller]
    pub fn take_one(&self) -> Report {
        let mut all = self.take();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one error report, got {all:#?}"
        );
        all.pop().expect("one report")
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        hub::reset_error_handler();
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Runs `f`, which must panic; returns the panic message.
#[track_caller]
pub fn expect_panic<R>(what: &str, f: impl FnOnce() -> R) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("{what}: expected a panic, but it returned normally"),
        Err(payload) => panic_message(payload.as_ref()),
    }
}

/// Asserts `haystack` contains every one of `needles`.
#[track_caller]
pub fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(
            haystack.contains(n),
            "expected {haystack:?} to contain {n:?}"
        );
    }
}

/// A user error type for `kill_with` / `Timeout::with_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown(pub &'static str);

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shutdown: {}", self.0)
    }
}

impl std::error::Error for Shutdown {}

/// Spawns a greenlet whose body gets its own handle (to kill or join itself).
pub fn spawn_self<T: 'static>(
    f: impl FnOnce(&greenlet::Greenlet<T>) -> T + 'static,
) -> greenlet::Greenlet<T> {
    let cell: Rc<std::cell::OnceCell<greenlet::Greenlet<T>>> = Rc::default();
    let c = Rc::clone(&cell);
    let g = greenlet::spawn(move || {
        let me = c
            .get()
            .expect("handle published before the first switch")
            .clone();
        drop(c);
        f(&me)
    });
    assert!(cell.set(g.clone()).is_ok(), "published once");
    g
}
