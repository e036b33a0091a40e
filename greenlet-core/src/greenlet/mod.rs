//! `Greenlet<T>`: a green thread with a typed result.
//!
//! # Design
//!
//! A [`Greenlet`] handle is an `Rc` to a shared cell ([`state::Inner`]); it is
//! `!Send`, like everything that belongs to a hub. Creating a greenlet with
//! [`Greenlet::new`] allocates only that cell: no stack is mapped until it is
//! started. Starting takes a stack from the hub's pool (or maps one), loads
//! the body onto it and queues it; the body runs when the hub gets to it.
//!
//! The body runs under a root closure (`Inner::root`) that catches whatever
//! unwinds out of it: a kill or timeout (our private payload) or a panic, and
//! stores the outcome. The hub then marks the greenlet dead, queues its links
//! for the next loop turn and reports errors (everything but `GreenletExit`)
//! through the error handler. Kills are delivered by unwinding from the
//! victim's next switch, so its destructors run; a greenlet killed before it
//! ever ran never runs its body.

mod builder;
mod current;
pub(crate) mod error;
mod options;
mod run;
pub(crate) mod state;
#[allow(unsafe_code)] // the generator glue: see the module docs
pub(crate) mod switch;

use std::fmt;
use std::ops::Deref;
use std::rc::Rc;
use std::time::Duration;

pub use builder::{Builder, spawn, spawn_later, spawn_raw};
pub(crate) use current::main_ref;
pub use current::{AnyGreenlet, GreenletRef, Killable, getcurrent, kill};
pub use options::{KillOptions, WaitOptions};
pub use run::Run;
pub use state::LinkId;

use crate::hub::{self, TimerGuard};
use error::{Elapsed, GreenletError, KillError, WaitError};
use state::{Life, Link, Outcome, Shared};

/// The bound of [`Greenlet::get`], which returns a clone of the value.
///
/// Implemented for every `Clone` type; for others, [`Greenlet::take`] moves
/// the value out instead.
#[diagnostic::on_unimplemented(
    message = "`Greenlet::get` returns a clone of the value, and `{Self}` is not `Clone`: \
               use `Greenlet::take()` to move it out",
    label = "not `Clone`",
    note = "use `Greenlet::take()` (or `into_result()`) to move the value out instead"
)]
pub trait CloneValue: Clone {}

// Report the missing `CloneValue` (with the hint above), not the inner
// `Clone` obligation (whose rustc hint, `(&g).get()`, is wrong here).
#[diagnostic::do_not_recommend]
impl<T: Clone> CloneValue for T {}

/// A green thread producing a `T`: gevent's `Greenlet`.
///
/// `D` is the [`Run`] struct for greenlets made from one (`()` otherwise);
/// the handle dereferences to it. Cloning the handle is cheap and shares the
/// greenlet. Handles are `!Send`: a greenlet belongs to its thread's hub
/// (the compiler's "`Rc<…>` cannot be sent between threads safely …
/// required because it appears within the type `Greenlet<…>`" points here).
/// To act on a greenlet from another thread, post a closure to its hub with
/// [`HubHandle::post`](crate::hub::HubHandle::post) (get the handle with
/// [`hub::handle`](crate::hub::handle) on the hub's thread); to use several
/// cores, run one hub per thread.
///
/// ```compile_fail
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// let g = greenlet::spawn(|| 1);
/// std::thread::spawn(move || g.join()); // Greenlet is !Send
/// # });
/// ```
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{Greenlet, sleep};
/// use std::time::Duration;
///
/// let g = Greenlet::new(|| { sleep(Duration::from_millis(1)); 6 * 7 });
/// assert!(!g.is_started());
/// g.start();
/// assert!(g.is_active());
/// assert_eq!(g.get().unwrap(), 42);
/// assert!(g.is_ready() && g.is_successful());
/// # });
/// ```
pub struct Greenlet<T: 'static, D: 'static = ()> {
    pub(crate) inner: Rc<Shared<T, D>>,
}

impl<T, D> Clone for Greenlet<T, D> {
    fn clone(&self) -> Self {
        Greenlet {
            inner: Rc::clone(&self.inner),
        }
    }
}

/// The fields of a [`Run`] struct are readable through the handle.
impl<T: 'static, R: Run> Deref for Greenlet<T, R> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.inner.data
    }
}

impl<T: 'static, D: 'static> Greenlet<T, D> {
    // ------------------------------------------------------------ starting

    /// Schedules the greenlet to run in this loop iteration (gevent's
    /// `start`). Does nothing if it was already started or killed.
    ///
    /// # Panics
    ///
    /// When no stack can be mapped (see [`SpawnError`](crate::SpawnError)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::Greenlet::new(|| 1);
    /// g.start();
    /// g.start(); // no-op
    /// assert_eq!(g.get().unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn start(&self) {
        self.start_inner(None, "Greenlet::start");
    }

    /// Schedules the greenlet to start after `delay` (gevent's
    /// `start_later`). Does nothing if it was already started or killed.
    ///
    /// # Panics
    ///
    /// As [`start`](Greenlet::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::time::Duration;
    /// let g = greenlet::Greenlet::new(|| 1);
    /// g.start_later(Duration::from_millis(1));
    /// assert_eq!(g.get().unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn start_later(&self, delay: Duration) {
        self.start_inner(Some(delay), "Greenlet::start_later");
    }

    #[track_caller]
    fn start_inner(&self, later: Option<Duration>, api: &'static str) {
        if self.inner.header.life.get() != Life::New {
            return;
        }
        let core = self.inner.header.core();
        let body_size = core.body_size();
        let (slot, generation) = match hub::start(
            Some(core),
            None,
            body_size,
            self.inner.header.stack_size(),
            later,
        ) {
            Ok(started) => started,
            Err((e, _)) => panic!("{api}: {e}"),
        };
        self.inner
            .header
            .life
            .set(Life::Started { slot, generation });
        self.inner.header.was_started.set(true);
    }

    // ------------------------------------------------------------ state

    /// The name given with [`Builder::name`].
    pub fn name(&self) -> Option<&str> {
        self.inner.header.name()
    }

    /// `true` once [`start`](Greenlet::start)ed (or spawned), even if it has
    /// finished since. A greenlet killed before it was started was never
    /// started.
    ///
    /// gevent's `started` is `bool(g)` (started *and not dead*): that is
    /// [`is_active`](Greenlet::is_active) here; this one stays `true` after
    /// death, like std's "was it ever spawned".
    pub fn is_started(&self) -> bool {
        self.inner.header.was_started.get()
    }

    /// `true` once the greenlet has finished, whatever the outcome
    /// (gevent's `ready()`).
    #[doc(alias = "ready")]
    #[doc(alias = "is_finished")]
    pub fn is_ready(&self) -> bool {
        self.inner.is_dead()
    }

    /// Same as [`is_ready`](Greenlet::is_ready): dead and will not run again
    /// (gevent's `dead`).
    #[doc(alias = "dead")]
    pub fn is_dead(&self) -> bool {
        self.inner.is_dead()
    }

    /// `true` if it finished without an error (gevent's `successful()`).
    /// Killed with plain `GreenletExit` counts as successful.
    #[doc(alias = "successful")]
    pub fn is_successful(&self) -> bool {
        self.is_ready() && self.inner.is_successful()
    }

    /// `true` while started and not dead: gevent's truthiness (`bool(g)`,
    /// `while g: ...`).
    #[doc(alias = "__bool__")]
    pub fn is_active(&self) -> bool {
        matches!(self.inner.header.life.get(), Life::Started { .. })
    }

    /// `true` when called from inside this greenlet.
    pub fn is_current(&self) -> bool {
        match self.inner.header.life.get() {
            Life::Started { slot, generation } => hub::is_current(slot, generation),
            _ => false,
        }
    }

    /// The value, once finished successfully with one (gevent's `value`).
    pub fn value(&self) -> Option<T>
    where
        T: Clone,
    {
        match &*self.inner.outcome.borrow() {
            Outcome::Value(v) => Some(v.clone()),
            _ => None,
        }
    }

    /// The error it finished with (gevent's `exception`). `None` while it
    /// runs, after success, and after a plain `GreenletExit` kill.
    pub fn exception(&self) -> Option<GreenletError> {
        match &*self.inner.outcome.borrow() {
            Outcome::Error(e) if !e.is_greenlet_exit() => Some(e.clone()),
            _ => None,
        }
    }

    fn result_cloned(&self) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        match &*self.inner.outcome.borrow() {
            Outcome::Value(v) => Ok(v.clone()),
            Outcome::Error(e) => Err(e.clone()),
            Outcome::Taken => Err(GreenletError::ValueTaken),
            Outcome::Pending => unreachable!("result read before the greenlet finished"),
        }
    }

    /// Moves the value out (later reads get [`GreenletError::ValueTaken`]).
    fn result_taken(&self) -> Result<T, GreenletError> {
        let mut outcome = self.inner.outcome.borrow_mut();
        match &*outcome {
            Outcome::Value(_) => match std::mem::replace(&mut *outcome, Outcome::Taken) {
                Outcome::Value(v) => Ok(v),
                _ => unreachable!("matched a value above"),
            },
            Outcome::Error(e) => Err(e.clone()),
            Outcome::Taken => Err(GreenletError::ValueTaken),
            Outcome::Pending => unreachable!("result read before the greenlet finished"),
        }
    }

    // ------------------------------------------------------------ waiting

    /// Waits until dead, or until `timeout` passed (`Err(Elapsed)`).
    #[track_caller]
    fn wait_dead(
        &self,
        operation: &'static str,
        timeout: Option<Duration>,
    ) -> Result<(), WaitError> {
        if self.is_ready() {
            return Ok(());
        }
        if self.is_current() {
            return Err(WaitError::JoinSelf);
        }
        let deadline = timeout.and_then(hub::deadline_after);
        loop {
            let w = hub::current_waker(operation);
            let id = self.inner.add_link(Link::Wake(w));
            let _unlink = UnlinkOnDrop {
                inner: &self.inner,
                id,
            };
            let timer = timeout.map(|_| TimerGuard::wake_at(deadline, true, w));
            let target = match self.inner.header.life.get() {
                Life::Started { slot, generation } => hub::WaitTarget::Join {
                    what: operation,
                    slot,
                    generation,
                },
                _ => hub::WaitTarget::Text(operation),
            };
            hub::park_on(w, target).map_err(WaitError::LoopExit)?;
            if self.is_ready() {
                return Ok(());
            }
            if timer.as_ref().is_some_and(TimerGuard::fired) {
                return Err(WaitError::Elapsed(Elapsed::new(timeout, None)));
            }
        }
    }

    /// Waits until the greenlet finishes (gevent's `join()`). Whatever the
    /// outcome, a finished greenlet is joined: read it with
    /// [`get`](Greenlet::get) or [`exception`](Greenlet::exception).
    ///
    /// # Errors
    ///
    /// [`WaitError::JoinSelf`] when a greenlet joins itself;
    /// [`WaitError::LoopExit`] on the native stack when nothing can ever
    /// finish it.
    ///
    /// # Switches
    ///
    /// Unless it is already finished. If the caller is killed or a
    /// [`Timeout`](crate::Timeout) expires meanwhile, the wait ends by
    /// unwinding and the greenlet keeps running.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait (blocking there would
    /// stall every greenlet).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| ());
    /// g.join().unwrap();
    /// assert!(g.is_ready());
    /// # });
    /// ```
    #[track_caller]
    pub fn join(&self) -> Result<(), WaitError> {
        self.wait_dead("Greenlet::join", None)
    }

    /// Like [`join`](Greenlet::join), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`WaitError::Elapsed`] if it is still running after `timeout`; the
    /// others as [`join`](Greenlet::join).
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Panics
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{spawn, sleep};
    /// use std::time::Duration;
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// assert!(g.join_timeout(Duration::from_millis(5)).is_err());
    /// g.kill().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.wait_dead("Greenlet::join_timeout", Some(timeout))
    }

    /// Waits for the greenlet and returns a clone of its result (gevent's
    /// `get()`). [`take`](Greenlet::take) moves the value out instead, for
    /// values that are not `Clone`.
    ///
    /// # Errors
    ///
    /// How it ended, if it did not return a value ([`GreenletError`]), or why
    /// the wait failed (`LoopExit`, `JoinSelf`, `ValueTaken`).
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Panics
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| 6 * 7);
    /// assert_eq!(g.get().unwrap(), 42);
    /// # });
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<T, GreenletError>
    where
        T: crate::CloneValue,
    {
        self.wait_dead("Greenlet::get", None)?;
        self.result_cloned()
    }

    /// Like [`get`](Greenlet::get), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`GreenletError::Timeout`] if it is still running after `timeout`
    /// (gevent's `get(timeout=…)` raises `Timeout` too; check
    /// [`is_ready`](Greenlet::is_ready) to tell it from a greenlet ended by
    /// its own timeout), or as [`get`](Greenlet::get).
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{spawn, sleep, GreenletError};
    /// use std::time::Duration;
    /// let g = spawn(|| { sleep(Duration::from_secs(60)); 1 });
    /// assert!(matches!(g.get_timeout(Duration::from_millis(5)), Err(GreenletError::Timeout(_))));
    /// assert!(!g.is_ready());
    /// g.kill().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GreenletError>
    where
        T: crate::CloneValue,
    {
        self.wait_dead("Greenlet::get_timeout", Some(timeout))?;
        self.result_cloned()
    }

    /// Waits for the greenlet and moves its value out: [`get`](Greenlet::get)
    /// for values that are not `Clone`. Later reads of the value get
    /// [`GreenletError::ValueTaken`].
    ///
    /// # Errors
    ///
    /// As [`get`](Greenlet::get).
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::GreenletError;
    /// let g = greenlet::spawn(|| std::fs::read("/definitely/missing"));
    /// assert!(g.take().unwrap().is_err()); // an io::Result, which is not Clone
    /// assert!(matches!(g.take(), Err(GreenletError::ValueTaken)));
    /// # });
    /// ```
    #[track_caller]
    pub fn take(&self) -> Result<T, GreenletError> {
        self.wait_dead("Greenlet::take", None)?;
        self.result_taken()
    }

    /// For a body returning `Result<U, E>`: waits and returns a clone of it
    /// with the greenlet's own failure (kill, panic, wait error) converted
    /// into `E`, so `g.get_flat()?` reads like a plain call.
    ///
    /// # Errors
    ///
    /// The body's `Err(e)`, or the [`GreenletError`] converted into `E`.
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::GreenletError;
    /// #[derive(Debug, Clone)]
    /// enum FetchError { Http(u16), Greenlet(GreenletError) }
    /// impl From<GreenletError> for FetchError {
    ///     fn from(e: GreenletError) -> Self { FetchError::Greenlet(e) }
    /// }
    /// let g = greenlet::spawn(|| -> Result<usize, FetchError> { Err(FetchError::Http(404)) });
    /// assert!(matches!(g.get_flat(), Err(FetchError::Http(404))));
    /// # });
    /// ```
    #[track_caller]
    pub fn get_flat<U, E>(&self) -> Result<U, E>
    where
        T: crate::CloneValue + Into<Result<U, E>>,
        E: From<GreenletError>,
    {
        self.get().map_err(E::from)?.into()
    }

    /// [`get_flat`](Greenlet::get_flat) without `Clone`: moves the value out
    /// like [`take`](Greenlet::take).
    ///
    /// # Errors
    ///
    /// As [`get_flat`](Greenlet::get_flat).
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| std::fs::read("/definitely/missing"));
    /// let r: std::io::Result<Vec<u8>> = g.take_flat();
    /// assert!(r.is_err());
    /// # });
    /// ```
    #[track_caller]
    pub fn take_flat<U, E>(&self) -> Result<U, E>
    where
        T: Into<Result<U, E>>,
        E: From<GreenletError>,
    {
        self.take().map_err(E::from)?.into()
    }

    /// The result without waiting: `None` while it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| 1);
    /// assert!(g.try_get().is_none());
    /// g.join().unwrap();
    /// assert_eq!(g.try_get().unwrap().unwrap(), 1);
    /// # });
    /// ```
    pub fn try_get(&self) -> Option<Result<T, GreenletError>>
    where
        T: crate::CloneValue,
    {
        self.is_ready().then(|| self.result_cloned())
    }

    /// Waits for the greenlet and returns its result, consuming this handle.
    ///
    /// # Errors
    ///
    /// As [`take`](Greenlet::take).
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| String::from("owned"));
    /// assert_eq!(g.into_result().unwrap(), "owned");
    /// # });
    /// ```
    #[track_caller]
    pub fn into_result(self) -> Result<T, GreenletError> {
        self.take()
    }

    // ------------------------------------------------------------ killing

    /// Kills the greenlet with `GreenletExit` and waits until it is dead
    /// (gevent's `kill()`). The kill is delivered by unwinding at its next
    /// switch, so its destructors run. A greenlet that has not run yet is
    /// dead at once and never runs. [`kill_with_options`](Greenlet::kill_with_options)
    /// has every variant gevent's keyword arguments give.
    ///
    /// # Errors
    ///
    /// As [`join`](Greenlet::join) (`LoopExit` when the victim swallows the
    /// kill and then blocks forever).
    ///
    /// # Switches
    ///
    /// Until it is dead, unless it already is or never ran. Killing the
    /// current greenlet unwinds it at once (the call never returns).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait (use
    /// [`kill_nowait`](Greenlet::kill_nowait) there).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{spawn, sleep};
    /// use std::time::Duration;
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// sleep(Duration::ZERO);
    /// g.kill().unwrap();
    /// assert!(g.is_ready() && g.is_successful());
    /// # });
    /// ```
    #[track_caller]
    #[doc(alias = "abort")]
    pub fn kill(&self) -> Result<(), WaitError> {
        self.kill_with_options(KillOptions::new())
    }

    /// Kills the greenlet with a user error and waits until it is dead
    /// (gevent's `kill(exception=…)`). It ends unsuccessfully with
    /// `GreenletError::Killed(KillError::Error(…))`, which is reported.
    ///
    /// # Errors
    ///
    /// As [`kill`](Greenlet::kill).
    ///
    /// # Switches
    ///
    /// As [`kill`](Greenlet::kill).
    ///
    /// # Panics
    ///
    /// As [`kill`](Greenlet::kill).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{spawn, sleep, hub};
    /// use std::time::Duration;
    /// hub::set_error_handler(|_| ()); // keep the doc test quiet
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// sleep(Duration::ZERO);
    /// g.kill_with(std::io::Error::other("shutdown")).unwrap();
    /// assert!(!g.is_successful());
    /// # });
    /// ```
    #[track_caller]
    pub fn kill_with<E>(&self, error: E) -> Result<(), WaitError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.kill_with_options(KillOptions::new().error(error))
    }

    /// Kills with `GreenletExit` without waiting (gevent's
    /// `kill(block=False)`): the greenlet dies when it next runs. Never
    /// switches.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| unreachable!("never runs"));
    /// g.kill_nowait();
    /// assert!(g.is_ready()); // it never ran, so it is dead at once
    /// # });
    /// ```
    pub fn kill_nowait(&self) {
        self.inner.kill_nowait(KillError::GreenletExit);
    }

    /// Like [`kill_nowait`](Greenlet::kill_nowait) with any [`KillError`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::KillError;
    /// let g = greenlet::spawn(|| ());
    /// g.kill_nowait_with(KillError::GreenletExit);
    /// # });
    /// ```
    pub fn kill_nowait_with(&self, error: KillError) {
        self.inner.kill_nowait(error);
    }

    /// Kills with `GreenletExit` and waits at most `timeout` for it to die
    /// (gevent's `kill(timeout=…)`).
    ///
    /// # Errors
    ///
    /// [`WaitError::Elapsed`] if it is still alive after `timeout` (its
    /// destructors block, or it swallowed the unwind); the others as
    /// [`kill`](Greenlet::kill).
    ///
    /// # Switches
    ///
    /// As [`kill`](Greenlet::kill).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{spawn, sleep};
    /// use std::time::Duration;
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// sleep(Duration::ZERO);
    /// g.kill_timeout(Duration::from_millis(50)).unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn kill_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.kill_with_options(KillOptions::new().timeout(timeout))
    }

    /// Kills with every option gevent's `kill(exception, block, timeout)`
    /// has, read by name: see [`KillOptions`].
    ///
    /// # Errors
    ///
    /// As [`kill_timeout`](Greenlet::kill_timeout) (never when not blocking).
    ///
    /// # Switches
    ///
    /// When blocking, as [`kill`](Greenlet::kill); never otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{hub, spawn, sleep, KillOptions};
    /// use std::time::Duration;
    /// hub::set_error_handler(|_| ());
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// sleep(Duration::ZERO);
    /// let shutdown = std::io::Error::other("shutdown");
    /// g.kill_with_options(KillOptions::new().error(shutdown).timeout(Duration::from_secs(1)))
    ///     .unwrap();
    /// assert!(!g.is_successful());
    /// # });
    /// ```
    #[track_caller]
    pub fn kill_with_options(&self, options: KillOptions) -> Result<(), WaitError> {
        let KillOptions {
            error,
            block,
            timeout,
        } = options;
        let was_current = self.is_current();
        self.inner.kill_nowait(error);
        if self.is_ready() || !block {
            return Ok(());
        }
        if was_current {
            // Unwinds now (unless this greenlet is already unwinding: then
            // the kill waits in its queue until that ends).
            hub::raise_pending_throw();
            return Ok(());
        }
        self.wait_dead("Greenlet::kill", timeout)
    }

    // ------------------------------------------------------------ links

    /// Calls `callback` with this greenlet once it is dead, whatever the
    /// outcome (gevent's `link`). Links fire exactly once, in the order
    /// added, on the loop turn after the greenlet dies, even if added after
    /// it died. They run on the hub and must not block (spawn a greenlet for
    /// that); a panicking link is reported and the others still run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// let fired = Rc::new(Cell::new(0));
    /// let f = fired.clone();
    /// let g = greenlet::spawn(|| 1);
    /// g.link(move |g| { assert!(g.is_ready()); f.set(f.get() + 1) });
    /// g.join().unwrap();
    /// assert_eq!(fired.get(), 1);
    /// # });
    /// ```
    pub fn link(&self, callback: impl FnOnce(&Greenlet<T, D>) + 'static) -> LinkId {
        self.inner.add_link(Link::Any(Box::new(callback)))
    }

    /// Like [`link`](Greenlet::link), fired only if the greenlet succeeded
    /// (gevent's `link_value`): it returned a value, or it was killed with
    /// plain `GreenletExit` (which gevent counts as success; then
    /// [`value`](Greenlet::value) is `None`). The callback gets the greenlet,
    /// as in gevent.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// let seen = Rc::new(Cell::new(0));
    /// let s = seen.clone();
    /// let g = greenlet::spawn(|| 5);
    /// g.link_value(move |g| s.set(g.value().unwrap()));
    /// g.join().unwrap();
    /// greenlet::sleep(std::time::Duration::ZERO); // links run on the next turn
    /// assert_eq!(seen.get(), 5);
    /// # });
    /// ```
    pub fn link_value(&self, callback: impl FnOnce(&Greenlet<T, D>) + 'static) -> LinkId {
        self.inner.add_link(Link::Value(Box::new(callback)))
    }

    /// Like [`link`](Greenlet::link), fired only if the greenlet failed
    /// (gevent's `link_exception`: anything but a value or `GreenletExit`).
    /// The callback gets the greenlet; read the error with
    /// [`exception`](Greenlet::exception).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::hub;
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// hub::set_error_handler(|_| ());
    /// let seen = Rc::new(RefCell::new(String::new()));
    /// let s = seen.clone();
    /// let g = greenlet::spawn(|| -> u8 { panic!("bad") });
    /// g.link_exception(move |g| *s.borrow_mut() = g.exception().unwrap().to_string());
    /// g.join().unwrap();
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// assert!(seen.borrow().contains("bad"));
    /// # });
    /// ```
    pub fn link_exception(&self, callback: impl FnOnce(&Greenlet<T, D>) + 'static) -> LinkId {
        self.inner.add_link(Link::Exception(Box::new(callback)))
    }

    /// Registers a plain callback run on the hub when the greenlet dies
    /// (gevent's `rawlink`; the waiter protocol of [`Waitable`](crate::Waitable)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| ());
    /// g.rawlink(|| println!("dead"));
    /// g.join().unwrap();
    /// # });
    /// ```
    pub fn rawlink(&self, callback: impl FnOnce() + 'static) -> LinkId {
        self.inner.add_link(Link::Raw(Box::new(callback)))
    }

    /// `true` while any callback or waiter is registered and has not fired
    /// yet (gevent's `has_links()`): links of every kind, and the
    /// registrations of a blocked `join`, `get`, [`wait`](crate::wait) or
    /// [`iwait`](crate::iwait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| 1);
    /// assert!(!g.has_links());
    /// let id = g.link(|_| ());
    /// assert!(g.has_links());
    /// g.unlink(id);
    /// assert!(!g.has_links());
    /// # });
    /// ```
    pub fn has_links(&self) -> bool {
        self.inner
            .links
            .borrow()
            .iter()
            .any(|(_, link)| link.is_some())
    }

    /// Removes a link that has not fired yet; `true` if it was still there.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| ());
    /// let id = g.rawlink(|| unreachable!());
    /// assert!(g.unlink(id));
    /// assert!(!g.unlink(id));
    /// g.join().unwrap();
    /// # });
    /// ```
    pub fn unlink(&self, id: LinkId) -> bool {
        self.inner.remove_link(id)
    }
}

struct UnlinkOnDrop<'a, T: 'static, D: 'static> {
    inner: &'a Shared<T, D>,
    id: LinkId,
}

impl<T, D> Drop for UnlinkOnDrop<'_, T, D> {
    fn drop(&mut self) {
        self.inner.remove_link(self.id);
    }
}

impl<T, D> fmt::Display for Greenlet<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_display(f, hub::current_slot())
    }
}

impl<T, D> fmt::Debug for Greenlet<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_display(f, hub::current_slot())
    }
}

impl<T, D> PartialEq for Greenlet<T, D> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<T, D> Eq for Greenlet<T, D> {}
