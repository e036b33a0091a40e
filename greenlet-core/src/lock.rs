//! Locks: gevent's `gevent.lock` module. [`Semaphore`],
//! [`BoundedSemaphore`], [`Lock`] and the re-entrant [`RLock`].
//!
//! # Design
//!
//! All four are built on the [waiter protocol](crate::waiter): a permit is
//! *handed* to the first waiter of a [`WaitQueue`] by `release`, never put
//! back for anyone to grab. So:
//!
//! * waiters are served in FIFO order (gevent ≥ 1.5), and a greenlet that
//!   arrives while others wait cannot barge in: while anyone waits, the
//!   counter stays at 0;
//! * a waiter killed or timed out while queued leaves the queue and takes
//!   nothing; one killed after a permit was handed to it (before it ran)
//!   gives the permit back to the next waiter while it unwinds. No permit
//!   is ever lost or duplicated.
//!
//! Blocking comes in the crate's three forms: `acquire()` (waits),
//! `try_acquire()` (never switches), `acquire_timeout(d)`; and as RAII
//! guards: `lock()`, `try_lock()`, `lock_timeout(d)` return a guard that
//! releases when dropped (gevent's `with lock:`). All are `!Send`.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use crate::greenlet::error::WaitError;
use crate::hub::{self, GreenletId};
use crate::waiter::{LinkId, Links, WaitQueue, Waitable};

/// A `release` that the lock's state does not allow.
///
/// # Examples
///
/// ```
/// use greenlet_core::lock::{BoundedSemaphore, ReleaseError};
/// let s = BoundedSemaphore::new(1);
/// assert_eq!(s.release(), Err(ReleaseError::TooManyReleases));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A [`BoundedSemaphore`] or [`Lock`] released more often than it was
    /// acquired (gevent's `ValueError`/`RuntimeError`).
    TooManyReleases,
    /// An [`RLock`] released by a greenlet that does not hold it (gevent's
    /// `RuntimeError: cannot release un-acquired lock`).
    NotOwner,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseError::TooManyReleases => f.write_str("semaphore released too many times"),
            ReleaseError::NotOwner => f.write_str(
                "cannot release un-acquired lock: the current greenlet does not hold it",
            ),
        }
    }
}

impl std::error::Error for ReleaseError {}

// ============================================================ the core

/// The counting semaphore all three non-reentrant types share.
struct Permits {
    counter: Cell<usize>,
    /// `Some(n)`: releasing past `n` is an error.
    bound: Option<usize>,
    waiters: WaitQueue<()>,
    links: Links,
}

impl Permits {
    fn new(value: usize, bound: Option<usize>) -> Permits {
        Permits {
            counter: Cell::new(value),
            bound,
            waiters: WaitQueue::new(),
            links: Links::new(),
        }
    }

    fn try_acquire(&self) -> bool {
        // While anyone waits the counter is 0 (releases hand permits over),
        // so this never barges past a waiter.
        let n = self.counter.get();
        if n > 0 {
            self.counter.set(n - 1);
            true
        } else {
            false
        }
    }

    #[track_caller]
    fn acquire(&self, timeout: Option<Duration>, what: &'static str) -> Result<(), WaitError> {
        if self.try_acquire() {
            return Ok(());
        }
        // A permit handed to us after we can no longer take it (killed,
        // outer timeout) goes to the next waiter.
        self.waiters
            .wait(timeout, what, |()| self.release_unchecked())
    }

    /// Hands a permit to the first waiter, or adds it to the counter.
    fn release_unchecked(&self) {
        if !self.waiters.is_empty() && self.waiters.notify_one(()).is_ok() {
            return;
        }
        self.counter.set(self.counter.get() + 1);
        if !self.links.is_empty() {
            self.links.fire();
        }
    }

    fn release(&self) -> Result<(), ReleaseError> {
        if self.bound.is_some_and(|bound| self.counter.get() >= bound) {
            return Err(ReleaseError::TooManyReleases);
        }
        self.release_unchecked();
        Ok(())
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        let id = self.links.add(callback);
        if self.counter.get() > 0 {
            self.links.fire();
        }
        id
    }
}

/// Holds one permit of a [`Semaphore`], [`BoundedSemaphore`] or [`Lock`];
/// releases it when dropped (gevent's `with sem:`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// let lock = greenlet::lock::Lock::new();
/// {
///     let _guard = lock.lock().unwrap();
///     assert!(lock.is_locked());
/// }
/// assert!(!lock.is_locked());
/// # });
/// ```
#[must_use = "the permit is released as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    permits: &'a Permits,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // The guard holds a permit it took: releasing it cannot exceed a
        // bound.
        self.permits.release_unchecked();
    }
}

/// Generates the shared methods of the three counting types.
macro_rules! counting_methods {
    ($ty:ident, $example_new:literal) => {
        impl $ty {
            /// Takes a permit, waiting in FIFO order while there is none
            /// (gevent's `acquire()`).
            ///
            /// # Errors
            ///
            /// [`WaitError::LoopExit`] on the native stack when nothing could
            /// ever release one.
            ///
            /// # Switches
            ///
            /// When no permit is free. A kill or [`Timeout`](crate::Timeout)
            /// ends the wait by unwinding: the greenlet leaves the queue, and a
            /// permit already handed to it goes to the next waiter.
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
            #[doc = $example_new]
            /// s.acquire().unwrap();
            /// assert!(s.is_locked());
            /// s.release().unwrap();
            /// # });
            /// ```
            #[track_caller]
            pub fn acquire(&self) -> Result<(), WaitError> {
                self.permits
                    .acquire(None, concat!(stringify!($ty), "::acquire"))
            }

            /// Takes a permit if one is free now (gevent's
            /// `acquire(blocking=False)`). Never switches, and never takes a
            /// permit ahead of a waiting greenlet.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = $example_new]
            /// assert!(s.try_acquire());
            /// assert!(!s.try_acquire());
            /// ```
            pub fn try_acquire(&self) -> bool {
                self.permits.try_acquire()
            }

            /// Like [`acquire`](Self::acquire), giving up after `timeout`
            /// (gevent's `acquire(timeout=…)` returning `False`).
            ///
            /// # Errors
            ///
            /// [`WaitError::Elapsed`] when `timeout` passes first (the
            /// greenlet has left the queue); the others as
            /// [`acquire`](Self::acquire).
            ///
            /// # Switches
            ///
            /// As [`acquire`](Self::acquire).
            ///
            /// # Examples
            ///
            /// ```
            /// # use greenlet_core as greenlet;
            /// # greenlet::run(|| {
            #[doc = $example_new]
            /// s.acquire().unwrap();
            /// assert!(s.acquire_timeout(std::time::Duration::from_millis(5)).is_err());
            /// # });
            /// ```
            #[track_caller]
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
                self.permits
                    .acquire(Some(timeout), concat!(stringify!($ty), "::acquire_timeout"))
            }

            /// [`acquire`](Self::acquire) returning a guard that releases the
            /// permit when dropped.
            ///
            /// # Errors
            ///
            /// As [`acquire`](Self::acquire).
            ///
            /// # Switches
            ///
            /// As [`acquire`](Self::acquire).
            ///
            /// # Examples
            ///
            /// ```
            /// # use greenlet_core as greenlet;
            /// # greenlet::run(|| {
            #[doc = $example_new]
            /// let guard = s.lock().unwrap();
            /// assert_eq!(s.counter(), 0);
            /// drop(guard);
            /// assert_eq!(s.counter(), 1);
            /// # });
            /// ```
            #[track_caller]
            pub fn lock(&self) -> Result<SemaphoreGuard<'_>, WaitError> {
                self.permits
                    .acquire(None, concat!(stringify!($ty), "::lock"))?;
                Ok(SemaphoreGuard {
                    permits: &self.permits,
                })
            }

            /// [`try_acquire`](Self::try_acquire) returning a guard.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = $example_new]
            /// let guard = s.try_lock().unwrap();
            /// assert!(s.try_lock().is_none());
            /// drop(guard);
            /// ```
            pub fn try_lock(&self) -> Option<SemaphoreGuard<'_>> {
                // `then`, not `then_some`: an eagerly built guard would be
                // dropped, releasing a permit, when none was taken.
                self.permits.try_acquire().then(|| SemaphoreGuard {
                    permits: &self.permits,
                })
            }

            /// [`acquire_timeout`](Self::acquire_timeout) returning a guard.
            ///
            /// # Errors
            ///
            /// As [`acquire_timeout`](Self::acquire_timeout).
            ///
            /// # Switches
            ///
            /// As [`acquire`](Self::acquire).
            ///
            /// # Examples
            ///
            /// ```
            /// # use greenlet_core as greenlet;
            /// # greenlet::run(|| {
            #[doc = $example_new]
            /// let _g = s.lock_timeout(std::time::Duration::from_millis(5)).unwrap();
            /// # });
            /// ```
            #[track_caller]
            pub fn lock_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, WaitError> {
                self.permits
                    .acquire(Some(timeout), concat!(stringify!($ty), "::lock_timeout"))?;
                Ok(SemaphoreGuard {
                    permits: &self.permits,
                })
            }

            /// Free permits (gevent's `counter`).
            ///
            /// # Examples
            ///
            /// ```
            #[doc = $example_new]
            /// assert_eq!(s.counter(), 1);
            /// ```
            pub fn counter(&self) -> usize {
                self.permits.counter.get()
            }

            /// `true` when no permit is free: an `acquire` would wait
            /// (gevent's `locked()`).
            ///
            /// # Examples
            ///
            /// ```
            #[doc = $example_new]
            /// assert!(!s.is_locked());
            /// ```
            #[doc(alias = "locked")]
            pub fn is_locked(&self) -> bool {
                self.permits.counter.get() == 0
            }

            /// Greenlets waiting for a permit now.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = $example_new]
            /// assert_eq!(s.waiters(), 0);
            /// ```
            pub fn waiters(&self) -> usize {
                self.permits.waiters.len()
            }
        }

        /// Ready while a permit is free: a `rawlink` fires once, when one is
        /// (or next becomes) free. A permit handed straight to a waiter does
        /// not make it ready.
        impl Waitable for $ty {
            fn is_ready(&self) -> bool {
                self.permits.counter.get() > 0
            }

            fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
                self.permits.rawlink(callback)
            }

            fn unlink(&self, id: LinkId) -> bool {
                self.permits.links.remove(id)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("counter", &self.permits.counter.get())
                    .field("waiters", &self.permits.waiters.len())
                    .finish()
            }
        }
    };
}

// ============================================================ Semaphore

/// A counting semaphore: gevent's `Semaphore`.
///
/// Holds `counter` permits; [`acquire`](Semaphore::acquire) takes one,
/// waiting (FIFO) while there is none; [`release`](Semaphore::release) hands
/// one to the first waiter or adds it back. Unbounded: releasing more than
/// was acquired raises the count (use [`BoundedSemaphore`] to forbid that).
///
/// # Examples
///
/// At most two greenlets in the critical section:
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::lock::Semaphore;
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let sem = Rc::new(Semaphore::new(2));
/// let inside = Rc::new(Cell::new(0));
/// let gs: Vec<_> = (0..5).map(|_| {
///     let (sem, inside) = (sem.clone(), inside.clone());
///     greenlet::spawn(move || {
///         let _permit = sem.lock().unwrap();
///         inside.set(inside.get() + 1);
///         assert!(inside.get() <= 2);
///         greenlet::sleep(Duration::from_millis(1));
///         inside.set(inside.get() - 1);
///     })
/// }).collect();
/// greenlet::joinall(&gs).unwrap();
/// assert_eq!(sem.counter(), 2);
/// # });
/// ```
///
/// ```compile_fail
/// let s = greenlet_core::lock::Semaphore::new(1);
/// std::thread::spawn(move || s.release()); // Semaphore is !Send
/// ```
pub struct Semaphore {
    permits: Permits,
}

impl Default for Semaphore {
    /// `Semaphore::new(1)`, as gevent's default.
    fn default() -> Self {
        Semaphore::new(1)
    }
}

impl Semaphore {
    /// A semaphore with `value` free permits.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenlet_core::lock::Semaphore::new(3);
    /// assert_eq!(s.counter(), 3);
    /// ```
    pub fn new(value: usize) -> Semaphore {
        Semaphore {
            permits: Permits::new(value, None),
        }
    }

    /// Hands a permit to the first waiter, or adds one (gevent's
    /// `release()`). Never fails for an unbounded semaphore (the `Result`
    /// keeps the three types interchangeable).
    ///
    /// Does not switch: a woken waiter runs on a later loop turn.
    ///
    /// # Errors
    ///
    /// Never.
    ///
    /// # Panics
    ///
    /// Outside a hub scope when there is a waiter or link to wake (there
    /// can be none there).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenlet_core::lock::Semaphore::new(0);
    /// s.release().unwrap();
    /// assert_eq!(s.counter(), 1);
    /// ```
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.permits.release_unchecked();
        Ok(())
    }
}

counting_methods!(Semaphore, "let s = greenlet_core::lock::Semaphore::new(1);");

// ===================================================== BoundedSemaphore

/// A semaphore that refuses to be released past its initial value:
/// gevent's `BoundedSemaphore`.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::lock::{BoundedSemaphore, ReleaseError};
/// let s = BoundedSemaphore::new(2);
/// s.acquire().unwrap();
/// s.release().unwrap();
/// assert_eq!(s.release(), Err(ReleaseError::TooManyReleases));
/// # });
/// ```
pub struct BoundedSemaphore {
    permits: Permits,
}

impl Default for BoundedSemaphore {
    /// `BoundedSemaphore::new(1)`, as gevent's default.
    fn default() -> Self {
        BoundedSemaphore::new(1)
    }
}

impl BoundedSemaphore {
    /// A semaphore with `value` permits, which is also its bound.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenlet_core::lock::BoundedSemaphore::new(3);
    /// assert_eq!(s.counter(), 3);
    /// ```
    pub fn new(value: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            permits: Permits::new(value, Some(value)),
        }
    }

    /// Hands a permit to the first waiter, or adds one (gevent's
    /// `release()`).
    ///
    /// Does not switch.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::TooManyReleases`] when every permit is already free
    /// (nothing changes then).
    ///
    /// # Panics
    ///
    /// As [`Semaphore::release`].
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenlet_core::lock::BoundedSemaphore::new(1);
    /// assert!(s.try_acquire());
    /// s.release().unwrap();
    /// assert!(s.release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.permits.release()
    }
}

counting_methods!(
    BoundedSemaphore,
    "let s = greenlet_core::lock::BoundedSemaphore::new(1);"
);

// ================================================================ Lock

/// A mutual-exclusion lock without data: gevent's `Lock` (a
/// `BoundedSemaphore(1)`). Any greenlet may release it, as with
/// `threading.Lock`; use [`RLock`] for an owned, re-entrant lock.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::lock::Lock;
/// let lock = Lock::new();
/// let guard = lock.lock().unwrap();
/// assert!(lock.try_lock().is_none());
/// drop(guard);
/// assert!(lock.try_lock().is_some());
/// # });
/// ```
///
/// ```compile_fail
/// let l = greenlet_core::lock::Lock::new();
/// std::thread::spawn(move || l.try_acquire()); // Lock is !Send
/// ```
#[derive(Default)]
pub struct Lock {
    permits: Permits,
}

impl Default for Permits {
    fn default() -> Self {
        Permits::new(1, Some(1))
    }
}

impl Lock {
    /// An unlocked lock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!greenlet_core::lock::Lock::new().is_locked());
    /// ```
    pub fn new() -> Lock {
        Lock::default()
    }

    /// Unlocks it, handing it to the first waiter if any (gevent's
    /// `release()`).
    ///
    /// Does not switch.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::TooManyReleases`] when it is not locked.
    ///
    /// # Panics
    ///
    /// As [`Semaphore::release`].
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenlet_core::lock::Lock::new();
    /// assert!(l.release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.permits.release()
    }
}

counting_methods!(Lock, "let s = greenlet_core::lock::Lock::new();");

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
