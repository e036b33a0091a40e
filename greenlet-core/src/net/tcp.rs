//! `TcpListener` and `TcpStream`.

use crate::net::ToSocketAddrs;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::addr::each_addr;
use super::{Timeouts, blocking, socket_impls, stream_io, timeout_methods};
use crate::hub::io::{FdRegistration, Interest};

/// A TCP connection whose blocking calls switch (std's `TcpStream`, gevent's
/// `socket`). `Read` and `Write` are implemented on `TcpStream` and
/// `&TcpStream`.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::{TcpListener, TcpStream};
/// use std::io::{Read, Write};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
/// let (mut server, _) = listener.accept().unwrap();
/// client.write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// # });
/// ```
pub struct TcpStream {
    // First field: leaves the poller before `inner` closes the descriptor.
    reg: FdRegistration,
    inner: std::net::TcpStream,
    timeouts: Timeouts,
}

socket_impls!(TcpStream, std::net::TcpStream, "TcpStream");
stream_io!(TcpStream, "TcpStream::read", "TcpStream::write", true);

impl TcpStream {
    /// Connects to `addr`, trying each resolved address in turn (std's
    /// `connect`).
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`...);
    /// `InvalidInput` for an address that does not parse or resolves to
    /// nothing.
    ///
    /// # Switches
    ///
    /// While the connection is being established. A kill or
    /// [`Timeout`](crate::Timeout) ends it by unwinding and closes the
    /// half-made socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
    /// # });
    /// ```
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| connect_one(a, None))
    }

    /// Connects to `addr`, giving up after `timeout` (std's
    /// `connect_timeout`).
    ///
    /// # Errors
    ///
    /// `TimedOut` when `timeout` passes first; `InvalidInput` for a zero
    /// timeout; the connection error otherwise.
    ///
    /// # Switches
    ///
    /// As [`connect`](TcpStream::connect).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
    /// # });
    /// ```
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        super::check_timeout(Some(timeout))?;
        connect_one(*addr, Some(timeout))
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// `NotConnected` when the peer is gone.
    ///
    /// # Examples
    ///
    /// See [`connect`](TcpStream::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockname`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// assert!(stream.local_addr().unwrap().ip().is_loopback());
    /// # });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Shuts down the read half, the write half or both. A greenlet waiting
    /// on the socket wakes up (a read then returns 0, a write fails).
    ///
    /// # Errors
    ///
    /// `NotConnected` when not connected.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    /// use std::io::Read;
    /// use std::net::Shutdown;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (mut server, _) = listener.accept().unwrap();
    /// client.shutdown(Shutdown::Write).unwrap();
    /// assert_eq!(server.read(&mut [0; 8]).unwrap(), 0); // EOF
    /// # });
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// A second handle on the same connection (a `dup`ed descriptor with
    /// its own registration; the timeouts are copied, later changes are
    /// per handle). One greenlet may then read through one handle while
    /// another writes through the other.
    ///
    /// # Errors
    ///
    /// The OS error of `dup` (`EMFILE`...).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let clone = stream.try_clone().unwrap();
    /// assert_eq!(clone.peer_addr().unwrap(), stream.peer_addr().unwrap());
    /// # });
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        let mut clone = TcpStream::from(self.inner.try_clone()?);
        clone.timeouts = self.timeouts.copy();
        Ok(clone)
    }

    /// Sets `TCP_NODELAY` (no Nagle delay for small writes).
    ///
    /// # Errors
    ///
    /// The OS error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// stream.set_nodelay(true).unwrap();
    /// assert!(stream.nodelay().unwrap());
    /// # });
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// See [`set_nodelay`](TcpStream::set_nodelay).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    ///
    /// The OS error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// stream.set_ttl(42).unwrap();
    /// assert_eq!(stream.ttl().unwrap(), 42);
    /// # });
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// See [`set_ttl`](TcpStream::set_ttl).
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// # Errors
    ///
    /// The OS error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// assert!(stream.take_error().unwrap().is_none());
    /// # });
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Reads without removing the data from the queue, waiting for some.
    ///
    /// # Errors
    ///
    /// As `read`.
    ///
    /// # Switches
    ///
    /// Until data (or EOF) arrives or the read timeout passes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    /// use std::io::{Read, Write};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (mut server, _) = listener.accept().unwrap();
    /// client.write_all(b"x").unwrap();
    /// let mut buf = [0; 1];
    /// assert_eq!(server.peek(&mut buf).unwrap(), 1);
    /// assert_eq!(server.read(&mut buf).unwrap(), 1);
    /// # });
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Read,
            self.timeouts.read.get(),
            "TcpStream::peek",
            || self.inner.peek(buf),
        )
    }

    timeout_methods!(
        TcpStream,
        "{ let l = greenlet::net::TcpListener::bind(\"127.0.0.1:0\").expect(\"bind\"); greenlet::net::TcpStream::connect(l.local_addr().expect(\"address\")).expect(\"connect\") }"
    );
}

/// One non-blocking connect: `EINPROGRESS`, wait until writable, `SO_ERROR`.
fn connect_one(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    let in_progress = match socket.connect(&addr.into()) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
        Err(e) => return Err(e),
    };
    let stream = TcpStream {
        reg: FdRegistration::new(),
        inner: std::net::TcpStream::from(socket),
        timeouts: Timeouts::default(),
    };
    if in_progress {
        loop {
            stream.reg.wait(
                stream.inner.as_fd(),
                Interest::Write,
                timeout,
                "TcpStream::connect",
            )?;
            if let Some(e) = stream.inner.take_error()? {
                return Err(e);
            }
            // Writable without an error: connected, unless the wake-up was
            // spurious (then `getpeername` says `NotConnected`).
            match SockRef::from(&stream.inner).peer_addr() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(stream)
}

/// A TCP listening socket whose `accept` switches (std's `TcpListener`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let client = greenlet::spawn(move || TcpStream::connect(addr).is_ok());
/// let (_conn, peer) = listener.accept().unwrap();
/// assert!(peer.ip().is_loopback());
/// assert!(client.get().unwrap());
/// # });
/// ```
pub struct TcpListener {
    // First field: leaves the poller before `inner` closes the descriptor.
    reg: FdRegistration,
    inner: std::net::TcpListener,
    timeouts: Timeouts,
}

socket_impls!(TcpListener, std::net::TcpListener, "TcpListener");

impl TcpListener {
    /// Binds to `addr` and listens (std's `bind`: `SO_REUSEADDR`, backlog
    /// 128), trying each resolved address in turn.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `AddrNotAvailable`, `PermissionDenied`...; `InvalidInput`
    /// for an address that does not parse or resolves to nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(listener.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            std::net::TcpListener::bind(a).map(TcpListener::from)
        })
    }

    /// Binds with `SO_REUSEADDR` and `SO_REUSEPORT` set (backlog 1024):
    /// several listeners, typically one per thread and hub, may bind the same
    /// address and the kernel spreads incoming connections over them. See
    /// [`server::serve_multicore`](crate::server::serve_multicore).
    ///
    /// # Errors
    ///
    /// As [`bind`](TcpListener::bind); `AddrInUse` if a listener without
    /// `SO_REUSEPORT` holds the address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::TcpListener;
    ///
    /// let a = TcpListener::bind_reuse_port("127.0.0.1:0").unwrap();
    /// let b = TcpListener::bind_reuse_port(a.local_addr().unwrap()).unwrap();
    /// assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
    /// ```
    pub fn bind_reuse_port<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            let socket = Socket::new(
                Domain::for_address(a),
                Type::STREAM.nonblocking(),
                Some(Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.bind(&a.into())?;
            socket.listen(1024)?;
            Ok(TcpListener::from(std::net::TcpListener::from(socket)))
        })
    }

    /// Accepts a connection (the new stream is non-blocking too).
    ///
    /// # Errors
    ///
    /// `EMFILE`/`ENFILE` when out of descriptors, `ECONNABORTED`...;
    /// `TimedOut` when the read timeout passes first;
    /// `ResourceBusy` when another greenlet is accepting on this listener.
    ///
    /// # Switches
    ///
    /// Until a connection arrives. A kill or [`Timeout`](crate::Timeout)
    /// ends the wait by unwinding.
    ///
    /// # Examples
    ///
    /// See [`TcpListener`].
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Read,
            self.timeouts.read.get(),
            "TcpListener::accept",
            || self.inner.accept(),
        )?;
        Ok((TcpStream::from(stream), addr))
    }

    /// An endless iterator over [`accept`](TcpListener::accept)ed streams.
    ///
    /// # Switches
    ///
    /// Each `next` as `accept`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// greenlet::spawn(move || (0..3).for_each(|_| drop(TcpStream::connect(addr))));
    /// assert_eq!(listener.incoming().take(3).filter(Result::is_ok).count(), 3);
    /// # });
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address (find the port after binding port 0).
    ///
    /// # Errors
    ///
    /// The OS error of `getsockname`.
    ///
    /// # Examples
    ///
    /// See [`bind`](TcpListener::bind).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A second handle on the listener (a `dup`ed descriptor).
    ///
    /// # Errors
    ///
    /// The OS error of `dup`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let clone = listener.try_clone().unwrap();
    /// assert_eq!(clone.local_addr().unwrap(), listener.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        let mut clone = TcpListener::from(self.inner.try_clone()?);
        clone.timeouts = self.timeouts.copy();
        Ok(clone)
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// # Errors
    ///
    /// The OS error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(listener.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    timeout_methods!(
        TcpListener,
        "greenlet::net::TcpListener::bind(\"127.0.0.1:0\").expect(\"bind\")"
    );
}

/// The iterator of [`TcpListener::incoming`]: never ends, yields each
/// `accept`'s result.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}
