//! What a PROXY protocol header said (the parser is in proxy/).

use std::net::SocketAddr;

/// What a header says about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxiedAddrs {
    /// The real client and the address it connected to.
    Tcp {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to (the proxy's front end).
        destination: SocketAddr,
    },
    /// The proxy's own connection (v2 `LOCAL`, e.g. a health check) or an
    /// address family not carried (v1 `UNKNOWN`, v2 `UNSPEC`, Unix, UDP):
    /// the connection's addresses stay those of the proxy.
    Unknown,
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The addresses it carries.
    pub addrs: ProxiedAddrs,
}
