//! The layer side of `Conn`: output through the connection's transport
//! layer, and installing a layer on a running connection (STARTTLS).

use super::conn::{Conn, WRITE_THROUGH};
use super::layer::{Layer, WireSink};
use super::protocol::Protocol;
use crate::api::CloseReason;

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
            self.core.state.request_abort();
            self.core.set_reason(reason);
        }
        if self.core.out.len() >= WRITE_THROUGH && !self.core.state.is_write_blocked() {
            // As for plaintext: a large output goes to the socket now rather
            // than piling up until the end of the iteration.
            if let Ok((n, blocked)) = self
                .core
                .out
                .flush_to(&mut self.core.stream, &mut self.ctx.pool)
            {
                self.ctx.counters.bytes_out += n as u64;
                self.core.state.set_write_blocked(blocked);
            }
        }
        self.ctx.mark_dirty(self.core);
    }

    /// Installs `layer` on this running connection: what was written
    /// before goes out as it was, everything after through the layer.
    /// `already_read` are bytes the protocol received after the upgrade
    /// point; they go through the layer before anything read later. A
    /// connection that already has a layer is aborted.
    pub(crate) fn install_layer(&mut self, layer: Box<dyn Layer>, already_read: &[u8]) {
        if self.core.layer.is_some() {
            self.core.state.request_abort();
            self.core.set_reason(CloseReason::ProtocolError(
                "start_tls on a connection that already runs a transport layer".into(),
            ));
            return;
        }
        self.core.start_layer(layer, self.ctx);
        if !already_read.is_empty() {
            self.core
                .extras()
                .layer_input
                .extend_from_slice(already_read);
            // Fed to the layer by the next read of this connection, this
            // iteration, even if the socket has nothing more.
            self.ctx.read_again.push(self.core.id);
        }
    }

    /// Ends this connection at once for `reason` (a layer that cannot start).
    pub(crate) fn abort_with(&mut self, reason: CloseReason) {
        self.core.state.request_abort();
        self.core.set_reason(reason);
    }

    /// The connection's layer, if it has one.
    pub(crate) fn layer(&self) -> Option<&dyn Layer> {
        self.core.layer.as_deref()
    }
}
