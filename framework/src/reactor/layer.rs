//! Transport layers: a stage between the socket and the protocol that turns
//! the bytes read into the bytes the protocol sees, and the protocol's
//! output into the bytes written (TLS is one). The shard keeps reading into
//! its shared buffer and writing from the connection's output queue, so the
//! output cap, backpressure and the close sequence apply to the bytes on
//! the wire; a connection without a layer pays one branch per read and per
//! write.
//!
//! Layers compose by wrapping: a layer may own an inner one and pass its
//! output through it (compression inside TLS, say).

use super::conn_core::Phase;
use super::lifecycle::invoke;
use super::shard::Shard;
use super::timers::TimerTask;
use crate::api::{CloseReason, Settings, TlsFailure};
use crate::api::{ProxiedAddrs, ProxyHeader, TlsInfo};
use crate::net::Addr;
use crate::net::{BufPool, WriteBuf};
use std::io;
use std::time::Duration;

/// Where a layer puts bytes for the peer: the connection's output queue.
pub(crate) struct WireSink<'a> {
    pub(crate) out: &'a mut WriteBuf,
    pub(crate) pool: &'a mut BufPool,
}

impl io::Write for WireSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.push(buf, self.pool);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for b in bufs {
            self.out.push(b, self.pool);
            n += b.len();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Makes the transport layers of each connection a listener accepts (TLS,
/// a PROXY header reader, or both stacked) for a peer at this address, or
/// says why not. Carried by the listener, so the reactor knows only the
/// [`Layer`] trait.
pub(crate) type LayerMaker =
    std::sync::Arc<dyn Fn(&Addr) -> Result<Box<dyn Layer>, LayerRefusal> + Send + Sync>;

/// Why a listener's layers were not made for a connection.
#[derive(Debug)]
pub(crate) enum LayerRefusal {
    /// A layer could not start (a TLS configuration rustls refused).
    Failed(CloseReason),
    /// The peer may not send a PROXY header to this listener.
    UntrustedProxy,
}

/// A stage between the socket and the protocol.
pub(crate) trait Layer: Send {
    /// Takes bytes read from the socket: appends what the protocol should see
    /// to `app` and queues what must go back to the peer (handshake
    /// messages, alerts) on `wire`. An error is fatal; whatever alert it
    /// produced is already on `wire`.
    fn ingest(
        &mut self,
        input: &[u8],
        app: &mut Vec<u8>,
        wire: &mut WireSink<'_>,
    ) -> Result<(), CloseReason>;

    /// Encodes the protocol's output onto `wire`.
    fn encode(&mut self, data: &[u8], wire: &mut WireSink<'_>) -> Result<(), CloseReason>;

    /// Queues the end of this side's output (TLS `close_notify`), once.
    /// Returns true if it queued anything.
    fn close_output(&mut self, wire: &mut WireSink<'_>) -> bool;

    /// Queues what this side says first (a client's hello).
    fn start(&mut self, wire: &mut WireSink<'_>);

    /// The layer is established (handshake done): the protocol may run.
    fn is_ready(&self) -> bool;

    /// The peer ended its output cleanly inside the layer (`close_notify`).
    fn peer_finished(&self) -> bool;

    /// Whether a TCP EOF now is a clean end (for TLS: only after
    /// `close_notify`).
    fn clean_eof(&self) -> bool;

    /// What was negotiated, once ready.
    fn tls_info(&self) -> Option<TlsInfo>;

    /// Why the connection ends when the peer closes before the layer is ready.
    fn eof_reason(&self) -> CloseReason;

    /// How long the layer may take to become ready.
    fn deadline(&self, settings: &Settings) -> Duration;

    /// Why the connection ends when that deadline passes.
    fn timeout_reason(&self) -> CloseReason;

    /// The layer is (or holds) TLS.
    fn is_tls(&self) -> bool;

    /// A PROXY header was read from a peer outside the listener's trusted
    /// networks and ignored.
    fn proxy_untrusted(&self) -> bool {
        false
    }

    /// The PROXY protocol header the layer read, if it is that layer.
    fn proxy_header(&self) -> Option<&ProxyHeader> {
        None
    }

    /// The layer may give the connection another peer address once ready
    /// (a trusted PROXY header): limits by address wait for it. Others
    /// are checked before the layer starts, so a refused peer costs no
    /// TLS handshake.
    fn may_change_peer(&self) -> bool {
        false
    }
}

impl Shard {
    /// Feeds bytes read from a layered connection through its layer and
    /// delivers what comes out. Returns false if the connection is gone or
    /// stopped reading for good.
    pub(super) fn ingest_layered(&mut self, slot: usize, input: &[u8]) -> bool {
        let mut app = std::mem::take(&mut self.app_buf);
        app.clear();
        let c = &mut self.conns[slot];
        let Some(layer) = c.core.layer.as_mut() else {
            return true;
        };
        let was_ready = layer.is_ready();
        let mut wire = WireSink {
            out: &mut c.core.out,
            pool: &mut self.ctx.pool,
        };
        let result = layer.ingest(input, &mut app, &mut wire);
        let now_ready = layer.is_ready();
        let finished = layer.peer_finished();
        if !c.core.out.is_empty() {
            self.ctx.mark_dirty(&mut c.core);
        }
        let alive = match result {
            Err(reason) => {
                self.layer_failed(slot, reason);
                false
            }
            Ok(()) => self.deliver_layered(slot, was_ready, now_ready, finished, &app),
        };
        self.app_buf = app;
        alive
    }

    fn deliver_layered(
        &mut self,
        slot: usize,
        was_ready: bool,
        now_ready: bool,
        finished: bool,
        app: &[u8],
    ) -> bool {
        if !was_ready && now_ready && !self.layer_ready(slot) {
            return false;
        }
        if !app.is_empty() {
            let c = &mut self.conns[slot];
            if self.ctx.routes.is_empty() {
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    p.data_received(core, ctx, app)
                });
            } else {
                super::forward::route_input(&mut self.conns, &mut self.ctx, slot, app);
            }
            if !self.after_callback(slot) {
                return false;
            }
        }
        let c = &mut self.conns[slot];
        if finished && !c.core.state.is_peer_eof() && c.core.state.is(Phase::Open) {
            self.on_peer_eof(slot);
            return false;
        }
        true
    }

    /// The layer finished its handshake: the connection is made (or, after
    /// `start_tls`, goes on encrypted).
    pub(super) fn layer_ready(&mut self, slot: usize) -> bool {
        let c = &mut self.conns[slot];
        if let Some(t) = c.core.phase_timer.take() {
            self.ctx.timers.cancel_id(t);
        }
        let layer = c.core.layer.as_ref();
        if layer.is_some_and(|l| l.tls_info().is_some()) {
            self.ctx.counters.tls_handshakes += 1;
        }
        if layer.is_some_and(|l| l.proxy_untrusted()) {
            self.ctx.counters.proxy_untrusted += 1;
        }
        if let Some(h) = layer.and_then(|l| l.proxy_header()) {
            self.ctx.counters.proxy_headers += 1;
            if let ProxiedAddrs::Tcp {
                source,
                destination,
            } = h.addrs
            {
                c.core.peer = Addr::Tcp(source);
                c.core.set_local_addr(Addr::Tcp(destination));
            }
        }
        if c.core.state.is_made() {
            // After `start_tls`: the protocol learns the session is up.
            if c.core.layer.as_ref().is_some_and(|l| l.is_tls()) {
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    p.handshake_completed(core, ctx)
                });
                return self.after_callback(slot);
            }
            return true;
        }
        self.make(slot)
    }

    /// Tells the observer and the protocol that the connection is made
    /// (an accepted one first passes the per-address limits, now that its
    /// address is final: after a trusted PROXY header).
    pub(super) fn make(&mut self, slot: usize) -> bool {
        let state = &self.conns[slot].core.state;
        if !state.is_outbound() && !state.is_address_admitted() && !self.admit_address(slot) {
            return false;
        }
        let c = &mut self.conns[slot];
        c.core.state.made();
        if let Some(o) = c.core.extras.as_mut().and_then(|e| e.observer.as_mut()) {
            o.made(&mut self.ctx);
        }
        let c = &mut self.conns[slot];
        invoke(c, &mut self.ctx, |p, core, ctx| {
            p.connection_made(core, ctx)
        });
        self.after_callback(slot)
    }

    /// The layer failed: send what it queued (an alert), then close. A
    /// connection whose handshake never finished was never made, so its
    /// protocol gets no `connection_lost` (an outbound one gets
    /// `connect_failed`).
    pub(super) fn layer_failed(&mut self, slot: usize, reason: CloseReason) {
        let c = &mut self.conns[slot];
        let ready = c.core.layer.as_ref().is_some_and(|l| l.is_ready());
        let n = &mut self.ctx.counters;
        match &reason {
            CloseReason::Tls(TlsFailure::HandshakeTimeout) => n.tls_handshake_timeouts += 1,
            CloseReason::Tls(_) if ready => n.tls_errors += 1,
            CloseReason::Tls(_) => n.tls_handshake_failures += 1,
            _ => n.proxy_header_errors += 1,
        }
        if let Some(suppressed) = self.ctx.log_limits.transport.allow() {
            tracing::debug!(conn = %c.core.id, peer = %c.core.peer, %reason, suppressed, "transport layer failed; closing");
        }
        c.core.set_reason(reason.clone());
        // Nothing the protocol writes from here on can be encrypted.
        if c.core.state.layer_failed() {
            let timeout = self.ctx.settings.close_timeout;
            let task = TimerTask::CloseDeadline(c.core.id);
            c.core.set_phase_timer(&mut self.ctx.timers, timeout, task);
        }
        self.lose(slot, &reason);
        let c = &mut self.conns[slot];
        c.core.state.mark_dirty();
        self.flush_conn(slot);
    }

    /// Before FIN on a layered connection: queue the layer's end of output
    /// (`close_notify`). Returns true if there is now more to flush.
    pub(super) fn close_layer_output(&mut self, slot: usize) -> bool {
        let c = &mut self.conns[slot];
        if c.core.state.has_layer_failed() {
            return false;
        }
        let Some(layer) = c.core.layer.as_mut() else {
            return false;
        };
        let mut wire = WireSink {
            out: &mut c.core.out,
            pool: &mut self.ctx.pool,
        };
        layer.close_output(&mut wire)
    }

    /// A layered connection read EOF from the socket.
    pub(super) fn layered_eof(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        let ready = c.core.layer.as_ref().is_some_and(|l| l.is_ready());
        if !ready {
            let reason = c
                .core
                .layer
                .as_ref()
                .map(|l| l.eof_reason())
                .unwrap_or(CloseReason::PeerClosed);
            return self.layer_failed(slot, reason);
        }
        if !c.core.layer.as_ref().is_some_and(|l| l.clean_eof()) {
            self.ctx.counters.tls_errors += 1;
            c.core.note_reason(CloseReason::Tls(TlsFailure::Truncated));
        }
        self.on_peer_eof(slot);
    }
}
