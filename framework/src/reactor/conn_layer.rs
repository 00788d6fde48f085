//! The layer side of `Conn`: output through the connection's transport
//! layer, and installing a layer on a running connection (STARTTLS).

use super::conn::Conn;
use super::layer::Layer;
use super::protocol::Protocol;
use crate::api::CloseReason;

impl<P: Protocol> Conn<'_, P> {
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
