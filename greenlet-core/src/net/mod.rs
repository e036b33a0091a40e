//! Cooperative sockets (gevent's `gevent.socket`), shaped like `std::net`
//! and `std::os::unix::net`.
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
//! [`UnixStream`] and [`UnixDatagram`] have std's methods and traits
//! (`Read`/`Write` on the type and on `&T`, `try_clone`, `shutdown`,
//! conversions from and into the std types and raw descriptors), but every
//! call that would block switches to the hub instead: the descriptor is in
//! non-blocking mode, the call is tried, and on `WouldBlock` the greenlet
//! waits for readiness and tries again (`EINTR` is retried). Other greenlets
//! of the thread run meanwhile.
//!
//! ```
//! # use greenlet_core as greenlet;
//! # greenlet::run(|| {
//! use greenlet::net::{TcpListener, TcpStream};
//! use std::io::{Read, Write};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = greenlet::spawn(move || {
//!     let (mut conn, _) = listener.accept().unwrap();
//!     let mut buf = [0; 5];
//!     conn.read_exact(&mut buf).unwrap();
//!     conn.write_all(&buf).unwrap();
//! });
//! let mut client = TcpStream::connect(addr).unwrap();
//! client.write_all(b"hello").unwrap();
//! let mut echo = [0; 5];
//! client.read_exact(&mut echo).unwrap();
//! assert_eq!(&echo, b"hello");
//! server.join().unwrap();
//! # });
//! ```
//!
//! # Waiting, timeouts, kills
//!
//! * One greenlet may read a socket while another writes it. A second
//!   greenlet blocking in the same direction of the same socket (two readers)
//!   gets `ErrorKind::ResourceBusy` (gevent's `ConcurrentObjectUseError`).
//! * `set_read_timeout`/`set_write_timeout` bound each call's wait for
//!   readiness; when it passes the call fails with `ErrorKind::TimedOut` and
//!   the socket stays usable. [`TcpStream::connect_timeout`] likewise.
//! * An outer [`Timeout`](crate::Timeout) or a kill interrupts any blocking
//!   call by unwinding out of it; nothing stays registered with the hub.
//! * `shutdown` of a socket another greenlet waits on wakes it (reads then
//!   see EOF, writes `EPIPE`). Writes never raise `SIGPIPE`.
//!
//! # Threads
//!
//! The types are `!Send`: a socket is registered with the hub of the thread
//! that first waits on it. To move one to another thread, convert it into
//! the std type (or an `OwnedFd`), send that, and convert it back there.
//!
//! # Names
//!
//! Addresses are anything [`ToSocketAddrs`] accepts (std's address types);
//! host names are resolved on the hub's thread pool ([`lookup_host`]), so
//! only the calling greenlet waits; literal addresses are parsed at once.

mod addr;
mod tcp;
mod udp;
mod unix;

use std::cell::Cell;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::hub::io::{FdRegistration, Interest};

pub use crate::dns::{LookupHost, lookup_host, lookup_host_port};
pub use addr::ToSocketAddrs;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

/// The first address `addr` resolves to (for binds that take one address).
pub(crate) fn resolve_first<A: ToSocketAddrs>(addr: A) -> io::Result<std::net::SocketAddr> {
    Ok(addr::resolve(addr)?[0])
}

/// Per-socket read and write timeouts (`set_read_timeout`...).
#[derive(Debug, Default)]
pub(crate) struct Timeouts {
    read: Cell<Option<Duration>>,
    write: Cell<Option<Duration>>,
}

impl Timeouts {
    fn copy(&self) -> Timeouts {
        Timeouts {
            read: Cell::new(self.read.get()),
            write: Cell::new(self.write.get()),
        }
    }
}

/// std's check: a zero timeout is an error, not "no timeout".
fn check_timeout(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

/// Runs the non-blocking `op` until it does not say `WouldBlock`, waiting
/// for `interest` in between; `EINTR` is retried.
pub(crate) fn blocking<T>(
    reg: &FdRegistration,
    fd: BorrowedFd<'_>,
    interest: Interest,
    timeout: Option<Duration>,
    what: &'static str,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
        reg.wait(fd, interest, timeout, what)?;
    }
}

/// [`blocking`] for stream reads of `len` bytes: while the registration
/// knows the receive queue is empty ([`FdRegistration::may_read`]) it waits
/// for the next readable edge without trying `op` (which would only say
/// `WouldBlock`: one `recv` less per wait). `WouldBlock` proves the queue
/// empty; so does a read shorter than `len` when `short_drains` (TCP: a
/// stream `recv` returns early only once the queue is empty or at an urgent
/// mark, which the poller reports as `EPOLLPRI`, turning the hint off). A
/// wait that ends always tries `op` again.
pub(crate) fn blocking_read(
    reg: &FdRegistration,
    fd: BorrowedFd<'_>,
    timeout: Option<Duration>,
    what: &'static str,
    len: usize,
    short_drains: bool,
    mut op: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut try_now = reg.may_read();
    loop {
        if try_now {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => reg.read_drained(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(n) if short_drains && n > 0 && n < len => {
                    reg.read_drained();
                    return Ok(n);
                }
                r => return r,
            }
        }
        reg.wait(fd, Interest::Read, timeout, what)?;
        try_now = true;
    }
}

/// `std`'s `set_nonblocking`, which on an open descriptor we own cannot fail
/// (`ioctl(FIONBIO)` fails only with `EBADF`/`ENOTTY`).
fn nonblocking(r: io::Result<()>, what: &str) {
    if let Err(e) = r {
        panic!("{what}: cannot make the descriptor non-blocking: {e}");
    }
}

/// Trait impls every socket type shares: descriptor access and conversions
/// from and into std types and descriptors. `FromRawFd` lives in
/// `hub/reactor.rs` (the home of `unsafe`).
macro_rules! socket_impls {
    ($ty:ident, $std:ty, $name:literal) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.inner.as_raw_fd()
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                <$std>::from(self).into_raw_fd()
            }
        }

        /// Takes over a std socket, switching it to non-blocking mode.
        ///
        /// # Panics
        ///
        /// If the descriptor cannot be made non-blocking, which an open
        /// socket never refuses.
        impl From<$std> for $ty {
            fn from(inner: $std) -> $ty {
                $crate::net::nonblocking(inner.set_nonblocking(true), concat!($name, "::from"));
                $ty {
                    reg: $crate::hub::io::FdRegistration::new(),
                    inner,
                    timeouts: Default::default(),
                }
            }
        }

        /// Takes over a socket descriptor, switching it to non-blocking mode.
        ///
        /// # Panics
        ///
        /// As `From` of the std type.
        impl From<std::os::fd::OwnedFd> for $ty {
            fn from(fd: std::os::fd::OwnedFd) -> $ty {
                $ty::from(<$std>::from(fd))
            }
        }

        /// Gives the socket back to std (it stays in non-blocking mode; call
        /// `set_nonblocking(false)` for blocking use).
        impl From<$ty> for $std {
            fn from(socket: $ty) -> $std {
                let $ty { reg, inner, .. } = socket;
                reg.release();
                inner
            }
        }

        /// Gives the descriptor back (it stays in non-blocking mode).
        impl From<$ty> for std::os::fd::OwnedFd {
            fn from(socket: $ty) -> std::os::fd::OwnedFd {
                <$std>::from(socket).into()
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.inner.fmt(f)
            }
        }
    };
}

/// `Read`/`Write` on the type and on `&T`, through the per-socket timeouts.
///
/// `$short`: a read shorter than its buffer proves the receive queue empty
/// (TCP; see [`blocking_read`]).
macro_rules! stream_io {
    ($ty:ident, $read:literal, $write:literal, $short:literal) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let this: &$ty = self;
                let len = buf.len();
                $crate::net::blocking_read(
                    &this.reg,
                    std::os::fd::AsFd::as_fd(&this.inner),
                    this.timeouts.read.get(),
                    $read,
                    len,
                    $short,
                    || (&this.inner).read(buf),
                )
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                let this: &$ty = self;
                let len = bufs.iter().map(|b| b.len()).sum();
                $crate::net::blocking_read(
                    &this.reg,
                    std::os::fd::AsFd::as_fd(&this.inner),
                    this.timeouts.read.get(),
                    $read,
                    len,
                    $short,
                    || (&this.inner).read_vectored(bufs),
                )
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let this: &$ty = self;
                // MSG_NOSIGNAL: a peer gone away is `EPIPE`, never SIGPIPE.
                let socket = socket2::SockRef::from(&this.inner);
                $crate::net::blocking(
                    &this.reg,
                    std::os::fd::AsFd::as_fd(&this.inner),
                    $crate::hub::io::Interest::Write,
                    this.timeouts.write.get(),
                    $write,
                    || socket.send_with_flags(buf, libc::MSG_NOSIGNAL),
                )
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                let this: &$ty = self;
                let socket = socket2::SockRef::from(&this.inner);
                $crate::net::blocking(
                    &this.reg,
                    std::os::fd::AsFd::as_fd(&this.inner),
                    $crate::hub::io::Interest::Write,
                    this.timeouts.write.get(),
                    $write,
                    || socket.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL),
                )
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

/// `set_read_timeout` and friends, with docs; `$make` builds an example
/// socket in the docs.
macro_rules! timeout_methods {
    ($ty:ident, $make:literal) => {
        /// Sets the timeout of each blocking read-side call (`read`,
        /// `recv`, `accept`...): how long it may wait for readiness. `None`
        /// (the default) waits forever.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for `Some(Duration::ZERO)` (as std).
        ///
        /// # Examples
        ///
        /// ```
        /// # use greenlet_core as greenlet;
        /// # greenlet::run(|| {
        /// use std::time::Duration;
        #[doc = concat!("let socket = ", $make, ";")]
        /// socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        /// assert_eq!(socket.read_timeout().unwrap(), Some(Duration::from_millis(20)));
        /// # });
        /// ```
        pub fn set_read_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            $crate::net::check_timeout(timeout)?;
            self.timeouts.read.set(timeout);
            Ok(())
        }

        /// Sets the timeout of each blocking write-side call (`write`,
        /// `send`...). `None` (the default) waits forever.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for `Some(Duration::ZERO)` (as std).
        ///
        /// # Examples
        ///
        /// ```
        /// # use greenlet_core as greenlet;
        /// # greenlet::run(|| {
        /// use std::time::Duration;
        #[doc = concat!("let socket = ", $make, ";")]
        /// socket.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        /// assert_eq!(socket.write_timeout().unwrap(), Some(Duration::from_secs(1)));
        /// # });
        /// ```
        pub fn set_write_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            $crate::net::check_timeout(timeout)?;
            self.timeouts.write.set(timeout);
            Ok(())
        }

        /// The read timeout (see `set_read_timeout`).
        ///
        /// # Errors
        ///
        /// Never; `io::Result` for std's shape.
        ///
        /// # Examples
        ///
        /// ```
        /// # use greenlet_core as greenlet;
        /// # greenlet::run(|| {
        #[doc = concat!("let socket = ", $make, ";")]
        /// assert_eq!(socket.read_timeout().unwrap(), None);
        /// # });
        /// ```
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.timeouts.read.get())
        }

        /// The write timeout (see `set_write_timeout`).
        ///
        /// # Errors
        ///
        /// Never; `io::Result` for std's shape.
        ///
        /// # Examples
        ///
        /// ```
        /// # use greenlet_core as greenlet;
        /// # greenlet::run(|| {
        #[doc = concat!("let socket = ", $make, ";")]
        /// assert_eq!(socket.write_timeout().unwrap(), None);
        /// # });
        /// ```
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.timeouts.write.get())
        }
    };
}

pub(crate) use {socket_impls, stream_io, timeout_methods};
