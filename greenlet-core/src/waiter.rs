//! The waiter protocol: the building blocks of every blocking primitive of
//! this crate, public so that users can write their own.
//!
//! * [`Waitable`] (gevent's `rawlink`/`unlink`): anything that becomes ready
//!   implements it, and [`wait`](crate::wait), [`iwait`](crate::iwait),
//!   [`joinall`](crate::joinall) and [`killall`](crate::killall) are written
//!   once on top of it. [`Links`] is the callback list behind an
//!   implementation.
//! * [`WaitQueue`]: a FIFO of blocked greenlets with hand-off. A waker hands
//!   a value (an item, a permit, a "you are next") to the first waiter; a
//!   waiter killed or timed out after being handed a value gives it back
//!   through a closure, so nothing is ever lost to a waiter that left.
//!
//! Primitives built on these two are correct under kill and timeout by
//! construction: see the countdown latch in `examples/latch.rs`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::Greenlet;
use crate::greenlet::error::{Elapsed, WaitError};
pub use crate::greenlet::state::LinkId;
use crate::hub::{self, TimerGuard, Waker};

/// Something that becomes ready and can notify callbacks when it does.
///
/// Implemented by [`Greenlet`], [`Event`](crate::event::Event),
/// [`AsyncResult`](crate::event::AsyncResult) and the semaphores of
/// [`lock`](crate::lock); queues and sockets plug in the same way. The
/// contract, as in gevent:
///
/// * `rawlink(cb)` calls `cb` exactly once, on the hub (it must not block),
///   on a loop turn after the object is (or becomes) ready: at once when it
///   is ready at the time of the call, else when it next becomes ready.
/// * Some objects become ready once for good (a greenlet, an
///   `AsyncResult`); others can become un-ready again (an `Event` is
///   cleared, a semaphore's permits are taken, a queue is emptied). A
///   callback still fires once, for the readiness it was linked for: by the
///   time it runs the object may be un-ready again, so a waiter re-checks
///   [`is_ready`](Waitable::is_ready) (or takes what it waited for) and
///   links again if needed.
/// * Callbacks fire in the order they were linked.
/// * `unlink(id)` removes a callback that has not fired; `true` if it did.
///   Greenlets, [`Event`](crate::event::Event) and
///   [`AsyncResult`](crate::event::AsyncResult) count a callback as fired
///   once it has run, so an unlink made before that (even by an earlier
///   callback of the same notification) stops it, as in gevent; a
///   [`Links`] list counts it fired once it is queued on the hub.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{spawn, wait, Waitable};
///
/// let a = spawn(|| 1);
/// let b = spawn(|| 2);
/// let objects: [&dyn Waitable; 2] = [&a, &b];
/// let ready = wait(objects).unwrap();
/// assert_eq!(ready.len(), 2);
/// # });
/// ```
pub trait Waitable {
    /// `true` while the object is ready (for some objects, once ready
    /// always ready; see the trait docs).
    fn is_ready(&self) -> bool;

    /// Calls `callback` on the hub once, when the object is (or next
    /// becomes) ready.
    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId;

    /// Removes a callback that has not fired yet; `true` if it was there.
    fn unlink(&self, id: LinkId) -> bool;
}

impl<T, D> Waitable for Greenlet<T, D> {
    fn is_ready(&self) -> bool {
        Greenlet::is_ready(self)
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        Greenlet::rawlink(self, callback)
    }

    fn unlink(&self, id: LinkId) -> bool {
        Greenlet::unlink(self, id)
    }
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        (**self).rawlink(callback)
    }

    fn unlink(&self, id: LinkId) -> bool {
        (**self).unlink(id)
    }
}

// ================================================================= Links

/// One registered callback.
type Link = (LinkId, Box<dyn FnOnce()>);

/// The callback list behind a [`Waitable`] implementation: `rawlink` adds,
/// `unlink` removes, and the object calls [`fire`](Links::fire) once when it
/// becomes ready. Callbacks run on the hub, in the order they were added, on
/// a later loop turn (never inside `fire`), as the [`Waitable`] contract
/// requires.
///
/// `!Send`, like everything bound to a hub.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::waiter::Links;
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let links = Links::new();
/// let hits = Rc::new(Cell::new(0));
/// let h = hits.clone();
/// links.add(Box::new(move || h.set(h.get() + 1)));
/// let gone = links.add(Box::new(|| unreachable!()));
/// assert!(links.remove(gone));
/// links.fire(); // queued on the hub, not run here
/// assert_eq!(hits.get(), 0);
/// greenlet::sleep(std::time::Duration::ZERO);
/// assert_eq!(hits.get(), 1);
/// # });
/// ```
#[derive(Default)]
pub struct Links {
    next: Cell<u64>,
    list: RefCell<SmallVec<[Link; 1]>>,
}

impl fmt::Debug for Links {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Links").field("len", &self.len()).finish()
    }
}

impl Links {
    /// An empty list.
    pub fn new() -> Links {
        Links::default()
    }

    /// Adds `callback`; its id is unique within this list.
    pub fn add(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        let id = LinkId::new(self.next.get());
        self.next.set(self.next.get() + 1);
        self.list.borrow_mut().push((id, callback));
        id
    }

    /// Removes a callback that has not been fired; `true` if it was there.
    pub fn remove(&self, id: LinkId) -> bool {
        let mut list = self.list.borrow_mut();
        match list.iter().position(|(i, _)| *i == id) {
            Some(pos) => {
                let (_, callback) = list.remove(pos);
                drop(list);
                drop(callback); // outside the borrow: its Drop may touch us
                true
            }
            None => false,
        }
    }

    /// Queues every callback on the hub, in order, and empties the list.
    ///
    /// # Panics
    ///
    /// Outside a hub scope ([`greenlet::run`](crate::run)).
    pub fn fire(&self) {
        let list = std::mem::take(&mut *self.list.borrow_mut());
        for (_, callback) in list {
            hub::run_callback(callback);
        }
    }

    /// Callbacks waiting to fire.
    pub fn len(&self) -> usize {
        self.list.borrow().len()
    }

    /// `true` when no callback waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ============================================================= WaitQueue

struct Entry<T> {
    waker: Waker,
    /// Set by a notifier: the value handed to this waiter.
    value: Cell<Option<T>>,
    /// The waiter left (timed out, LoopExit, unwound) without a value.
    cancelled: Cell<bool>,
}

/// A FIFO of greenlets blocked on one condition, with hand-off: the
/// primitive-building block of this crate (tokio's `Notify`, with a value).
///
/// [`wait`](WaitQueue::wait) blocks the current greenlet at the back of the
/// queue; [`notify_one`](WaitQueue::notify_one) hands a value to the front
/// waiter and wakes it. The value is the waiter's once it is handed:
///
/// * a waiter handed a value returns `Ok(value)`, even if its timeout
///   expired in the same loop turn;
/// * a waiter killed (or interrupted by an outer
///   [`Timeout`](crate::Timeout)) after being handed a value gives it back
///   by calling the `on_unclaimed` closure it passed to `wait`, while it
///   unwinds (typically: hand it to the next waiter, or put it back);
/// * a waiter that leaves before being handed anything is skipped by later
///   notifications.
///
/// So a primitive built on it never loses an item, a permit or a wake-up to
/// a waiter that left. `!Send`: it belongs to the hub of its thread.
///
/// # Examples
///
/// A one-permit gate: `notify_one` hands the permit to a waiter if there is
/// one, and the permit comes back if that waiter is killed before it runs.
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::waiter::WaitQueue;
/// use std::rc::Rc;
///
/// let q = Rc::new(WaitQueue::<&str>::new());
/// let q2 = q.clone();
/// let g = greenlet::spawn(move || q2.wait(None, "gate", |_| ()).unwrap());
/// greenlet::sleep(std::time::Duration::ZERO); // g blocks in the queue
/// assert_eq!(q.len(), 1);
/// q.notify_one("go").unwrap();
/// assert_eq!(g.get().unwrap(), "go");
/// assert_eq!(q.notify_one("nobody"), Err("nobody"));
/// # });
/// ```
pub struct WaitQueue<T> {
    waiting: RefCell<VecDeque<Rc<Entry<T>>>>,
    /// Waiters in `waiting` that are not cancelled.
    live: Cell<usize>,
    /// A finished entry nobody else references, reused by the next wait
    /// (one allocation less per blocking wait: the hot path of queues).
    spare: Cell<Option<Rc<Entry<T>>>>,
    _not_send: PhantomData<*const ()>,
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        WaitQueue {
            waiting: RefCell::new(VecDeque::new()),
            live: Cell::new(0),
            spare: Cell::new(None),
            _not_send: PhantomData,
        }
    }
}

impl<T> fmt::Debug for WaitQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitQueue")
            .field("waiting", &self.len())
            .finish()
    }
}

/// Cancels or gives back on every way out of `wait` except success.
struct EntryGuard<'a, T, F: FnOnce(T)> {
    queue: &'a WaitQueue<T>,
    /// `None` once the wait took its value (nothing left to undo).
    entry: Option<Rc<Entry<T>>>,
    on_unclaimed: Option<F>,
}

impl<T, F: FnOnce(T)> EntryGuard<'_, T, F> {
    /// The value handed to this wait, if any: the wait succeeded. The
    /// entry (already out of the queue) is kept for the next wait.
    #[inline]
    fn take_value(&mut self) -> Option<T> {
        let value = self.entry.as_ref()?.value.take()?;
        self.on_unclaimed = None;
        if let Some(entry) = self.entry.take() {
            // Out of the queue already (the notifier popped it).
            self.queue.recycle(entry);
        }
        Some(value)
    }

    /// The wait ended without taking its value: give it back or cancel.
    #[inline(never)]
    fn undo(&mut self, entry: Rc<Entry<T>>) {
        match entry.value.take() {
            Some(value) => {
                // Handed a value, leaving without it (unwinding): give back.
                if let Some(f) = self.on_unclaimed.take() {
                    f(value);
                }
            }
            None => self.queue.cancel(&entry),
        }
        self.queue.recycle(entry);
    }
}

impl<T, F: FnOnce(T)> Drop for EntryGuard<'_, T, F> {
    #[inline(always)]
    fn drop(&mut self) {
        // After a successful wait there is nothing to undo (the hot path).
        if let Some(entry) = self.entry.take() {
            self.undo(entry);
        }
    }
}

impl<T> WaitQueue<T> {
    /// An empty queue.
    pub fn new() -> WaitQueue<T> {
        WaitQueue::default()
    }

    /// Blocks the current greenlet at the back of the queue until a
    /// notifier hands it a value, or `timeout` passes.
    ///
    /// `what` names the wait (in [`LoopExit`](crate::LoopExit) messages and
    /// hub dumps). `on_unclaimed` is called, while the caller unwinds, with
    /// a value handed to it that it can no longer return (it was killed or
    /// an outer timeout fired after the hand-off); it must not block or
    /// panic.
    ///
    /// # Errors
    ///
    /// [`WaitError::Elapsed`] when `timeout` passes first;
    /// [`WaitError::LoopExit`] on the native stack when nothing could ever
    /// notify it. In both cases the caller has left the queue.
    ///
    /// # Switches
    ///
    /// Always (until notified). A kill or [`Timeout`](crate::Timeout) ends
    /// the wait by unwinding.
    ///
    /// # Panics
    ///
    /// Inside a hub callback, and outside a hub scope.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::WaitError;
    /// use greenlet::waiter::WaitQueue;
    /// use std::time::Duration;
    ///
    /// let q = WaitQueue::<u32>::new();
    /// let r = q.wait(Some(Duration::from_millis(5)), "example", |_| ());
    /// assert!(matches!(r, Err(WaitError::Elapsed(_))));
    /// assert!(q.is_empty());
    /// # });
    /// ```
    #[track_caller]
    pub fn wait(
        &self,
        timeout: Option<Duration>,
        what: &'static str,
        on_unclaimed: impl FnOnce(T),
    ) -> Result<T, WaitError> {
        let deadline = timeout.and_then(hub::deadline_after);
        self.wait_deadline(deadline, timeout, what, on_unclaimed)
    }

    /// [`wait`](WaitQueue::wait) until an absolute `deadline` (from
    /// `hub::deadline_after`), for callers that wait in a loop; `timeout`
    /// is only reported in the `Elapsed` error.
    #[track_caller]
    pub(crate) fn wait_deadline(
        &self,
        deadline: Option<std::time::Instant>,
        timeout: Option<Duration>,
        what: &'static str,
        on_unclaimed: impl FnOnce(T),
    ) -> Result<T, WaitError> {
        let mut guard = EntryGuard {
            queue: self,
            entry: None,
            on_unclaimed: Some(on_unclaimed),
        };
        let parked = match deadline {
            // The common, hot case: no timer, and the entry is queued in
            // the hub borrow that parks.
            None => hub::park_registering(what, |w| guard.entry = Some(self.enqueue(w))),
            Some(deadline) => {
                let w = hub::current_waker(what);
                guard.entry = Some(self.enqueue(w));
                let timer = TimerGuard::wake_at(Some(deadline), true, w);
                let parked = hub::park(w, what);
                drop(timer);
                parked
            }
        };
        if let Some(value) = guard.take_value() {
            // Handed (and already out of the queue): nothing to undo.
            return Ok(value);
        }
        drop(guard); // cancels
        match parked {
            Err(e) => Err(WaitError::LoopExit(e)),
            Ok(()) => Err(WaitError::Elapsed(Elapsed::new(timeout, None))),
        }
    }

    /// Queues an entry for `w` at the back (the spare one if it is free).
    /// Does not touch the hub (it runs inside the parking borrow).
    #[inline]
    fn enqueue(&self, w: Waker) -> Rc<Entry<T>> {
        let entry = self
            .spare
            .take()
            .and_then(|mut e| {
                let m = Rc::get_mut(&mut e)?;
                m.waker = w;
                *m.value.get_mut() = None;
                *m.cancelled.get_mut() = false;
                Some(e)
            })
            .unwrap_or_else(|| {
                Rc::new(Entry {
                    waker: w,
                    value: Cell::new(None),
                    cancelled: Cell::new(false),
                })
            });
        self.waiting.borrow_mut().push_back(Rc::clone(&entry));
        self.live.set(self.live.get() + 1);
        entry
    }

    /// Hands `value` to the first waiter and wakes it; `Err(value)` back if
    /// nobody waits.
    ///
    /// Does not switch: the waiter runs on a later turn of the loop.
    ///
    /// # Panics
    ///
    /// Outside a hub scope, when there is a waiter to wake.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::waiter::WaitQueue::new();
    /// assert_eq!(q.notify_one(7), Err(7)); // nobody waits
    /// # });
    /// ```
    #[inline(always)]
    pub fn notify_one(&self, value: T) -> Result<(), T> {
        let entry = {
            let mut waiting = self.waiting.borrow_mut();
            loop {
                match waiting.pop_front() {
                    None => return Err(value),
                    Some(e) if e.cancelled.get() => continue,
                    Some(e) => break e,
                }
            }
        };
        self.live.set(self.live.get() - 1);
        entry.value.set(Some(value));
        hub::wake(entry.waker);
        Ok(())
    }

    /// Hands a value made by `make` to every current waiter, in order, and
    /// wakes them; returns how many. Waiters that arrive meanwhile (none can:
    /// this does not switch) are not included.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::rc::Rc;
    /// let q = Rc::new(greenlet::waiter::WaitQueue::<()>::new());
    /// let gs: Vec<_> = (0..3)
    ///     .map(|_| { let q = q.clone(); greenlet::spawn(move || q.wait(None, "all", |_| ()).is_ok()) })
    ///     .collect();
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// assert_eq!(q.notify_all(|| ()), 3);
    /// assert!(gs.iter().all(|g| g.get().unwrap()));
    /// # });
    /// ```
    pub fn notify_all(&self, mut make: impl FnMut() -> T) -> usize {
        let mut woken = 0;
        let n = self.waiting.borrow().len();
        for _ in 0..n {
            let entry = self.waiting.borrow_mut().pop_front();
            let Some(entry) = entry else { break };
            if entry.cancelled.get() {
                continue;
            }
            self.live.set(self.live.get() - 1);
            entry.value.set(Some(make()));
            hub::wake(entry.waker);
            woken += 1;
        }
        woken
    }

    /// Greenlets waiting (not yet handed a value).
    pub fn len(&self) -> usize {
        self.live.get()
    }

    /// `true` when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.live.get() == 0
    }

    /// Keeps `entry` for the next wait when it is out of the queue (handed
    /// a value) and referenced only by the caller.
    #[inline]
    fn recycle(&self, entry: Rc<Entry<T>>) {
        if Rc::strong_count(&entry) == 1 {
            self.spare.set(Some(entry));
        }
    }

    fn cancel(&self, entry: &Rc<Entry<T>>) {
        if entry.cancelled.replace(true) {
            return;
        }
        self.live.set(self.live.get() - 1);
        // Cancelled entries are skipped lazily; compact when they dominate
        // so a queue that only ever times out stays small.
        let mut waiting = self.waiting.borrow_mut();
        if waiting.len() > 32 && waiting.len() > 2 * self.live.get() {
            waiting.retain(|e| !e.cancelled.get());
        }
    }
}
