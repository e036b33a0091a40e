//! The counting types: [`Semaphore`], [`BoundedSemaphore`], [`Lock`] and
//! their [`SemaphoreGuard`], on one hand-off core (`Permits`).

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use super::ReleaseError;
use crate::greenlet::error::WaitError;
use crate::waiter::{LinkId, Links, WaitQueue, Waitable};

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
/// `threading.Lock`; use [`RLock`](super::RLock) for an owned, re-entrant lock.
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
