//! `UdpSocket`.

use crate::net::ToSocketAddrs;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

use super::addr::{each_addr, resolve};
use super::{Timeouts, blocking, socket_impls, timeout_methods};
use crate::hub::io::{FdRegistration, Interest};

/// A UDP socket whose blocking calls switch (std's `UdpSocket`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let to = b.local_addr().unwrap();
/// let receiver = greenlet::spawn(move || {
///     let mut buf = [0; 16];
///     let (n, _) = b.recv_from(&mut buf).unwrap();
///     buf[..n].to_vec()
/// });
/// a.send_to(b"datagram", to).unwrap();
/// assert_eq!(receiver.get().unwrap(), b"datagram");
/// # });
/// ```
pub struct UdpSocket {
    // First field: leaves the poller before `inner` closes the descriptor.
    reg: FdRegistration,
    inner: std::net::UdpSocket,
    timeouts: Timeouts,
}

socket_impls!(UdpSocket, std::net::UdpSocket, "UdpSocket");

impl UdpSocket {
    /// Binds to `addr`, trying each resolved address in turn.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `AddrNotAvailable`...; `InvalidInput` for an address
    /// that does not parse or resolves to nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(socket.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| std::net::UdpSocket::bind(a).map(UdpSocket::from))
    }

    /// Sets the default destination (and the only accepted source) of
    /// datagrams; enables [`send`](UdpSocket::send) and
    /// [`recv`](UdpSocket::recv).
    ///
    /// # Errors
    ///
    /// As [`bind`](UdpSocket::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// b.connect(a.local_addr().unwrap()).unwrap();
    /// a.send(b"hi").unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(b.recv(&mut buf).unwrap(), 2);
    /// # });
    /// ```
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.inner.connect(a))
    }

    /// Sends a datagram to `addr` (the first resolved address).
    ///
    /// # Errors
    ///
    /// The OS error (`EMSGSIZE` for a datagram too large...); `TimedOut`
    /// when the write timeout passes first.
    ///
    /// # Switches
    ///
    /// Only while the send buffer is full.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(a.send_to(b"hi", b.local_addr().unwrap()).unwrap(), 2);
    /// let mut buf = [0; 8];
    /// let (n, from) = b.recv_from(&mut buf).unwrap();
    /// assert_eq!((n, from), (2, a.local_addr().unwrap()));
    /// # });
    /// ```
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = resolve(addr)?[0];
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Write,
            self.timeouts.write.get(),
            "UdpSocket::send_to",
            || self.inner.send_to(buf, to),
        )
    }

    /// Receives a datagram and its source address.
    ///
    /// # Errors
    ///
    /// The OS error; `TimedOut` when the read timeout passes first.
    ///
    /// # Switches
    ///
    /// Until a datagram arrives. A kill or [`Timeout`](crate::Timeout) ends
    /// the wait by unwinding.
    ///
    /// # Examples
    ///
    /// See [`send_to`](UdpSocket::send_to).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Read,
            self.timeouts.read.get(),
            "UdpSocket::recv_from",
            || self.inner.recv_from(buf),
        )
    }

    /// Like [`recv_from`](UdpSocket::recv_from) but leaves the datagram
    /// queued.
    ///
    /// # Errors
    ///
    /// As `recv_from`.
    ///
    /// # Switches
    ///
    /// As `recv_from`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.send_to(b"hi", b.local_addr().unwrap()).unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(b.peek_from(&mut buf).unwrap().0, 2);
    /// assert_eq!(b.recv_from(&mut buf).unwrap().0, 2);
    /// # });
    /// ```
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Read,
            self.timeouts.read.get(),
            "UdpSocket::peek_from",
            || self.inner.peek_from(buf),
        )
    }

    /// Sends to the [`connect`](UdpSocket::connect)ed address.
    ///
    /// # Errors
    ///
    /// `NotConnected` before `connect`; as [`send_to`](UdpSocket::send_to).
    ///
    /// # Switches
    ///
    /// Only while the send buffer is full.
    ///
    /// # Examples
    ///
    /// See [`connect`](UdpSocket::connect).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Write,
            self.timeouts.write.get(),
            "UdpSocket::send",
            || self.inner.send(buf),
        )
    }

    /// Receives from the [`connect`](UdpSocket::connect)ed address.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UdpSocket::recv_from) (`ConnectionRefused` after an
    /// ICMP port unreachable).
    ///
    /// # Switches
    ///
    /// Until a datagram arrives.
    ///
    /// # Examples
    ///
    /// See [`connect`](UdpSocket::connect).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Read,
            self.timeouts.read.get(),
            "UdpSocket::recv",
            || self.inner.recv(buf),
        )
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockname`.
    ///
    /// # Examples
    ///
    /// See [`bind`](UdpSocket::bind).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected address.
    ///
    /// # Errors
    ///
    /// `NotConnected` before [`connect`](UdpSocket::connect).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(a.peer_addr().is_err());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// The OS error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.set_broadcast(true).unwrap();
    /// assert!(a.broadcast().unwrap());
    /// ```
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.inner.set_broadcast(broadcast)
    }

    /// Whether `SO_BROADCAST` is set.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// See [`set_broadcast`](UdpSocket::set_broadcast).
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
    }

    /// A second handle on the socket (a `dup`ed descriptor; timeouts copied).
    ///
    /// # Errors
    ///
    /// The OS error of `dup`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(a.try_clone().unwrap().local_addr().unwrap(), a.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        let mut clone = UdpSocket::from(self.inner.try_clone()?);
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
    /// use greenlet::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(a.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    timeout_methods!(
        UdpSocket,
        "greenlet::net::UdpSocket::bind(\"127.0.0.1:0\").expect(\"bind\")"
    );
}
