//! [`Channel`]: a rendezvous between greenlets (gevent's `queue.Channel`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{GetError, PutError, TryGetError, TryPutError};
use crate::hub;
use crate::waiter::{LinkId, Links, WaitQueue, Waitable};

/// An item offered by a blocked putter (or given back by a getter that
/// left after the hand-off: then no putter waits for it).
struct Offer<T> {
    item: T,
    putter: Option<Rc<WaitQueue<()>>>,
}

struct Inner<T> {
    getters: WaitQueue<T>,
    offers: RefCell<VecDeque<Offer<T>>>,
    links: Links,
}

/// A channel of capacity 0 (gevent's `queue.Channel`): [`put`](Channel::put)
/// blocks until a getter takes the item, [`get`](Channel::get) until a
/// putter offers one.
///
/// Waiting getters and putters are each served first come, first served. A
/// putter that leaves (killed, timed out) withdraws its item; a getter that
/// leaves after an item was handed to it passes the item to the next getter
/// (or keeps it on offer for the next `get`), so no item is lost or
/// delivered twice.
///
/// A `Channel` is a handle (clones share it) and implements [`Waitable`]:
/// ready when a `get` would not block (a putter is waiting).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::queue::Channel;
///
/// let ch = Channel::new();
/// let putter = {
///     let ch = ch.clone();
///     greenlet::spawn(move || ch.put("hi").unwrap())
/// };
/// greenlet::sleep(std::time::Duration::ZERO);
/// assert!(!putter.is_ready()); // blocked until someone takes it
/// assert_eq!(ch.balance(), 1);
/// assert_eq!(ch.get().unwrap(), "hi");
/// putter.join().unwrap();
/// # });
/// ```
pub struct Channel<T> {
    inner: Rc<Inner<T>>,
    _not_send: PhantomData<*const ()>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            inner: Rc::clone(&self.inner),
            _not_send: PhantomData,
        }
    }
}

impl<T> Default for Channel<T> {
    fn default() -> Self {
        Channel::new()
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("balance", &self.balance())
            .finish()
    }
}

/// Withdraws a blocked putter's offer on every way out except success.
struct OfferGuard<'a, T> {
    inner: &'a Inner<T>,
    putter: Rc<WaitQueue<()>>,
}

impl<T> OfferGuard<'_, T> {
    /// Removes the offer, if a getter has not taken it; returns the item.
    fn withdraw(&self) -> Option<T> {
        let mut offers = self.inner.offers.borrow_mut();
        let pos = offers.iter().position(|o| {
            o.putter
                .as_ref()
                .is_some_and(|p| Rc::ptr_eq(p, &self.putter))
        })?;
        offers.remove(pos).map(|o| o.item)
    }
}

impl<T> Drop for OfferGuard<'_, T> {
    fn drop(&mut self) {
        let item = self.withdraw();
        drop(item);
    }
}

impl<T> Channel<T> {
    /// A new channel.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let ch = greenlet::queue::Channel::<u8>::new();
    /// assert_eq!(ch.balance(), 0);
    /// ```
    pub fn new() -> Channel<T> {
        Channel {
            inner: Rc::new(Inner {
                getters: WaitQueue::new(),
                offers: RefCell::new(VecDeque::new()),
                links: Links::new(),
            }),
            _not_send: PhantomData,
        }
    }

    /// Putters waiting minus getters waiting (gevent's `balance`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let ch = greenlet::queue::Channel::<u8>::new();
    /// let g = { let ch = ch.clone(); greenlet::spawn(move || ch.get()) };
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// assert_eq!(ch.balance(), -1);
    /// ch.put(1).unwrap();
    /// assert_eq!(g.get().unwrap().unwrap(), 1);
    /// # });
    /// ```
    pub fn balance(&self) -> isize {
        self.inner.offers.borrow().len() as isize - self.inner.getters.len() as isize
    }

    /// Hands `item` to a getter: at once to the first waiting one, else
    /// waits until one comes.
    ///
    /// # Errors
    ///
    /// [`PutError::Wait`] with [`WaitError::LoopExit`](crate::WaitError::LoopExit)
    /// on the native stack when no getter could ever come; the item comes
    /// back, withdrawn.
    ///
    /// # Switches
    ///
    /// Until a getter takes the item, and then once more so that the getter
    /// runs before `put` returns (gevent's `Channel.put` always switches: it
    /// resumes after the getter). When a getter already waits, the item is
    /// handed to it and `put` yields once; a kill or
    /// [`Timeout`](crate::Timeout) during that yield unwinds out of `put`
    /// with the item delivered. While no getter has taken it, a kill or
    /// timeout withdraws the item. From a hub callback a `put` to a waiting
    /// getter hands the item over without switching.
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
    /// let ch = greenlet::queue::Channel::new();
    /// let g = { let ch = ch.clone(); greenlet::spawn(move || ch.get().unwrap()) };
    /// ch.put(7).unwrap();
    /// assert_eq!(g.get().unwrap(), 7);
    /// # });
    /// ```
    #[track_caller]
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_until(item, None, None)
    }

    /// [`put`](Channel::put), waiting at most `timeout` for a getter.
    ///
    /// # Errors
    ///
    /// As [`put`](Channel::put), and [`PutError::Wait`] with
    /// [`WaitError::Elapsed`](crate::WaitError::Elapsed) when `timeout`
    /// passes first.
    ///
    /// # Switches
    ///
    /// As [`put`](Channel::put).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let ch = greenlet::queue::Channel::new();
    /// let e = ch.put_timeout(1, std::time::Duration::from_millis(5)).unwrap_err();
    /// assert_eq!(e.into_inner(), 1);
    /// assert_eq!(ch.balance(), 0);
    /// # });
    /// ```
    #[track_caller]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_until(item, hub::deadline_after(timeout), Some(timeout))
    }

    /// Hands `item` to a getter that is waiting now.
    ///
    /// # Errors
    ///
    /// [`TryPutError::Full`] when no getter waits; the item comes back.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::queue::{Channel, TryPutError};
    /// let ch = Channel::new();
    /// assert_eq!(ch.put_nowait(1), Err(TryPutError::Full(1)));
    /// ```
    pub fn put_nowait(&self, item: T) -> Result<(), TryPutError<T>> {
        self.inner
            .getters
            .notify_one(item)
            .map_err(TryPutError::Full)
    }

    #[track_caller]
    fn put_until(
        &self,
        item: T,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), PutError<T>> {
        let item = match self.put_nowait(item) {
            Ok(()) => {
                // gevent's putter resumes after the getter it served:
                // the getter was queued by the hand-off, so one yield
                // lets it run first (`test__queue.py::TestChannel::test_send`).
                // The item is delivered: a kill or timeout arriving during
                // that yield is raised at the putter's next switch, not
                // reported as this put's failure (gevent serves both in
                // one hub callback, `Channel._unlock`).
                if hub::in_scope() && !hub::in_callback() {
                    hub::yield_keeping_throws("Channel::put");
                }
                return Ok(());
            }
            Err(e) => e.into_inner(),
        };
        let inner = &*self.inner;
        let putter = Rc::new(WaitQueue::new());
        inner.offers.borrow_mut().push_back(Offer {
            item,
            putter: Some(Rc::clone(&putter)),
        });
        let guard = OfferGuard { inner, putter };
        if !inner.links.is_empty() {
            inner.links.fire();
        }
        // Handed `()` by the getter that took the offer; nothing to give
        // back if we leave after that: the item is the getter's.
        match guard
            .putter
            .wait_deadline(deadline, timeout, "Channel::put", |()| ())
        {
            Ok(()) => Ok(()),
            Err(e) => match guard.withdraw() {
                Some(item) => Err(PutError::Wait(item, e)),
                // Unreachable: a getter that takes the offer hands `()`,
                // which wins over the timeout; kept total all the same.
                None => Ok(()),
            },
        }
    }

    /// Takes an item from the first waiting putter, or waits for one.
    ///
    /// # Errors
    ///
    /// [`GetError::Wait`] with [`WaitError::LoopExit`](crate::WaitError::LoopExit)
    /// on the native stack when no putter could ever come.
    ///
    /// # Switches
    ///
    /// Until a putter comes (not at all when one waits). A getter killed
    /// after an item was handed to it passes the item on.
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
    /// let ch = greenlet::queue::Channel::new();
    /// let p = { let ch = ch.clone(); greenlet::spawn(move || ch.put('x')) };
    /// assert_eq!(ch.get().unwrap(), 'x');
    /// assert!(p.get().unwrap().is_ok());
    /// # });
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<T, GetError> {
        self.get_until(None, None)
    }

    /// [`get`](Channel::get), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`get`](Channel::get), and [`GetError::Wait`] with
    /// [`WaitError::Elapsed`](crate::WaitError::Elapsed) when `timeout`
    /// passes first.
    ///
    /// # Switches
    ///
    /// As [`get`](Channel::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let ch = greenlet::queue::Channel::<u8>::new();
    /// assert!(ch.get_timeout(std::time::Duration::from_millis(5)).unwrap_err().is_elapsed());
    /// # });
    /// ```
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_until(hub::deadline_after(timeout), Some(timeout))
    }

    /// Takes an item from a putter that is waiting now.
    ///
    /// # Errors
    ///
    /// [`TryGetError::Empty`] when no putter waits.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::queue::{Channel, TryGetError};
    /// assert_eq!(Channel::<u8>::new().get_nowait(), Err(TryGetError::Empty));
    /// ```
    pub fn get_nowait(&self) -> Result<T, TryGetError> {
        let offer = self.inner.offers.borrow_mut().pop_front();
        let Some(offer) = offer else {
            return Err(TryGetError::Empty);
        };
        if let Some(putter) = offer.putter {
            // The putter is still waiting (its guard withdraws the offer
            // before it can leave), so this cannot fail.
            let _ = putter.notify_one(());
        }
        Ok(offer.item)
    }

    #[track_caller]
    fn get_until(
        &self,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<T, GetError> {
        if let Ok(item) = self.get_nowait() {
            return Ok(item);
        }
        let inner = &*self.inner;
        inner
            .getters
            .wait_deadline(deadline, timeout, "Channel::get", |item| {
                // Handed an item, leaving without it: the next getter gets
                // it, else it stays on offer (first in line).
                if let Err(item) = inner.getters.notify_one(item) {
                    inner
                        .offers
                        .borrow_mut()
                        .push_front(Offer { item, putter: None });
                    if !inner.links.is_empty() {
                        inner.links.fire();
                    }
                }
            })
            .map_err(GetError::Wait)
    }
}

impl<T> Waitable for Channel<T> {
    /// `true` when a `get` would not block (a putter waits).
    fn is_ready(&self) -> bool {
        !self.inner.offers.borrow().is_empty()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        let id = self.inner.links.add(callback);
        if self.is_ready() {
            self.inner.links.fire();
        }
        id
    }

    fn unlink(&self, id: LinkId) -> bool {
        self.inner.links.remove(id)
    }
}
