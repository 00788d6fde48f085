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

/// Which peers a PROXY listener believes, and what it does with a header
/// from any other (set with `Listen::proxy_trusted_from` and
/// `Listen::proxy_untrusted`).
///
/// With no list every peer is believed: only for a listener no one but
/// the proxy can reach. With a list, a peer outside it (its socket
/// address; an IPv4-mapped IPv6 address counts as IPv4) is refused or
/// ignored as [`UntrustedProxy`] says, and counted in
/// `shardloop_proxy_untrusted_total`. Unix-domain peers are local and
/// always believed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ProxyTrust {
    /// The networks believed; `None`: every peer.
    pub(crate) from: Option<Vec<ipnet::IpNet>>,
    /// What a header from anyone else gets.
    pub(crate) untrusted: UntrustedProxy,
}

impl ProxyTrust {
    /// Whether a header from `peer` is believed.
    pub(crate) fn trusts(&self, peer: std::net::IpAddr) -> bool {
        let peer = match peer {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        self.from
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&peer)))
    }
}

/// What a PROXY listener does with a connection from a peer outside its
/// trusted networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UntrustedProxy {
    /// Close it at once, before any protocol sees it (HAProxy's
    /// `accept-proxy` bound to internal addresses only).
    #[default]
    Refuse,
    /// Read the header (the listener expects one) but keep the socket's
    /// addresses, and do not show the header to the protocol (nginx's
    /// `set_real_ip_from`).
    Ignore,
}
