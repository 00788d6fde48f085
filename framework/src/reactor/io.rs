//! The shard's I/O: readiness events, reads into the shared buffer (capped
//! per connection per iteration for fairness), and one flush per written
//! connection per iteration.

use super::conn_core::Phase;
use super::forward::{route_input, Route};
use super::lifecycle::invoke;
use super::shard::{Readiness, Shard, FIRST_SPECIAL_TOKEN, TIMERFD_TOKEN, WAKER_TOKEN};
use crate::api::CloseReason;
use std::io::{self, Read};
use std::time::Instant;

impl Shard {
    pub(super) fn dispatch_io(&mut self) {
        self.ready.clear();
        let mut own_ready = 0u64;
        for ev in self.events.iter() {
            if ev.token().0 >= FIRST_SPECIAL_TOKEN {
                if ev.token() != WAKER_TOKEN && ev.token() != TIMERFD_TOKEN {
                    own_ready += 1;
                }
                continue;
            }
            self.ready.push((
                ev.token().0,
                Readiness {
                    readable: ev.is_readable() || ev.is_error(),
                    writable: ev.is_writable(),
                    read_closed: ev.is_read_closed(),
                },
            ));
        }
        // I/O events: connections, own listeners and UDP sockets (the
        // bus waker and the timerfd only wake the loop).
        let io_events = self.ready.len() as u64 + own_ready;
        if io_events > 0 {
            self.ctx.counters.wakeups += 1;
            self.ctx.counters.events += io_events;
        }
        if !self.ready.is_empty() {
            let mut before = self.ctx.now;
            for i in 0..self.ready.len() {
                let (slot, r) = self.ready[i];
                self.on_ready(slot, r);
                before = self.charge_callback(slot, before);
            }
            self.ctx.now = before;
        }
        // New connections after the ones already in: a burst of them does
        // not delay requests already being served.
        if own_ready > 0 {
            self.serve_own_sockets();
        }
    }

    /// Charges the time since `before` to the connection in `slot` (its
    /// share of the loop; the clock read is the one the slow-callback check
    /// makes anyway) and names it if that was slow. A connection closed in
    /// its callback is gone, and its slot not yet reused: nothing is
    /// inserted during an I/O callback. Returns the time now.
    pub(super) fn charge_callback(&mut self, slot: usize, before: Instant) -> Instant {
        let after = Instant::now();
        let spent = after.saturating_duration_since(before);
        if let Some(c) = self.conns.get_mut(slot) {
            c.core.charge(spent);
        }
        // The phase is counted slow at its end (Shard::mark); this names
        // the connection whose callback took the time.
        if spent > self.ctx.settings.slow_callback_threshold {
            if let Some(suppressed) = self.ctx.log_limits.slow_callback.allow_at(after) {
                tracing::warn!(
                    shard = self.ctx.index,
                    slot,
                    took_ms = spent.as_millis() as u64,
                    suppressed,
                    "slow callback held the shard's loop"
                );
            }
        }
        after
    }

    /// Events on the shard's own listeners and UDP sockets.
    fn serve_own_sockets(&mut self) {
        let mut listeners = Vec::new();
        let mut udp = Vec::new();
        for ev in self.events.iter() {
            let t = ev.token().0;
            if let Some(k) = self.own_listener_of(t) {
                listeners.push(k);
            } else if let Some(k) = self.udp_of(t) {
                udp.push((k, ev.is_readable() || ev.is_error(), ev.is_writable()));
            }
        }
        for k in listeners {
            self.accept_own(k);
        }
        for (k, readable, writable) in udp {
            self.udp_ready(k, readable, writable);
        }
    }

    /// Acts on one readiness event: finishes a connect, unblocks output,
    /// reads.
    pub(crate) fn on_ready(&mut self, slot: usize, r: Readiness) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.core.state.is(Phase::Connecting) {
            self.finish_connect(slot);
            match self.conns.get(slot) {
                Some(c) if !c.core.state.is(Phase::Connecting) => {}
                _ => return,
            }
        }
        let c = &mut self.conns[slot];
        if r.writable && c.core.state.writable() {
            self.ctx.mark_dirty(&mut c.core);
        }
        if r.read_closed {
            c.core.state.read_closed();
        }
        if r.readable || r.read_closed {
            self.read_conn(slot);
        }
    }

    pub(super) fn read_deferred(&mut self) {
        if self.ctx.read_again.is_empty() {
            return;
        }
        let again = std::mem::take(&mut self.ctx.read_again);
        for id in &again {
            if !self.live(*id) {
                continue;
            }
            let c = &mut self.conns[id.slot()];
            if c.core.state.take_resumed() {
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    p.reading_resumed(core, ctx)
                });
                if !self.after_callback(id.slot()) {
                    continue;
                }
            }
            self.read_conn(id.slot());
        }
    }

    /// Reads from one connection until it would block, the fairness cap is
    /// hit, or the protocol pauses or closes.
    pub(super) fn read_conn(&mut self, slot: usize) {
        #[cfg(target_os = "linux")]
        if self.on_ring(slot) {
            return self.ring_read(slot);
        }
        let cap = self.ctx.settings.max_read_per_iteration;
        let mut total = 0usize;
        loop {
            let c = &mut self.conns[slot];
            match c.core.state.phase() {
                Phase::Lingering => return self.drain_lingering(slot),
                Phase::Closing | Phase::Connecting => return,
                Phase::Open => {}
            }
            if !c.core.wants_input() || c.proto.is_none() {
                return;
            }
            if c.core
                .extras
                .as_ref()
                .is_some_and(|e| !e.layer_input.is_empty())
            {
                // Bytes read before a layer was installed go through it first.
                let pending = std::mem::take(&mut c.core.extras().layer_input);
                if !self.ingest_layered(slot, &pending) {
                    return;
                }
                continue;
            }
            match c.core.stream.read(&mut self.read_buf) {
                Ok(0) if c.core.layer.is_some() => return self.layered_eof(slot),
                Ok(0) => return self.on_peer_eof(slot),
                Ok(n) => {
                    self.ctx.counters.bytes_in += n as u64;
                    c.core.last_read_tick = self.ctx.now_tick;
                    if c.core.layer.is_some() {
                        let buf = std::mem::take(&mut self.read_buf);
                        let alive = self.ingest_layered(slot, &buf[..n]);
                        self.read_buf = buf;
                        if !alive {
                            return;
                        }
                    } else {
                        let data = &self.read_buf[..n];
                        if self.ctx.routes.is_empty() {
                            // No connection of this shard routes its input
                            // elsewhere: the protocol's callback, as directly as ever.
                            invoke(c, &mut self.ctx, |p, core, ctx| {
                                p.data_received(core, ctx, data)
                            });
                        } else {
                            route_input(&mut self.conns, &mut self.ctx, slot, data);
                        }
                        if !self.after_callback(slot) {
                            return;
                        }
                    }
                    total += n;
                    let drained =
                        n < self.read_buf.len() && !self.conns[slot].core.state.is_read_closed();
                    if drained {
                        // A short read empties the socket buffer under
                        // epoll: skip the read that would only say EAGAIN.
                        return;
                    }
                    if total >= cap {
                        self.ctx.read_again.push(self.conns[slot].core.id);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.finish(slot, CloseReason::io(&e), true),
            }
        }
    }

    /// The peer's input ended cleanly (EOF, or `close_notify` inside a
    /// layer): tell the protocol, which by default closes its side too.
    pub(super) fn on_peer_eof(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        c.core.state.peer_eof();
        c.core.note_reason(CloseReason::PeerClosed);
        if let Some(Route::Task(input)) = self.ctx.routes.get(&c.core.id) {
            // The task reads the EOF; the connection stays half-open until
            // it closes (it may still answer).
            input.borrow_mut().end();
            return;
        }
        invoke(c, &mut self.ctx, |p, core, ctx| p.eof_received(core, ctx));
        self.after_callback(slot);
    }

    /// After FIN: discard input until EOF so closing does not send RST.
    pub(super) fn drain_lingering(&mut self, slot: usize) {
        #[cfg(target_os = "linux")]
        if self.on_ring(slot) {
            return self.ring_linger(slot);
        }
        loop {
            let c = &mut self.conns[slot];
            match c.core.stream.read(&mut self.read_buf) {
                Ok(0) => return self.release(slot, false),
                Ok(n) => self.ctx.counters.bytes_in += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.release(slot, false),
            }
        }
    }

    pub(super) fn flush_dirty(&mut self) {
        // Flushing can run resume_producing, which may write more: a few rounds.
        for _ in 0..4 {
            if self.ctx.dirty.is_empty() {
                return;
            }
            let mut batch = std::mem::take(&mut self.ctx.dirty);
            for &slot in &batch {
                self.flush_conn(slot);
            }
            batch.clear();
            if self.ctx.dirty.is_empty() {
                self.ctx.dirty = batch;
                return;
            }
        }
    }

    pub(super) fn flush_conn(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if !c.core.state.take_dirty() {
            return;
        }
        if c.core.state.abort_requested() {
            let reason = c.core.reason_or(CloseReason::Aborted);
            return self.finish(slot, reason, true);
        }
        #[cfg(target_os = "linux")]
        if self.on_ring(slot) {
            return self.ring_flush(slot);
        }
        let c = &mut self.conns[slot];
        let mut handed = 0;
        if !c.core.state.is_write_blocked() && !c.core.out.is_empty() {
            match c.core.out.flush_to(&mut c.core.stream, &mut self.ctx.pool) {
                Ok((n, blocked)) => {
                    self.ctx.counters.bytes_out += n as u64;
                    c.core.state.set_write_blocked(blocked);
                    handed = n;
                }
                Err(e) => return self.finish(slot, CloseReason::io(&e), true),
            }
        }
        self.flushed(slot, handed);
    }

    /// After `handed` bytes of the connection's output reached the kernel
    /// (a write, or a completed send): the flush watch, the drain, and the
    /// FIN once everything is out.
    pub(super) fn flushed(&mut self, slot: usize, handed: usize) {
        let c = &mut self.conns[slot];
        c.core.held = u32::try_from(c.core.unsent()).unwrap_or(u32::MAX);
        let wrote_through = c.core.state.take_wrote_through();
        let c = if c.core.state.watches_flush()
            && (handed > 0 || wrote_through || c.core.out.is_empty())
        {
            c.core.state.flush_reported(!c.core.out.is_empty());
            invoke(c, &mut self.ctx, |p, core, ctx| p.output_flushed(core, ctx));
            if !self.after_callback(slot) {
                return;
            }
            &mut self.conns[slot]
        } else {
            c
        };
        // The common case (nothing waits for a drain, not closing) costs
        // two flag tests from here.
        let c = if c.core.unsent() <= self.ctx.settings.low_water_mark
            && c.core.state.waits_for_drain()
        {
            if !self.drained(slot) {
                return;
            }
            &mut self.conns[slot]
        } else {
            c
        };
        if c.core.state.is_closing_or_half_closed() && c.core.out.is_empty() {
            self.output_done(slot);
        }
    }

    /// The output drained to the low-water mark while something waited for
    /// that: reading held by backpressure, connections forwarding into this
    /// one, a paused producer. False if the connection is gone.
    fn drained(&mut self, slot: usize) -> bool {
        let c = &mut self.conns[slot];
        if c.core.state.end_backpressure() {
            self.ctx.read_again.push(c.core.id);
        }
        if c.core.state.take_drain_waiter() {
            let id = c.core.id;
            self.wake_forwarders(id);
        }
        let c = &mut self.conns[slot];
        if c.core.state.resume_producing() {
            invoke(c, &mut self.ctx, |p, core, ctx| {
                p.resume_producing(core, ctx)
            });
            return self.after_callback(slot);
        }
        true
    }

    /// Everything queued is out on a closing or half-closed connection:
    /// the layer's `close_notify`, then FIN (and, when closing, linger).
    fn output_done(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.core.layer.is_some() && self.close_layer_output(slot) {
            // close_notify goes out before FIN.
            self.conns[slot].core.state.mark_dirty();
            return self.flush_conn(slot);
        }
        let c = &mut self.conns[slot];
        if c.core.state.is_half_closed() && !c.core.state.is_fin_sent() {
            // shutdown_write: everything is out, so FIN now; keep reading.
            c.core.stream.shutdown_write();
            c.core.state.fin_sent();
        }
        if c.core.state.is(Phase::Closing) {
            self.send_fin(slot);
        }
    }
}
