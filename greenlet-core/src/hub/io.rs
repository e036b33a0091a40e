//! Waiting for file descriptors (gevent's `wait_read` / `wait_write`).
//!
//! Each wait registers the descriptor with the hub's poller in oneshot mode,
//! parks the caller, and deregisters when it returns (also on unwinding), so
//! the descriptor is never left in the poller after the `BorrowedFd` borrow
//! ends: the safety contract of `reactor.rs`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::reactor::{IoTarget, SourceId};
use super::{TimerGuard, WaitTarget, current_waker, deadline_after, park_on, with_hub};

struct Registration(SourceId);

impl Drop for Registration {
    fn drop(&mut self) {
        let id = self.0;
        with_hub(|h| h.reactor.deregister(id));
    }
}

fn wait_fd(
    fd: BorrowedFd<'_>,
    readable: bool,
    writable: bool,
    timeout: Option<Duration>,
    what: &'static str,
) -> io::Result<()> {
    let w = current_waker(what);
    let id = with_hub(|h| {
        h.reactor
            .register(fd, readable, writable, true, IoTarget::Wake(w))
    })?;
    let _registration = Registration(id);
    let timer = TimerGuard::wake_at(timeout.and_then(deadline_after), true, w);
    // The registration is referenced, so the loop cannot run dry while we wait.
    let target = WaitTarget::Fd {
        what,
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        readable,
        writable,
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

/// Blocks the current greenlet until `fd` is readable (or has an error or
/// hang-up pending), or `timeout` passes (gevent's `wait_read`).
///
/// # Errors
///
/// `ErrorKind::TimedOut` when the timeout passes first; the poller's error if
/// the descriptor cannot be registered (for example a regular file).
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
