//! Locks: gevent's `gevent.lock` module. [`Semaphore`],
//! [`BoundedSemaphore`], [`Lock`] and the re-entrant [`RLock`].
//!
//! # Design
//!
//! All four are built on the [waiter protocol](crate::waiter): a permit is
//! *handed* to the first waiter of a [`WaitQueue`](crate::waiter::WaitQueue) by `release`, never put
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

mod rlock;
mod semaphore;

use std::fmt;

pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Lock, Semaphore, SemaphoreGuard};

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
