//! Addresses of connection ends: TCP (v4 or v6) or Unix-domain.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Address of a connection's end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Addr {
    /// An IPv4 or IPv6 socket address.
    Tcp(SocketAddr),
    /// A Unix-domain socket path; `None` for an unnamed socket (most clients).
    Unix(Option<PathBuf>),
}

impl Addr {
    /// The socket address, for TCP.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Addr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Self {
        Addr::Tcp(a)
    }
}

pub(crate) fn unix_addr(a: std::os::unix::net::SocketAddr) -> Addr {
    Addr::Unix(a.as_pathname().map(|p| p.to_path_buf()))
}
