//! Endpoint descriptions, as in Twisted: `tcp:8080`,
//! `tcp:port=8080:interface=127.0.0.1:backlog=1024`, `tcp6:port=8080:interface=\:\:1`,
//! `unix:/run/app.sock` for servers; `tcp:host=127.0.0.1:port=80:timeout=5`
//! and `unix:path=/run/app.sock` for clients. A colon inside a value is
//! written `\:`.

use super::tls_endpoint::alpn_list;
pub use super::tls_endpoint::{TlsClientSpec, TlsServerSpec};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A malformed endpoint description; names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad endpoint {input:?}: {field}: {reason}")]
pub struct EndpointError {
    /// The description as given.
    pub input: String,
    /// The field at fault (`type`, `port`, `interface`, …).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEndpoint {
    /// A TCP listener.
    Tcp {
        /// Address to bind.
        addr: SocketAddr,
        /// Listen backlog, if given.
        backlog: Option<i32>,
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
        /// Listen backlog, if given.
        backlog: Option<i32>,
        /// Certificate, key, ALPN, client verification.
        tls: TlsServerSpec,
    },
}

/// Where a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEndpoint {
    /// A TCP server.
    Tcp {
        /// Its address.
        addr: SocketAddr,
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

/// Splits on unescaped `:` and unescapes `\:` and `\\`.
fn split(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    parts.last_mut().expect("one part").push(n);
                }
            }
            ':' => parts.push(String::new()),
            _ => parts.last_mut().expect("one part").push(c),
        }
    }
    parts
}

struct Parsed<'a> {
    input: &'a str,
    kind: String,
    positional: Vec<String>,
    named: Vec<(String, String)>,
}

impl<'a> Parsed<'a> {
    fn new(input: &'a str) -> Result<Self, EndpointError> {
        let mut parts = split(input).into_iter();
        let kind = parts.next().unwrap_or_default();
        let mut positional = Vec::new();
        let mut named = Vec::new();
        for p in parts {
            match p.split_once('=') {
                Some((k, v)) => named.push((k.to_string(), v.to_string())),
                None => positional.push(p),
            }
        }
        Ok(Parsed {
            input,
            kind,
            positional,
            named,
        })
    }

    fn err(&self, field: &str, reason: impl Into<String>) -> EndpointError {
        EndpointError {
            input: self.input.to_string(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// A named value, or the `pos`-th positional one.
    fn get(&self, name: &str, pos: Option<usize>) -> Option<&str> {
        self.named
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .or_else(|| pos.and_then(|i| self.positional.get(i).map(|s| s.as_str())))
    }

    fn check_names(&self, allowed: &[&str]) -> Result<(), EndpointError> {
        for (k, _) in &self.named {
            if !allowed.contains(&k.as_str()) {
                return Err(self.err(k, format!("unknown field (known: {})", allowed.join(", "))));
            }
        }
        Ok(())
    }

    fn port(&self) -> Result<u16, EndpointError> {
        let v = self
            .get("port", Some(0))
            .ok_or_else(|| self.err("port", "missing"))?;
        v.parse()
            .map_err(|_| self.err("port", format!("{v:?} is not a port number (0-65535)")))
    }

    fn backlog(&self) -> Result<Option<i32>, EndpointError> {
        self.get("backlog", None)
            .map(|v| {
                v.parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| self.err("backlog", format!("{v:?} is not a positive number")))
            })
            .transpose()
    }

    fn timeout(&self) -> Result<Option<Duration>, EndpointError> {
        self.get("timeout", None)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        self.err(
                            "timeout",
                            format!("{v:?} is not a positive number of seconds"),
                        )
                    })
            })
            .transpose()
    }

    fn ip(&self, field: &str, v6: bool) -> Result<Option<IpAddr>, EndpointError> {
        self.get(field, None)
            .map(|v| {
                let ip: IpAddr = v
                    .parse()
                    .map_err(|_| self.err(field, format!("{v:?} is not an IP address")))?;
                if ip.is_ipv6() != v6 {
                    return Err(self.err(
                        field,
                        format!(
                            "{v:?} is not an {} address",
                            if v6 { "IPv6" } else { "IPv4" }
                        ),
                    ));
                }
                Ok(ip)
            })
            .transpose()
    }
}

impl FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        let p = Parsed::new(s)?;
        match p.kind.as_str() {
            "tcp" | "tcp6" => {
                let v6 = p.kind == "tcp6";
                p.check_names(&["port", "interface", "backlog"])?;
                let any: IpAddr = if v6 {
                    Ipv6Addr::UNSPECIFIED.into()
                } else {
                    Ipv4Addr::UNSPECIFIED.into()
                };
                let ip = p.ip("interface", v6)?.unwrap_or(any);
                Ok(ServerEndpoint::Tcp {
                    addr: SocketAddr::new(ip, p.port()?),
                    backlog: p.backlog()?,
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
                p.check_names(&[
                    "port",
                    "interface",
                    "backlog",
                    "privateKey",
                    "certKey",
                    "alpn",
                    "caCerts",
                    "clientAuth",
                ])?;
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
                    backlog: p.backlog()?,
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
                let ip: IpAddr = host
                    .parse()
                    .map_err(|_| p.err("host", format!("{host:?} is not an IP address")))?;
                if ip.is_ipv6() != (p.kind == "tcp6") {
                    return Err(p.err("host", format!("{host:?} does not match {}", p.kind)));
                }
                Ok(ClientEndpoint::Tcp {
                    addr: SocketAddr::new(
                        ip,
                        p.get("port", None)
                            .map_or(Err(p.err("port", "missing")), |_| p.port())?,
                    ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_endpoints() {
        assert_eq!(
            "tcp:8080".parse::<ServerEndpoint>().unwrap(),
            ServerEndpoint::Tcp {
                addr: "0.0.0.0:8080".parse().unwrap(),
                backlog: None
            }
        );
        assert_eq!(
            "tcp:port=80:interface=127.0.0.1:backlog=1024"
                .parse::<ServerEndpoint>()
                .unwrap(),
            ServerEndpoint::Tcp {
                addr: "127.0.0.1:80".parse().unwrap(),
                backlog: Some(1024)
            }
        );
        assert_eq!(
            r"tcp6:port=81:interface=\:\:1"
                .parse::<ServerEndpoint>()
                .unwrap(),
            ServerEndpoint::Tcp {
                addr: "[::1]:81".parse().unwrap(),
                backlog: None
            }
        );
        assert_eq!(
            "unix:/tmp/a.sock".parse::<ServerEndpoint>().unwrap(),
            ServerEndpoint::Unix {
                path: "/tmp/a.sock".into(),
                backlog: None
            }
        );
        assert_eq!(
            "unix:address=/tmp/b.sock:backlog=5"
                .parse::<ServerEndpoint>()
                .unwrap(),
            ServerEndpoint::Unix {
                path: "/tmp/b.sock".into(),
                backlog: Some(5)
            }
        );
    }

    #[test]
    fn errors_name_the_bad_field() {
        let e = |s: &str| s.parse::<ServerEndpoint>().unwrap_err();
        assert_eq!(e("tcp:port=abc").field, "port");
        assert_eq!(e("tcp:70000").field, "port");
        assert_eq!(e("tcp").field, "port");
        assert_eq!(e("tcp:80:interface=localhost").field, "interface");
        assert_eq!(e("tcp6:80:interface=127.0.0.1").field, "interface");
        assert_eq!(e("tcp:80:backlog=-1").field, "backlog");
        assert_eq!(e("tcp:80:colour=red").field, "colour");
        assert_eq!(e("udp:80").field, "type");
        assert_eq!(e("tls:8443").field, "privateKey");
        assert_eq!(
            e("tls:8443:privateKey=k.pem:clientAuth=optional").field,
            "clientAuth"
        );
        assert_eq!(
            e("ssl:8443:privateKey=k.pem:caCerts=c.pem:clientAuth=maybe").field,
            "clientAuth"
        );
        assert_eq!(e("tls:port=x:privateKey=k.pem").field, "port");
        assert_eq!(e("unix:").field, "address");
        let msg = e("tcp:port=abc").to_string();
        assert!(
            msg.contains("tcp:port=abc") && msg.contains("port") && msg.contains("abc"),
            "{msg}"
        );
    }

    #[test]
    fn client_endpoints() {
        assert_eq!(
            "tcp:host=127.0.0.1:port=6379:timeout=2.5"
                .parse::<ClientEndpoint>()
                .unwrap(),
            ClientEndpoint::Tcp {
                addr: "127.0.0.1:6379".parse().unwrap(),
                timeout: Some(Duration::from_millis(2500))
            }
        );
        assert_eq!(
            "unix:path=/run/x.sock".parse::<ClientEndpoint>().unwrap(),
            ClientEndpoint::Unix {
                path: "/run/x.sock".into(),
                timeout: None
            }
        );
        let e = |s: &str| s.parse::<ClientEndpoint>().unwrap_err();
        assert_eq!(e("tcp:port=1").field, "host");
        assert_eq!(e("tcp:host=127.0.0.1").field, "port");
        assert_eq!(e("tcp:host=127.0.0.1:port=1:timeout=-3").field, "timeout");
        assert_eq!(e("tcp6:host=127.0.0.1:port=1").field, "host");
        let tls = "tls:host=example.com:port=443:caCerts=ca.pem:alpn=h2,http/1.1:timeout=3"
            .parse::<ClientEndpoint>()
            .unwrap();
        let ClientEndpoint::Tls {
            host, port, tls, ..
        } = tls
        else {
            panic!("{tls:?}")
        };
        assert_eq!((host.as_str(), port), ("example.com", 443));
        assert_eq!(tls.ca_certs, Some(PathBuf::from("ca.pem")));
        assert_eq!(tls.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(e("ssl:host=a:port=1:certKey=c.pem").field, "privateKey");
        assert_eq!(e("tls:host=a:port=1:insecure=yes").field, "insecure");
        assert_eq!(e("tls:port=1").field, "host");
    }
}
