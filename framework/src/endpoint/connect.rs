//! `Connect`: where and how to open an outbound connection, as one value,
//! and the one entry point that opens it, [`ShardCtx::connect`].

use super::{ClientEndpoint, EndpointError};
use crate::net::{Addr, SocketOptions};
use crate::reactor::{ConnObserver, Dest, Layer, PendingConnect, Protocol, ShardCtx};
use crate::tls::{TlsClientConfig, TlsLayer};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where and how to connect (Twisted's `clientFromString`, as a value): the
/// address or host name, a connect timeout, TLS with the server name to
/// verify, and socket options. Build one from a `SocketAddr`, a host name
/// and port ([`Connect::host`]), a Unix path, or an endpoint string
/// (`tcp:host=db.internal:port=5432:timeout=2`, `unix:path=/run/app.sock`,
/// `tls:host=example.com:port=443:caCerts=ca.pem`), and open it with
/// [`ShardCtx::connect`], the reconnecting client
/// ([`ShardCtx::connect_reconnecting`]) or
/// [`ClientStream::connect`](crate::client::ClientStream::connect).
///
/// A host name is resolved when the connection is made, off the shard
/// (see [`ServerBuilder::resolver`](crate::ServerBuilder::resolver)), and
/// its addresses are tried with Happy Eyeballs (RFC 8305): one after
/// another, each started 250 ms after the one before unless that one
/// failed sooner, alternating IPv6 and IPv4, the first to connect winning.
/// If none does, `connect_failed` gets an error naming the host and each
/// address's failure.
///
/// ```no_run
/// use shardloop::endpoint::Connect;
/// use shardloop::tls::TlsClientConfig;
/// use std::time::Duration;
/// let tls = TlsClientConfig::builder().system_roots()?.build()?;
/// let backend = Connect::tcp("127.0.0.1:6379".parse()?).timeout(Duration::from_secs(2));
/// let api = Connect::host("example.com", 443).tls(tls, "example.com");
/// let local: Connect = "unix:path=/run/app.sock".parse()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Connect {
    pub(crate) target: Target,
    pub(crate) timeout: Option<Duration>,
    pub(crate) tls: Option<(TlsClientConfig, String)>,
    pub(crate) options: Option<SocketOptions>,
}

impl Connect {
    /// A TCP connection to `addr`.
    pub fn tcp(addr: SocketAddr) -> Connect {
        Connect::addr(Addr::Tcp(addr))
    }

    /// A Unix-domain connection to `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Connect {
        Connect::addr(Addr::Unix(Some(path.into())))
    }

    /// A TCP connection to `host` (a name, resolved when the connection
    /// is made, or an IP address) on `port`.
    ///
    /// ```
    /// use shardloop::endpoint::{Connect, Target};
    /// let db = Connect::host("db.internal", 5432);
    /// assert_eq!(db.target().to_string(), "db.internal:5432");
    /// let ip = Connect::host("::1", 6379);
    /// assert!(matches!(ip.target(), Target::Addr(_)));
    /// ```
    pub fn host(host: impl Into<String>, port: u16) -> Connect {
        let host = host.into();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<std::net::IpAddr>() {
            Ok(ip) => Connect::tcp(SocketAddr::new(ip, port)),
            Err(_) => Connect::to(Target::Name { host, port }),
        }
    }

    /// A connection to `addr`, TCP or Unix.
    pub fn addr(addr: Addr) -> Connect {
        Connect::to(Target::Addr(addr))
    }

    /// A connection to `target` with no timeout, TLS or socket options.
    fn to(target: Target) -> Connect {
        Connect {
            target,
            timeout: None,
            tls: None,
            options: None,
        }
    }

    /// Parses an endpoint string. A `tcp:` or `tls:` host may be a name
    /// (resolved when the connection is made, not here); CA and
    /// client-certificate files are read here.
    pub fn parse(s: &str) -> Result<Connect, EndpointError> {
        let bad = |field: &str, reason: String| EndpointError {
            input: s.to_string(),
            field: field.into(),
            reason,
        };
        Ok(match s.parse::<ClientEndpoint>()? {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout,
            } => Connect {
                timeout,
                ..Connect::host(host, port)
            },
            ClientEndpoint::Unix { path, timeout } => Connect {
                timeout,
                ..Connect::unix(path)
            },
            ClientEndpoint::Tls {
                host,
                port,
                timeout,
                tls,
            } => {
                let config = tls.load().map_err(|e| bad("caCerts", e.to_string()))?;
                let name = tls.server_name.unwrap_or_else(|| host.clone());
                Connect {
                    timeout,
                    ..Connect::host(host, port).tls(config, name)
                }
            }
        })
    }

    /// Gives up (the protocol's `connect_failed` gets `TimedOut`) when the
    /// connection, and its TLS handshake if any, is not up within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Connect {
        self.timeout = Some(timeout);
        self
    }

    /// Runs TLS over the connection, verifying the server's certificate for
    /// `server_name` (a DNS name or an IP address, also sent as SNI). A
    /// malformed name fails the connect (`connect_failed`, `InvalidInput`).
    pub fn tls(mut self, config: TlsClientConfig, server_name: impl Into<String>) -> Connect {
        self.tls = Some((config, server_name.into()));
        self
    }

    /// Socket options for this connection, in place of the server's
    /// outbound defaults ([`ServerBuilder::outbound_socket_options`](crate::ServerBuilder::outbound_socket_options)).
    pub fn socket_options(mut self, options: SocketOptions) -> Connect {
        self.options = Some(options);
        self
    }

    /// The address or host name it connects to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The connect timeout, if any.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The TLS layer this connection starts with, if any.
    fn layer(&self) -> io::Result<Option<Box<dyn Layer>>> {
        let Some((config, name)) = &self.tls else {
            return Ok(None);
        };
        let name = crate::tls::server_name(name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let layer = TlsLayer::client(config, name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Some(Box::new(layer)))
    }

    /// What the shard starts at the end of the current callback.
    pub(crate) fn pending<P: Protocol>(
        &self,
        protocol: P,
        observer: Option<Box<dyn ConnObserver>>,
        default_timeout: Option<Duration>,
    ) -> PendingConnect {
        PendingConnect {
            observer,
            target: match &self.target {
                Target::Addr(a) => Dest::Addr(a.clone()),
                Target::Name { host, port } => Dest::Name {
                    host: host.clone(),
                    port: *port,
                    fresh: false,
                },
            },
            proto: Box::new(protocol),
            timeout: self.timeout.or(default_timeout),
            layer: self.layer(),
            options: self.options.clone(),
        }
    }
}

/// Where a [`Connect`] goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// An address (TCP or Unix).
    Addr(Addr),
    /// A host name and port, resolved when the connection is made.
    Name {
        /// The name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for Connect {
    fn from(addr: SocketAddr) -> Connect {
        Connect::tcp(addr)
    }
}

impl From<Addr> for Connect {
    fn from(addr: Addr) -> Connect {
        Connect::addr(addr)
    }
}

impl std::str::FromStr for Connect {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Connect, EndpointError> {
        Connect::parse(s)
    }
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .field("tls_server_name", &self.tls.as_ref().map(|(_, n)| n))
            .field("options", &self.options)
            .finish()
    }
}

impl ShardCtx {
    /// Opens an outbound connection from this shard, run by `protocol`:
    /// TCP or Unix, with the connect timeout, TLS and socket options that
    /// `connect` describes. The connect starts when the current callback
    /// returns; the protocol gets `connection_made` once the connection
    /// (and its TLS handshake) is up, or `connect_failed` with the reason.
    /// A protocol that needs a backend never blocks the shard.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol, ShardCtx};
    /// use shardloop::endpoint::Connect;
    /// use std::time::Duration;
    /// struct Ping;
    /// impl Protocol for Ping {
    ///     type Message = ();
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
    ///         conn.write(b"PING\r\n");
    ///     }
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///         println!("{}", String::from_utf8_lossy(data));
    ///         conn.close();
    ///     }
    /// }
    /// fn ping(ctx: &mut ShardCtx) {
    ///     let redis = Connect::tcp("127.0.0.1:6379".parse().unwrap()).timeout(Duration::from_secs(1));
    ///     ctx.connect(redis, Ping);
    /// }
    /// ```
    pub fn connect<P: Protocol>(&mut self, connect: impl Into<Connect>, protocol: P) {
        let pending = connect.into().pending(protocol, None, None);
        self.queue_connect(pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_strings_become_connects() {
        let c = Connect::parse("tcp:host=127.0.0.1:port=6379:timeout=2").unwrap();
        let tcp = |a: &str| Target::Addr(Addr::Tcp(a.parse().unwrap()));
        assert_eq!(c.target(), &tcp("127.0.0.1:6379"));
        let named = Connect::parse("tcp:host=db.internal:port=5432").unwrap();
        let name = Target::Name {
            host: "db.internal".into(),
            port: 5432,
        };
        assert_eq!(named.target(), &name);
        let v6 = Connect::parse("tcp6:host=\\:\\:1:port=6379").unwrap();
        assert_eq!(v6.target(), &tcp("[::1]:6379"));
        assert_eq!(c.connect_timeout(), Some(Duration::from_secs(2)));
        let u: Connect = "unix:path=/run/x.sock".parse().unwrap();
        assert_eq!(
            u.target(),
            &Target::Addr(Addr::Unix(Some("/run/x.sock".into())))
        );
        let t =
            Connect::parse("tls:host=127.0.0.1:port=443:insecure=true:sni=example.com").unwrap();
        assert_eq!(t.tls.as_ref().map(|(_, n)| n.as_str()), Some("example.com"));
        let e = Connect::parse("tcp:host=127.0.0.1").unwrap_err();
        assert_eq!(e.field, "port");
    }

    #[test]
    fn a_malformed_server_name_fails_the_connect_not_the_caller() {
        let config = TlsClientConfig::builder()
            .insecure_skip_verify()
            .build()
            .unwrap();
        let c = Connect::tcp("127.0.0.1:1".parse().unwrap()).tls(config, "bad name\0");
        let e = c.layer().err().expect("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
