//! Turning user addresses into socket addresses: the one place where host
//! names are resolved.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `addr` to the addresses to try, in order.
///
/// Literal addresses (`SocketAddr`, `"127.0.0.1:80"`, `("::1", 80)`) never
/// touch the resolver. Host names go through std's `to_socket_addrs`
/// (`getaddrinfo`), which blocks the thread, and so the hub, while it runs.
///
/// # Errors
///
/// The resolver's error (`InvalidInput` for a malformed address or port);
/// `InvalidInput` when the name resolves to no address.
pub(crate) fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    // The host-name step: std's blocking resolver for now. To move it off
    // the hub, resolve names here on a thread pool instead; `ToSocketAddrs`
    // of a literal address is pure parsing either way.
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        ));
    }
    Ok(addrs)
}

/// Runs `f` on each resolved address until one succeeds; the last error
/// otherwise (std's behaviour for `connect`/`bind`).
pub(crate) fn each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in resolve(addr)? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
