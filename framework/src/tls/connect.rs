//! Outbound TLS connections from a shard.

use super::{TlsClientConfig, TlsConfigError, TlsLayer};
use crate::net::Addr;
use crate::reactor::{ConnObserver, PendingConnect, Protocol, ShardCtx};
use std::net::SocketAddr;
use std::time::Duration;

impl ShardCtx {
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
        let name = super::server_name(server_name)?;
        let layer =
            TlsLayer::client(config, name).map_err(|e| TlsConfigError::Invalid(e.to_string()))?;
        self.queue_connect(PendingConnect {
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
