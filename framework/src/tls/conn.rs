//! The TLS side of `Conn`: what the handshake negotiated, and upgrading a
//! plaintext connection (STARTTLS).

use super::{TlsClientConfig, TlsConfigError, TlsLayer, TlsServerConfig};
use crate::api::{CloseReason, TlsFailure, TlsInfo};
use crate::reactor::{Conn, Protocol};

impl<P: Protocol> Conn<'_, P> {
    /// What this connection's TLS handshake negotiated (ALPN, SNI, the
    /// peer's certificates, version, cipher suite); `None` for a plaintext
    /// connection, or while a [`start_tls`](Conn::start_tls) handshake runs.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.layer().and_then(|l| l.tls_info())
    }

    /// True when the connection runs over TLS (or is upgrading to it).
    pub fn is_tls(&self) -> bool {
        self.layer().is_some_and(|l| l.is_tls())
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
            Ok(layer) => self.install_layer(Box::new(layer), already_read),
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
        let name = super::server_name(server_name)?;
        match TlsLayer::client(config, name) {
            Ok(layer) => self.install_layer(Box::new(layer), &[]),
            Err(failure) => self.fail(failure),
        }
        Ok(())
    }

    fn fail(&mut self, failure: TlsFailure) {
        tracing::warn!(conn = %self.id(), %failure, "cannot start TLS; aborting");
        self.abort_with(CloseReason::Tls(failure));
    }
}
