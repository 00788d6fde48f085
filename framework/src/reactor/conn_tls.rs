//! The TLS side of `Conn`: encrypting output, what the handshake
//! negotiated, and upgrading a plaintext connection (STARTTLS).

use super::conn::{Conn, WRITE_THROUGH};
use super::layer::{Layer, WireSink};
use super::protocol::Protocol;
use crate::api::{CloseReason, TlsFailure};
use crate::tls::{TlsClientConfig, TlsConfigError, TlsInfo, TlsLayer, TlsServerConfig};

impl<P: Protocol> Conn<'_, P> {
    /// Encodes output through the connection's layer (already admitted).
    pub(super) fn encode(&mut self, data: &[u8]) {
        let Some(layer) = self.core.layer.as_mut() else {
            return;
        };
        let mut wire = WireSink {
            out: &mut self.core.out,
            pool: &mut self.ctx.pool,
        };
        if let Err(reason) = layer.encode(data, &mut wire) {
            tracing::debug!(conn = %self.core.id, %reason, "the transport layer refused output; aborting");
            self.core.abort_requested = true;
            self.core.close_reason = Some(reason);
        }
        if self.core.out.len() >= WRITE_THROUGH && !self.core.write_blocked {
            // As for plaintext: a large output goes to the socket now rather
            // than piling up until the end of the iteration.
            if let Ok((n, blocked)) = self
                .core
                .out
                .flush_to(&mut self.core.stream, &mut self.ctx.pool)
            {
                self.ctx.counters.bytes_out += n as u64;
                self.core.write_blocked = blocked;
            }
        }
        self.ctx.mark_dirty(self.core);
    }

    /// What this connection's TLS handshake negotiated (ALPN, SNI, the
    /// peer's certificates, version, cipher suite); `None` for a plaintext
    /// connection, or while a [`start_tls`](Conn::start_tls) handshake runs.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.core.layer.as_ref().and_then(|l| l.tls_info())
    }

    /// The PROXY protocol header this connection started with (on a
    /// listener with `proxy_protocol`); `peer_addr` and `local_addr`
    /// already reflect its addresses.
    pub fn proxy_header(&self) -> Option<crate::proxy::ProxyHeader> {
        self.core
            .layer
            .as_ref()
            .and_then(|l| l.proxy_header())
            .cloned()
    }

    /// True when the connection runs over TLS (or is upgrading to it).
    pub fn is_tls(&self) -> bool {
        self.core.layer.as_ref().is_some_and(|l| l.is_tls())
    }

    /// Upgrades this plaintext connection to TLS as the server (Twisted's
    /// `startTLS`), e.g. after answering `STARTTLS`: what was written before
    /// this call goes out in plaintext, everything after it encrypted, and
    /// bytes read from now on are the client's handshake. The protocol stays
    /// the same; writes during the handshake are sent when it completes.
    ///
    /// If the same read brought bytes after the command (a client that
    /// sends its ClientHello without waiting), pass them to
    /// [`start_tls_with_input`](Conn::start_tls_with_input);
    /// [`FramedConn::start_tls`](crate::framing::FramedConn::start_tls) does
    /// that for line and frame protocols.
    pub fn start_tls(&mut self, config: &TlsServerConfig) {
        self.start_tls_with_input(config, &[]);
    }

    /// [`start_tls`](Conn::start_tls), where `already_read` are bytes the
    /// protocol received after the upgrade point: they go through TLS
    /// before anything read later.
    pub fn start_tls_with_input(&mut self, config: &TlsServerConfig, already_read: &[u8]) {
        match TlsLayer::server(config) {
            Ok(layer) => self.install(Box::new(layer), already_read),
            Err(failure) => self.fail(failure),
        }
    }

    /// Upgrades this plaintext connection to TLS as the client, verifying
    /// the server as `server_name`. Errors only for a malformed name.
    pub fn start_tls_client(
        &mut self,
        config: &TlsClientConfig,
        server_name: &str,
    ) -> Result<(), TlsConfigError> {
        let name = crate::tls::server_name(server_name)?;
        match TlsLayer::client(config, name) {
            Ok(layer) => self.install(Box::new(layer), &[]),
            Err(failure) => self.fail(failure),
        }
        Ok(())
    }

    fn fail(&mut self, failure: TlsFailure) {
        tracing::warn!(conn = %self.core.id, %failure, "cannot start TLS; aborting");
        self.core.abort_requested = true;
        self.core.close_reason = Some(CloseReason::Tls(failure));
    }

    fn install(&mut self, layer: Box<dyn Layer>, already_read: &[u8]) {
        if self.core.layer.is_some() {
            self.core.abort_requested = true;
            self.core.close_reason = Some(CloseReason::ProtocolError(
                "start_tls on a connection that already runs TLS".into(),
            ));
            return;
        }
        self.core.start_layer(layer, self.ctx);
        if !already_read.is_empty() {
            self.core.layer_input.extend_from_slice(already_read);
            // Fed to the layer by the next read of this connection, this
            // iteration, even if the socket has nothing more.
            self.ctx.read_again.push(self.core.id);
        }
    }
}
