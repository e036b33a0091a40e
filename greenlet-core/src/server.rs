//! Servers (gevent's `gevent.server`): [`StreamServer`] runs a handler in a
//! new greenlet for each accepted connection, [`DatagramServer`] one for
//! each received datagram; [`serve_multicore`] runs one hub per thread on
//! `SO_REUSEPORT` listeners to use every core.
//!
//! # Life cycle
//!
//! `new` (or `bind`) → [`start`](StreamServer::start) (an accept-loop
//! greenlet) or [`serve_forever`](StreamServer::serve_forever) (start and
//! wait) → [`close`](StreamServer::close) (stop accepting) or
//! [`stop`](StreamServer::stop) (close, let the handlers finish up to a
//! timeout, then kill them).
//!
//! # Errors while accepting
//!
//! An accept error (`EMFILE` when out of descriptors, `ENOBUFS`...) is
//! reported once per occurrence through the hub's warning output and the
//! loop pauses before accepting again: 10 ms, doubling up to 1 s, back to
//! 10 ms after a successful accept (gevent's `min_delay`/`max_delay`). It
//! never busy-loops and never stops serving. `ECONNABORTED` (a client gone
//! before its connection was accepted) is skipped silently.
//!
//! # Handlers
//!
//! Each handler runs in its own greenlet and owns its connection: when it
//! returns, panics or is killed, the connection is closed. A panic is
//! reported by the hub's error handler and ends that connection only.

use crate::net::ToSocketAddrs;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::hub::{Waker, current_waker, park, wake};
use crate::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use crate::{Builder, Greenlet, WaitError, WaitOptions};

mod datagram;
mod multicore;

pub use datagram::DatagramServer;
pub use multicore::{MulticoreServer, serve_multicore};

/// The first pause after an accept error (gevent's `min_delay`).
pub const MIN_ACCEPT_DELAY: Duration = Duration::from_millis(10);
/// The longest pause after repeated accept errors (gevent's `max_delay`).
pub const MAX_ACCEPT_DELAY: Duration = Duration::from_secs(1);

/// A listening socket a [`StreamServer`] can accept from: implemented by
/// [`TcpListener`] and [`UnixListener`].
pub trait Listener: 'static {
    /// The accepted connection.
    type Stream: 'static;
    /// The peer's address.
    type Addr: 'static;

    /// Accepts one connection, switching while none is pending.
    ///
    /// # Errors
    ///
    /// The accept error.
    ///
    /// # Switches
    ///
    /// Until a connection arrives.
    fn accept(&self) -> io::Result<(Self::Stream, Self::Addr)>;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self)
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    type Addr = std::os::unix::net::SocketAddr;

    fn accept(&self) -> io::Result<(UnixStream, std::os::unix::net::SocketAddr)> {
        UnixListener::accept(self)
    }
}

/// `true` for accept errors that say nothing about the server (skip them).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

/// State shared by a server's handle, its accept loop and its handlers.
struct Shared {
    /// Live handler greenlets by id.
    handlers: RefCell<HashMap<u64, Greenlet<()>>>,
    next_id: Cell<u64>,
    /// The concurrency limit.
    max: Option<usize>,
    /// The loop waiting for a handler to end (at the limit).
    room: Cell<Option<Waker>>,
    /// The accept (or receive) loop while started.
    acceptor: RefCell<Option<Greenlet<()>>>,
    closed: Cell<bool>,
    /// Accept errors seen (each one paused the loop).
    errors: Cell<u64>,
}

impl Shared {
    fn new(max: Option<usize>) -> Rc<Shared> {
        Rc::new(Shared {
            handlers: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            max,
            room: Cell::new(None),
            acceptor: RefCell::new(None),
            closed: Cell::new(false),
            errors: Cell::new(0),
        })
    }

    /// Waits (in the accept loop) while the limit is reached.
    fn wait_for_room(&self) {
        while let Some(max) = self.max
            && self.handlers.borrow().len() >= max
        {
            let w = current_waker("StreamServer accept loop");
            self.room.set(Some(w));
            // Handlers are live greenlets: the loop cannot run dry here.
            if park(w, "StreamServer: waiting for a free handler slot").is_err() {
                return;
            }
        }
    }

    /// Spawns `f` as a tracked handler greenlet.
    fn spawn_handler(self: &Rc<Self>, f: impl FnOnce() + 'static) -> io::Result<()> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let guard = HandlerGuard {
            shared: Rc::downgrade(self),
            id,
        };
        let g = Builder::new()
            .spawn(move || {
                let _guard = guard;
                f();
            })
            .map_err(io::Error::other)?;
        self.handlers.borrow_mut().insert(id, g);
        Ok(())
    }

    fn close(&self) {
        self.closed.set(true);
        let acceptor = self.acceptor.borrow_mut().take();
        if let Some(g) = acceptor {
            crate::kill(&g);
        }
        if let Some(w) = self.room.take() {
            wake(w);
        }
    }

    /// `stop`: close, join the loop, let handlers finish, kill the rest.
    fn stop(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        let acceptor = self.acceptor.borrow().clone();
        self.close();
        if let Some(g) = acceptor {
            g.join()?;
        }
        let handlers: Vec<Greenlet<()>> = self.handlers.borrow().values().cloned().collect();
        if handlers.is_empty() {
            return Ok(());
        }
        let options = match timeout {
            Some(t) => WaitOptions::new().timeout(t),
            None => WaitOptions::new(),
        };
        crate::joinall_with(&handlers, options).map_err(|e| match e {
            crate::GreenletError::JoinSelf => WaitError::JoinSelf,
            crate::GreenletError::LoopExit(e) => WaitError::LoopExit(e),
            // Without `raise_error` joinall reports only why it could not wait.
            other => unreachable!("joinall without raise_error returned {other}"),
        })?;
        let left: Vec<Greenlet<()>> = self.handlers.borrow().values().cloned().collect();
        crate::killall(&left)
    }
}

/// Removes a handler from the server's set when its greenlet ends (returns,
/// panics or is killed) and makes room for the next connection.
struct HandlerGuard {
    shared: std::rc::Weak<Shared>,
    id: u64,
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            let removed = shared.handlers.borrow_mut().remove(&self.id);
            drop(removed);
            if let Some(w) = shared.room.take() {
                wake(w);
            }
        }
    }
}

/// gevent's `StreamServer`: accepts connections on a listener and runs
/// `handler(stream, peer_address)` in a new greenlet for each.
///
/// The handle is cheap to clone (all clones control the same server) and
/// `!Send`: the server lives on the hub of its thread. Dropping the handles
/// does not stop a started server; call [`stop`](StreamServer::stop) or
/// [`close`](StreamServer::close) (the hub scope's end kills it too).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::TcpStream;
/// use greenlet::server::StreamServer;
/// use std::io::{Read, Write};
///
/// let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _peer| {
///     let mut buf = [0; 64];
///     while let Ok(n @ 1..) = conn.read(&mut buf) {
///         if conn.write_all(&buf[..n]).is_err() {
///             break;
///         }
///     }
/// })
/// .unwrap();
/// server.start().unwrap();
///
/// let mut client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
/// client.write_all(b"echo").unwrap();
/// let mut buf = [0; 4];
/// client.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"echo");
/// drop(client);
/// server.stop(None).unwrap();
/// # });
/// ```
pub struct StreamServer<L: Listener = TcpListener> {
    shared: Rc<Shared>,
    /// Taken by `start` (the accept loop owns it from then on).
    listener: Rc<RefCell<Option<L>>>,
    local: Option<io::Result<SocketAddr>>,
    handler: StreamHandler<L>,
}

impl<L: Listener> Clone for StreamServer<L> {
    fn clone(&self) -> Self {
        StreamServer {
            shared: Rc::clone(&self.shared),
            listener: Rc::clone(&self.listener),
            local: self.local.as_ref().map(|r| match r {
                Ok(a) => Ok(*a),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            }),
            handler: Rc::clone(&self.handler),
        }
    }
}

impl<L: Listener> std::fmt::Debug for StreamServer<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamServer")
            .field("connections", &self.connection_count())
            .field("started", &self.is_started())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl StreamServer<TcpListener> {
    /// Binds a [`TcpListener`] to `addr` and makes a server on it (gevent's
    /// `StreamServer(('127.0.0.1', 0), handle)`).
    ///
    /// # Errors
    ///
    /// As [`TcpListener::bind`].
    ///
    /// # Examples
    ///
    /// See [`StreamServer`].
    pub fn bind<A, F>(addr: A, handler: F) -> io::Result<StreamServer<TcpListener>>
    where
        A: ToSocketAddrs,
        F: Fn(TcpStream, SocketAddr) + 'static,
    {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr();
        let mut server = StreamServer::new(listener, handler);
        server.local = Some(local);
        Ok(server)
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    ///
    /// # Examples
    ///
    /// See [`StreamServer`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.local {
            Some(Ok(a)) => Ok(*a),
            Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Err(io::Error::other("StreamServer: no address")),
        }
    }

    /// Makes a server on a [`TcpListener`] and records its address for
    /// [`local_addr`](StreamServer::local_addr).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::TcpListener;
    /// use greenlet::server::StreamServer;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// let server = StreamServer::from_tcp(listener, |_conn, _peer| ());
    /// assert_eq!(server.local_addr().unwrap(), addr);
    /// # });
    /// ```
    pub fn from_tcp<F>(listener: TcpListener, handler: F) -> StreamServer<TcpListener>
    where
        F: Fn(TcpStream, SocketAddr) + 'static,
    {
        let local = listener.local_addr();
        let mut server = StreamServer::new(listener, handler);
        server.local = Some(local);
        server
    }
}

impl<L: Listener> StreamServer<L> {
    /// Makes a server on `listener`; nothing is accepted before
    /// [`start`](StreamServer::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::{UnixListener, UnixStream};
    /// use greenlet::server::StreamServer;
    /// use std::io::Write;
    ///
    /// let dir = std::env::temp_dir().join(format!("greenlet-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("server.sock");
    /// let _ = std::fs::remove_file(&path);
    /// let server = StreamServer::new(UnixListener::bind(&path).unwrap(), |mut conn: UnixStream, _| {
    ///     conn.write_all(b"hi").unwrap();
    /// });
    /// server.start().unwrap();
    /// let mut client = UnixStream::connect(&path).unwrap();
    /// let mut out = String::new();
    /// std::io::Read::read_to_string(&mut client, &mut out).unwrap();
    /// assert_eq!(out, "hi");
    /// server.stop(None).unwrap();
    /// std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub fn new<F>(listener: L, handler: F) -> StreamServer<L>
    where
        F: Fn(L::Stream, L::Addr) + 'static,
    {
        StreamServer {
            shared: Shared::new(None),
            listener: Rc::new(RefCell::new(Some(listener))),
            local: None,
            handler: Rc::new(handler),
        }
    }

    /// Limits the number of connections handled at once (gevent's
    /// `spawn=<int>`, a pool of that size): at the limit the server stops
    /// accepting until a handler ends (connections wait in the backlog).
    /// Call before [`start`](StreamServer::start).
    ///
    /// # Panics
    ///
    /// If `max` is 0 (nothing could ever be served), or after `start`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::server::StreamServer;
    ///
    /// let server = StreamServer::bind("127.0.0.1:0", |_, _| ()).unwrap().max_connections(100);
    /// assert_eq!(server.connection_count(), 0);
    /// # });
    /// ```
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> StreamServer<L> {
        assert!(
            max > 0,
            "StreamServer::max_connections: the limit must be > 0"
        );
        assert!(
            !self.is_started(),
            "StreamServer::max_connections: call it before start"
        );
        self.shared = Shared::new(Some(max));
        self
    }

    /// Starts accepting in a new greenlet and returns at once (gevent's
    /// `start`). Does nothing if already started.
    ///
    /// # Errors
    ///
    /// `NotConnected` after [`close`](StreamServer::close)/`stop`
    /// (a listener, once closed, is gone); a spawn error.
    ///
    /// # Examples
    ///
    /// See [`StreamServer`].
    pub fn start(&self) -> io::Result<()> {
        if self.shared.closed.get() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "StreamServer::start: the server is closed",
            ));
        }
        if self.shared.acceptor.borrow().is_some() {
            return Ok(());
        }
        let Some(listener) = self.listener.borrow_mut().take() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "StreamServer::start: the listener is gone",
            ));
        };
        let shared = Rc::clone(&self.shared);
        let handler = Rc::clone(&self.handler);
        let g = Builder::new()
            .name("StreamServer accept loop")
            .spawn(move || accept_loop(&shared, &listener, &handler))
            .map_err(io::Error::other)?;
        *self.shared.acceptor.borrow_mut() = Some(g);
        Ok(())
    }

    /// Starts (if needed) and waits until the server is closed or stopped
    /// from another greenlet (gevent's `serve_forever`). If the waiting
    /// greenlet is killed or times out, the server is closed and its
    /// handlers are killed (without waiting) on the way out.
    ///
    /// # Errors
    ///
    /// As [`start`](StreamServer::start); `LoopExit` never (the accept loop
    /// keeps the hub alive).
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
    /// use greenlet::server::StreamServer;
    ///
    /// let server = StreamServer::bind("127.0.0.1:0", |_, _| ()).unwrap();
    /// let closer = server.clone();
    /// greenlet::spawn_later(std::time::Duration::from_millis(10), move || closer.close());
    /// server.serve_forever().unwrap();
    /// assert!(server.is_closed());
    /// # });
    /// ```
    pub fn serve_forever(&self) -> io::Result<()> {
        self.start()?;
        let acceptor = self.shared.acceptor.borrow().clone();
        let Some(acceptor) = acceptor else {
            return Ok(());
        };
        struct OnUnwind<'a>(&'a Shared);
        impl Drop for OnUnwind<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.close();
                    let handlers: Vec<Greenlet<()>> =
                        self.0.handlers.borrow().values().cloned().collect();
                    for g in &handlers {
                        crate::kill(g);
                    }
                }
            }
        }
        let guard = OnUnwind(&self.shared);
        let r = acceptor.join();
        drop(guard);
        r.map_err(io::Error::other)
    }

    /// Stops accepting: the accept loop ends and the listener is closed
    /// (once the loop has unwound). Running handlers go on (gevent's
    /// `close`). Never switches.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::server::StreamServer;
    ///
    /// let server = StreamServer::bind("127.0.0.1:0", |_, _| ()).unwrap();
    /// server.start().unwrap();
    /// server.close();
    /// assert!(server.is_closed());
    /// assert!(server.start().is_err());
    /// # });
    /// ```
    pub fn close(&self) {
        self.shared.close();
        drop(self.listener.borrow_mut().take());
    }

    /// Closes, then waits up to `timeout` (`None`: without limit) for the
    /// running handlers to end and kills those still running (gevent's
    /// `stop(timeout)`). When it returns, no handler of this server runs and
    /// the listener is closed.
    ///
    /// # Errors
    ///
    /// `WaitError::JoinSelf` when called from one of the server's own
    /// handlers (it would wait for itself).
    ///
    /// # Switches
    ///
    /// While handlers finish or unwind.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::net::TcpStream;
    /// use greenlet::server::StreamServer;
    /// use std::time::Duration;
    ///
    /// // A handler that never ends on its own.
    /// let server = StreamServer::bind("127.0.0.1:0", |_, _| greenlet::sleep(Duration::from_secs(60)))
    ///     .unwrap();
    /// server.start().unwrap();
    /// let _client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    /// greenlet::sleep(Duration::from_millis(10));
    /// assert_eq!(server.connection_count(), 1);
    /// server.stop(Duration::from_millis(20)).unwrap(); // waits 20 ms, then kills it
    /// assert_eq!(server.connection_count(), 0);
    /// # });
    /// ```
    pub fn stop(&self, timeout: impl Into<Option<Duration>>) -> Result<(), WaitError> {
        drop(self.listener.borrow_mut().take());
        self.shared.stop(timeout.into())
    }

    /// Handlers running now.
    ///
    /// # Examples
    ///
    /// See [`stop`](StreamServer::stop).
    pub fn connection_count(&self) -> usize {
        self.shared.handlers.borrow().len()
    }

    /// `true` once started and not closed (gevent's `started`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::server::StreamServer;
    ///
    /// let server = StreamServer::bind("127.0.0.1:0", |_, _| ()).unwrap();
    /// assert!(!server.is_started());
    /// server.start().unwrap();
    /// assert!(server.is_started());
    /// # });
    /// ```
    #[doc(alias = "started")]
    pub fn is_started(&self) -> bool {
        self.shared.acceptor.borrow().is_some()
    }

    /// `true` after [`close`](StreamServer::close) or
    /// [`stop`](StreamServer::stop) (gevent's `closed`).
    ///
    /// # Examples
    ///
    /// See [`close`](StreamServer::close).
    #[doc(alias = "closed")]
    pub fn is_closed(&self) -> bool {
        self.shared.closed.get()
    }

    /// Accept errors seen so far; each one paused the accept loop (10 ms
    /// doubling to 1 s).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::server::StreamServer;
    ///
    /// let server = StreamServer::bind("127.0.0.1:0", |_, _| ()).unwrap();
    /// assert_eq!(server.accept_errors(), 0);
    /// # });
    /// ```
    pub fn accept_errors(&self) -> u64 {
        self.shared.errors.get()
    }
}

/// A [`StreamServer`]'s handler.
type StreamHandler<L> = Rc<dyn Fn(<L as Listener>::Stream, <L as Listener>::Addr)>;

/// The accept loop of a [`StreamServer`].
fn accept_loop<L: Listener>(shared: &Rc<Shared>, listener: &L, handler: &StreamHandler<L>) {
    let mut delay = MIN_ACCEPT_DELAY;
    loop {
        shared.wait_for_room();
        if shared.closed.get() {
            return;
        }
        match listener.accept() {
            Ok((stream, addr)) => {
                delay = MIN_ACCEPT_DELAY;
                let handler = Rc::clone(handler);
                if let Err(e) = shared.spawn_handler(move || handler(stream, addr)) {
                    crate::hub::warn(format_args!("greenlet: StreamServer: {e}"));
                }
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                shared.errors.set(shared.errors.get() + 1);
                crate::hub::warn(format_args!(
                    "greenlet: StreamServer: accept failed: {e}; retrying in {delay:?}"
                ));
                crate::sleep(delay);
                delay = (delay * 2).min(MAX_ACCEPT_DELAY);
            }
        }
    }
}
