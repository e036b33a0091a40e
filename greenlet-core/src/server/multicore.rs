//! One hub per thread on `SO_REUSEPORT` listeners: how to use every core.
//!
//! A hub runs on one thread, so one [`StreamServer`] uses one core.
//! [`serve_multicore`] starts `threads` OS threads, each with its own hub,
//! its own listener bound to the same address with `SO_REUSEPORT` (the
//! kernel spreads incoming connections over the listeners) and its own
//! `StreamServer`. Connections never move between threads, so handlers
//! share nothing unless they use `Send` types themselves.

use crate::net::ToSocketAddrs;
use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::StreamServer;
use crate::hub::HubHandle;
use crate::net::{TcpListener, TcpStream};

thread_local! {
    /// Closes this thread's server (set while `serve_multicore` runs one).
    static CLOSE: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
}

/// `threads` listeners bound to `addr` with `SO_REUSEPORT` (after the
/// first, on the first one's address, so port 0 works).
fn bind_all(addr: SocketAddr, threads: usize) -> io::Result<Vec<StdListener>> {
    let mut out = Vec::with_capacity(threads);
    let mut at = addr;
    for _ in 0..threads {
        let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&at.into())?;
        socket.listen(1024)?;
        let listener = StdListener::from(socket);
        at = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

/// A running [`serve_multicore`] server: its threads and their hubs.
#[derive(Debug)]
pub struct MulticoreServer {
    addr: SocketAddr,
    threads: Vec<(HubHandle, JoinHandle<io::Result<()>>)>,
}

impl MulticoreServer {
    /// The address every thread's listener is bound to.
    ///
    /// # Examples
    ///
    /// See [`serve_multicore`].
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops every thread's server (as [`StreamServer::stop`] with the
    /// `stop_timeout` given to [`serve_multicore`]) and joins the threads.
    ///
    /// # Errors
    ///
    /// The first thread's error (a failed `serve_forever`), or `Other` when a
    /// thread panicked.
    ///
    /// # Examples
    ///
    /// See [`serve_multicore`].
    pub fn stop(self) -> io::Result<()> {
        for (handle, _) in &self.threads {
            // A hub already gone has nothing left to stop.
            let _ = handle.post(move || {
                let close = CLOSE.with(|c| c.borrow_mut().take());
                if let Some(close) = close {
                    close();
                }
            });
        }
        let mut result = Ok(());
        for (_, thread) in self.threads {
            let r = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a server thread panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// Serves `addr` on `threads` threads, each running its own hub and
/// [`StreamServer`] on its own `SO_REUSEPORT` listener: the way to use all
/// cores (one hub uses one). `make_handler` runs once on each thread and
/// returns that thread's connection handler; each handler call runs in its
/// own greenlet, as with `StreamServer`. Returns once every thread serves.
///
/// `stop_timeout` is how long [`MulticoreServer::stop`] lets handlers finish
/// before killing them.
///
/// # Errors
///
/// Binding errors (`AddrInUse`...), `InvalidInput` for `threads == 0` or an
/// address that does not resolve, thread spawn errors.
///
/// # Examples
///
/// ```
/// use greenlet_core as greenlet;
/// use greenlet::server::serve_multicore;
/// use std::io::{Read, Write};
/// use std::time::Duration;
///
/// let server = serve_multicore("127.0.0.1:0", 2, Duration::from_secs(1), || {
///     |mut conn: greenlet::net::TcpStream, _peer| {
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     }
/// })
/// .unwrap();
/// let mut client = std::net::TcpStream::connect(server.local_addr()).unwrap();
/// client.write_all(b"hello").unwrap();
/// let mut buf = [0; 5];
/// client.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"hello");
/// server.stop().unwrap();
/// ```
pub fn serve_multicore<A, M, H>(
    addr: A,
    threads: usize,
    stop_timeout: Duration,
    make_handler: M,
) -> io::Result<MulticoreServer>
where
    A: ToSocketAddrs,
    M: Fn() -> H + Send + Sync + 'static,
    H: Fn(TcpStream, SocketAddr) + 'static,
{
    if threads == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "serve_multicore: threads must be > 0",
        ));
    }
    let first = super::super::net::resolve_first(addr)?;
    let listeners = bind_all(first, threads)?;
    let addr = listeners[0].local_addr()?;
    let make_handler = std::sync::Arc::new(make_handler);
    let mut out = Vec::with_capacity(threads);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        let make_handler = std::sync::Arc::clone(&make_handler);
        let thread = std::thread::Builder::new()
            .name(format!("greenlet-server-{i}"))
            .spawn(move || {
                crate::run(move || {
                    let server =
                        StreamServer::from_tcp(TcpListener::from(listener), make_handler());
                    let closer = server.clone();
                    CLOSE.with(|c| *c.borrow_mut() = Some(Box::new(move || closer.close())));
                    let started = server.start();
                    let failed = started
                        .as_ref()
                        .err()
                        .map(|e| io::Error::new(e.kind(), e.to_string()));
                    // The receiver is gone only if `serve_multicore` returned
                    // early on another thread's failure.
                    let _ = tx.send((crate::hub::handle(), failed));
                    started?;
                    let served = server.serve_forever();
                    CLOSE.with(|c| c.borrow_mut().take());
                    server.stop(stop_timeout).map_err(io::Error::other)?;
                    served
                })
            })?;
        let (handle, failed) = rx.recv().map_err(|_| {
            io::Error::other("serve_multicore: a server thread died while starting")
        })?;
        out.push((handle, thread));
        if let Some(e) = failed {
            MulticoreServer { addr, threads: out }.stop()?;
            return Err(e);
        }
    }
    Ok(MulticoreServer { addr, threads: out })
}
