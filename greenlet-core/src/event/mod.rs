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

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::greenlet::error::WaitError;
use crate::hub;
use crate::waiter::{LinkId, WaitQueue, Waitable};

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
    /// Links stay here until their callback runs, so an `unlink` (even
    /// from an earlier link of the same `set`) still prevents them.
    links: Rc<RawLinks>,
    next_link: Cell<u64>,
    /// Waiters and links in the order they came (see [`Registrations`]).
    order: Registrations,
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

    /// Raises the flag: every greenlet waiting now wakes and every
    /// [`rawlink`](Waitable::rawlink) callback is queued, all in the order
    /// they were registered (gevent notifies waiters and links from one
    /// list). Later waits return at once until [`clear`](Event::clear).
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
        let mut woke = 0;
        // Nothing below runs user code or switches, so nothing registers
        // meanwhile.
        while let Some(reg) = self.order.pop() {
            match reg {
                Registration::Waiter(_) => {
                    if self.waiters.notify_one(()).is_ok() {
                        woke += 1;
                    }
                }
                Registration::Link(id) => self.fire_link(id),
            }
        }
        self.notifying.woke(woke);
    }

    /// Queues link `id`: it runs on the hub unless unlinked first.
    fn fire_link(&self, id: LinkId) {
        let links = Rc::clone(&self.links);
        hub::run_callback(move || {
            let callback = take_raw_link(&links, id);
            if let Some(callback) = callback {
                callback();
            }
        });
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
        let _registered = self.order.waiter();
        self.notifying
            .wait(self.waiters.wait(timeout, what, |()| self.notifying.ran()))
    }
}

/// An [`Event`]'s `rawlink` callbacks, by id.
type RawLinks = RefCell<SmallVec<[(LinkId, Box<dyn FnOnce()>); 1]>>;

fn take_raw_link(links: &RawLinks, id: LinkId) -> Option<Box<dyn FnOnce()>> {
    let mut links = links.borrow_mut();
    let pos = links.iter().position(|(i, _)| *i == id)?;
    Some(links.remove(pos).1)
}

/// One waiter or link of an [`Event`] or [`AsyncResult`].
pub(crate) enum Registration {
    /// A blocked waiter (its token).
    Waiter(u64),
    Link(LinkId),
}

/// The order in which waiters and links were registered on an [`Event`] or
/// [`AsyncResult`]: gevent keeps both in one list
/// (`AbstractLinkable._links`) and notifies them in that order, so a
/// `rawlink` added before a waiter runs before it. Waiters are kept in
/// their [`WaitQueue`] (FIFO) too: the n-th `Waiter` here is the n-th
/// greenlet in the queue, as each leaves both at once (a
/// [`WaiterRegistration`] guard).
#[derive(Default)]
pub(crate) struct Registrations {
    next_token: Cell<u64>,
    /// `list.len()`, readable without a borrow (the uncontended `set`).
    len: Cell<usize>,
    list: RefCell<VecDeque<Registration>>,
}

impl Registrations {
    /// A waiter is about to block; it is unregistered when the guard drops
    /// (unless a notification took it first).
    pub(crate) fn waiter(&self) -> WaiterRegistration<'_> {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        self.push(Registration::Waiter(token));
        WaiterRegistration { order: self, token }
    }

    pub(crate) fn link(&self, id: LinkId) {
        self.push(Registration::Link(id));
    }

    fn push(&self, reg: Registration) {
        self.list.borrow_mut().push_back(reg);
        self.len.set(self.len.get() + 1);
    }

    /// Removes the first registration matching `pred`, if any.
    fn remove(&self, pred: impl Fn(&Registration) -> bool) {
        if self.len.get() == 0 {
            return; // the common case: a notification took it
        }
        let mut list = self.list.borrow_mut();
        if let Some(pos) = list.iter().position(pred) {
            list.remove(pos);
            self.len.set(self.len.get() - 1);
        }
    }

    pub(crate) fn unlink(&self, id: LinkId) {
        self.remove(|r| matches!(r, Registration::Link(i) if *i == id));
    }

    /// The earliest registration, removed (the list keeps its capacity, so
    /// a set/wait cycle does not allocate).
    #[inline]
    pub(crate) fn pop(&self) -> Option<Registration> {
        if self.len.get() == 0 {
            return None;
        }
        self.len.set(self.len.get() - 1);
        self.list.borrow_mut().pop_front()
    }
}

/// Unregisters a waiter that leaves (woken, timed out, killed).
pub(crate) struct WaiterRegistration<'a> {
    order: &'a Registrations,
    token: u64,
}

impl Drop for WaiterRegistration<'_> {
    fn drop(&mut self) {
        // Usually already taken by a notification, or at the front.
        let token = self.token;
        self.order
            .remove(|r| matches!(r, Registration::Waiter(t) if *t == token));
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
        let id = LinkId::new(self.next_link.get());
        self.next_link.set(id.get() + 1);
        self.links.borrow_mut().push((id, callback));
        if self.flag.get() {
            self.fire_link(id);
        } else {
            self.order.link(id);
        }
        id
    }

    /// `true` if the callback had not run; it never will. Works while a
    /// `set` is notifying too (gevent: "notification must not happen after
    /// unlink even though notification process has been already started").
    fn unlink(&self, id: LinkId) -> bool {
        let callback = take_raw_link(&self.links, id);
        if callback.is_some() {
            self.order.unlink(id);
        }
        // The callback is dropped outside the borrow: its Drop may touch us.
        callback.is_some()
    }
}
