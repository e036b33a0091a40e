//! [`RLock`]: the re-entrant lock, owned by greenlet identity.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use super::ReleaseError;
use crate::greenlet::error::WaitError;
use crate::hub::{self, GreenletId};
use crate::waiter::WaitQueue;

// =============================================================== RLock

/// A re-entrant lock: gevent's `RLock`. The greenlet holding it may acquire
/// it again; it is free once released as many times. Only the holder may
/// release it.
///
/// The holder is identified by greenlet identity (hub, slot and the slot's
/// generation), so a greenlet that died holding the lock is never confused
/// with a later greenlet that reuses its slot: the lock then stays held, as
/// in gevent; guards ([`lock`](RLock::lock)) avoid that.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::lock::{RLock, ReleaseError};
/// use std::rc::Rc;
///
/// let lock = Rc::new(RLock::new());
/// let outer = lock.lock().unwrap();
/// let inner = lock.lock().unwrap(); // re-entrant
/// assert_eq!(lock.count(), 2);
/// let l = lock.clone();
/// let other = greenlet::spawn(move || l.release());
/// assert_eq!(other.get().unwrap(), Err(ReleaseError::NotOwner));
/// drop((inner, outer));
/// assert!(!lock.is_locked());
/// # });
/// ```
///
/// ```compile_fail
/// let l = greenlet_core::lock::RLock::new();
/// std::thread::spawn(move || l.is_locked()); // RLock is !Send
/// ```
#[derive(Default)]
pub struct RLock {
    /// Taken: owned, or handed to a waiter that has not run yet.
    held: Cell<bool>,
    owner: Cell<Option<GreenletId>>,
    count: Cell<usize>,
    waiters: WaitQueue<()>,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("locked", &self.held.get())
            .field("count", &self.count.get())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// let l = greenlet::lock::RLock::new();
/// let g = l.lock().unwrap();
/// assert!(l.is_owned());
/// drop(g);
/// assert!(!l.is_locked());
/// # });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    owner: GreenletId,
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // Released for the greenlet that took it, wherever the guard ends.
        let released = self.lock.release_as(self.owner);
        debug_assert!(released.is_ok(), "an RLock guard releases its own hold");
    }
}

#[track_caller]
fn current_id(api: &'static str) -> GreenletId {
    match hub::current_greenlet_id() {
        Some(id) => id,
        None => hub::no_scope(api),
    }
}

impl RLock {
    /// An unlocked lock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!greenlet_core::lock::RLock::new().is_locked());
    /// ```
    pub fn new() -> RLock {
        RLock::default()
    }

    fn try_acquire_as(&self, me: GreenletId) -> bool {
        if !self.held.get() {
            self.held.set(true);
            self.owner.set(Some(me));
            self.count.set(1);
            true
        } else if self.owner.get() == Some(me) {
            self.count.set(self.count.get() + 1);
            true
        } else {
            false
        }
    }

    #[track_caller]
    fn acquire_inner(
        &self,
        timeout: Option<Duration>,
        what: &'static str,
    ) -> Result<GreenletId, WaitError> {
        let me = current_id(what);
        if self.try_acquire_as(me) {
            return Ok(me);
        }
        // Handed the lock but unable to take it: pass it on.
        self.waiters.wait(timeout, what, |()| self.pass_on())?;
        self.owner.set(Some(me));
        self.count.set(1);
        Ok(me)
    }

    /// Hands the lock to the first waiter, or frees it.
    fn pass_on(&self) {
        self.owner.set(None);
        self.count.set(0);
        if self.waiters.notify_one(()).is_err() {
            self.held.set(false);
        }
    }

    fn release_as(&self, me: GreenletId) -> Result<(), ReleaseError> {
        if self.owner.get() != Some(me) {
            return Err(ReleaseError::NotOwner);
        }
        let n = self.count.get() - 1;
        self.count.set(n);
        if n == 0 {
            self.pass_on();
        }
        Ok(())
    }

    /// Acquires the lock, or one more level of it if the current greenlet
    /// holds it (gevent's `acquire()`).
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] on the native stack when nothing could ever
    /// release it.
    ///
    /// # Switches
    ///
    /// While another greenlet holds it. A kill or
    /// [`Timeout`](crate::Timeout) ends the wait by unwinding: the greenlet
    /// leaves the queue, and a lock already handed to it goes to the next
    /// waiter.
    ///
    /// # Panics
    ///
    /// Outside a hub scope; inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let l = greenlet::lock::RLock::new();
    /// l.acquire().unwrap();
    /// l.acquire().unwrap();
    /// l.release().unwrap();
    /// l.release().unwrap();
    /// assert!(!l.is_locked());
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> Result<(), WaitError> {
        self.acquire_inner(None, "RLock::acquire").map(drop)
    }

    /// Acquires it if that needs no wait (gevent's `acquire(blocking=False)`).
    /// Never switches.
    ///
    /// # Panics
    ///
    /// Outside a hub scope.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let l = greenlet::lock::RLock::new();
    /// assert!(l.try_acquire());
    /// assert!(l.try_acquire()); // re-entrant
    /// assert_eq!(l.count(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_as(current_id("RLock::try_acquire"))
    }

    /// Like [`acquire`](RLock::acquire), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`WaitError::Elapsed`] when `timeout` passes first; the others as
    /// [`acquire`](RLock::acquire).
    ///
    /// # Switches
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Panics
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::rc::Rc;
    /// let l = Rc::new(greenlet::lock::RLock::new());
    /// l.acquire().unwrap();
    /// let l2 = l.clone();
    /// let g = greenlet::spawn(move || l2.acquire_timeout(std::time::Duration::from_millis(5)).is_err());
    /// assert!(g.get().unwrap());
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.acquire_inner(Some(timeout), "RLock::acquire_timeout")
            .map(drop)
    }

    /// Releases one level; the lock is free (or handed to the first waiter)
    /// when the count reaches zero (gevent's `release()`).
    ///
    /// Does not switch.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::NotOwner`] when the current greenlet does not hold
    /// it (nothing changes then).
    ///
    /// # Panics
    ///
    /// Outside a hub scope.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::lock::{RLock, ReleaseError};
    /// let l = RLock::new();
    /// assert_eq!(l.release(), Err(ReleaseError::NotOwner));
    /// # });
    /// ```
    #[track_caller]
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.release_as(current_id("RLock::release"))
    }

    /// [`acquire`](RLock::acquire) returning a guard that releases this
    /// level when dropped.
    ///
    /// # Errors
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Switches
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Panics
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let l = greenlet::lock::RLock::new();
    /// let _a = l.lock().unwrap();
    /// let _b = l.lock().unwrap();
    /// assert_eq!(l.count(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn lock(&self) -> Result<RLockGuard<'_>, WaitError> {
        let owner = self.acquire_inner(None, "RLock::lock")?;
        Ok(RLockGuard { lock: self, owner })
    }

    /// [`try_acquire`](RLock::try_acquire) returning a guard.
    ///
    /// # Panics
    ///
    /// Outside a hub scope.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let l = greenlet::lock::RLock::new();
    /// assert!(l.try_lock().is_some());
    /// # });
    /// ```
    #[track_caller]
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        let me = current_id("RLock::try_lock");
        // `then`, not `then_some`: see `Semaphore::try_lock`.
        self.try_acquire_as(me).then(|| RLockGuard {
            lock: self,
            owner: me,
        })
    }

    /// [`acquire_timeout`](RLock::acquire_timeout) returning a guard.
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](RLock::acquire_timeout).
    ///
    /// # Switches
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Panics
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let l = greenlet::lock::RLock::new();
    /// let _g = l.lock_timeout(std::time::Duration::from_millis(5)).unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<RLockGuard<'_>, WaitError> {
        let owner = self.acquire_inner(Some(timeout), "RLock::lock_timeout")?;
        Ok(RLockGuard { lock: self, owner })
    }

    /// `true` while some greenlet holds it (gevent's `locked()`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!greenlet_core::lock::RLock::new().is_locked());
    /// ```
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> bool {
        self.held.get()
    }

    /// `true` when the current greenlet holds it (gevent's `_is_owned()`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let l = greenlet::lock::RLock::new();
    /// assert!(!l.is_owned());
    /// l.acquire().unwrap();
    /// assert!(l.is_owned());
    /// # });
    /// ```
    pub fn is_owned(&self) -> bool {
        self.owner.get().is_some() && self.owner.get() == hub::current_greenlet_id()
    }

    /// How many times the holder acquired it (0 when free).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenlet_core::lock::RLock::new().count(), 0);
    /// ```
    pub fn count(&self) -> usize {
        self.count.get()
    }

    /// Greenlets waiting for it now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenlet_core::lock::RLock::new().waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }
}
