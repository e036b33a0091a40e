//! [`AsyncResult`]: one value (or error) for every waiter, with links.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::greenlet::error::{GreenletError, WaitError};
use crate::hub;
use crate::waiter::{LinkId, WaitQueue, Waitable};

// =========================================================== AsyncResult

/// A `link` callback: gets the result.
type ResultLink<T, E> = Box<dyn FnOnce(&AsyncResult<T, E>)>;

/// A callback registered on an [`AsyncResult`].
enum Link<T: 'static, E: 'static> {
    Raw(Box<dyn FnOnce()>),
    Any(ResultLink<T, E>),
    Value(ResultLink<T, E>),
    Exception(ResultLink<T, E>),
}

/// The links of an [`AsyncResult`] with their ids, in order.
type LinkList<T, E> = RefCell<SmallVec<[(LinkId, Link<T, E>); 1]>>;

struct ResultCell<T: 'static, E: 'static> {
    outcome: RefCell<Option<Result<T, E>>>,
    waiters: WaitQueue<()>,
    /// Waiters a `set` woke that have not run yet.
    notifying: super::Notifying,
    /// Waiters and links in the order they came.
    order: super::Registrations,
    links: LinkList<T, E>,
    next_link: Cell<u64>,
}

/// A one-time result that greenlets can wait for: gevent's `AsyncResult`
/// (a future filled in by hand).
///
/// A producer calls [`set`](AsyncResult::set) with a value or
/// [`set_exception`](AsyncResult::set_exception) with an error `E`;
/// [`get`](AsyncResult::get) blocks until then and returns a clone of it.
/// Its API mirrors [`Greenlet`](crate::Greenlet)'s: `get`, `get_timeout`,
/// `try_get`, `wait`, `is_ready`, `is_successful`, `value`, `exception`, and
/// links with the same semantics (fired once, in order, on the loop turn
/// after it is set, also when linked afterwards).
///
/// `E` defaults to [`GreenletError`]; any error type that can report a
/// failed wait (`E: From<WaitError>`) works. The handle is cheap to clone
/// and shares the result; `!Send`.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::event::AsyncResult;
///
/// let result: AsyncResult<u32> = AsyncResult::new();
/// let producer = result.clone();
/// greenlet::spawn(move || producer.set(42));
/// assert_eq!(result.get().unwrap(), 42);
/// assert!(result.is_successful());
/// # });
/// ```
///
/// ```compile_fail
/// # use greenlet_core as greenlet;
/// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
/// std::thread::spawn(move || r.set(1)); // AsyncResult is !Send
/// ```
pub struct AsyncResult<T: 'static, E: 'static = GreenletError> {
    cell: Rc<ResultCell<T, E>>,
}

impl<T, E> Clone for AsyncResult<T, E> {
    fn clone(&self) -> Self {
        AsyncResult {
            cell: Rc::clone(&self.cell),
        }
    }
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> Self {
        AsyncResult::new()
    }
}

impl<T, E> PartialEq for AsyncResult<T, E> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.cell, &other.cell)
    }
}

impl<T, E> Eq for AsyncResult<T, E> {}

impl<T, E> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.cell.outcome.borrow() {
            None => "pending",
            Some(Ok(_)) => "value",
            Some(Err(_)) => "exception",
        };
        f.debug_struct("AsyncResult")
            .field("state", &state)
            .field("waiters", &self.cell.waiters.len())
            .finish()
    }
}

impl<T: 'static, E: 'static> AsyncResult<T, E> {
    /// An empty result.
    ///
    /// # Examples
    ///
    /// ```
    /// let r: greenlet_core::event::AsyncResult<u8> = greenlet_core::event::AsyncResult::new();
    /// assert!(!r.is_ready());
    /// ```
    pub fn new() -> AsyncResult<T, E> {
        AsyncResult {
            cell: Rc::new(ResultCell {
                outcome: RefCell::new(None),
                waiters: WaitQueue::new(),
                notifying: super::Notifying::default(),
                order: super::Registrations::default(),
                links: RefCell::new(SmallVec::new()),
                next_link: Cell::new(0),
            }),
        }
    }

    /// Stores `value` and wakes every waiter, in order; links fire on the
    /// next loop turn. Setting again replaces the result (gevent does the
    /// same); links added since then fire again.
    ///
    /// Does not switch.
    ///
    /// # Panics
    ///
    /// Outside a hub scope when there is a waiter or link to wake.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<&str> = greenlet::event::AsyncResult::new();
    /// r.set("done");
    /// assert_eq!(r.get().unwrap(), "done");
    /// # });
    /// ```
    pub fn set(&self, value: T) {
        self.complete(Ok(value));
    }

    /// Stores the error `error` and wakes every waiter (gevent's
    /// `set_exception`): `get` returns `Err(error)`.
    ///
    /// Does not switch.
    ///
    /// # Panics
    ///
    /// As [`set`](AsyncResult::set).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::event::AsyncResult;
    /// let r: AsyncResult<u8, String> = AsyncResult::new();
    /// r.set_exception("refused".to_string());
    /// assert!(!r.is_successful());
    /// assert_eq!(r.exception().unwrap(), "refused");
    /// # });
    /// ```
    pub fn set_exception(&self, error: E) {
        self.complete(Err(error));
    }

    fn complete(&self, outcome: Result<T, E>) {
        let old = self.cell.outcome.borrow_mut().replace(outcome);
        drop(old); // user Drop, outside the borrow
        // Waiters and links in registration order (gevent's one list).
        let mut woke = 0;
        while let Some(reg) = self.cell.order.pop() {
            match reg {
                super::Registration::Waiter(_) => {
                    if self.cell.waiters.notify_one(()).is_ok() {
                        woke += 1;
                    }
                }
                super::Registration::Link(id) => self.fire_link(id),
            }
        }
        self.cell.notifying.woke(woke);
    }

    fn take_link(&self, id: LinkId) -> Option<Link<T, E>> {
        let mut links = self.cell.links.borrow_mut();
        let pos = links.iter().position(|(i, _)| *i == id)?;
        Some(links.remove(pos).1)
    }

    /// Queues link `id`: it runs on the hub unless unlinked first (it
    /// stays in the list until then).
    fn fire_link(&self, id: LinkId) {
        let handle = self.clone();
        hub::run_callback(move || {
            let Some(link) = handle.take_link(id) else {
                return;
            };
            let successful = handle.is_successful();
            match link {
                Link::Raw(f) => f(),
                Link::Any(f) => f(&handle),
                Link::Value(f) if successful => f(&handle),
                Link::Exception(f) if !successful => f(&handle),
                Link::Value(_) | Link::Exception(_) => {}
            }
        });
    }

    fn add_link(&self, link: Link<T, E>) -> LinkId {
        let id = LinkId::new(self.cell.next_link.get());
        self.cell.next_link.set(id.get() + 1);
        self.cell.links.borrow_mut().push((id, link));
        if self.is_ready() {
            self.fire_link(id);
        } else {
            self.cell.order.link(id);
        }
        id
    }

    /// `true` once set, with a value or an error (gevent's `ready()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let r: greenlet_core::event::AsyncResult<u8> = greenlet_core::event::AsyncResult::new();
    /// assert!(!r.is_ready());
    /// ```
    #[doc(alias = "ready")]
    pub fn is_ready(&self) -> bool {
        self.cell.outcome.borrow().is_some()
    }

    /// `true` once set with a value (gevent's `successful()`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// r.set(1);
    /// assert!(r.is_successful());
    /// # });
    /// ```
    #[doc(alias = "successful")]
    pub fn is_successful(&self) -> bool {
        matches!(&*self.cell.outcome.borrow(), Some(Ok(_)))
    }

    /// A clone of the value, once set with one (gevent's `value`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// assert_eq!(r.value(), None);
    /// r.set(3);
    /// assert_eq!(r.value(), Some(3));
    /// # });
    /// ```
    pub fn value(&self) -> Option<T>
    where
        T: Clone,
    {
        match &*self.cell.outcome.borrow() {
            Some(Ok(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// A clone of the error, once set with one (gevent's `exception`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<u8, &str> = greenlet::event::AsyncResult::new();
    /// r.set_exception("no");
    /// assert_eq!(r.exception(), Some("no"));
    /// # });
    /// ```
    pub fn exception(&self) -> Option<E>
    where
        E: Clone,
    {
        match &*self.cell.outcome.borrow() {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    fn outcome_cloned(&self) -> Option<Result<T, E>>
    where
        T: Clone,
        E: Clone,
    {
        self.cell.outcome.borrow().clone()
    }

    /// Waits until set (gevent's `wait()`), without reading the result.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] on the native stack when nothing could ever
    /// set it.
    ///
    /// # Switches
    ///
    /// Unless already set. A kill or [`Timeout`](crate::Timeout) ends the
    /// wait by unwinding, leaving no trace in the result.
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
    /// let r: greenlet::event::AsyncResult<()> = greenlet::event::AsyncResult::new();
    /// let p = r.clone();
    /// greenlet::spawn(move || p.set(()));
    /// r.wait().unwrap();
    /// assert!(r.is_ready());
    /// # });
    /// ```
    #[track_caller]
    pub fn wait(&self) -> Result<(), WaitError> {
        self.cell.notifying.join_the_end_if(self.is_ready());
        self.wait_inner(None, "AsyncResult::wait")
    }

    /// Like [`wait`](AsyncResult::wait), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`WaitError::Elapsed`] when `timeout` passes first; the others as
    /// [`wait`](AsyncResult::wait).
    ///
    /// # Switches
    ///
    /// As [`wait`](AsyncResult::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<()> = greenlet::event::AsyncResult::new();
    /// assert!(r.wait_timeout(std::time::Duration::from_millis(5)).is_err());
    /// # });
    /// ```
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.cell.notifying.join_the_end_if(self.is_ready());
        self.wait_inner(Some(timeout), "AsyncResult::wait_timeout")
    }

    #[track_caller]
    fn wait_inner(&self, timeout: Option<Duration>, what: &'static str) -> Result<(), WaitError> {
        if self.is_ready() {
            return Ok(());
        }
        let cell = &self.cell;
        let _registered = cell.order.waiter();
        cell.notifying
            .wait(cell.waiters.wait(timeout, what, |()| cell.notifying.ran()))
    }

    /// Waits until set and returns a clone of the value, or of the error
    /// (gevent's `get()`).
    ///
    /// # Errors
    ///
    /// The error it was set with, or the failed wait converted into `E`
    /// (`LoopExit` on the native stack when nothing could set it).
    ///
    /// # Switches
    ///
    /// As [`wait`](AsyncResult::wait).
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
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// let p = r.clone();
    /// greenlet::spawn(move || p.set(9));
    /// assert_eq!(r.get().unwrap(), 9);
    /// # });
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<T, E>
    where
        T: crate::CloneValue,
        E: Clone + From<WaitError>,
    {
        self.wait_inner(None, "AsyncResult::get")?;
        self.outcome_cloned()
            .expect("an AsyncResult stays set once set")
    }

    /// Like [`get`](AsyncResult::get), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `E::from(WaitError::Elapsed(_))` when `timeout` passes first
    /// ([`GreenletError::Timeout`] for the default `E`), or as
    /// [`get`](AsyncResult::get).
    ///
    /// # Switches
    ///
    /// As [`wait`](AsyncResult::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::GreenletError;
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// let got = r.get_timeout(std::time::Duration::from_millis(5));
    /// assert!(matches!(got, Err(GreenletError::Timeout(_))));
    /// # });
    /// ```
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, E>
    where
        T: crate::CloneValue,
        E: Clone + From<WaitError>,
    {
        self.wait_inner(Some(timeout), "AsyncResult::get_timeout")?;
        self.outcome_cloned()
            .expect("an AsyncResult stays set once set")
    }

    /// The result without waiting: `None` until set (gevent's
    /// `get_nowait()` raising `Timeout`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// assert!(r.try_get().is_none());
    /// r.set(1);
    /// assert_eq!(r.try_get().unwrap().unwrap(), 1);
    /// # });
    /// ```
    #[doc(alias = "get_nowait")]
    pub fn try_get(&self) -> Option<Result<T, E>>
    where
        T: crate::CloneValue,
        E: Clone,
    {
        self.outcome_cloned()
    }

    /// Calls `callback` with this result once it is set, whatever the
    /// outcome (gevent's `link`). Links fire exactly once, in the order
    /// added, on the loop turn after it is set, even if added after. They
    /// run on the hub and must not block; a panicking link is reported and
    /// the others still run.
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
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// r.link(move |r| s.set(r.value().unwrap()));
    /// r.set(4);
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// assert_eq!(seen.get(), 4);
    /// # });
    /// ```
    pub fn link(&self, callback: impl FnOnce(&AsyncResult<T, E>) + 'static) -> LinkId {
        self.add_link(Link::Any(Box::new(callback)))
    }

    /// Like [`link`](AsyncResult::link), fired only when set with a value
    /// (gevent's `link_value`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<u8, &str> = greenlet::event::AsyncResult::new();
    /// r.link_value(|_| unreachable!("set with an error"));
    /// r.set_exception("no");
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// # });
    /// ```
    pub fn link_value(&self, callback: impl FnOnce(&AsyncResult<T, E>) + 'static) -> LinkId {
        self.add_link(Link::Value(Box::new(callback)))
    }

    /// Like [`link`](AsyncResult::link), fired only when set with an error
    /// (gevent's `link_exception`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// r.link_exception(|_| unreachable!("set with a value"));
    /// r.set(1);
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// # });
    /// ```
    pub fn link_exception(&self, callback: impl FnOnce(&AsyncResult<T, E>) + 'static) -> LinkId {
        self.add_link(Link::Exception(Box::new(callback)))
    }

    /// Registers a plain callback run on the hub once it is set (gevent's
    /// `rawlink`; the [`Waitable`] protocol).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// r.rawlink(|| println!("set"));
    /// r.set(1);
    /// # });
    /// ```
    pub fn rawlink(&self, callback: impl FnOnce() + 'static) -> LinkId {
        self.add_link(Link::Raw(Box::new(callback)))
    }

    /// Removes a link that has not fired yet; `true` if it was there.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let r: greenlet::event::AsyncResult<u8> = greenlet::event::AsyncResult::new();
    /// let id = r.rawlink(|| unreachable!());
    /// assert!(r.unlink(id));
    /// r.set(1);
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// # });
    /// ```
    pub fn unlink(&self, id: LinkId) -> bool {
        let removed = self.take_link(id);
        if removed.is_some() {
            self.cell.order.unlink(id);
        }
        removed.is_some() // the callback is dropped outside the borrow
    }

    /// `true` while a link has not fired yet (gevent's `has_links()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let r: greenlet_core::event::AsyncResult<u8> = greenlet_core::event::AsyncResult::new();
    /// r.link(|_| ());
    /// assert!(r.has_links());
    /// ```
    pub fn has_links(&self) -> bool {
        !self.cell.links.borrow().is_empty()
    }
}

impl<T: 'static, E: 'static> Waitable for AsyncResult<T, E> {
    fn is_ready(&self) -> bool {
        AsyncResult::is_ready(self)
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        AsyncResult::rawlink(self, callback)
    }

    fn unlink(&self, id: LinkId) -> bool {
        AsyncResult::unlink(self, id)
    }
}
