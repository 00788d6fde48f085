//! Host names to addresses. Resolution runs on the worker pool (never on
//! a shard: `getaddrinfo` blocks), through a [`Resolve`] the server is
//! given (the system's by default; a test or a service-discovery client
//! can put its own). Each shard caches answers (`ServerBuilder::name_ttl`),
//! failures too, and asks once for many connects to the same name.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Turns a host name and port into addresses. It runs on a worker thread
/// and may block. Implemented for closures
/// `Fn(&str, u16) -> io::Result<Vec<SocketAddr>>`.
///
/// ```
/// use shardloop::endpoint::Resolve;
/// use std::net::SocketAddr;
/// // Names of a test: "db.test" is two local addresses, others unknown.
/// let fixed = |host: &str, port: u16| -> std::io::Result<Vec<SocketAddr>> {
///     match host {
///         "db.test" => Ok(vec![
///             SocketAddr::from(([127, 0, 0, 2], port)),
///             SocketAddr::from(([127, 0, 0, 1], port)),
///         ]),
///         _ => Err(std::io::ErrorKind::NotFound.into()),
///     }
/// };
/// assert_eq!(fixed.resolve("db.test", 5432).unwrap().len(), 2);
/// ```
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host`, in the order to try them; an error (or
    /// none) if it has none.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

impl<F> Resolve for F
where
    F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self(host, port)
    }
}

/// The system's resolver (`getaddrinfo`: `/etc/hosts`, DNS, whatever
/// `nsswitch.conf` says), its answers in its order (RFC 6724's).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// The order Happy Eyeballs tries addresses in (RFC 8305 §4): the
/// resolver's first family first, then the families alternating, each in
/// the resolver's order.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first().map(SocketAddr::is_ipv6) else {
        return addrs;
    };
    let (mut a, mut b): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|x| x.is_ipv6() == first);
    a.reverse();
    b.reverse();
    let mut out = Vec::with_capacity(a.len() + b.len());
    loop {
        match (a.pop(), b.pop()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 80))
    }

    fn v6(last: u16) -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, last], 80))
    }

    #[test]
    fn families_alternate_starting_with_the_first() {
        assert_eq!(
            interleave(vec![v6(1), v6(2), v6(3), v4(1), v4(2)]),
            vec![v6(1), v4(1), v6(2), v4(2), v6(3)]
        );
        assert_eq!(
            interleave(vec![v4(1), v6(1), v4(2)]),
            vec![v4(1), v6(1), v4(2)]
        );
        assert_eq!(interleave(vec![v4(1), v4(2)]), vec![v4(1), v4(2)]);
        assert!(interleave(vec![]).is_empty());
    }

    #[test]
    fn the_system_resolver_reads_localhost() {
        let a = SystemResolver.resolve("localhost", 80).unwrap();
        assert!(
            a.iter().all(|a| a.ip().is_loopback() && a.port() == 80),
            "{a:?}"
        );
    }
}
