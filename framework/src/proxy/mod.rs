//! The PROXY protocol (HAProxy, versions 1 and 2), as a transport layer: on
//! a listener with `proxyProtocol=true` (or
//! [`Listen::proxy_protocol`](crate::endpoint::Listen::proxy_protocol)),
//! each connection must start with a header from the proxy in front
//! (HAProxy `send-proxy`/`send-proxy-v2`, AWS NLB, …). The protocol is made
//! once the header is read, and [`Conn::peer_addr`](crate::Conn::peer_addr)
//! / [`Conn::local_addr`](crate::Conn::local_addr) are then the real
//! client's and the address it connected to (Twisted's
//! `twisted.protocols.haproxy` does the same). A missing or malformed
//! header, or one not complete within `Settings::proxy_header_timeout`,
//! closes the connection with a [`CloseReason::ProtocolError`](crate::CloseReason::ProtocolError)
//! that says why; TLS, if the listener has it, runs after the header.

mod conn;
mod header;
mod layer;

pub use crate::api::{ProxiedAddrs, ProxyHeader, UntrustedProxy};
pub use header::ProxyError;
pub(crate) use layer::ProxyLayer;

#[cfg(test)]
mod tests;
