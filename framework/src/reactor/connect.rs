//! Outbound connections a shard opens: plain TCP or Unix, with a connect
//! timeout, and over TLS.

use super::conn_core::ConnObserver;
use super::protocol::Protocol;
use super::shard_ctx::{PendingConnect, ShardCtx};
use crate::net::{Addr, SocketOptions};
use crate::tls::{TlsClientConfig, TlsConfigError, TlsLayer};
use std::net::SocketAddr;
use std::time::Duration;

impl ShardCtx {
    /// Opens an outbound TCP connection from this shard, driven by `protocol`
    /// on this shard (a protocol that needs a backend never blocks). The
    /// connect starts when the current callback returns; on success the
    /// protocol gets `connection_made`, on failure `connect_failed`.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol, ShardCtx};
    /// struct Ping;
    /// impl Protocol for Ping {
    ///     type Message = ();
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) { conn.write(b"PING\r\n"); }
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, _: &[u8]) { conn.close(); }
    /// }
    /// fn ping(ctx: &mut ShardCtx) {
    ///     ctx.connect_tcp("127.0.0.1:6379".parse().unwrap(), Ping);
    /// }
    /// ```
    pub fn connect_tcp<P: Protocol>(&mut self, addr: SocketAddr, protocol: P) {
        self.connect(Addr::Tcp(addr), protocol, None);
    }

    /// [`connect_tcp`](ShardCtx::connect_tcp) that fails with `TimedOut`
    /// if the connection is not established within `timeout`.
    pub fn connect_tcp_timeout<P: Protocol>(
        &mut self,
        addr: SocketAddr,
        protocol: P,
        timeout: Duration,
    ) {
        self.connect(Addr::Tcp(addr), protocol, Some(timeout));
    }

    /// Opens an outbound connection to a TCP address or a Unix-domain socket
    /// path, with an optional connect timeout (see [`connect_tcp`](ShardCtx::connect_tcp)).
    pub fn connect<P: Protocol>(&mut self, addr: Addr, protocol: P, timeout: Option<Duration>) {
        self.pending_connects.push(PendingConnect {
            observer: None,
            addr,
            proto: Box::new(protocol),
            timeout,
            layer: None,
            options: None,
        });
    }

    pub(crate) fn connect_observed<P: Protocol>(
        &mut self,
        addr: Addr,
        protocol: P,
        timeout: Option<Duration>,
        observer: Box<dyn ConnObserver>,
    ) {
        self.pending_connects.push(PendingConnect {
            observer: Some(observer),
            addr,
            proto: Box::new(protocol),
            timeout,
            layer: None,
            options: None,
        });
    }

    /// [`connect`](ShardCtx::connect) with socket options for this
    /// connection (instead of the server's outbound defaults).
    pub fn connect_with_options<P: Protocol>(
        &mut self,
        addr: SocketAddr,
        protocol: P,
        timeout: Option<Duration>,
        options: SocketOptions,
    ) {
        self.pending_connects.push(PendingConnect {
            observer: None,
            addr: Addr::Tcp(addr),
            proto: Box::new(protocol),
            timeout,
            layer: None,
            options: Some(options),
        });
    }

    /// Opens an outbound TLS connection: TCP to `addr`, then a handshake
    /// that verifies the server's certificate for `server_name` (a DNS name
    /// or an IP address, also sent as SNI). The protocol gets
    /// `connection_made` once the handshake is done, or `connect_failed`
    /// if the connect or the handshake fails.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol, ShardCtx};
    /// # use shardloop::tls::TlsClientConfig;
    /// struct Get;
    /// impl Protocol for Get {
    ///     type Message = ();
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
    ///         conn.write(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    ///     }
    ///     fn data_received(&mut self, _: &mut Conn<'_, Self>, data: &[u8]) {
    ///         print!("{}", String::from_utf8_lossy(data));
    ///     }
    /// }
    /// fn get(ctx: &mut ShardCtx, tls: &TlsClientConfig) {
    ///     let addr = "127.0.0.1:8443".parse().unwrap();
    ///     ctx.connect_tls(addr, "localhost", tls, Get, None).unwrap();
    /// }
    /// ```
    pub fn connect_tls<P: Protocol>(
        &mut self,
        addr: SocketAddr,
        server_name: &str,
        config: &TlsClientConfig,
        protocol: P,
        timeout: Option<Duration>,
    ) -> Result<(), TlsConfigError> {
        self.connect_layered(
            Addr::Tcp(addr),
            server_name,
            config,
            protocol,
            timeout,
            None,
        )
    }

    pub(crate) fn connect_layered<P: Protocol>(
        &mut self,
        addr: Addr,
        server_name: &str,
        config: &TlsClientConfig,
        protocol: P,
        timeout: Option<Duration>,
        observer: Option<Box<dyn ConnObserver>>,
    ) -> Result<(), TlsConfigError> {
        let name = crate::tls::server_name(server_name)?;
        let layer =
            TlsLayer::client(config, name).map_err(|e| TlsConfigError::Invalid(e.to_string()))?;
        self.pending_connects.push(PendingConnect {
            observer,
            addr,
            proto: Box::new(protocol),
            timeout,
            layer: Some(Box::new(layer)),
            options: None,
        });
        Ok(())
    }
}
