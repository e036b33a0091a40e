//! [`DatagramServer`]: a handler greenlet per received datagram.

use crate::net::ToSocketAddrs;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::{MAX_ACCEPT_DELAY, MIN_ACCEPT_DELAY, Shared, is_transient};
use crate::net::UdpSocket;
use crate::{Builder, WaitError};

/// gevent's `DatagramServer`: receives datagrams on a [`UdpSocket`] and runs
/// `handler(datagram, from, socket)` in a new greenlet for each (reply with
/// `socket.send_to(.., from)`).
///
/// The handlers share the one socket: sends rarely wait, but two handlers
/// both waiting for room in a full send buffer make the second one's send
/// fail with `ResourceBusy` (gevent's `ConcurrentObjectUseError`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::UdpSocket;
/// use greenlet::server::DatagramServer;
///
/// let server = DatagramServer::bind("127.0.0.1:0", |data: Vec<u8>, from, socket: &UdpSocket| {
///     socket.send_to(&data, from).unwrap();
/// })
/// .unwrap();
/// server.start().unwrap();
/// let client = UdpSocket::bind("127.0.0.1:0").unwrap();
/// client.send_to(b"ping", server.local_addr().unwrap()).unwrap();
/// let mut buf = [0; 8];
/// assert_eq!(client.recv(&mut buf).unwrap(), 4);
/// server.stop(None).unwrap();
/// # });
/// ```
pub struct DatagramServer {
    shared: Rc<Shared>,
    socket: Rc<UdpSocket>,
    handler: DatagramHandler,
}

impl std::fmt::Debug for DatagramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramServer")
            .field("socket", &self.socket)
            .field("closed", &self.shared.closed.get())
            .finish_non_exhaustive()
    }
}

impl DatagramServer {
    /// Binds a [`UdpSocket`] to `addr` and makes a server on it.
    ///
    /// # Errors
    ///
    /// As [`UdpSocket::bind`].
    ///
    /// # Examples
    ///
    /// See [`DatagramServer`].
    pub fn bind<A, F>(addr: A, handler: F) -> io::Result<DatagramServer>
    where
        A: ToSocketAddrs,
        F: Fn(Vec<u8>, SocketAddr, &UdpSocket) + 'static,
    {
        Ok(DatagramServer::new(UdpSocket::bind(addr)?, handler))
    }

    /// Makes a server on `socket`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::UdpSocket;
    /// use greenlet::server::DatagramServer;
    ///
    /// let server = DatagramServer::new(UdpSocket::bind("127.0.0.1:0").unwrap(), |_, _, _| ());
    /// server.start().unwrap();
    /// server.close();
    /// # });
    /// ```
    pub fn new<F>(socket: UdpSocket, handler: F) -> DatagramServer
    where
        F: Fn(Vec<u8>, SocketAddr, &UdpSocket) + 'static,
    {
        DatagramServer {
            shared: Shared::new(None),
            socket: Rc::new(socket),
            handler: Rc::new(handler),
        }
    }

    /// Limits the number of handlers running at once; at the limit the
    /// server stops receiving (datagrams queue in the socket, then drop).
    ///
    /// # Panics
    ///
    /// If `max` is 0, or after `start`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::server::DatagramServer;
    ///
    /// let _server = DatagramServer::bind("127.0.0.1:0", |_, _, _| ()).unwrap().max_handlers(10);
    /// # });
    /// ```
    #[must_use]
    pub fn max_handlers(mut self, max: usize) -> DatagramServer {
        assert!(
            max > 0,
            "DatagramServer::max_handlers: the limit must be > 0"
        );
        assert!(
            self.shared.acceptor.borrow().is_none(),
            "DatagramServer::max_handlers: call it before start"
        );
        self.shared = Shared::new(Some(max));
        self
    }

    /// The socket's address.
    ///
    /// # Errors
    ///
    /// As [`UdpSocket::local_addr`].
    ///
    /// # Examples
    ///
    /// See [`DatagramServer`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Starts receiving in a new greenlet (does nothing if started).
    ///
    /// # Errors
    ///
    /// `NotConnected` after `close`/`stop`; a spawn error.
    ///
    /// # Examples
    ///
    /// See [`DatagramServer`].
    pub fn start(&self) -> io::Result<()> {
        if self.shared.closed.get() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "DatagramServer::start: the server is closed",
            ));
        }
        if self.shared.acceptor.borrow().is_some() {
            return Ok(());
        }
        let shared = Rc::clone(&self.shared);
        let socket = Rc::clone(&self.socket);
        let handler = Rc::clone(&self.handler);
        let g = Builder::new()
            .name("DatagramServer receive loop")
            .spawn(move || receive_loop(&shared, &socket, &handler))
            .map_err(io::Error::other)?;
        *self.shared.acceptor.borrow_mut() = Some(g);
        Ok(())
    }

    /// Starts (if needed) and waits until closed from another greenlet.
    ///
    /// # Errors
    ///
    /// As [`start`](DatagramServer::start).
    ///
    /// # Switches
    ///
    /// Until the server is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::server::DatagramServer;
    /// use std::rc::Rc;
    ///
    /// let server = Rc::new(DatagramServer::bind("127.0.0.1:0", |_, _, _| ()).unwrap());
    /// let closer = Rc::clone(&server);
    /// greenlet::spawn_later(std::time::Duration::from_millis(10), move || closer.close());
    /// server.serve_forever().unwrap();
    /// # });
    /// ```
    pub fn serve_forever(&self) -> io::Result<()> {
        self.start()?;
        let acceptor = self.shared.acceptor.borrow().clone();
        match acceptor {
            Some(g) => g.join().map_err(io::Error::other),
            None => Ok(()),
        }
    }

    /// Stops receiving; running handlers go on. Never switches.
    ///
    /// # Examples
    ///
    /// See [`new`](DatagramServer::new).
    pub fn close(&self) {
        self.shared.close();
    }

    /// Closes, waits up to `timeout` for the handlers, kills the rest.
    ///
    /// # Errors
    ///
    /// `WaitError::JoinSelf` from one of the server's own handlers.
    ///
    /// # Switches
    ///
    /// While handlers finish or unwind.
    ///
    /// # Examples
    ///
    /// See [`DatagramServer`].
    pub fn stop(&self, timeout: impl Into<Option<Duration>>) -> Result<(), WaitError> {
        self.shared.stop(timeout.into())
    }
}

/// A [`DatagramServer`]'s handler.
type DatagramHandler = Rc<dyn Fn(Vec<u8>, SocketAddr, &UdpSocket)>;

/// The receive loop of a [`DatagramServer`].
fn receive_loop(shared: &Rc<Shared>, socket: &Rc<UdpSocket>, handler: &DatagramHandler) {
    let mut buf = vec![0; 65536];
    let mut delay = MIN_ACCEPT_DELAY;
    loop {
        shared.wait_for_room();
        if shared.closed.get() {
            return;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                delay = MIN_ACCEPT_DELAY;
                let data = buf[..n].to_vec();
                let handler = Rc::clone(handler);
                let socket = Rc::clone(socket);
                if let Err(e) = shared.spawn_handler(move || handler(data, from, &socket)) {
                    crate::hub::warn(format_args!("greenlet: DatagramServer: {e}"));
                }
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                shared.errors.set(shared.errors.get() + 1);
                crate::hub::warn(format_args!(
                    "greenlet: DatagramServer: receive failed: {e}; retrying in {delay:?}"
                ));
                crate::sleep(delay);
                delay = (delay * 2).min(MAX_ACCEPT_DELAY);
            }
        }
    }
}
