//! `UnixListener`, `UnixStream` and `UnixDatagram`.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use super::{Timeouts, blocking, socket_impls, stream_io, timeout_methods};
use crate::hub::io::{FdRegistration, Interest};

/// A Unix-domain stream socket whose blocking calls switch (std's
/// `UnixStream`). `Read` and `Write` are implemented on `UnixStream` and
/// `&UnixStream`.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::UnixStream;
/// use std::io::{Read, Write};
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// let reader = greenlet::spawn(move || {
///     let mut buf = [0; 3];
///     b.read_exact(&mut buf).unwrap();
///     buf
/// });
/// a.write_all(b"abc").unwrap();
/// assert_eq!(&reader.get().unwrap(), b"abc");
/// # });
/// ```
pub struct UnixStream {
    // First field: leaves the poller before `inner` closes the descriptor.
    reg: FdRegistration,
    inner: std::os::unix::net::UnixStream,
    timeouts: Timeouts,
}

socket_impls!(UnixStream, std::os::unix::net::UnixStream, "UnixStream");
stream_io!(UnixStream, "UnixStream::read", "UnixStream::write", false);

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    ///
    /// `NotFound` for no socket at `path`, `ConnectionRefused` for a socket
    /// nobody listens on, `InvalidInput` for a path too long.
    ///
    /// # Switches
    ///
    /// While the listener's backlog is full (it retries every millisecond).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{UnixListener, UnixStream};
    ///
    /// let dir = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("connect.sock");
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).unwrap();
    /// let _client = UnixStream::connect(&path).unwrap();
    /// let (_conn, _) = listener.accept().unwrap();
    /// std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let address = SockAddr::unix(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        loop {
            match socket.connect(&address) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A full backlog: Unix sockets have no "in progress" state to
                // wait for, so retry shortly.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(UnixStream::from(std::os::unix::net::UnixStream::from(
            std::os::fd::OwnedFd::from(socket),
        )))
    }

    /// A connected pair of sockets.
    ///
    /// # Errors
    ///
    /// The OS error of `socketpair` (`EMFILE`...).
    ///
    /// # Examples
    ///
    /// See [`UnixStream`].
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from(a), UnixStream::from(b)))
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
    /// use greenlet::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// assert!(a.local_addr().unwrap().is_unnamed());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// The OS error of `getpeername`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// assert!(a.peer_addr().unwrap().is_unnamed());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Shuts down the read half, the write half or both; a greenlet waiting
    /// on the socket wakes up.
    ///
    /// # Errors
    ///
    /// The OS error of `shutdown`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::UnixStream;
    /// use std::io::Read;
    /// use std::net::Shutdown;
    ///
    /// let (mut a, b) = UnixStream::pair().unwrap();
    /// b.shutdown(Shutdown::Write).unwrap();
    /// assert_eq!(a.read(&mut [0; 4]).unwrap(), 0);
    /// # });
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
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
    /// use greenlet::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let _clone = a.try_clone().unwrap();
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        let mut clone = UnixStream::from(self.inner.try_clone()?);
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
    /// use greenlet::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// assert!(a.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    timeout_methods!(
        UnixStream,
        "greenlet::net::UnixStream::pair().expect(\"socketpair\").0"
    );
}

/// A Unix-domain listening socket whose `accept` switches (std's
/// `UnixListener`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("listener.sock");
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path).unwrap();
/// let p = path.clone();
/// let client = greenlet::spawn(move || UnixStream::connect(&p).is_ok());
/// let (_conn, _addr) = listener.accept().unwrap();
/// assert!(client.get().unwrap());
/// std::fs::remove_file(&path).unwrap();
/// # });
/// ```
pub struct UnixListener {
    // First field: leaves the poller before `inner` closes the descriptor.
    reg: FdRegistration,
    inner: std::os::unix::net::UnixListener,
    timeouts: Timeouts,
}

socket_impls!(
    UnixListener,
    std::os::unix::net::UnixListener,
    "UnixListener"
);

impl UnixListener {
    /// Binds a socket at `path` (which must not exist) and listens.
    ///
    /// # Errors
    ///
    /// `AddrInUse` when `path` exists; `InvalidInput` for a path too long.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        std::os::unix::net::UnixListener::bind(path).map(UnixListener::from)
    }

    /// Accepts a connection.
    ///
    /// # Errors
    ///
    /// `EMFILE`/`ENFILE` when out of descriptors; `TimedOut` when the read
    /// timeout passes first; `ResourceBusy` when another greenlet accepts on
    /// this listener.
    ///
    /// # Switches
    ///
    /// Until a connection arrives. A kill or [`Timeout`](crate::Timeout)
    /// ends the wait by unwinding.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Read,
            self.timeouts.read.get(),
            "UnixListener::accept",
            || self.inner.accept(),
        )?;
        Ok((UnixStream::from(stream), addr))
    }

    /// An endless iterator over accepted streams.
    ///
    /// # Switches
    ///
    /// Each `next` as [`accept`](UnixListener::accept).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{UnixListener, UnixStream};
    ///
    /// let dir = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("incoming.sock");
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).unwrap();
    /// let p = path.clone();
    /// greenlet::spawn(move || (0..2).for_each(|_| drop(UnixStream::connect(&p))));
    /// assert_eq!(listener.incoming().take(2).filter(Result::is_ok).count(), 2);
    /// std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockname`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UnixListener;
    ///
    /// let dir = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("addr.sock");
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).unwrap();
    /// assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
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
    /// use greenlet::net::UnixListener;
    ///
    /// let dir = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("clone.sock");
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).unwrap();
    /// let _clone = listener.try_clone().unwrap();
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        let mut clone = UnixListener::from(self.inner.try_clone()?);
        clone.timeouts = self.timeouts.copy();
        Ok(clone)
    }

    timeout_methods!(
        UnixListener,
        "{ let d = std::env::temp_dir().join(format!(\"greenlet-doc-t{}\", std::process::id())); std::fs::create_dir_all(&d).expect(\"temp dir\"); let p = d.join(format!(\"{}.sock\", line!())); let _ = std::fs::remove_file(&p); greenlet::net::UnixListener::bind(&p).expect(\"bind\") }"
    );
}

/// The iterator of [`UnixListener::incoming`]: never ends.
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix-domain datagram socket whose blocking calls switch (std's
/// `UnixDatagram`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::UnixDatagram;
///
/// let (a, b) = UnixDatagram::pair().unwrap();
/// a.send(b"one").unwrap();
/// let mut buf = [0; 8];
/// assert_eq!(b.recv(&mut buf).unwrap(), 3);
/// # });
/// ```
pub struct UnixDatagram {
    // First field: leaves the poller before `inner` closes the descriptor.
    reg: FdRegistration,
    inner: std::os::unix::net::UnixDatagram,
    timeouts: Timeouts,
}

socket_impls!(
    UnixDatagram,
    std::os::unix::net::UnixDatagram,
    "UnixDatagram"
);

impl UnixDatagram {
    /// Binds a datagram socket at `path`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` when `path` exists; `InvalidInput` for a path too long.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UnixDatagram;
    ///
    /// let dir = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("dgram.sock");
    /// let _ = std::fs::remove_file(&path);
    /// let socket = UnixDatagram::bind(&path).unwrap();
    /// assert_eq!(socket.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::bind(path).map(UnixDatagram::from)
    }

    /// A socket bound to no address.
    ///
    /// # Errors
    ///
    /// The OS error of `socket`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UnixDatagram;
    ///
    /// let socket = UnixDatagram::unbound().unwrap();
    /// assert!(socket.local_addr().unwrap().is_unnamed());
    /// ```
    pub fn unbound() -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::unbound().map(UnixDatagram::from)
    }

    /// A connected pair of sockets.
    ///
    /// # Errors
    ///
    /// The OS error of `socketpair`.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
    }

    /// Sets the default destination.
    ///
    /// # Errors
    ///
    /// `NotFound`/`ConnectionRefused` when nothing is bound at `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UnixDatagram;
    ///
    /// let socket = UnixDatagram::unbound().unwrap();
    /// assert!(socket.connect("/nonexistent/greenlet.sock").is_err());
    /// ```
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// Sends a datagram to the socket at `path`.
    ///
    /// # Errors
    ///
    /// The OS error; `TimedOut` when the write timeout passes first.
    ///
    /// # Switches
    ///
    /// While the receiver's queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::UnixDatagram;
    ///
    /// let dir = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("send_to.sock");
    /// let _ = std::fs::remove_file(&path);
    /// let receiver = UnixDatagram::bind(&path).unwrap();
    /// UnixDatagram::unbound().unwrap().send_to(b"hi", &path).unwrap();
    /// let mut buf = [0; 4];
    /// assert_eq!(receiver.recv_from(&mut buf).unwrap().0, 2);
    /// std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Write,
            self.timeouts.write.get(),
            "UnixDatagram::send_to",
            || self.inner.send_to(buf, path),
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
    /// Until a datagram arrives.
    ///
    /// # Examples
    ///
    /// See [`send_to`](UnixDatagram::send_to).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Read,
            self.timeouts.read.get(),
            "UnixDatagram::recv_from",
            || self.inner.recv_from(buf),
        )
    }

    /// Sends to the connected address.
    ///
    /// # Errors
    ///
    /// `NotConnected` before `connect`; as [`send_to`](UnixDatagram::send_to).
    ///
    /// # Switches
    ///
    /// While the receiver's queue is full.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Write,
            self.timeouts.write.get(),
            "UnixDatagram::send",
            || self.inner.send(buf),
        )
    }

    /// Receives from the connected address.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UnixDatagram::recv_from).
    ///
    /// # Switches
    ///
    /// Until a datagram arrives.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        blocking(
            &self.reg,
            self.inner.as_fd(),
            Interest::Read,
            self.timeouts.read.get(),
            "UnixDatagram::recv",
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
    /// See [`bind`](UnixDatagram::bind).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected address.
    ///
    /// # Errors
    ///
    /// `NotConnected` before `connect`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UnixDatagram;
    ///
    /// let (a, _b) = UnixDatagram::pair().unwrap();
    /// assert!(a.peer_addr().unwrap().is_unnamed());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Shuts down reading, writing or both; waiting greenlets wake up.
    ///
    /// # Errors
    ///
    /// The OS error of `shutdown`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::net::UnixDatagram;
    /// use std::net::Shutdown;
    ///
    /// let (a, _b) = UnixDatagram::pair().unwrap();
    /// a.shutdown(Shutdown::Both).unwrap();
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
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
    /// use greenlet::net::UnixDatagram;
    ///
    /// let (a, _b) = UnixDatagram::pair().unwrap();
    /// let _clone = a.try_clone().unwrap();
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        let mut clone = UnixDatagram::from(self.inner.try_clone()?);
        clone.timeouts = self.timeouts.copy();
        Ok(clone)
    }

    timeout_methods!(
        UnixDatagram,
        "greenlet::net::UnixDatagram::unbound().expect(\"socket\")"
    );
}
