//! Events: gevent's `gevent.event` module. [`Event`] is a flag greenlets
//! wait on; [`AsyncResult`] carries one value (or error) to waiters.
//!
//! Both are built on the [waiter protocol](crate::waiter): waiters block in
//! a [`WaitQueue`] and a `set` hands each current waiter its wake-up, so
//! they wake in FIFO order, a `set` followed by a `clear` in the same turn
//! still wakes them (gevent ≥ 1.1), and a waiter killed or timed out while
//! queued leaves nothing behind. Both implement [`Waitable`], so they mix
//! with greenlets in [`wait`](crate::wait) and [`iwait`](crate::iwait).
//! Both are `!Send`, like everything bound to a hub.

mod async_result;

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use crate::greenlet::error::WaitError;
use crate::waiter::{LinkId, Links, WaitQueue, Waitable};

pub use async_result::AsyncResult;

// ================================================================= Event

/// A flag that greenlets can wait for: gevent's `Event`.
///
/// [`set`](Event::set) raises it and wakes every waiter, in the order they
/// started waiting; [`clear`](Event::clear) lowers it again. A `set` before
/// a [`wait`](Event::wait) is not lost: `wait` returns at once while the
/// flag is up.
///
/// Waits return `Result<(), WaitError>` rather than gevent's flag: `Ok`
/// when the flag was set during (or before) the wait, even if it has been
/// cleared since (gevent ≥ 1.1 returns `True` then too), `Err(Elapsed)` for
/// gevent's `False` from a timed-out wait.
///
/// Share it with `&` or `Rc`; it is `!Send`.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::event::Event;
/// use std::rc::Rc;
///
/// let ready = Rc::new(Event::new());
/// let r = ready.clone();
/// let waiter = greenlet::spawn(move || r.wait().is_ok());
/// greenlet::sleep(std::time::Duration::ZERO);
/// ready.set();
/// assert!(waiter.get().unwrap());
/// # });
/// ```
///
/// ```compile_fail
/// # use greenlet_core as greenlet;
/// let e = greenlet::event::Event::new();
/// std::thread::spawn(move || e.set()); // Event is !Send
/// ```
#[derive(Default)]
pub struct Event {
    flag: Cell<bool>,
    waiters: WaitQueue<()>,
    links: Links,
    /// Waiters a `set` woke that have not run yet (see [`Notifying`]).
    notifying: Notifying,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.flag.get())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl Event {
    /// A cleared event.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = greenlet_core::event::Event::new();
    /// assert!(!e.is_set());
    /// ```
    pub fn new() -> Event {
        Event::default()
    }

    /// Raises the flag: every greenlet waiting now wakes (in the order it
    /// began waiting) and every [`rawlink`](Waitable::rawlink) callback is
    /// queued. Later waits return at once until [`clear`](Event::clear).
    /// Does nothing if the flag is already up.
    ///
    /// Does not switch: the waiters run on a later loop turn.
    ///
    /// # Panics
    ///
    /// Outside a hub scope when there is a waiter or link to wake (there
    /// can be none there).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let e = greenlet::event::Event::new();
    /// e.set();
    /// assert!(e.is_set());
    /// e.wait().unwrap(); // returns at once
    /// # });
    /// ```
    pub fn set(&self) {
        if self.flag.replace(true) {
            return;
        }
        if !self.waiters.is_empty() {
            self.notifying.woke(self.waiters.notify_all(|| ()));
        }
        if !self.links.is_empty() {
            self.links.fire();
        }
    }

    /// Lowers the flag: later waits block until the next
    /// [`set`](Event::set). Greenlets already woken by a `set` still return
    /// `Ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = greenlet_core::event::Event::new();
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// ```
    pub fn clear(&self) {
        self.flag.set(false);
    }

    /// `true` while the flag is up (gevent's `is_set()`, `ready()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = greenlet_core::event::Event::new();
    /// assert!(!e.is_set());
    /// ```
    #[doc(alias = "ready")]
    #[doc(alias = "isSet")]
    pub fn is_set(&self) -> bool {
        self.flag.get()
    }

    /// Greenlets waiting for the flag now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenlet_core::event::Event::new().waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Waits until the flag is up (gevent's `wait()`).
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] on the native stack when nothing could ever
    /// set it.
    ///
    /// # Switches
    ///
    /// Unless the flag is up. A kill or [`Timeout`](crate::Timeout) ends
    /// the wait by unwinding; the greenlet leaves the queue and takes no
    /// wake-up from anyone else.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::event::Event;
    /// use std::rc::Rc;
    /// let e = Rc::new(Event::new());
    /// let setter = e.clone();
    /// greenlet::spawn(move || setter.set());
    /// e.wait().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn wait(&self) -> Result<(), WaitError> {
        self.wait_inner(None, "Event::wait")
    }

    /// Like [`wait`](Event::wait), giving up after `timeout` (gevent's
    /// `wait(timeout)` returning `False`).
    ///
    /// # Errors
    ///
    /// [`WaitError::Elapsed`] when `timeout` passes first; the others as
    /// [`wait`](Event::wait).
    ///
    /// # Switches
    ///
    /// As [`wait`](Event::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::WaitError;
    /// let e = greenlet::event::Event::new();
    /// let r = e.wait_timeout(std::time::Duration::from_millis(5));
    /// assert!(matches!(r, Err(WaitError::Elapsed(_))));
    /// # });
    /// ```
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.wait_inner(Some(timeout), "Event::wait_timeout")
    }

    #[track_caller]
    fn wait_inner(&self, timeout: Option<Duration>, what: &'static str) -> Result<(), WaitError> {
        if self.flag.get() {
            self.notifying.join_the_end();
            return Ok(());
        }
        // A wake-up handed to a waiter that then dies is nobody else's
        // (every waiter got one): nothing to give back.
        self.notifying
            .wait(self.waiters.wait(timeout, what, |()| self.notifying.ran()))
    }
}

/// The count of waiters a `set` woke that have not run yet: gevent's
/// "notifier in progress" (`AbstractLinkable._notifier`).
///
/// gevent notifies an event's waiters one after the other from one
/// callback; a greenlet that waits on the event while that runs (it is set,
/// so the wait would return at once) is added at the end of the
/// notification instead, so it runs after the waiters woken before it
/// (gevent#1520, `test__event.py::test_wait_while_notifying`). Here a `set`
/// queues every waiter at once, so a wait on a set event with woken waiters
/// still to run yields once, behind them.
#[derive(Default)]
pub(crate) struct Notifying(Cell<usize>);

impl Notifying {
    /// A `set` woke `n` waiters.
    pub(crate) fn woke(&self, n: usize) {
        self.0.set(self.0.get() + n);
    }

    /// One of them ran (or died, giving its wake-up back).
    pub(crate) fn ran(&self) {
        self.0.set(self.0.get().saturating_sub(1));
    }

    /// The outcome of a blocking wait: a wake-up it was handed counts as
    /// having run.
    pub(crate) fn wait<T>(&self, waited: Result<T, WaitError>) -> Result<T, WaitError> {
        if waited.is_ok() {
            self.ran();
        }
        waited
    }

    /// [`join_the_end`](Self::join_the_end) when `ready`.
    pub(crate) fn join_the_end_if(&self, ready: bool) {
        if ready {
            self.join_the_end();
        }
    }

    /// A wait found the object ready: if woken waiters have not run yet,
    /// let them run first (one yield: they are ahead in the ready queue).
    /// Never from a hub callback, where nothing may switch.
    pub(crate) fn join_the_end(&self) {
        if self.0.get() > 0 && crate::hub::in_scope() && !crate::hub::in_callback() {
            crate::sleep(Duration::ZERO);
        }
    }
}

/// Ready while the flag is up: a `rawlink` fires once, when the event is
/// (or next becomes) set.
impl Waitable for Event {
    fn is_ready(&self) -> bool {
        self.flag.get()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        let id = self.links.add(callback);
        if self.flag.get() {
            self.links.fire();
        }
        id
    }

    fn unlink(&self, id: LinkId) -> bool {
        self.links.remove(id)
    }
}
