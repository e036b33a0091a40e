//! Waiting for file descriptors (gevent's `wait_read` / `wait_write`).
//!
//! A wait makes the caller the reader and/or writer of the descriptor's
//! fd-wait source in the reactor (one per descriptor: a reader and a writer
//! may wait at once, from two greenlets), parks, and leaves the source when
//! it returns (also on unwinding, through [`WaitGuard`]). A transient source
//! leaves the poller with its last waiter, so the descriptor is never left in
//! the poller after the `BorrowedFd` borrow ends: the safety contract of
//! `reactor.rs`.
//!
//! [`FdRegistration`] is the owned variant the `greenlet::net` sockets use:
//! edge-triggered, registered on the first wait and kept until the socket is
//! dropped, so that a wait after `WouldBlock` costs no `epoll_ctl`. It also
//! shares the reactor's read [`Readiness`] hint with its socket
//! ([`FdRegistration::may_read`], [`FdRegistration::read_drained`]; see
//! `reactor.rs`).

use std::cell::Cell;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;
use std::time::Duration;

use super::reactor::{FdKey, READ_ALWAYS, READ_EDGE, Readiness};
use super::{TimerGuard, WaitTarget, Waker, current_waker, deadline_after, park_on, with_hub};

/// Leaves the fd-wait source on drop (also when the waiter unwinds).
struct WaitGuard {
    key: FdKey,
    waker: Waker,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let (key, waker) = (self.key, self.waker);
        with_hub(|h| h.reactor.remove_waiter(key, waker));
    }
}

/// Which direction(s) a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Readable (or hang-up/error).
    Read,
    /// Writable (or hang-up/error).
    Write,
    /// Either.
    Both,
}

impl Interest {
    fn read(self) -> bool {
        matches!(self, Interest::Read | Interest::Both)
    }
    fn write(self) -> bool {
        matches!(self, Interest::Write | Interest::Both)
    }
}

fn wait_source(
    fd: BorrowedFd<'_>,
    owned: Option<&FdRegistration>,
    interest: Interest,
    timeout: Option<Duration>,
    what: &'static str,
) -> io::Result<()> {
    let w = current_waker(what);
    let key = with_hub(|h| {
        let own = match owned {
            Some(reg) => Some(match reg.key.get() {
                Some(k) if h.reactor.is_live(k) => k,
                _ => {
                    let k = h
                        .reactor
                        .register_edge_with(fd, Rc::clone(&reg.readiness))?;
                    reg.key.set(Some(k));
                    k
                }
            }),
            None => None,
        };
        h.reactor
            .add_waiter(fd, own, interest.read(), interest.write(), w)
    })?;
    let _guard = WaitGuard { key, waker: w };
    let timer = TimerGuard::wake_at(timeout.and_then(deadline_after), true, w);
    // The waiter is referenced, so the loop cannot run dry while we wait.
    let target = WaitTarget::Fd {
        what,
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        readable: interest.read(),
        writable: interest.write(),
    };
    park_on(w, target).map_err(io::Error::other)?;
    if timer.fired() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: timed out"),
        ));
    }
    Ok(())
}

fn wait_fd(
    fd: BorrowedFd<'_>,
    readable: bool,
    writable: bool,
    timeout: Option<Duration>,
    what: &'static str,
) -> io::Result<()> {
    let interest = match (readable, writable) {
        (true, false) => Interest::Read,
        (false, true) => Interest::Write,
        _ => Interest::Both,
    };
    wait_source(fd, None, interest, timeout, what)
}

/// The persistent, edge-triggered registration of a descriptor owned by a
/// `greenlet::net` socket. Made lazily on the first wait; released in `Drop`,
/// which the owner must run before closing the descriptor (declare it as the
/// socket's first field).
#[derive(Debug)]
pub(crate) struct FdRegistration {
    key: Cell<Option<FdKey>>,
    /// Shared with the reactor's source while registered (see `reactor.rs`).
    readiness: Readiness,
    /// Registered with this thread's hub.
    _not_send: PhantomData<*const ()>,
}

impl FdRegistration {
    /// Not registered yet.
    pub(crate) fn new() -> FdRegistration {
        FdRegistration {
            key: Cell::new(None),
            readiness: Rc::new(Cell::new(READ_EDGE)),
            _not_send: PhantomData,
        }
    }

    /// `false` only when no readable edge was reported since a read proved
    /// the receive queue empty ([`read_drained`](Self::read_drained)): a
    /// read now would say `WouldBlock`, so wait for the next edge instead.
    /// `true` before the first registration.
    pub(crate) fn may_read(&self) -> bool {
        self.key.get().is_none() || self.readiness.get() != 0
    }

    /// A read just proved the receive queue empty (`WouldBlock`, or a TCP
    /// read shorter than its buffer): until the poller reports the next
    /// readable edge, [`may_read`](Self::may_read) says `false` (unless the
    /// source reported a hang-up or error, which is sticky).
    pub(crate) fn read_drained(&self) {
        self.readiness.set(self.readiness.get() & READ_ALWAYS);
    }

    /// Waits until `fd` (the descriptor this registration's owner owns) is
    /// ready for `interest`. Call only after the I/O call said
    /// `WouldBlock`: the wait ends at the next readiness edge.
    ///
    /// # Errors
    ///
    /// `TimedOut` after `timeout`; `ResourceBusy` if another greenlet waits in
    /// the same direction; the poller's error.
    pub(crate) fn wait(
        &self,
        fd: BorrowedFd<'_>,
        interest: Interest,
        timeout: Option<Duration>,
        what: &'static str,
    ) -> io::Result<()> {
        wait_source(fd, Some(self), interest, timeout, what)
    }

    /// Leaves the poller now (before the owner gives its descriptor away).
    pub(crate) fn release(&self) {
        if let Some(key) = self.key.take() {
            // At thread exit the hub may be gone already: then so is the
            // poller and there is nothing to release.
            super::local::try_with_hub(|h| h.reactor.release_edge(key));
        }
    }
}

impl Drop for FdRegistration {
    fn drop(&mut self) {
        self.release();
    }
}

/// Blocks the current greenlet until `fd` is readable (or has an error or
/// hang-up pending), or `timeout` passes (gevent's `wait_read`).
///
/// # Errors
///
/// `ErrorKind::TimedOut` when the timeout passes first;
/// `ErrorKind::ResourceBusy` when another greenlet already waits for the same
/// descriptor in the same direction (gevent's `ConcurrentObjectUseError`; one
/// reader and one writer may wait at once); the poller's error if the
/// descriptor cannot be registered (for example a regular file).
///
/// # Switches
///
/// Always. A kill or [`Timeout`](crate::Timeout) ends the wait by unwinding.
///
/// # Panics
///
/// Inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{io::wait_read, spawn};
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
///
/// let (a, mut b) = UnixStream::pair().unwrap();
/// let reader = spawn(move || wait_read(&a, None).is_ok());
/// b.write_all(b"x").unwrap();
/// assert!(reader.get().unwrap());
/// # });
/// ```
#[track_caller]
pub fn wait_read(fd: impl AsFd, timeout: impl Into<Option<Duration>>) -> io::Result<()> {
    wait_fd(fd.as_fd(), true, false, timeout.into(), "wait_read")
}

/// Blocks the current greenlet until `fd` is writable, or `timeout` passes
/// (gevent's `wait_write`).
///
/// # Errors
///
/// As [`wait_read`].
///
/// # Switches
///
/// As [`wait_read`].
///
/// # Panics
///
/// Inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::io::wait_write;
/// use std::os::unix::net::UnixStream;
///
/// let (a, _b) = UnixStream::pair().unwrap();
/// wait_write(&a, None).unwrap(); // an empty socket buffer is writable
/// # });
/// ```
#[track_caller]
pub fn wait_write(fd: impl AsFd, timeout: impl Into<Option<Duration>>) -> io::Result<()> {
    wait_fd(fd.as_fd(), false, true, timeout.into(), "wait_write")
}

/// Blocks until `fd` is readable or writable (gevent's `wait_readwrite`).
///
/// # Errors
///
/// As [`wait_read`].
///
/// # Switches
///
/// As [`wait_read`].
///
/// # Panics
///
/// Inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::io::wait_readwrite;
/// use std::os::unix::net::UnixStream;
///
/// let (a, _b) = UnixStream::pair().unwrap();
/// wait_readwrite(&a, None).unwrap();
/// # });
/// ```
#[track_caller]
pub fn wait_readwrite(fd: impl AsFd, timeout: impl Into<Option<Duration>>) -> io::Result<()> {
    wait_fd(fd.as_fd(), true, true, timeout.into(), "wait_readwrite")
}
