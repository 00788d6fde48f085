//! Endpoint descriptions, as in Twisted: `tcp:8080`,
//! `tcp:port=8080:interface=127.0.0.1:backlog=1024`, `tcp6:port=8080:interface=\:\:1`,
//! `unix:/run/app.sock` for servers, with socket options on TCP and TLS
//! listeners (`reusePort=true`, `noDelay=false`, `keepAlive=60`,
//! `keepAliveInterval=10`, `keepAliveCount=5`, `rcvBuf=`, `sndBuf=` in bytes,
//! `userTimeout=30` in seconds, `fastOpen=` queue length, `v6Only=true`,
//! `backlog=`); `tcp:host=127.0.0.1:port=80:timeout=5`
//! and `unix:path=/run/app.sock` for clients. A colon inside a value is
//! written `\:`.

mod connect;
mod listen;
mod parse;
#[cfg(test)]
mod tests;

mod tls;

pub use crate::error::EndpointError;
pub use crate::net::{Resolve, SystemResolver};
pub use connect::{Connect, Target};
pub use listen::{Listen, ListenAddr};
pub(crate) use listen::{ListenProblem, ListenTls};

use crate::api::ProxyTrust;
use crate::net::SocketOptions;
use parse::{Parsed, SOCKET_FIELDS};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use tls::alpn_list;
pub(crate) use tls::{TlsClientSpec, TlsServerSpec};

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerEndpoint {
    /// A TCP listener.
    Tcp {
        /// Address to bind.
        addr: SocketAddr,
        /// Backlog and socket options given.
        options: SocketOptions,
        /// `proxyProtocol=true`: connections start with a PROXY header,
        /// believed from `proxyTrusted` (every peer if not given).
        proxy: Option<ProxyTrust>,
    },
    /// A Unix-domain listener.
    Unix {
        /// Socket path.
        path: PathBuf,
        /// Listen backlog, if given.
        backlog: Option<i32>,
    },
    /// A TLS listener over TCP (`tls:` or `ssl:`).
    Tls {
        /// Address to bind.
        addr: SocketAddr,
        /// Backlog and socket options given.
        options: SocketOptions,
        /// `proxyProtocol=true`: connections start with a PROXY header,
        /// believed from `proxyTrusted` (every peer if not given).
        proxy: Option<ProxyTrust>,
        /// Certificate, key, ALPN, client verification.
        tls: TlsServerSpec,
    },
}

/// Where a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientEndpoint {
    /// A TCP server.
    Tcp {
        /// Its host name or IP address.
        host: String,
        /// Its port.
        port: u16,
        /// Connect timeout, if given.
        timeout: Option<Duration>,
    },
    /// A Unix-domain server.
    Unix {
        /// Socket path.
        path: PathBuf,
        /// Connect timeout, if given.
        timeout: Option<Duration>,
    },
    /// A TLS server over TCP (`tls:` or `ssl:`); `host` may be a DNS name
    /// (resolve it with `ToSocketAddrs`), and is the name verified.
    Tls {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
        /// Connect timeout, if given.
        timeout: Option<Duration>,
        /// CAs, ALPN, client certificate.
        tls: TlsClientSpec,
    },
}

impl FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        let p = Parsed::new(s)?;
        match p.kind.as_str() {
            "tcp" | "tcp6" => {
                let v6 = p.kind == "tcp6";
                let mut names = vec!["port", "interface"];
                names.extend_from_slice(SOCKET_FIELDS);
                p.check_names(&names)?;
                let any: IpAddr = if v6 {
                    Ipv6Addr::UNSPECIFIED.into()
                } else {
                    Ipv4Addr::UNSPECIFIED.into()
                };
                let ip = p.ip("interface", v6)?.unwrap_or(any);
                Ok(ServerEndpoint::Tcp {
                    addr: SocketAddr::new(ip, p.port()?),
                    options: p.socket_options()?,
                    proxy: p.proxy()?,
                })
            }
            "unix" => {
                p.check_names(&["address", "backlog"])?;
                let path = p
                    .get("address", Some(0))
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| p.err("address", "missing socket path"))?;
                Ok(ServerEndpoint::Unix {
                    path: PathBuf::from(path),
                    backlog: p.backlog()?,
                })
            }
            "tls" | "ssl" => {
                let mut names = vec![
                    "port",
                    "interface",
                    "privateKey",
                    "certKey",
                    "alpn",
                    "caCerts",
                    "clientAuth",
                ];
                names.extend_from_slice(SOCKET_FIELDS);
                p.check_names(&names)?;
                let ip = match p.get("interface", None) {
                    None => Ipv4Addr::UNSPECIFIED.into(),
                    Some(v) => v
                        .parse::<IpAddr>()
                        .map_err(|_| p.err("interface", format!("{v:?} is not an IP address")))?,
                };
                let key = p
                    .get("privateKey", None)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| p.err("privateKey", "missing (the private key PEM file)"))?;
                let ca_certs = p.get("caCerts", None).map(PathBuf::from);
                let client_auth_optional = match p.get("clientAuth", None) {
                    None | Some("required") => false,
                    Some("optional") => true,
                    Some(v) => {
                        return Err(
                            p.err("clientAuth", format!("{v:?} is not required or optional"))
                        )
                    }
                };
                if p.get("clientAuth", None).is_some() && ca_certs.is_none() {
                    return Err(p.err(
                        "clientAuth",
                        "needs caCerts (the CAs client certificates must chain to)",
                    ));
                }
                Ok(ServerEndpoint::Tls {
                    addr: SocketAddr::new(ip, p.port()?),
                    options: p.socket_options()?,
                    proxy: p.proxy()?,
                    tls: TlsServerSpec {
                        private_key: PathBuf::from(key),
                        cert_key: PathBuf::from(p.get("certKey", None).unwrap_or(key)),
                        alpn: p.get("alpn", None).map(alpn_list).unwrap_or_default(),
                        ca_certs,
                        client_auth_optional,
                    },
                })
            }
            other => Err(p.err(
                "type",
                format!("{other:?} is not tcp, tcp6, unix, tls or ssl"),
            )),
        }
    }
}

impl FromStr for ClientEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        let p = Parsed::new(s)?;
        match p.kind.as_str() {
            "tcp" | "tcp6" => {
                p.check_names(&["host", "port", "timeout"])?;
                let host = p
                    .get("host", None)
                    .ok_or_else(|| p.err("host", "missing"))?;
                // A name is resolved when the connection is made; `tcp6`
                // takes an IPv6 address only.
                match host.parse::<IpAddr>() {
                    Ok(ip) if ip.is_ipv6() != (p.kind == "tcp6") => {
                        return Err(p.err("host", format!("{host:?} does not match {}", p.kind)));
                    }
                    Err(_) if p.kind == "tcp6" => {
                        return Err(p.err("host", format!("{host:?} is not an IPv6 address")));
                    }
                    _ if host.is_empty() => return Err(p.err("host", "empty")),
                    _ => {}
                }
                Ok(ClientEndpoint::Tcp {
                    host: host.to_string(),
                    port: p
                        .get("port", None)
                        .map_or(Err(p.err("port", "missing")), |_| p.port())?,
                    timeout: p.timeout()?,
                })
            }
            "unix" => {
                p.check_names(&["path", "timeout"])?;
                let path = p
                    .get("path", Some(0))
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| p.err("path", "missing socket path"))?;
                Ok(ClientEndpoint::Unix {
                    path: PathBuf::from(path),
                    timeout: p.timeout()?,
                })
            }
            "tls" | "ssl" => {
                p.check_names(&[
                    "host",
                    "port",
                    "timeout",
                    "caCerts",
                    "insecure",
                    "alpn",
                    "certKey",
                    "privateKey",
                    "sni",
                ])?;
                let host = p
                    .get("host", Some(0))
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| p.err("host", "missing"))?;
                let port = p
                    .get("port", Some(1))
                    .ok_or_else(|| p.err("port", "missing"))?;
                let port = port.parse().map_err(|_| {
                    p.err("port", format!("{port:?} is not a port number (0-65535)"))
                })?;
                let insecure = match p.get("insecure", None) {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(v) => return Err(p.err("insecure", format!("{v:?} is not true or false"))),
                };
                let client_cert = match (p.get("certKey", None), p.get("privateKey", None)) {
                    (None, None) => None,
                    (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
                    (Some(_), None) => {
                        return Err(p.err("privateKey", "missing (certKey needs it)"))
                    }
                    (None, Some(_)) => {
                        return Err(p.err("certKey", "missing (privateKey needs it)"))
                    }
                };
                Ok(ClientEndpoint::Tls {
                    host: host.to_string(),
                    port,
                    timeout: p.timeout()?,
                    tls: TlsClientSpec {
                        ca_certs: p.get("caCerts", None).map(PathBuf::from),
                        insecure,
                        alpn: p.get("alpn", None).map(alpn_list).unwrap_or_default(),
                        client_cert,
                        server_name: p.get("sni", None).map(str::to_string),
                    },
                })
            }
            other => Err(p.err(
                "type",
                format!("{other:?} is not tcp, tcp6, unix, tls or ssl"),
            )),
        }
    }
}

impl fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEndpoint::Tcp { addr, .. } => write!(f, "tcp {addr}"),
            ServerEndpoint::Unix { path, .. } => write!(f, "unix {}", path.display()),
            ServerEndpoint::Tls { addr, .. } => write!(f, "tls {addr}"),
        }
    }
}
