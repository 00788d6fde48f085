//! `Listen`: where and how a server listens, as one value. An address, an
//! endpoint string or a path becomes one; TLS, the PROXY protocol and
//! socket options are set on it, never on "the listener added last".

use super::{EndpointError, ServerEndpoint, TlsServerSpec};
use crate::api::{ProxyTrust, UntrustedProxy};
use crate::net::SocketOptions;
use crate::tls::TlsServerConfig;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenAddr {
    /// A TCP address (port 0: any free port).
    Tcp(SocketAddr),
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

/// A listener's TLS: a built configuration, or files an endpoint string
/// named (loaded when the server is built).
#[derive(Clone)]
pub(crate) enum ListenTls {
    Config(TlsServerConfig),
    Files(TlsServerSpec),
}

/// Why a `Listen` cannot be bound (reported by `ServerBuilder::build`).
#[derive(Debug, Clone)]
pub(crate) enum ListenProblem {
    /// A malformed endpoint string.
    Endpoint(EndpointError),
    /// An address that did not resolve.
    Resolve(String),
}

/// Where and how a server listens (Twisted's `serverFromString`, as a
/// value): the address, and this listener's TLS, PROXY protocol and socket
/// options (backlog, `SO_REUSEPORT`, `TCP_NODELAY`, keepalive, buffers).
///
/// It converts from an address (`"127.0.0.1:7000"`, `("0.0.0.0", 80)`, a
/// `SocketAddr`) or from an endpoint string (`"tcp:port=8080:backlog=512"`,
/// `"unix:/run/app.sock"`, `"tls:port=8443:privateKey=key.pem:certKey=cert.pem"`).
/// A string that does not parse or resolve is reported by
/// [`ServerBuilder::build`](crate::ServerBuilder::build), naming the bad part.
///
/// ```no_run
/// use shardloop::endpoint::Listen;
/// use shardloop::tls::TlsServerConfig;
/// use shardloop::{Conn, Protocol, Server, SocketOptions};
/// # struct Echo;
/// # impl Protocol for Echo { type Message = ();
/// #     fn data_received(&mut self, c: &mut Conn<'_, Self>, d: &[u8]) { c.write(d) } }
/// let tls = TlsServerConfig::from_pem_files("cert.pem", "key.pem")?.build()?;
/// let mut options = SocketOptions::default();
/// options.backlog = Some(4096);
/// Server::builder()
///     .listen("127.0.0.1:7000", |_| |_| Echo)
///     .listen("unix:/run/echo.sock", |_| |_| Echo)
///     .listen(
///         Listen::from("0.0.0.0:8443").tls(tls).proxy_protocol(true).socket_options(options),
///         |_| |_| Echo,
///     )
///     .build()?
///     .run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Listen {
    pub(crate) desc: String,
    pub(crate) addr: Result<ListenAddr, ListenProblem>,
    pub(crate) options: SocketOptions,
    pub(crate) tls: Option<ListenTls>,
    /// A PROXY header is expected, believed as this says.
    pub(crate) proxy: Option<ProxyTrust>,
}

/// Endpoint types an endpoint string starts with (anything else is taken
/// for an address).
const KINDS: &[&str] = &["tcp", "tcp6", "unix", "tls", "ssl"];

impl Listen {
    /// Parses an endpoint string or an address, failing at once (where
    /// converting with `From` defers the error to `build`).
    pub fn parse(s: &str) -> Result<Listen, EndpointError> {
        let l = Listen::from(s);
        match &l.addr {
            Err(ListenProblem::Endpoint(e)) => Err(e.clone()),
            Err(ListenProblem::Resolve(reason)) => Err(EndpointError {
                input: s.to_string(),
                field: "address".into(),
                reason: reason.clone(),
            }),
            Ok(_) => Ok(l),
        }
    }

    /// A Unix-domain listener on `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Listen {
        let path = path.into();
        Listen {
            desc: format!("unix:{}", path.display()),
            addr: Ok(ListenAddr::Unix(path)),
            options: SocketOptions::default(),
            tls: None,
            proxy: None,
        }
    }

    /// Serves TLS with `config` on this listener.
    pub fn tls(mut self, config: TlsServerConfig) -> Listen {
        self.tls = Some(ListenTls::Config(config));
        self
    }

    /// Each connection starts with a PROXY protocol header (v1 or v2) from
    /// the proxy in front; `peer_addr` is then the real client's. Only for
    /// listeners no one but the proxy can reach (see [`proxy`](crate::proxy)).
    pub fn proxy_protocol(mut self, on: bool) -> Listen {
        self.proxy = on.then(|| self.proxy.take().unwrap_or_default());
        self
    }

    /// Expects a PROXY header and believes it only from peers in `networks`
    /// (the proxies' addresses; `"10.0.0.0/8".parse()`, or an address as a
    /// host route). A header from anyone else is refused, or ignored with
    /// [`proxy_untrusted`](Listen::proxy_untrusted), and counted in
    /// `shardloop_proxy_untrusted_total`. As nginx's `set_real_ip_from` and
    /// HAProxy's `accept-proxy` on internal binds: a client that reaches
    /// the listener directly cannot claim any address it likes.
    ///
    /// ```
    /// use shardloop::endpoint::Listen;
    /// use shardloop::proxy::UntrustedProxy;
    /// let l = Listen::from("0.0.0.0:8080")
    ///     .proxy_trusted_from(["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()])
    ///     .proxy_untrusted(UntrustedProxy::Ignore);
    /// // The same as an endpoint string:
    /// let s = Listen::from("tcp:8080:proxyProtocol=true:proxyTrusted=10.0.0.0/8,127.0.0.1:proxyUntrusted=ignore");
    /// # let _ = (l, s);
    /// ```
    pub fn proxy_trusted_from(
        mut self,
        networks: impl IntoIterator<Item = ipnet::IpNet>,
    ) -> Listen {
        let mut trust = self.proxy.take().unwrap_or_default();
        trust.from = Some(networks.into_iter().collect());
        self.proxy = Some(trust);
        self
    }

    /// What a PROXY listener with trusted networks does with a peer
    /// outside them (refused by default).
    pub fn proxy_untrusted(mut self, what: UntrustedProxy) -> Listen {
        let mut trust = self.proxy.take().unwrap_or_default();
        trust.untrusted = what;
        self.proxy = Some(trust);
        self
    }

    /// Socket options for this listener (inherited by the sockets it
    /// accepts); those set here win over the endpoint string's.
    pub fn socket_options(mut self, options: SocketOptions) -> Listen {
        self.options = options.or(&self.options);
        self
    }

    /// Where it binds, if the description was valid.
    pub fn addr(&self) -> Option<&ListenAddr> {
        self.addr.as_ref().ok()
    }

    /// Whether it serves TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The description as given (for messages).
    pub fn description(&self) -> &str {
        &self.desc
    }

    fn from_endpoint(desc: String, e: ServerEndpoint) -> Listen {
        let (addr, options, proxy, tls) = match e {
            ServerEndpoint::Tcp {
                addr,
                options,
                proxy,
            } => (ListenAddr::Tcp(addr), options, proxy, None),
            ServerEndpoint::Unix { path, backlog } => {
                let options = SocketOptions {
                    backlog,
                    ..SocketOptions::default()
                };
                (ListenAddr::Unix(path), options, None, None)
            }
            ServerEndpoint::Tls {
                addr,
                options,
                proxy,
                tls,
            } => (
                ListenAddr::Tcp(addr),
                options,
                proxy,
                Some(ListenTls::Files(tls)),
            ),
        };
        Listen {
            desc,
            addr: Ok(addr),
            options,
            tls,
            proxy,
        }
    }

    fn resolve(desc: String, found: std::io::Result<std::vec::IntoIter<SocketAddr>>) -> Listen {
        let addr = match found {
            Ok(mut it) => it
                .next()
                .map(ListenAddr::Tcp)
                .ok_or_else(|| ListenProblem::Resolve("no address found".into())),
            Err(e) => Err(ListenProblem::Resolve(e.to_string())),
        };
        Listen {
            desc,
            addr,
            options: SocketOptions::default(),
            tls: None,
            proxy: None,
        }
    }
}

impl From<&str> for Listen {
    fn from(s: &str) -> Listen {
        let kind = s.split(':').next().unwrap_or_default();
        if KINDS.contains(&kind) {
            return match s.parse::<ServerEndpoint>() {
                Ok(e) => Listen::from_endpoint(s.to_string(), e),
                Err(e) => Listen {
                    desc: s.to_string(),
                    addr: Err(ListenProblem::Endpoint(e)),
                    options: SocketOptions::default(),
                    tls: None,
                    proxy: None,
                },
            };
        }
        let l = Listen::resolve(s.to_string(), s.to_socket_addrs());
        match (&l.addr, s.split_once(':')) {
            // "sctp:80": more likely a mistyped endpoint than a host.
            (Err(ListenProblem::Resolve(why)), Some((kind, _)))
                if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Listen {
                    addr: Err(ListenProblem::Endpoint(EndpointError {
                        input: s.to_string(),
                        field: "type".into(),
                        reason: format!(
                            "{kind:?} is not tcp, tcp6, unix, tls or ssl, and {s:?} is not an address that resolves ({why})"
                        ),
                    })),
                    ..l
                }
            }
            _ => l,
        }
    }
}

impl From<String> for Listen {
    fn from(s: String) -> Listen {
        Listen::from(s.as_str())
    }
}

impl From<&String> for Listen {
    fn from(s: &String) -> Listen {
        Listen::from(s.as_str())
    }
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Listen {
        Listen::resolve(addr.to_string(), Ok(vec![addr].into_iter()))
    }
}

impl From<(IpAddr, u16)> for Listen {
    fn from(addr: (IpAddr, u16)) -> Listen {
        Listen::from(SocketAddr::from(addr))
    }
}

impl From<(&str, u16)> for Listen {
    fn from((host, port): (&str, u16)) -> Listen {
        Listen::resolve(format!("{host}:{port}"), (host, port).to_socket_addrs())
    }
}

impl From<ServerEndpoint> for Listen {
    fn from(e: ServerEndpoint) -> Listen {
        Listen::from_endpoint(e.to_string(), e)
    }
}

impl std::str::FromStr for Listen {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Listen, EndpointError> {
        Listen::parse(s)
    }
}

impl fmt::Debug for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listen")
            .field("desc", &self.desc)
            .field("addr", &self.addr)
            .field("options", &self.options)
            .field("tls", &self.tls.is_some())
            .field("proxy", &self.proxy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_endpoint_strings_make_the_same_kind_of_value() {
        let a = Listen::parse("127.0.0.1:7000").unwrap();
        assert_eq!(
            a.addr(),
            Some(&ListenAddr::Tcp("127.0.0.1:7000".parse().unwrap()))
        );
        let b = Listen::parse("tcp:port=7000:interface=127.0.0.1:backlog=16").unwrap();
        assert_eq!(a.addr(), b.addr());
        assert_eq!(b.options.backlog, Some(16));
        let u = Listen::parse("unix:/tmp/x.sock").unwrap();
        assert_eq!(u.addr(), Some(&ListenAddr::Unix("/tmp/x.sock".into())));
        let p = Listen::parse("tcp:port=1:proxyProtocol=true").unwrap();
        assert!(p.proxy.is_some());
        let v6 = Listen::from(("::1".parse::<IpAddr>().unwrap(), 9));
        assert_eq!(
            v6.addr(),
            Some(&ListenAddr::Tcp("[::1]:9".parse().unwrap()))
        );
    }

    #[test]
    fn bad_strings_name_the_bad_part() {
        let e = Listen::parse("tcp:port=notaport").unwrap_err();
        assert_eq!(e.field, "port");
        let e = Listen::parse("no-such-host.invalid:80").unwrap_err();
        assert_eq!(e.field, "address");
        // Deferred when converted, reported by build.
        assert!(Listen::from("tcp:port=x").addr().is_none());
    }

    #[test]
    fn options_set_on_the_value_win_over_the_string() {
        let o = SocketOptions {
            backlog: Some(99),
            ..SocketOptions::default()
        };
        let l = Listen::from("tcp:port=1:backlog=16:reusePort=true").socket_options(o);
        assert_eq!(l.options.backlog, Some(99));
        assert_eq!(l.options.reuse_port, Some(true));
    }
}
