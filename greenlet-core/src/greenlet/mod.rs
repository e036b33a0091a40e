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
mod run;
pub(crate) mod state;
#[allow(unsafe_code)] // the generator glue: see the module docs
pub(crate) mod switch;

use std::fmt;
use std::ops::Deref;
use std::rc::Rc;
use std::time::Duration;

pub use builder::{Builder, spawn, spawn_later, spawn_raw};
pub use current::{AnyGreenlet, GreenletRef, getcurrent, kill};
pub use run::Run;
pub use state::LinkId;

use crate::hub::{self, TimerGuard};
use error::{Elapsed, GreenletError, KillError, LoopExit};
use state::{Life, Link, Outcome, Shared};

/// A green thread producing a `T`: gevent's `Greenlet`.
///
/// `D` is the [`Run`] struct for greenlets made from one (`()` otherwise);
/// the handle dereferences to it. Cloning the handle is cheap and shares the
/// greenlet. Handles are `!Send`: a greenlet belongs to its thread's hub.
///
/// ```compile_fail
/// let g = greenlet_core::spawn(|| 1);
/// std::thread::spawn(move || g.join()); // Greenlet is !Send
/// ```
///
/// # Examples
///
/// ```
/// use greenlet_core::{Greenlet, sleep};
/// use std::time::Duration;
///
/// let g = Greenlet::new(|| { sleep(Duration::from_millis(1)); 6 * 7 });
/// assert!(!g.is_started());
/// g.start();
/// assert!(g.is_active());
/// assert_eq!(g.get().unwrap(), 42);
/// assert!(g.is_ready() && g.is_successful());
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
    /// let g = greenlet_core::Greenlet::new(|| 1);
    /// g.start();
    /// g.start(); // no-op
    /// assert_eq!(g.get().unwrap(), 1);
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
    /// use std::time::Duration;
    /// let g = greenlet_core::Greenlet::new(|| 1);
    /// g.start_later(Duration::from_millis(1));
    /// assert_eq!(g.get().unwrap(), 1);
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
        let slot = match hub::start(
            Some(self.inner.header.core()),
            None,
            self.inner.header.stack_size(),
            later,
        ) {
            Ok(slot) => slot,
            Err((e, _)) => panic!("{api}: {e}"),
        };
        self.inner.header.life.set(Life::Started { slot });
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
    #[doc(alias = "started")]
    pub fn is_started(&self) -> bool {
        self.inner.header.was_started.get()
    }

    /// `true` once the greenlet has finished, whatever the outcome
    /// (gevent's `ready()`).
    #[doc(alias = "ready")]
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
        self.is_ready()
            && match &*self.inner.outcome.borrow() {
                Outcome::Value(_) | Outcome::Taken => true,
                Outcome::Error(e) => e.is_greenlet_exit(),
                Outcome::Pending => false,
            }
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
            Life::Started { slot } => hub::current_slot() == slot,
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
            Outcome::Taken => {
                panic!("Greenlet::get: the value was moved out by Greenlet::into_result")
            }
            Outcome::Pending => unreachable!("result read before the greenlet finished"),
        }
    }

    fn self_wait_error(&self, operation: &'static str) -> LoopExit {
        LoopExit::new(
            operation,
            vec![format!("{} would wait for itself", self.inner.describe())],
        )
    }

    // ------------------------------------------------------------ waiting

    /// Parks the caller until the greenlet is dead or `timeout` passes
    /// (a link wakes it; spurious wake-ups just loop).
    fn wait_dead(
        &self,
        operation: &'static str,
        timeout: Option<Duration>,
    ) -> Result<(), LoopExit> {
        if self.is_ready() {
            return Ok(());
        }
        if self.is_current() {
            return Err(self.self_wait_error(operation));
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
            hub::park(w, operation)?;
            if self.is_ready() || timer.as_ref().is_some_and(TimerGuard::fired) {
                return Ok(());
            }
        }
    }

    /// Waits until the greenlet finishes (gevent's `join()`).
    ///
    /// # Switches
    ///
    /// Unless it is already finished. If the caller is killed or a
    /// [`Timeout`](crate::Timeout) expires meanwhile, the wait ends by
    /// unwinding and the greenlet keeps running.
    ///
    /// # Panics
    ///
    /// When a greenlet joins itself, inside a hub callback, and on the native
    /// stack when nothing can ever finish it ([`LoopExit`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let g = greenlet_core::spawn(|| ());
    /// g.join();
    /// assert!(g.is_ready());
    /// ```
    #[track_caller]
    pub fn join(&self) {
        if let Err(e) = self.wait_dead("Greenlet::join", None) {
            panic!("{e}");
        }
    }

    /// Waits at most `timeout`; `true` if the greenlet finished.
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
    /// use greenlet_core::{spawn, sleep};
    /// use std::time::Duration;
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// assert!(!g.join_timeout(Duration::from_millis(5)));
    /// g.kill();
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        if let Err(e) = self.wait_dead("Greenlet::join_timeout", Some(timeout)) {
            panic!("{e}");
        }
        self.is_ready()
    }

    /// Waits for the greenlet and returns its result (gevent's `get()`).
    ///
    /// # Errors
    ///
    /// The greenlet's [`GreenletError`]; `GreenletError::LoopExit` when a
    /// greenlet waits for itself or the native stack would wait forever.
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback; if [`into_result`](Greenlet::into_result)
    /// already moved the value out.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = greenlet_core::spawn(|| vec![1, 2]);
    /// assert_eq!(g.get().unwrap(), [1, 2]);
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        self.wait_dead("Greenlet::get", None)
            .map_err(GreenletError::LoopExit)?;
        self.result_cloned()
    }

    /// Like [`get`](Greenlet::get), giving up after `timeout`
    /// (gevent's `get(timeout=…)`).
    ///
    /// # Errors
    ///
    /// `Err(Elapsed)` if it did not finish in time (it keeps running);
    /// `Ok(Err(…))` if it finished with an error.
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Panics
    ///
    /// As [`get`](Greenlet::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenlet_core::{spawn, sleep};
    /// use std::time::Duration;
    /// let g = spawn(|| { sleep(Duration::from_secs(60)); 1 });
    /// assert!(g.get_timeout(Duration::from_millis(5)).is_err());
    /// g.kill();
    /// ```
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<Result<T, GreenletError>, Elapsed>
    where
        T: Clone,
    {
        if let Err(e) = self.wait_dead("Greenlet::get_timeout", Some(timeout)) {
            return Ok(Err(GreenletError::LoopExit(e)));
        }
        if self.is_ready() {
            Ok(self.result_cloned())
        } else {
            Err(Elapsed::new(Some(timeout), None))
        }
    }

    /// The result if finished, `None` if still running; never switches
    /// (gevent's `get(block=False)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let g = greenlet_core::spawn(|| 1);
    /// assert!(g.try_get().is_none());
    /// g.join();
    /// assert_eq!(g.try_get().unwrap().unwrap(), 1);
    /// ```
    pub fn try_get(&self) -> Option<Result<T, GreenletError>>
    where
        T: Clone,
    {
        self.is_ready().then(|| self.result_cloned())
    }

    /// Waits for the greenlet and moves its value out: [`get`](Greenlet::get)
    /// for types that are not `Clone`. Other handles then see the value as
    /// taken ([`value`](Greenlet::value) is `None`, `get` panics).
    ///
    /// # Errors
    ///
    /// As [`get`](Greenlet::get).
    ///
    /// # Switches
    ///
    /// As [`join`](Greenlet::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback, or if another handle already took the value.
    ///
    /// # Examples
    ///
    /// ```
    /// struct NotClone(u8);
    /// let g = greenlet_core::spawn(|| NotClone(9));
    /// assert_eq!(g.into_result().unwrap().0, 9);
    /// ```
    #[track_caller]
    pub fn into_result(self) -> Result<T, GreenletError> {
        self.wait_dead("Greenlet::into_result", None)
            .map_err(GreenletError::LoopExit)?;
        let taken = std::mem::replace(&mut *self.inner.outcome.borrow_mut(), Outcome::Taken);
        match taken {
            Outcome::Value(v) => Ok(v),
            Outcome::Error(e) => {
                *self.inner.outcome.borrow_mut() = Outcome::Error(e.clone());
                Err(e)
            }
            Outcome::Taken => panic!("Greenlet::into_result: the value was already moved out"),
            Outcome::Pending => unreachable!("result read before the greenlet finished"),
        }
    }

    // ------------------------------------------------------------ killing

    /// Kills the greenlet with `GreenletExit` and waits until it is dead
    /// (gevent's `kill()`).
    ///
    /// The kill is delivered by unwinding from the switch the greenlet is
    /// blocked in, so its destructors run. A greenlet that never ran never
    /// runs its body: it is dead at once (successful) and its links fire on
    /// the next loop turn. Killing a dead greenlet does nothing; killing the
    /// current greenlet unwinds at this call.
    ///
    /// # Switches
    ///
    /// Until the greenlet is dead, unless it already is or never ran.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait (use
    /// [`kill_nowait`](Greenlet::kill_nowait) there), and on the native
    /// stack if the victim blocks forever after swallowing the kill.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenlet_core::{spawn, sleep};
    /// use std::time::Duration;
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// sleep(Duration::ZERO);
    /// g.kill();
    /// assert!(g.is_ready() && g.is_successful());
    /// ```
    #[track_caller]
    pub fn kill(&self) {
        self.kill_inner(KillError::GreenletExit, true, None)
            .expect("a kill without a timeout cannot time out");
    }

    /// Kills the greenlet with a user error and waits until it is dead
    /// (gevent's `kill(exception=…)`). The greenlet ends unsuccessfully with
    /// `GreenletError::Killed(KillError::Error(…))`, which is reported.
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
    /// use greenlet_core::{spawn, sleep, hub};
    /// use std::time::Duration;
    /// hub::set_error_handler(|_| ()); // keep the doc test quiet
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// sleep(Duration::ZERO);
    /// g.kill_with(std::io::Error::other("shutdown"));
    /// assert!(!g.is_successful());
    /// hub::reset_error_handler();
    /// ```
    #[track_caller]
    pub fn kill_with<E>(&self, error: E)
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.kill_inner(KillError::new(error), true, None)
            .expect("a kill without a timeout cannot time out");
    }

    /// Kills with `GreenletExit` without waiting (gevent's
    /// `kill(block=False)`): the greenlet dies when it next runs. Never
    /// switches.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = greenlet_core::spawn(|| unreachable!("never runs"));
    /// g.kill_nowait();
    /// assert!(g.is_ready()); // it never ran, so it is dead at once
    /// ```
    pub fn kill_nowait(&self) {
        self.inner.kill_nowait(KillError::GreenletExit);
    }

    /// Like [`kill_nowait`](Greenlet::kill_nowait) with any [`KillError`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenlet_core::KillError;
    /// let g = greenlet_core::spawn(|| ());
    /// g.kill_nowait_with(KillError::GreenletExit);
    /// ```
    pub fn kill_nowait_with(&self, error: KillError) {
        self.inner.kill_nowait(error);
    }

    /// Kills with `GreenletExit` and waits at most `timeout` for it to die
    /// (gevent's `kill(timeout=…)`).
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if it is still alive after `timeout` (it swallowed the
    /// unwind, or its destructors block).
    ///
    /// # Switches
    ///
    /// As [`kill`](Greenlet::kill).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenlet_core::{spawn, sleep};
    /// use std::time::Duration;
    /// let g = spawn(|| sleep(Duration::from_secs(60)));
    /// sleep(Duration::ZERO);
    /// g.kill_timeout(Duration::from_millis(50)).unwrap();
    /// ```
    #[track_caller]
    pub fn kill_timeout(&self, timeout: Duration) -> Result<(), Elapsed> {
        self.kill_inner(KillError::GreenletExit, true, Some(timeout))
    }

    #[track_caller]
    fn kill_inner(
        &self,
        error: KillError,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<(), Elapsed> {
        let was_current = self.is_current();
        self.inner.kill_nowait(error);
        if self.is_ready() || !block {
            return Ok(());
        }
        if was_current {
            hub::raise_pending_throw();
            return Ok(());
        }
        match self.wait_dead("Greenlet::kill", timeout) {
            Ok(()) if self.is_ready() => Ok(()),
            Ok(()) => Err(Elapsed::new(timeout, None)),
            Err(e) => panic!("{e}"),
        }
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
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// let fired = Rc::new(Cell::new(0));
    /// let f = fired.clone();
    /// let g = greenlet_core::spawn(|| 1);
    /// g.link(move |g| { assert!(g.is_ready()); f.set(f.get() + 1) });
    /// g.join();
    /// assert_eq!(fired.get(), 1);
    /// ```
    pub fn link(&self, callback: impl FnOnce(&Greenlet<T, D>) + 'static) -> LinkId {
        self.inner.add_link(Link::Any(Box::new(callback)))
    }

    /// Like [`link`](Greenlet::link), called with the value only if the
    /// greenlet returned one (gevent's `link_value`). A greenlet killed with
    /// `GreenletExit` is successful but has no value: this link does not fire.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = greenlet_core::spawn(|| 5);
    /// g.link_value(|v| assert_eq!(*v, 5));
    /// g.join();
    /// ```
    pub fn link_value(&self, callback: impl FnOnce(&T) + 'static) -> LinkId {
        self.inner.add_link(Link::Value(Box::new(callback)))
    }

    /// Like [`link`](Greenlet::link), called with the error only if the
    /// greenlet failed (gevent's `link_exception`; not for `GreenletExit`).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenlet_core::hub;
    /// hub::set_error_handler(|_| ());
    /// let g = greenlet_core::spawn(|| -> u8 { panic!("bad") });
    /// g.link_exception(|e| assert!(e.to_string().contains("bad")));
    /// g.join();
    /// hub::reset_error_handler();
    /// ```
    pub fn link_exception(&self, callback: impl FnOnce(&GreenletError) + 'static) -> LinkId {
        self.inner.add_link(Link::Exception(Box::new(callback)))
    }

    /// Registers a plain callback run on the hub when the greenlet dies
    /// (gevent's `rawlink`; the waiter protocol of [`Waitable`](crate::Waitable)).
    ///
    /// # Examples
    ///
    /// ```
    /// let g = greenlet_core::spawn(|| ());
    /// g.rawlink(|| println!("dead"));
    /// g.join();
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
        self.inner.links.borrow().iter().any(|(_, link)| link.is_some())
    }

    /// Removes a link that has not fired yet; `true` if it was still there.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = greenlet_core::spawn(|| ());
    /// let id = g.rawlink(|| unreachable!());
    /// assert!(g.unlink(id));
    /// assert!(!g.unlink(id));
    /// g.join();
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
