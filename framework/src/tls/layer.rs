//! The TLS layer: rustls between the socket's bytes and the protocol's.

use super::{TlsClientConfig, TlsInfo, TlsServerConfig};
use crate::api::{CloseReason, Settings, TlsFailure};
use crate::reactor::{Layer, WireSink};
use rustls::pki_types::ServerName;
use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

/// One connection's TLS state.
pub(crate) struct TlsLayer {
    conn: rustls::Connection,
    /// The name a client connected to (for [`TlsInfo::server_name`]).
    server_name: Option<String>,
    output_closed: bool,
    peer_closed: bool,
    /// When the layer started (the transport up), and how long the
    /// handshake took once it is done.
    started: Option<Instant>,
    handshake_time: Option<Duration>,
}

impl TlsLayer {
    pub(crate) fn server(config: &TlsServerConfig) -> Result<Self, TlsFailure> {
        let conn = rustls::ServerConnection::new(config.rustls_config().clone())
            .map_err(|e| TlsFailure::Handshake(e.to_string()))?;
        Ok(Self::wrap(conn.into(), None))
    }

    pub(crate) fn client(
        config: &TlsClientConfig,
        name: ServerName<'static>,
    ) -> Result<Self, TlsFailure> {
        let shown = name.to_str().into_owned();
        let conn = rustls::ClientConnection::new(config.rustls_config().clone(), name)
            .map_err(|e| TlsFailure::Handshake(e.to_string()))?;
        Ok(Self::wrap(conn.into(), Some(shown)))
    }

    fn wrap(conn: rustls::Connection, server_name: Option<String>) -> Self {
        TlsLayer {
            conn,
            server_name,
            output_closed: false,
            peer_closed: false,
            started: None,
            handshake_time: None,
        }
    }

    fn failure(&self, why: impl ToString) -> TlsFailure {
        if self.conn.is_handshaking() {
            TlsFailure::Handshake(why.to_string())
        } else {
            TlsFailure::Protocol(why.to_string())
        }
    }

    /// Moves every record rustls has ready onto the wire.
    fn drain(&mut self, wire: &mut WireSink<'_>) {
        while self.conn.wants_write() {
            // WireSink never refuses, so this only stops when rustls is empty.
            if self.conn.write_tls(wire).unwrap_or(0) == 0 {
                break;
            }
        }
    }

    fn take_plaintext(&mut self, app: &mut Vec<u8>) {
        let mut reader = self.conn.reader();
        loop {
            match reader.fill_buf() {
                Ok([]) => {
                    self.peer_closed = true;
                    return;
                }
                Ok(chunk) => {
                    let n = chunk.len();
                    app.extend_from_slice(chunk);
                    reader.consume(n);
                }
                // WouldBlock: nothing more decrypted yet.
                Err(_) => return,
            }
        }
    }
}

impl Layer for TlsLayer {
    fn ingest(
        &mut self,
        mut input: &[u8],
        app: &mut Vec<u8>,
        wire: &mut WireSink<'_>,
    ) -> Result<(), CloseReason> {
        while !input.is_empty() {
            // rustls takes what fits in its record buffer; the loop feeds the rest.
            if let Err(e) = self.conn.read_tls(&mut input) {
                return Err(CloseReason::Tls(self.failure(e)));
            }
            match self.conn.process_new_packets() {
                Ok(state) => {
                    let closed = state.peer_has_closed();
                    if state.plaintext_bytes_to_read() > 0 || closed {
                        self.take_plaintext(app);
                    }
                }
                Err(e) => {
                    let failure = self.failure(&e);
                    // rustls queued the alert that tells the peer why.
                    self.drain(wire);
                    return Err(CloseReason::Tls(failure));
                }
            }
        }
        if self.handshake_time.is_none() && !self.conn.is_handshaking() {
            self.handshake_time = self.started.map(|t| t.elapsed());
        }
        self.drain(wire);
        Ok(())
    }

    fn encode(&mut self, mut data: &[u8], wire: &mut WireSink<'_>) -> Result<(), CloseReason> {
        while !data.is_empty() {
            let n = match self.conn.writer().write(data) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => return Err(CloseReason::Tls(self.failure(e))),
            };
            data = &data[n..];
            if n == 0 && !self.conn.wants_write() {
                // Only before the handshake ends: rustls holds plaintext
                // until then, up to its buffer limit.
                return Err(CloseReason::Tls(self.failure(
                    "more output before the handshake finished than rustls buffers (64 KiB)",
                )));
            }
            self.drain(wire);
        }
        Ok(())
    }

    fn close_output(&mut self, wire: &mut WireSink<'_>) -> bool {
        if std::mem::replace(&mut self.output_closed, true) {
            return false;
        }
        self.conn.send_close_notify();
        self.drain(wire);
        true
    }

    fn start(&mut self, wire: &mut WireSink<'_>) {
        self.started = Some(Instant::now());
        self.drain(wire);
    }

    fn is_ready(&self) -> bool {
        !self.conn.is_handshaking()
    }

    fn peer_finished(&self) -> bool {
        self.peer_closed
    }

    fn is_tls(&self) -> bool {
        true
    }

    fn clean_eof(&self) -> bool {
        // Without close_notify the end may have been forged.
        self.peer_closed
    }

    fn tls_info(&self) -> Option<TlsInfo> {
        self.is_ready()
            .then(|| TlsInfo::of(&self.conn, self.server_name.clone(), self.handshake_time))
    }

    fn eof_reason(&self) -> CloseReason {
        CloseReason::Tls(TlsFailure::Handshake(
            "the peer closed the connection".into(),
        ))
    }

    fn deadline(&self, settings: &Settings) -> Duration {
        settings.tls_handshake_timeout
    }

    fn timeout_reason(&self) -> CloseReason {
        CloseReason::Tls(TlsFailure::HandshakeTimeout)
    }
}
