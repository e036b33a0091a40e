//! Name resolution that never blocks the hub: `getaddrinfo` (through
//! `std::net::ToSocketAddrs`) runs on the hub's default
//! [`ThreadPool`](crate::threadpool::ThreadPool), gevent's default
//! `resolver_thread`. Re-exported as `greenlet::net::lookup_host`.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::threadpool;

/// The addresses a lookup found, in the resolver's order.
pub type LookupHost = std::vec::IntoIter<SocketAddr>;

/// Resolves `"host:port"` (tokio's `lookup_host`, std's
/// `ToSocketAddrs` for `&str`) without blocking the hub: the lookup runs on
/// the hub's thread pool ([`hub::threadpool`](crate::hub::threadpool)) while
/// other greenlets keep running. A literal address (`"127.0.0.1:80"`,
/// `"[::1]:80"`) is parsed at once, without the pool.
///
/// # Errors
///
/// `ErrorKind::InvalidInput` when `host` has no valid port; the resolver's
/// error when the name does not resolve; a [`ThreadError`](crate::threadpool::ThreadError)
/// converted to `io::Error` if the pool failed (no thread could start).
///
/// # Switches
///
/// Unless `host` is a literal address. A kill or [`Timeout`](crate::Timeout)
/// ends the wait by unwinding; the lookup finishes on its thread and its
/// result is dropped.
///
/// # Panics
///
/// Outside a hub scope, or inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     let addrs: Vec<_> = greenlet::net::lookup_host("localhost:80").unwrap().collect();
///     assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
///     assert!(greenlet::net::lookup_host("no port here").is_err());
/// });
/// ```
#[track_caller]
pub fn lookup_host(host: &str) -> io::Result<LookupHost> {
    if let Ok(addr) = host.parse::<SocketAddr>() {
        return Ok(vec![addr].into_iter());
    }
    let host = host.to_owned();
    threadpool::apply(move || host.as_str().to_socket_addrs())?
}

/// Resolves `host` for `port` (std's `ToSocketAddrs` for `(&str, u16)`)
/// without blocking the hub, as [`lookup_host`]. `host` is a name or a
/// literal IP address (no brackets for IPv6).
///
/// # Errors
///
/// As [`lookup_host`].
///
/// # Switches
///
/// As [`lookup_host`] (a literal IP address resolves at once).
///
/// # Panics
///
/// Outside a hub scope, or inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     let first = greenlet::net::lookup_host_port("::1", 8080).unwrap().next().unwrap();
///     assert_eq!(first.to_string(), "[::1]:8080");
///     let local: Vec<_> = greenlet::net::lookup_host_port("localhost", 8080).unwrap().collect();
///     assert!(!local.is_empty());
/// });
/// ```
#[track_caller]
pub fn lookup_host_port(host: &str, port: u16) -> io::Result<LookupHost> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)].into_iter());
    }
    let host = host.to_owned();
    threadpool::apply(move || (host.as_str(), port).to_socket_addrs())?
}
