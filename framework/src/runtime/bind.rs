//! Binding a server's listeners: for the acceptor thread, or (with
//! `reuse_port`) one `SO_REUSEPORT` socket per shard, or (with one shard)
//! the shard's own; sockets passed by systemd in their place; TLS settings
//! loaded from endpoint strings.

use super::builder::ListenerSpec;
use crate::api::CloseReason;
use crate::api::{ProxyTrust, UntrustedProxy};
use crate::endpoint::{ListenAddr, ListenProblem, ListenTls};
use crate::error::{Error, Result};
use crate::net::{bind_tcp_with, bind_unix, Addr, Listener, SocketOptions};
use crate::proxy::ProxyLayer;
use crate::reactor::{FactoryMaker, Layer, LayerMaker, LayerRefusal};
use crate::tls::{TlsLayer, TlsServerConfig};
use std::sync::Arc;

pub(super) struct BindOptions {
    /// The server's defaults: backlog, TCP_NODELAY, reuse_port.
    pub(super) defaults: SocketOptions,
    pub(super) shards: usize,
    pub(super) systemd_activation: bool,
    /// With one shard, the shard accepts on the listener itself: an
    /// acceptor thread would only add a thread hop per connection (false
    /// when admission needs the acceptor).
    pub(super) single_shard_accepts: bool,
}

/// Every listener bound, by listener index (the index factories and TLS
/// settings are looked up by).
pub(super) struct Bound {
    /// Listeners the acceptor thread serves, with their index.
    pub(super) acceptor: Vec<(usize, Listener)>,
    /// Each shard's own `SO_REUSEPORT` listeners, with their index.
    pub(super) per_shard: Vec<Vec<(usize, mio::net::TcpListener)>>,
    pub(super) local_addrs: Vec<Addr>,
    pub(super) makers: Vec<FactoryMaker>,
    /// Each listener's transport layers: TLS, a PROXY header, or both.
    pub(super) layers: Vec<Option<LayerMaker>>,
    /// TLS listeners from files: read the certificate and key again on reload.
    pub(super) reloads: Vec<super::server::ReloadHook>,
}

/// The layers a listener's connections run through: a PROXY header reader
/// first (it comes before anything else on the wire), then TLS.
fn transport_layers(tls: Option<TlsServerConfig>, proxy: Option<ProxyTrust>) -> Option<LayerMaker> {
    if tls.is_none() && proxy.is_none() {
        return None;
    }
    Some(Arc::new(move |peer: &Addr| {
        // Unix-domain peers are local: believed.
        let trusted = match (&proxy, peer) {
            (Some(trust), Addr::Tcp(sa)) => trust.trusts(sa.ip()),
            _ => true,
        };
        if !trusted
            && proxy
                .as_ref()
                .is_some_and(|t| t.untrusted == UntrustedProxy::Refuse)
        {
            return Err(LayerRefusal::UntrustedProxy);
        }
        let tls = match &tls {
            Some(config) => Some(Box::new(
                TlsLayer::server(config).map_err(|e| LayerRefusal::Failed(CloseReason::Tls(e)))?,
            ) as Box<dyn Layer>),
            None => None,
        };
        Ok(match (tls, &proxy) {
            (inner, Some(_)) => Box::new(ProxyLayer::new(inner, !trusted)) as Box<dyn Layer>,
            (Some(tls), None) => tls,
            (None, None) => unreachable!("a listener without layers has no maker"),
        })
    }))
}

pub(super) fn bind_all(specs: Vec<ListenerSpec>, o: &BindOptions) -> Result<Bound> {
    let mut b = Bound {
        acceptor: Vec::new(),
        per_shard: (0..o.shards).map(|_| Vec::new()).collect(),
        local_addrs: Vec::new(),
        makers: Vec::new(),
        layers: Vec::new(),
        reloads: Vec::new(),
    };
    let mut inherited = if o.systemd_activation {
        super::systemd::take_listeners()
            .map_err(|source| Error::Bind {
                addr: "sockets passed by systemd".into(),
                source,
            })?
            .into_iter()
    } else {
        Vec::new().into_iter()
    };
    for (index, spec) in specs.into_iter().enumerate() {
        let listen = spec.listen;
        let desc = listen.desc.clone();
        let bind_err = |source| Error::Bind {
            addr: desc.clone(),
            source,
        };
        let addr = listen.addr.map_err(|problem| match problem {
            ListenProblem::Endpoint(e) => Error::Endpoint(e),
            ListenProblem::Resolve(reason) => Error::Resolve {
                addr: desc.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, reason),
            },
        })?;
        let tls = match listen.tls {
            Some(ListenTls::Config(config)) => Some(config),
            Some(ListenTls::Files(files)) => {
                let config = files.load().map_err(|e| Error::Tls {
                    addr: desc.clone(),
                    source: e,
                })?;
                let (reloaded, what) = (config.clone(), desc.clone());
                b.reloads.push(Arc::new(move |_| {
                    // A bad file leaves the old certificate serving.
                    match reloaded.reload_pem_files(&files.cert_key, &files.private_key) {
                        Ok(()) => tracing::info!(listener = %what, "TLS certificate reloaded"),
                        Err(e) => tracing::error!(listener = %what, error = %e, "TLS reload failed; keeping the old certificate"),
                    }
                }));
                Some(config)
            }
            None => None,
        };
        b.layers.push(transport_layers(tls, listen.proxy));
        b.makers.push(spec.make);
        if let Some(fd) = inherited.next() {
            // Socket activation: systemd bound it; use it in its place.
            let nodelay = o.defaults.nodelay.unwrap_or(true);
            let listener = inherited_listener(fd, nodelay).map_err(|source| Error::Bind {
                addr: format!("{desc} (inherited from systemd)"),
                source,
            })?;
            b.local_addrs.push(listener.local_addr()?);
            b.acceptor.push((index, listener));
            continue;
        }
        match addr {
            ListenAddr::Tcp(addr) => {
                // This listener's options, then the server's defaults.
                let opts = listen.options.or(&o.defaults);
                let first = bind_tcp_with(addr, &opts).map_err(bind_err)?;
                // Port 0: the others join the port the first one got.
                let actual = first.local_addr()?;
                b.local_addrs.push(Addr::Tcp(actual));
                let first = mio::net::TcpListener::from_std(first);
                if o.shards == 1 && o.single_shard_accepts {
                    b.per_shard[0].push((index, first));
                    continue;
                }
                if opts.reuse_port != Some(true) {
                    b.acceptor.push((index, Listener::Tcp(first)));
                    continue;
                }
                b.per_shard[0].push((index, first));
                for shard in 1..o.shards {
                    let l = bind_tcp_with(actual, &opts).map_err(bind_err)?;
                    b.per_shard[shard].push((index, mio::net::TcpListener::from_std(l)));
                }
            }
            ListenAddr::Unix(path) => {
                let backlog = listen.options.backlog.or(o.defaults.backlog);
                let l = bind_unix(&path, backlog.unwrap_or(1024)).map_err(bind_err)?;
                let listener = Listener::Unix(l);
                b.local_addrs.push(listener.local_addr()?);
                b.acceptor.push((index, listener));
            }
        }
    }
    Ok(b)
}

/// A listener from a socket systemd passed: TCP or Unix-domain, made
/// non-blocking, with `TCP_NODELAY` for its connections to inherit.
fn inherited_listener(socket: socket2::Socket, nodelay: bool) -> std::io::Result<Listener> {
    socket.set_nonblocking(true)?;
    let is_tcp = socket.local_addr()?.as_socket().is_some();
    if is_tcp && nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    let fd: std::os::fd::OwnedFd = socket.into();
    Ok(if is_tcp {
        Listener::Tcp(mio::net::TcpListener::from_std(fd.into()))
    } else {
        Listener::Unix(mio::net::UnixListener::from_std(fd.into()))
    })
}
