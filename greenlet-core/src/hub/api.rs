//! The hub's public functions: sleeping, idling, waiting for the whole hub,
//! the error handler, configuration and counters.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use super::{
    MAIN, TimerGuard, WaitTarget, Waker, current_waker, deadline_after, park, park_on,
    park_on_or_panic, park_or_panic, with_hub, yield_now,
};
use crate::greenlet::error::GreenletError;
use crate::greenlet::switch;

/// Suspends the current greenlet for at least `duration`.
///
/// `sleep(Duration::ZERO)` is a fair yield: the caller goes to the back of
/// the ready queue, so two greenlets alternating `sleep(ZERO)` interleave
/// (`1A 2A 1B 2B`). Longer sleeps let the loop run timers and I/O first.
/// `Duration::MAX` (or anything whose deadline overflows `Instant`) sleeps
/// until killed. Works from greenlets and from the native stack, where it runs
/// the hub meanwhile.
///
/// # Switches
///
/// Always. If the greenlet is killed or a [`Timeout`](crate::Timeout) expires
/// while it sleeps, the sleep ends at once by unwinding.
///
/// # Panics
///
/// Inside a hub callback (link, timer callback), where blocking is not
/// allowed; and on the native stack when sleeping forever with nothing else
/// alive ([`LoopExit`](crate::LoopExit)).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{sleep, spawn};
/// use std::time::{Duration, Instant};
///
/// let t = Instant::now();
/// let a = spawn(|| sleep(Duration::from_millis(20)));
/// let b = spawn(|| sleep(Duration::from_millis(20)));
/// a.join().unwrap();
/// b.join().unwrap();
/// assert!(t.elapsed() >= Duration::from_millis(20)); // slept concurrently
/// # });
/// ```
#[track_caller]
pub fn sleep(duration: Duration) {
    sleep_with(duration, true, "sleep");
}

/// Like [`sleep`], but the sleeping timer does not keep the hub alive
/// (gevent's `sleep(seconds, ref=False)`): if nothing else is left, waits on
/// the native stack end with [`LoopExit`](crate::LoopExit) instead of waiting for this sleep.
///
/// # Switches
///
/// Always; see [`sleep`].
///
/// # Panics
///
/// As [`sleep`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{sleep_unref, spawn, hub};
/// use std::time::Duration;
///
/// let g = spawn(|| sleep_unref(Duration::from_secs(3600)));
/// hub::join(); // returns at once: the unref'd sleep does not count
/// assert!(!g.is_ready());
/// g.kill().unwrap();
/// # });
/// ```
#[track_caller]
pub fn sleep_unref(duration: Duration) {
    sleep_with(duration, false, "sleep_unref");
}

#[track_caller]
#[inline]
fn sleep_with(duration: Duration, referenced: bool, what: &'static str) {
    if duration.is_zero() {
        yield_now(what);
    } else {
        sleep_timer(duration, referenced, what);
    }
}

/// A sleep with a timer (out of line: `sleep(0)` is the switch path).
#[track_caller]
#[inline(never)]
fn sleep_timer(duration: Duration, referenced: bool, what: &'static str) {
    let w = current_waker(what);
    let deadline = deadline_after(duration);
    let _timer = TimerGuard::wake_at(deadline, referenced, w);
    park_on_or_panic(w, WaitTarget::Deadline { what, deadline });
}

/// [`sleep`] with seconds as `f64`, the gevent way: negative is zero,
/// +∞ sleeps until killed.
///
/// # Errors
///
/// [`InvalidDuration`](crate::InvalidDuration) for NaN (nothing is slept).
///
/// # Switches
///
/// As [`sleep`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::sleep_secs;
///
/// sleep_secs(0.001).unwrap();
/// assert!(sleep_secs(f64::NAN).is_err());
/// # });
/// ```
#[track_caller]
pub fn sleep_secs(seconds: f64) -> Result<(), crate::InvalidDuration> {
    let d = crate::duration_from_secs_f64(seconds)?;
    sleep(d.unwrap_or(Duration::MAX));
    Ok(())
}

/// Waits until the loop is idle: nothing else ready to run, no timer due
/// (gevent's `idle()`).
///
/// # Switches
///
/// Always; a kill or timeout ends the wait by unwinding.
///
/// # Panics
///
/// Inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{idle, spawn, sleep};
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// let busy = spawn(move || for i in 0..3 { l.borrow_mut().push(i); sleep(Duration::ZERO) });
/// idle();
/// log.borrow_mut().push(99);
/// busy.join().unwrap();
/// assert_eq!(*log.borrow(), [0, 1, 2, 99]);
/// # });
/// ```
#[track_caller]
pub fn idle() {
    let w = current_waker("idle");
    with_hub(|h| h.idlers.push(w));
    let _unregister = IdleGuard(w);
    park_or_panic(w, "idle");
}

struct IdleGuard(Waker);

impl Drop for IdleGuard {
    fn drop(&mut self) {
        let w = self.0;
        with_hub(|h| h.idlers.retain(|x| *x != w));
    }
}

/// Runs the hub until nothing referenced is left: every greenlet finished or
/// blocked on something unreferenced, no referenced timer, fd or
/// [`HubHandle`](super::HubHandle) (gevent's `wait()` without objects / `hub.join()`).
///
/// # Switches
///
/// Always (runs the loop on the calling stack).
///
/// # Panics
///
/// When called from a greenlet or a hub callback: only the native stack can
/// wait for the whole hub.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{hub, spawn, sleep};
/// use std::time::Duration;
///
/// let g = spawn(|| sleep(Duration::from_millis(5)));
/// hub::join();
/// assert!(g.is_ready());
/// # });
/// ```
#[track_caller]
pub fn join() {
    let w = current_waker("hub::join");
    assert!(
        w.slot == MAIN,
        "hub::join: only the native stack can wait for the whole hub"
    );
    // Nothing wakes this wait: it ends when the loop runs dry.
    let _ = park(w, "hub::join");
}

/// Like [`join`], giving up after `timeout`; `true` if the hub ran dry.
///
/// # Switches
///
/// Always.
///
/// # Panics
///
/// As [`join`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{hub, spawn, sleep};
/// use std::time::Duration;
///
/// let g = spawn(|| sleep(Duration::from_secs(60)));
/// assert!(!hub::join_timeout(Duration::from_millis(5)));
/// g.kill().unwrap();
/// assert!(hub::join_timeout(Duration::from_millis(5)));
/// # });
/// ```
#[track_caller]
pub fn join_timeout(timeout: Duration) -> bool {
    let w = current_waker("hub::join_timeout");
    assert!(
        w.slot == MAIN,
        "hub::join_timeout: only the native stack can wait for the whole hub"
    );
    // The timer is unreferenced so it does not itself keep the loop alive.
    let deadline = deadline_after(timeout);
    let _timer = TimerGuard::wake_at(deadline, false, w);
    park_on(
        w,
        WaitTarget::Deadline {
            what: "hub::join_timeout",
            deadline,
        },
    )
    .is_err()
}

/// One error the hub reports: a greenlet that failed, or a callback that
/// panicked.
#[derive(Debug)]
#[non_exhaustive]
pub struct ErrorReport<'a> {
    /// Where it happened: `"greenlet"`, `"link callback"`, `"hub callback"`,
    /// `"signal handler"`.
    pub context: &'static str,
    /// The greenlet involved, formatted like its `Display` (may be empty).
    pub greenlet: String,
    /// What went wrong.
    pub error: &'a GreenletError,
}

/// One line: who failed, the error, and each of its causes
/// (`std::error::Error::source`) once, joined by `": "`.
impl fmt::Display for ErrorReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.context, self.greenlet.is_empty()) {
            ("greenlet", false) => write!(f, "{} failed: {}", self.greenlet, self.error)?,
            (context, false) => {
                write!(f, "{context} of {} failed: {}", self.greenlet, self.error)?;
            }
            (context, true) => write!(f, "{context} failed: {}", self.error)?,
        }
        let mut cause = std::error::Error::source(self.error);
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

pub(super) type ErrorHandler = dyn Fn(&ErrorReport<'_>);

/// One line per greenlet alive on this thread's hub: its id, `Display`,
/// spawn site, state, age and what it waits in: the lines of
/// [`dump`](super::dump) (and of
/// [`LoopExit::blocked`](crate::LoopExit::blocked)). For leak reports and
/// debugging.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{hub, sleep, spawn};
/// use std::time::Duration;
/// let g = spawn(|| sleep(Duration::from_secs(60)));
/// sleep(Duration::ZERO);
/// let live = hub::live_greenlets();
/// assert_eq!(live.len(), 1);
/// assert!(live[0].contains("waits in sleep"), "{live:?}");
/// g.kill().unwrap();
/// assert!(hub::live_greenlets().is_empty());
/// # });
/// ```
pub fn live_greenlets() -> Vec<String> {
    super::live_report()
}

/// A handle to this hub's main greenlet: the native stack that runs the
/// hub scope's closure (gevent's `get_hub().parent`). Kill it with
/// [`GreenletRef::kill_nowait`](crate::GreenletRef::kill_nowait), the way
/// gevent's `kill(main)` works.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{getcurrent, hub, spawn};
/// assert_eq!(hub::main_greenlet(), getcurrent());
/// let from_a_greenlet = spawn(|| hub::main_greenlet().is_main());
/// assert!(from_a_greenlet.get().unwrap());
/// # });
/// ```
pub fn main_greenlet() -> crate::GreenletRef {
    crate::greenlet::main_ref()
}

/// Replaces this thread's error handler (gevent's `Hub.handle_error`).
///
/// The handler is called on the hub for every greenlet that ends with an error
/// other than [`GreenletExit`](crate::KillError::GreenletExit) and for every
/// panicking callback. The default writes one line naming the greenlet and the
/// error, through `log::error!` when a logger is enabled, else on stderr. A
/// handler that panics is reported on stderr and the hub continues.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{hub, spawn};
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// hub::set_error_handler(move |report| s.borrow_mut().push(report.to_string()));
/// let g = spawn(|| panic!("boom"));
/// g.join().unwrap();
/// hub::reset_error_handler();
/// assert_eq!(seen.borrow().len(), 1);
/// assert!(seen.borrow()[0].contains("boom"));
/// # });
/// ```
pub fn set_error_handler(handler: impl Fn(&ErrorReport<'_>) + 'static) {
    let old = with_hub(|h| h.error_handler.replace(Rc::new(handler)));
    drop(old);
}

/// Restores the default error handler.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// greenlet::hub::reset_error_handler();
/// # });
/// ```
pub fn reset_error_handler() {
    let old = with_hub(|h| h.error_handler.take());
    drop(old);
}

/// Reports an error through the hub's handler (outside any borrow).
pub(crate) fn report(report: &ErrorReport<'_>) {
    super::trace::error(report);
    let handler = with_hub(|h| h.error_handler.clone());
    match handler {
        Some(handler) => {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(report))) {
                eprintln!("greenlet: the error handler panicked while reporting: {report}");
                drop_payload(payload);
            }
        }
        None => default_report(report),
    }
}

/// Drops a caught panic payload whose own `Drop` may panic: such a panic is
/// caught too, and a payload that keeps panicking is forgotten. Nothing
/// escapes into the loop.
pub(crate) fn drop_payload(payload: Box<dyn std::any::Any + Send>) {
    let mut payload = payload;
    for _ in 0..4 {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            // Its `Drop` panicked: drop that panic's own payload next.
            Err(again) => payload = again,
        }
    }
    std::mem::forget(payload);
}

/// The one path for the runtime's own warnings: `log::warn!` when a
/// logger takes them, else a line on stderr (never silently dropped).
pub(crate) fn warn(message: fmt::Arguments<'_>) {
    if log::log_enabled!(log::Level::Warn) {
        log::warn!("{message}");
    } else {
        eprintln!("{message}");
    }
}

fn default_report(report: &ErrorReport<'_>) {
    // The backtrace is there when `RUST_BACKTRACE` asked for one.
    let backtrace = report
        .error
        .as_panic()
        .and_then(|p| p.backtrace())
        .map(|b| format!("\nstack backtrace:\n{b}"))
        .unwrap_or_default();
    if log::log_enabled!(log::Level::Error) {
        log::error!("{report}{backtrace}");
    } else {
        eprintln!("{report}{backtrace}");
    }
}

/// Sets the stack size (bytes) for greenlets spawned on this thread without
/// an explicit [`Builder::stack_size`](crate::Builder::stack_size). Rounded
/// up to at least 16 KiB. Pooled stacks of the old size are unmapped when the
/// loop next waits.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::hub;
///
/// hub::set_default_stack_size(128 * 1024);
/// assert_eq!(hub::default_stack_size(), 128 * 1024);
/// hub::set_default_stack_size(hub::DEFAULT_STACK_SIZE);
/// # });
/// ```
pub fn set_default_stack_size(bytes: usize) {
    let bytes = bytes.max(switch::MIN_STACK_SIZE);
    with_hub(|h| {
        h.config.stack_size = bytes;
        h.reshape_pool();
    });
}

/// The stack size (bytes) new greenlets get on this thread.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// assert!(greenlet::hub::default_stack_size() >= 16 * 1024);
/// # });
/// ```
pub fn default_stack_size() -> usize {
    with_hub(|h| h.config.stack_size)
}

/// Sets how many finished stacks this thread's hub keeps for reuse
/// (default [`DEFAULT_STACK_CACHE_LIMIT`](super::DEFAULT_STACK_CACHE_LIMIT)). Stacks beyond
/// it are unmapped.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// greenlet::hub::set_stack_cache_limit(64);
/// greenlet::hub::set_stack_cache_limit(greenlet::hub::DEFAULT_STACK_CACHE_LIMIT);
/// # });
/// ```
pub fn set_stack_cache_limit(limit: usize) {
    with_hub(|h| {
        h.config.stack_cache_limit = limit;
        h.reshape_pool();
        h.trim_stacks();
    });
}

/// Counters of this thread's hub, for leak checks and monitoring.
///
/// The gauges (`greenlets`, `stacks_*`, `timers`, `fds`, `callbacks`,
/// `stack_bytes`) are the hub's state now; the counters (`switches`,
/// `loop_iterations`, `timers_fired`, `longest_loop_turn`) grow from the
/// start of the hub scope. Keeping them costs one integer increment per
/// switch and per fired timer, and one coarse clock read per loop iteration.
///
/// Heap leak checkers cannot see into greenlet stacks, so tests compare these
/// against a baseline: after everything finished, `greenlets`, `timers`,
/// `fds` and `callbacks` are back to zero and every allocated stack is pooled.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{hub, spawn};
///
/// spawn(|| ()).join().unwrap();
/// let s = hub::stats();
/// assert_eq!(s.greenlets, 0);
/// assert_eq!(s.stacks_allocated, s.stacks_pooled);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Started greenlets that are not dead yet.
    pub greenlets: usize,
    /// Greenlet stacks currently mapped (running, suspended or pooled).
    pub stacks_allocated: usize,
    /// Mapped stacks that are idle, waiting for reuse.
    pub stacks_pooled: usize,
    /// Pending timers (sleeps, timeouts, `start_later`).
    pub timers: usize,
    /// Registered file descriptors: internal ones (signal pipes) and those
    /// a greenlet is waiting on (an idle `greenlet::net` socket counts 0).
    pub fds: usize,
    /// Queued hub callbacks (link notifications, posts).
    pub callbacks: usize,
    /// Switches into greenlets since the hub started (each one a resume of
    /// a greenlet by the loop; the switch back to the loop is not counted
    /// again).
    pub switches: u64,
    /// Loop iterations (batches of ready work followed by timers, posts and
    /// I/O) since the hub started.
    pub loop_iterations: u64,
    /// The longest loop iteration so far, not counting the time spent
    /// waiting for I/O or timers: how long the hub went without looking at
    /// its timers and fds. Measured with the coarse monotonic clock (the
    /// kernel tick, 1–4 ms resolution), so short turns read as zero.
    pub longest_loop_turn: Duration,
    /// Timers that fired (sleeps, timeouts, `start_later`), cancelled ones
    /// not counted.
    pub timers_fired: u64,
    /// Bytes of greenlet stack reserved in memory mappings (running,
    /// suspended and pooled stacks; virtual size, not resident memory).
    pub stack_bytes: usize,
}

impl Stats {
    /// `true` when nothing is running, pending or in use: no live greenlet,
    /// timer, fd or callback, and every stack pooled.
    pub fn is_quiet(&self) -> bool {
        self.greenlets == 0
            && self.timers == 0
            && self.fds == 0
            && self.callbacks == 0
            && self.stacks_allocated == self.stacks_pooled
    }
}

/// This thread's hub counters.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// assert!(greenlet::hub::stats().is_quiet());
/// # });
/// ```
pub fn stats() -> Stats {
    with_hub(|h| Stats {
        greenlets: h.live,
        stacks_allocated: h.stacks.allocated,
        stacks_pooled: h.stacks.idle(),
        timers: h.timers.len(),
        fds: h.reactor.len(),
        callbacks: h.callbacks.len() + usize::from(h.posts_pending()),
        switches: h.counters.switches,
        loop_iterations: h.counters.iterations,
        longest_loop_turn: h.counters.longest_turn(),
        timers_fired: h.counters.timers_fired,
        stack_bytes: h.stack_bytes(),
    })
}

/// Runs `callback` on the hub on a coming loop turn, after what is already
/// queued (gevent's `loop.run_callback`). Callbacks run in the order they
/// were queued, on the hub's own stack: they must not block (a blocking
/// call inside one panics) and a panic inside one is reported through the
/// error handler, like a link's.
///
/// Does not switch.
///
/// # Panics
///
/// Outside a hub scope ([`run`](crate::run)).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// greenlet::hub::run_callback(move || r.set(true));
/// assert!(!ran.get());
/// greenlet::sleep(std::time::Duration::ZERO);
/// assert!(ran.get());
/// # });
/// ```
#[track_caller]
pub fn run_callback(callback: impl FnOnce() + 'static) {
    if !super::local::in_scope() {
        super::no_scope("hub::run_callback");
    }
    let callback: Box<dyn FnOnce()> = Box::new(callback);
    with_hub(|h| h.push_call(callback));
}
