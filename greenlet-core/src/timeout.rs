//! `Timeout`: interrupt whatever the current greenlet is blocked in after a
//! deadline, by unwinding (gevent's `gevent.Timeout`), and the scoped forms
//! [`with_timeout`] / [`Timeout::run`].
//!
//! # Design
//!
//! A started `Timeout` is one hub timer whose action throws into the greenlet
//! that started it. The throw is delivered like a kill: the greenlet unwinds
//! from the switch it is blocked in, so destructors run. The unwind carries
//! the timeout's id; a scope ([`Timeout::scope`], [`with_timeout`]) catches
//! only its own id and re-raises any other payload, so nested timeouts land
//! at the right scope ("not my timeout"). An expiry that no scope catches
//! ends the greenlet with [`GreenletError::Timeout`](crate::GreenletError::Timeout).
//!
//! A timeout only fires when the loop runs: code that never switches is
//! never interrupted, and a zero timeout fires at the first switch.

use std::cell::Cell;
use std::error::Error;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::greenlet::error::{Elapsed, InvalidDuration};
use crate::hub::{self, Throw, TimerId, Unwind};

/// Interrupts the current greenlet after a deadline, by unwinding from
/// whatever it is blocked in (gevent's `Timeout`).
///
/// A `Timeout` does nothing until [`start`](Timeout::start)ed; it is
/// cancelled when dropped, so the guard style is safe:
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{sleep, Timeout};
/// use std::time::Duration;
///
/// let outcome = Timeout::new(Duration::from_millis(10)).scope(|| {
///     sleep(Duration::from_secs(10)); // interrupted after 10 ms
/// });
/// assert!(outcome.is_err());
/// # });
/// ```
///
/// A started timeout that expires outside any scope ends the greenlet with
/// `GreenletError::Timeout` (on the native stack it unwinds out of the
/// blocking call, like an uncaught exception).
pub struct Timeout {
    id: u64,
    duration: Option<Duration>,
    error: Option<Arc<dyn Error + Send + Sync>>,
    referenced: bool,
    timer: Cell<Option<TimerId>>,
    target: Cell<u32>,
    _not_send: PhantomData<Rc<()>>,
}

impl Timeout {
    /// A timeout of `duration`, not started yet. `Duration::MAX` (or any
    /// duration whose deadline overflows) never expires.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let t = greenlet::Timeout::new(std::time::Duration::from_secs(1));
    /// assert!(!t.pending());
    /// # });
    /// ```
    #[must_use = "a Timeout does nothing until started, and dropping it cancels it"]
    pub fn new(duration: Duration) -> Timeout {
        Timeout {
            id: hub::next_timeout_id(),
            duration: Some(duration),
            error: None,
            referenced: true,
            timer: Cell::new(None),
            target: Cell::new(hub::MAIN),
            _not_send: PhantomData,
        }
    }

    /// A timeout that never expires (gevent's `Timeout(None)`): convenient
    /// for functions taking an optional timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let t = greenlet::Timeout::never();
    /// t.start().unwrap();
    /// assert!(!t.pending());
    /// # });
    /// ```
    #[must_use = "a Timeout does nothing until started, and dropping it cancels it"]
    pub fn never() -> Timeout {
        let mut t = Timeout::new(Duration::ZERO);
        t.duration = None;
        t
    }

    /// A timeout from seconds, the gevent way: negative means zero (expire at
    /// the first switch), +∞ means never.
    ///
    /// # Errors
    ///
    /// [`InvalidDuration`] for NaN.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::Timeout;
    /// assert!(Timeout::from_secs_f64(f64::NAN).is_err());
    /// assert_eq!(Timeout::from_secs_f64(f64::INFINITY).unwrap().duration(), None);
    /// # });
    /// ```
    pub fn from_secs_f64(seconds: f64) -> Result<Timeout, InvalidDuration> {
        Ok(match crate::duration_from_secs_f64(seconds)? {
            Some(d) => Timeout::new(d),
            None => Timeout::never(),
        })
    }

    /// A timeout that carries `error` (gevent's `Timeout(seconds, exception)`):
    /// [`Elapsed::error`] returns it, and a greenlet ended by it reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{sleep, Timeout};
    /// use std::time::Duration;
    ///
    /// let t = Timeout::with_error(Duration::from_millis(1), std::io::Error::other("too slow"));
    /// let e = t.scope(|| sleep(Duration::from_secs(1))).unwrap_err();
    /// assert_eq!(e.error().unwrap().to_string(), "too slow");
    /// # });
    /// ```
    #[must_use = "a Timeout does nothing until started, and dropping it cancels it"]
    pub fn with_error<E>(duration: Duration, error: E) -> Timeout
    where
        E: Error + Send + Sync + 'static,
    {
        let mut t = Timeout::new(duration);
        t.error = Some(Arc::new(error));
        t
    }

    /// Makes the timer unreferenced (gevent's `ref=False`): it does not keep
    /// the hub alive by itself.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let t = greenlet::Timeout::new(std::time::Duration::from_secs(1)).unref();
    /// # drop(t);
    /// # });
    /// ```
    #[must_use = "a Timeout does nothing until started, and dropping it cancels it"]
    pub fn unref(mut self) -> Timeout {
        self.referenced = false;
        self
    }

    /// The duration; `None` for a timeout that never expires.
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// Arms the timeout against the current greenlet (or the native stack).
    /// Does nothing for a timeout that never expires.
    ///
    /// # Errors
    ///
    /// [`AlreadyPending`](crate::AlreadyPending) if it is already pending
    /// (gevent raises too: cancel it first); nothing changes.
    ///
    /// # Panics
    ///
    /// When called inside a hub callback, which has no greenlet to
    /// interrupt.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let t = greenlet::Timeout::new(std::time::Duration::from_secs(5));
    /// t.start().unwrap();
    /// assert!(t.pending());
    /// t.cancel();
    /// assert!(!t.pending());
    /// # });
    /// ```
    #[track_caller]
    pub fn start(&self) -> Result<(), crate::AlreadyPending> {
        if !hub::in_scope() {
            hub::no_scope("Timeout::start");
        }
        if self.pending() {
            return Err(crate::AlreadyPending);
        }
        let Some(duration) = self.duration else {
            return Ok(());
        };
        let slot = hub::current_slot();
        assert!(
            slot != hub::LOOP,
            "Timeout::start: cannot start a timeout inside a hub callback (nothing to interrupt)"
        );
        let Some(deadline) = hub::deadline_after(duration) else {
            return Ok(()); // beyond what Instant can represent: never expires
        };
        let throw = Throw::Timeout {
            id: self.id,
            elapsed: Elapsed::new(Some(duration), self.error.clone()),
        };
        self.target.set(slot);
        self.timer
            .set(Some(hub::arm_throw(deadline, self.referenced, slot, throw)));
        Ok(())
    }

    /// Creates and starts a timeout (gevent's `Timeout.start_new`).
    ///
    /// # Panics
    ///
    /// As [`start`](Timeout::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let t = greenlet::Timeout::start_new(std::time::Duration::from_secs(5));
    /// assert!(t.pending());
    /// # });
    /// ```
    #[track_caller]
    #[must_use = "dropping the Timeout cancels it at once: bind it, `let _t = Timeout::start_new(…);`"]
    pub fn start_new(duration: Duration) -> Timeout {
        let t = Timeout::new(duration);
        t.start().expect("a new timeout is not pending");
        t
    }

    /// `true` while the timeout is armed and has not expired.
    pub fn pending(&self) -> bool {
        self.timer.get().is_some_and(hub::timer_pending)
    }

    /// Disarms the timeout; it can be started again. Also withdraws an expiry
    /// that fired but was not delivered yet. Does nothing if not pending.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let t = greenlet::Timeout::start_new(std::time::Duration::from_millis(1));
    /// t.cancel();
    /// greenlet::sleep(std::time::Duration::from_millis(3)); // not interrupted
    /// # });
    /// ```
    pub fn cancel(&self) {
        if let Some(id) = self.timer.take()
            && !hub::cancel_timer(id)
        {
            hub::withdraw_timeout_throw(self.target.get(), self.id);
        }
    }

    /// Runs `f` under this timeout: starts it if not pending, cancels it when
    /// `f` returns, and catches its own expiry only. Another timeout's expiry,
    /// a kill or a panic continue unwinding.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if this timeout expired while `f` ran.
    ///
    /// # Switches
    ///
    /// Whenever `f` does.
    ///
    /// # Panics
    ///
    /// As [`start`](Timeout::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{sleep, Timeout};
    /// use std::time::Duration;
    ///
    /// let outer = Timeout::new(Duration::from_millis(50));
    /// let inner = Timeout::new(Duration::from_millis(5));
    /// let r = outer.scope(|| inner.scope(|| sleep(Duration::from_secs(1))));
    /// assert!(matches!(r, Ok(Err(_)))); // the inner one fired, caught by its scope
    /// # });
    /// ```
    #[track_caller]
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
        // Already pending: run under it as it is.
        let _ = self.start();
        let result = catch_unwind(AssertUnwindSafe(f));
        self.cancel();
        match result {
            Ok(value) => Ok(value),
            Err(payload) => match payload.downcast::<Unwind>() {
                Ok(unwind) if matches!(unwind.throw(), Throw::Timeout { id, .. } if *id == self.id) => {
                    match unwind.into_throw() {
                        Throw::Timeout { elapsed, .. } => Err(elapsed),
                        Throw::Kill(_) => unreachable!("matched a timeout above"),
                    }
                }
                // Not ours: keep unwinding with the very same payload.
                Ok(unwind) => resume_unwind(unwind),
                Err(payload) => resume_unwind(payload),
            },
        }
    }

    /// Runs `f` with a fresh timeout of `duration`: [`with_timeout`] as an
    /// associated function.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if the timeout expired first.
    ///
    /// # Switches
    ///
    /// Whenever `f` does.
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
    /// use greenlet::{sleep, Timeout};
    /// use std::time::Duration;
    /// // gevent's `with Timeout(5, False):` - silent on expiry:
    /// let data = Timeout::run(Duration::from_millis(1), || { sleep(Duration::from_secs(1)); 7 }).ok();
    /// assert_eq!(data, None);
    /// # });
    /// ```
    #[track_caller]
    pub fn run<T>(duration: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
        Timeout::new(duration).scope(f)
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.duration {
            Some(d) => write!(f, "Timeout({d:?})"),
            None => f.write_str("Timeout(never)"),
        }
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("duration", &self.duration)
            .field("pending", &self.pending())
            .field("referenced", &self.referenced)
            .field("error", &self.error.as_ref().map(|e| e.to_string()))
            .finish()
    }
}

/// Runs `f`, interrupting it after `duration` (gevent's `with_timeout`).
///
/// Only this call's own expiry is caught; an outer timeout, a kill or a panic
/// keep unwinding.
///
/// # Errors
///
/// [`Elapsed`] if the timeout expired before `f` returned.
///
/// # Switches
///
/// Whenever `f` does; `f` is interrupted at its first switch after the
/// deadline (a zero duration: at its first switch).
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
/// use greenlet::{spawn, with_timeout};
/// use std::time::Duration;
///
/// let g = spawn(|| 3);
/// assert_eq!(with_timeout(Duration::from_secs(1), || g.get().unwrap()).unwrap(), 3);
/// # });
/// ```
#[track_caller]
pub fn with_timeout<T>(duration: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    Timeout::new(duration).scope(f)
}

/// Like [`with_timeout`], returning `timeout_value` on expiry (gevent's
/// `with_timeout(…, timeout_value=…)`).
///
/// # Switches
///
/// As [`with_timeout`].
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
/// use greenlet::{sleep, with_timeout_value};
/// use std::time::Duration;
///
/// let v = with_timeout_value(Duration::from_millis(1), -1, || { sleep(Duration::from_secs(1)); 1 });
/// assert_eq!(v, -1);
/// # });
/// ```
#[track_caller]
pub fn with_timeout_value<T>(duration: Duration, timeout_value: T, f: impl FnOnce() -> T) -> T {
    with_timeout(duration, f).unwrap_or(timeout_value)
}
