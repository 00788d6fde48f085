//! A connection's birth and death on its shard: accept, establish,
//! applying what a callback asked for, FIN, `connection_lost`, release.

use super::conn_core::{ConnCore, ConnObserver, ConnState, ConnectionEnd, Phase};
use super::erased::ErasedProto;
use super::layer::{Layer, LayerRefusal};
use super::shard::{Connection, Shard};
use super::shard_ctx::ShardCtx;
use super::timers::TimerTask;
use crate::api::{CloseReason, ConnId};
use crate::limit::per_ip::{IpKey, IpRefusal};
use crate::net::{Addr, Stream};
use mio::{Interest, Token};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

/// Runs a protocol callback, turning a panic into a flag on the connection.
pub(super) fn invoke(
    conn: &mut Connection,
    ctx: &mut ShardCtx,
    f: impl FnOnce(&mut dyn ErasedProto, &mut ConnCore, &mut ShardCtx),
) {
    let Some(proto) = conn.proto.as_mut() else {
        return;
    };
    if !conn.core.state.is_made() {
        // Still in its TLS handshake: the protocol has not started.
        return;
    }
    ctx.shared.activity[ctx.index].running(conn.core.id);
    let core = &mut conn.core;
    // Unwind safety: the callback only reaches this connection's protocol and
    // core and the shard context through `&mut`; a panic leaves them in a
    // state the callback could also have left them in by returning, and the
    // connection is aborted at once (`panicked`), so its protocol never runs again.
    // The mark stays after the callback returns: the next connection's
    // callback overwrites it, and shard-level work clears it first
    // (`returned` in run_task, UDP and shard tasks), which keeps this
    // path, run for every read, to one store.
    if catch_unwind(AssertUnwindSafe(|| f(proto.as_mut(), core, ctx))).is_err() {
        ctx.counters.callback_panics += 1;
        if let Some(suppressed) = ctx.log_limits.callback_panic.allow() {
            tracing::error!(conn = %conn.core.id, suppressed, "protocol callback panicked; aborting the connection");
        }
        conn.core.state.callback_panicked();
    }
}

impl Shard {
    /// Applies what a callback asked for. Returns false if the connection is gone.
    pub(super) fn after_callback(&mut self, slot: usize) -> bool {
        // A callback of pause/resume may itself write or abort: re-check, bounded.
        for _ in 0..4 {
            let c = &mut self.conns[slot];
            if c.core.state.has_panicked() {
                self.finish(slot, CloseReason::CallbackPanic, true);
                return false;
            }
            if c.core.state.abort_requested() {
                let reason = c.core.reason_or(CloseReason::Aborted);
                self.finish(slot, reason, true);
                return false;
            }
            if c.core.holds == 0 && c.core.state.take_close_when_idle() {
                c.core.begin_close(CloseReason::Done, &mut self.ctx);
            }
            let high = self.ctx.settings.high_water_mark;
            // Stop reading until the output drains: a peer that sends
            // without reading is then slowed by TCP flow control.
            if c.core.unsent() >= high && c.core.state.start_backpressure() {
                self.ctx.counters.backpressure_pauses += 1;
            }
            if c.proto.is_some() && c.core.unsent() >= high && c.core.state.pause_producing() {
                self.ctx.counters.producer_pauses += 1;
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    p.pause_producing(core, ctx)
                });
                continue;
            }
            return true;
        }
        true
    }

    /// Graceful end: all output is out; send FIN, tell the protocol, then
    /// linger until the peer's EOF (or a deadline) before closing the socket.
    pub(super) fn send_fin(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.core.state.is_no_linger() && !c.core.state.is_fin_sent() {
            // The protocol said the peer sends nothing more: close now (the
            // kernel sends FIN after the data) instead of shutdown, waiting
            // for the peer's FIN, then close: two syscalls and a wake-up less.
            c.core.state.shut_output();
            let reason = c.core.reason_or(CloseReason::Done);
            self.lose(slot, &reason);
            return self.release(slot, false);
        }
        if !c.core.state.is_fin_sent() {
            c.core.stream.shutdown_write();
        }
        c.core.state.fin_sent();
        let reason = c.core.reason_or(CloseReason::Done);
        self.lose(slot, &reason);
        let c = &mut self.conns[slot];
        if c.core.state.is_peer_eof() {
            return self.release(slot, false);
        }
        c.core.state.linger();
        let linger = self.ctx.settings.close_linger;
        let task = TimerTask::Linger(c.core.id);
        c.core.set_phase_timer(&mut self.ctx.timers, linger, task);
        self.drain_lingering(slot);
    }

    /// Calls `connection_lost` once and drops the protocol.
    pub(super) fn lose(&mut self, slot: usize, reason: &CloseReason) {
        let c = &mut self.conns[slot];
        let Some(mut proto) = c.proto.take() else {
            return;
        };
        if !c.core.state.is_made() {
            // Never made (its handshake did not finish): no connection_lost;
            // an outbound one failed to connect.
            c.core.state.shut_output();
            if !c.core.state.is_outbound() {
                drop(proto);
            } else {
                let observer = c.core.take_observer();
                let error = io::Error::new(io::ErrorKind::ConnectionAborted, reason.to_string());
                self.report_connect_failure(Some(proto), observer, error);
            }
            return;
        }
        // Nothing written from here on can be sent: refuse it rather than
        // let a write after FIN turn a graceful close into a reset.
        c.core.state.shut_output();
        let core = &mut c.core;
        let ctx = &mut self.ctx;
        // Unwind safety: the protocol is already out of the table and is
        // dropped inside the closure either way; the core and context are
        // left as a returning callback could leave them, and the connection
        // is released right after.
        let r = catch_unwind(AssertUnwindSafe(move || {
            proto.connection_lost(core, ctx, reason);
            drop(proto);
        }));
        if r.is_err() {
            self.ctx.counters.callback_panics += 1;
            tracing::error!(conn = %c.core.id, "connection_lost (or the protocol's drop) panicked");
        }
        if reason == &CloseReason::IdleTimeout {
            self.ctx.counters.idle_timeouts += 1;
        }
        if let Some(o) = self.conns[slot].core.take_observer() {
            o.ended(&mut self.ctx, ConnectionEnd::Lost(reason.clone()));
        }
    }

    /// Ends a connection now: `connection_lost`, then the socket closes
    /// (with RST if `rst`).
    pub(super) fn finish(&mut self, slot: usize, reason: CloseReason, rst: bool) {
        self.lose(slot, &reason);
        self.release(slot, rst);
    }

    pub(super) fn release(&mut self, slot: usize, rst: bool) {
        self.drop_route(slot);
        let c = self.conns.remove(slot);
        self.retire(c.core, rst);
        if self.conns.is_empty() && self.conns.capacity() >= 4096 {
            // The last of many connections closed: give the table back
            // (no key is live, so none is invalidated).
            self.conns.shrink_to_fit();
        }
    }

    /// Ends a connection already out of the table (released, or one that
    /// could not finish moving here): its output, timers and tasks go,
    /// it is counted and taken out of the totals, and the socket closes
    /// when `core` drops (with RST if `rst`).
    pub(super) fn retire(&mut self, mut core: ConnCore, rst: bool) {
        core.out.clear(&mut self.ctx.pool);
        core.cancel_timers(&mut self.ctx.timers);
        let tasks = core.extras.as_mut().map(|e| std::mem::take(&mut e.tasks));
        for task in tasks.into_iter().flatten() {
            // The task dies with its connection: its future is dropped here.
            if self.ctx.tasks.remove(task) {
                self.ctx.counters.tasks_cancelled += 1;
            }
        }
        if !core.state.is_outbound() {
            self.ctx.counters.inbound_closed += 1;
        } else if !core.state.is(Phase::Connecting) {
            self.ctx.counters.outbound_closed += 1;
        }
        if rst {
            core.stream.reset_on_close();
        }
        self.ctx.counters.connections_closed += 1;
        self.release_address(&core);
        self.forget_former(&core);
        // On the ring: its operations on the socket are cancelled and the
        // ring closes it after them. Otherwise no deregister: closing the
        // socket (dropping it) takes it out of the poller, and saves an
        // epoll_ctl per connection.
        let slot = core.id.slot();
        drop(self.ring_close(slot, core.stream));
    }

    /// Takes an ending connection out of the open total and of the
    /// per-address table.
    pub(super) fn release_address(&mut self, core: &ConnCore) {
        self.uncount(core.state.is_counted());
        if core.state.is_ip_counted() {
            if let Addr::Tcp(peer) = core.peer {
                let key = IpKey::of(peer.ip());
                self.shared.per_ip.release(key, self.ctx.now);
            }
        }
    }

    /// The idle timeout new connections start with, in ticks.
    pub(super) fn default_idle_ticks(&self) -> Option<u64> {
        self.ctx
            .settings
            .idle_timeout
            .map(|t| self.ctx.timers.ticks_of(t).max(1))
    }

    /// Puts an open connection into `slot` (the slab's vacant key, already
    /// used as its poll token) and tells its protocol.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn establish(
        &mut self,
        slot: usize,
        stream: Stream,
        peer: Addr,
        local: Option<Addr>,
        proto: Box<dyn ErasedProto>,
        observer: Option<Box<dyn ConnObserver>>,
        layer: Option<Box<dyn Layer>>,
        counted: bool,
    ) -> ConnId {
        let id = ConnId::new(self.ctx.index as u16, slot as u32, self.next_generation);
        self.next_generation = self.next_generation.wrapping_add(1);
        let mut core = ConnCore::new(
            id,
            stream,
            peer,
            local,
            ConnState::inbound(),
            self.ctx.now_tick,
        );
        core.idle_ticks = self.default_idle_ticks();
        if let Some(o) = observer {
            core.extras().observer = Some(o);
        }
        if !counted {
            core.state.uncounted();
        }
        let inserted = self.conns.insert(Connection {
            core,
            proto: Some(proto),
        });
        debug_assert_eq!(inserted, slot, "slab fills its vacant key first");
        self.ctx.counters.connections_accepted += 1;
        let c = &mut self.conns[slot];
        self.ctx.arm_idle(&mut c.core);
        // Limits by address now, unless a layer may still change the
        // address (a trusted PROXY header): then when it is made.
        let final_peer = layer.as_ref().is_none_or(|l| !l.may_change_peer());
        if !c.core.state.is_outbound() && final_peer && !self.admit_address(slot) {
            return id;
        }
        match layer {
            None => {
                self.make(slot);
            }
            Some(layer) => self.conns[slot].core.start_layer(layer, &mut self.ctx),
        }
        id
    }

    /// A connection the acceptor handed over (the acceptor counts it from
    /// the published `inbound_closed`, not a shared counter).
    pub(super) fn accept(&mut self, stream: Stream, peer: Addr, listener: usize) {
        self.accept_inbound(stream, peer, listener, false);
    }

    /// Sets up an accepted connection. `counted`: it is in the shared
    /// open-connection counter, to be taken out when it goes.
    pub(super) fn accept_inbound(
        &mut self,
        mut stream: Stream,
        peer: Addr,
        listener: usize,
        counted: bool,
    ) {
        let limit = self.ctx.settings.max_connections_per_shard;
        if self.ctx.stopping || self.conns.len() >= limit {
            self.ctx.counters.connections_rejected += 1;
            self.uncount(counted);
            if !self.ctx.stopping {
                if let Some(suppressed) = self.ctx.log_limits.connection_limit.allow() {
                    tracing::warn!(
                        shard = self.ctx.index,
                        limit,
                        suppressed,
                        "per-shard connection limit reached; closing new connection"
                    );
                }
            }
            return;
        }
        let slot = self.conns.vacant_key();
        if let Err(e) = self.register_conn(slot, &mut stream) {
            tracing::debug!(error = %e, "the poller refused a new connection; dropped");
            self.ctx.counters.connections_rejected += 1;
            self.uncount(counted);
            return;
        }
        // Linux copies TCP_NODELAY from the listener (set at bind); elsewhere
        // set it per connection.
        if self.nodelay && !cfg!(target_os = "linux") {
            stream.set_nodelay();
        }
        let layer = match self.shared.listeners.layers.get(listener) {
            Some(Some(make)) => match make(&peer) {
                Ok(l) => Some(l),
                Err(LayerRefusal::UntrustedProxy) => {
                    // Closed before any protocol sees it; counted, and
                    // logged at debug only (a peer can trigger it at will).
                    tracing::debug!(%peer, "PROXY header not accepted from this peer; closed");
                    self.ctx.counters.proxy_untrusted += 1;
                    self.ctx.counters.connections_rejected += 1;
                    self.uncount(counted);
                    return;
                }
                Err(LayerRefusal::Failed(e)) => {
                    tracing::error!(error = %e, "cannot start the listener's transport layer; connection dropped");
                    self.ctx.counters.connections_rejected += 1;
                    self.uncount(counted);
                    return;
                }
            },
            _ => None,
        };
        let factory = &mut self.factories[listener];
        // Unwind safety: a factory is shard-local state the user owns; a panic
        // there drops only this connection, and the factory stays usable as
        // the user left it (no framework state is mid-update here).
        let proto = match catch_unwind(AssertUnwindSafe(|| factory.build(peer.clone()))) {
            Ok(p) => p,
            Err(_) => {
                self.ctx.counters.callback_panics += 1;
                self.ctx.counters.connections_rejected += 1;
                self.uncount(counted);
                tracing::error!(shard = self.ctx.index, %peer, "factory panicked; connection dropped");
                return;
            }
        };
        let on_ring = self.ring_takes(&stream);
        let id = self.establish(slot, stream, peer, None, proto, None, layer, counted);
        if on_ring && self.live(id) {
            self.ring_open(slot);
        }
    }

    /// Registers a connection about to take `slot` with the epoll set; one
    /// on the ring needs none (its I/O goes through the ring once it is in
    /// the table: `ring_open`).
    pub(super) fn register_conn(&mut self, slot: usize, stream: &mut Stream) -> io::Result<()> {
        if self.ring_takes(stream) {
            return Ok(());
        }
        self.poll
            .registry()
            .register(stream, Token(slot), Interest::READABLE | Interest::WRITABLE)
    }

    /// Takes a connection that never started out of the global total.
    fn uncount(&self, counted: bool) {
        if counted {
            self.shared.open_total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Opens a connection over a stream that is already connected, driven by
    /// a ready protocol: the testing kit's virtual streams take this path.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn adopt(
        &mut self,
        mut stream: Stream,
        proto: Box<dyn ErasedProto>,
        observer: Option<Box<dyn ConnObserver>>,
        layer: Option<Box<dyn Layer>>,
    ) -> io::Result<ConnId> {
        let slot = self.conns.vacant_key();
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        self.register_conn(slot, &mut stream)?;
        let on_ring = self.ring_takes(&stream);
        self.shared.open_total.fetch_add(1, Ordering::Relaxed);
        let id = self.establish(
            slot,
            stream,
            peer,
            Some(local),
            proto,
            observer,
            layer,
            true,
        );
        if on_ring && self.live(id) {
            self.ring_open(slot);
        }
        Ok(id)
    }
}

impl Shard {
    /// Applies `max_connections_per_ip` and `connection_rate_per_ip` to an
    /// accepted connection whose peer address is final (at accept, or
    /// after its PROXY header). A refused one is closed with RST (its
    /// protocol never started), counted and logged (rate-limited).
    pub(super) fn admit_address(&mut self, slot: usize) -> bool {
        self.conns[slot].core.state.address_admitted();
        let settings = &self.ctx.settings;
        let (max, rate) = (
            settings.max_connections_per_ip,
            settings.connection_rate_per_ip,
        );
        if max.is_none() && rate.is_none() {
            return true;
        }
        let Addr::Tcp(peer) = self.conns[slot].core.peer else {
            return true; // a Unix socket has no address to limit by
        };
        let key = IpKey::of(peer.ip());
        let refusal = match self.shared.per_ip.admit(key, self.ctx.now, max, rate) {
            Ok(counted) => {
                if counted {
                    self.conns[slot].core.state.ip_counted();
                }
                return true;
            }
            Err(r) => r,
        };
        let c = &mut self.ctx.counters;
        let what = match refusal {
            IpRefusal::TooMany => {
                c.refused_per_ip_connections += 1;
                "too many connections from one address"
            }
            IpRefusal::TooFast => {
                c.refused_per_ip_rate += 1;
                "one address connecting too fast"
            }
        };
        if let Some(suppressed) = self.ctx.log_limits.connection_limit.allow() {
            tracing::warn!(peer = %peer.ip(), suppressed, "{what}; connection refused");
        }
        self.finish(slot, CloseReason::Aborted, true);
        false
    }
}
