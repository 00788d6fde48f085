//! The TLS side of `Conn`: what the handshake negotiated, and upgrading a
//! plaintext connection (STARTTLS).

use super::{TlsClientConfig, TlsLayer, TlsServerConfig};
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

    /// Upgrades this plaintext connection to TLS (Twisted's `startTLS`),
    /// e.g. after answering `STARTTLS`: what was written before this call
    /// goes out in plaintext, everything after it encrypted, and bytes read
    /// from now on are the handshake. The protocol stays the same; writes
    /// during the handshake are sent when it completes.
    ///
    /// `upgrade` is a server configuration (`&TlsServerConfig`: the server
    /// side) or a [`StartTls`] (the client side, or bytes already read
    /// behind the upgrade point, such as a ClientHello sent without waiting;
    /// [`FramedConn::start_tls`](crate::framing::FramedConn::start_tls)
    /// hands those over for line and frame protocols). A TLS session that
    /// cannot start (a malformed server name) aborts the connection with
    /// [`CloseReason::Tls`]; one already running a layer is aborted too.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol};
    /// use shardloop::tls::{StartTls, TlsClientConfig};
    /// # struct Smtp { tls: TlsClientConfig }
    /// # impl Protocol for Smtp { type Message = ();
    /// fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///     if data.starts_with(b"220 ") {
    ///         conn.start_tls(StartTls::client(&self.tls, "mail.example.com"));
    ///     }
    /// }
    /// # }
    /// ```
    pub fn start_tls(&mut self, upgrade: impl Into<StartTls>) {
        let StartTls { side, already_read } = upgrade.into();
        let layer = match side {
            Side::Server(config) => TlsLayer::server(&config),
            Side::Client(config, name) => match super::server_name(&name) {
                Ok(name) => TlsLayer::client(&config, name),
                Err(e) => Err(TlsFailure::Handshake(e.to_string())),
            },
        };
        match layer {
            Ok(layer) => self.install_layer(Box::new(layer), &already_read),
            Err(failure) => self.fail(failure),
        }
    }

    fn fail(&mut self, failure: TlsFailure) {
        tracing::warn!(conn = %self.id(), %failure, "cannot start TLS; aborting");
        self.abort_with(CloseReason::Tls(failure));
    }
}

/// A TLS upgrade of a running connection ([`Conn::start_tls`]): the
/// server side with its configuration, or the client side verifying a
/// server name, and any bytes already read behind the upgrade point.
#[derive(Clone)]
pub struct StartTls {
    side: Side,
    already_read: Vec<u8>,
}

#[derive(Clone)]
enum Side {
    Server(TlsServerConfig),
    Client(TlsClientConfig, String),
}

impl StartTls {
    /// The server side of the handshake.
    pub fn server(config: &TlsServerConfig) -> StartTls {
        StartTls {
            side: Side::Server(config.clone()),
            already_read: Vec::new(),
        }
    }

    /// The client side, verifying the server as `server_name` (a DNS name
    /// or an IP address, also sent as SNI).
    pub fn client(config: &TlsClientConfig, server_name: &str) -> StartTls {
        StartTls {
            side: Side::Client(config.clone(), server_name.to_string()),
            already_read: Vec::new(),
        }
    }

    /// Bytes the protocol received after the upgrade point: they go through
    /// TLS before anything read later.
    pub fn already_read(mut self, bytes: &[u8]) -> StartTls {
        self.already_read.extend_from_slice(bytes);
        self
    }
}

impl From<&TlsServerConfig> for StartTls {
    fn from(config: &TlsServerConfig) -> StartTls {
        StartTls::server(config)
    }
}
