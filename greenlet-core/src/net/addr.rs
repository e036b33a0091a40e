//! Turning user addresses into socket addresses: the one place where host
//! names are resolved.

use std::io;
use std::net::SocketAddr;

/// Resolves `addr` to the addresses to try, in order.
///
/// Literal addresses never touch the resolver; host names go to the hub's
/// thread pool ([`lookup_host`](crate::net::lookup_host)) inside a hub scope,
/// and to std's blocking resolver outside one (no greenlet to stall there).
///
/// # Errors
///
/// The resolver's error (`InvalidInput` for a malformed address or port);
/// `InvalidInput` when the name resolves to no address.
pub(crate) fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    let addrs = addr.to_addrs()?;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        ));
    }
    Ok(addrs)
}

mod sealed {
    pub trait Sealed {}
}

/// Addresses the socket types of [`net`](crate::net) accept: the same
/// types as std's [`ToSocketAddrs`](std::net::ToSocketAddrs) (socket
/// addresses, `(ip, port)`, `"host:port"`, `(host, port)`, slices), with one
/// difference: a host name is resolved on the hub's thread pool
/// ([`lookup_host`](crate::net::lookup_host)), so resolving it blocks only
/// the calling greenlet (tokio's `ToSocketAddrs` does the same). Sealed:
/// implemented for std's address types only.
///
/// # Switches
///
/// Resolving a host name does (inside a hub scope); literal addresses never.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let port = listener.local_addr().unwrap().port();
/// // "localhost" is resolved on the thread pool; the hub keeps running.
/// let _stream = TcpStream::connect(("localhost", port)).unwrap();
/// # });
/// ```
pub trait ToSocketAddrs: sealed::Sealed {
    /// The addresses, in the order to try them.
    #[doc(hidden)]
    fn to_addrs(&self) -> io::Result<Vec<SocketAddr>>;
}

/// A name resolved on the pool inside a scope, by std outside one.
fn lookup(host: &str, port: Option<u16>) -> io::Result<Vec<SocketAddr>> {
    if crate::hub::in_scope() && !crate::hub::in_callback() {
        Ok(match port {
            Some(p) => crate::net::lookup_host_port(host, p)?.collect(),
            None => crate::net::lookup_host(host)?.collect(),
        })
    } else {
        Ok(match port {
            Some(p) => std::net::ToSocketAddrs::to_socket_addrs(&(host, p))?.collect(),
            None => std::net::ToSocketAddrs::to_socket_addrs(host)?.collect(),
        })
    }
}

macro_rules! literal {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl ToSocketAddrs for $t {
            fn to_addrs(&self) -> io::Result<Vec<SocketAddr>> {
                Ok(std::net::ToSocketAddrs::to_socket_addrs(self)?.collect())
            }
        }
    )*};
}

literal!(
    SocketAddr,
    std::net::SocketAddrV4,
    std::net::SocketAddrV6,
    (std::net::IpAddr, u16),
    (std::net::Ipv4Addr, u16),
    (std::net::Ipv6Addr, u16)
);

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn to_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        match self.parse::<SocketAddr>() {
            Ok(a) => Ok(vec![a]),
            Err(_) => lookup(self, None),
        }
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn to_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.as_str().to_addrs()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn to_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        match self.0.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => lookup(self.0, Some(self.1)),
        }
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn to_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        (self.0.as_str(), self.1).to_addrs()
    }
}

impl sealed::Sealed for [SocketAddr] {}
impl ToSocketAddrs for [SocketAddr] {
    fn to_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl<const N: usize> sealed::Sealed for [SocketAddr; N] {}
impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {
    fn to_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        (**self).to_addrs()
    }
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
