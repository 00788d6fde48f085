//! The shard's input on the completion backend: bytes from the ring's
//! buffers handed to the layer or the protocol as a read would, or kept
//! in the connection's stash (its receive stopped) while it cannot take
//! them, and delivered in order, EOF last, when it can.

use super::buf_ring::Piece;
use super::shard::{departing, ring_deliverable, Stash};
use crate::reactor::conn_core::Phase;
use crate::reactor::forward::route_input;
use crate::reactor::lifecycle::invoke;
use crate::reactor::shard::Shard;

impl Shard {
    /// Bytes for `slot` in a ring buffer: to the protocol if it takes
    /// input now, else into the stash (and the receive stopped).
    pub(super) fn ring_data(&mut self, slot: usize, piece: Piece) {
        let ring = self.ring.as_mut().expect("a ring shard");
        let Some(mut bufs) = ring.driver.lend_buffers() else {
            return;
        };
        let data = bufs.filled(piece);
        self.ctx.counters.bytes_in += data.len() as u64;
        if self.live_slot(slot) {
            let c = &mut self.conns[slot];
            c.core.last_read_tick = self.ctx.now_tick;
            let ring = self.ring.as_mut().expect("a ring shard");
            if c.core.state.is(Phase::Lingering) {
                // After our FIN: input is discarded until the peer's.
            } else if ring.has_stash(slot) || !ring_deliverable(c) || departing(c) {
                // (Input for a connection about to move is the new
                // shard's to deliver: it travels with it.)
                ring.stash(slot).bytes.extend_from_slice(data);
                ring.driver.stop_recv(slot as u32);
            } else {
                self.ring_deliver(slot, data);
            }
        }
        bufs.recycle(piece);
        let ring = self.ring.as_mut().expect("a ring shard");
        ring.driver.return_buffers(bufs);
        if self.live_slot(slot) {
            self.ring_rearm(slot);
        }
    }

    /// Hands `data` to the connection's layer or protocol, as a read would.
    pub(super) fn ring_deliver(&mut self, slot: usize, data: &[u8]) -> bool {
        let c = &mut self.conns[slot];
        if c.core.layer.is_some() {
            return self.ingest_layered(slot, data);
        }
        if self.ctx.routes.is_empty() {
            invoke(c, &mut self.ctx, |p, core, ctx| {
                p.data_received(core, ctx, data)
            });
        } else {
            route_input(&mut self.conns, &mut self.ctx, slot, data);
        }
        self.after_callback(slot)
    }

    /// The peer's EOF reached the connection's turn.
    pub(super) fn ring_eof(&mut self, slot: usize) {
        let c = &self.conns[slot];
        if c.core.state.is(Phase::Lingering) {
            return self.release(slot, false);
        }
        if c.core.layer.is_some() {
            self.layered_eof(slot)
        } else {
            self.on_peer_eof(slot)
        }
    }

    /// Arms the receive again if the connection takes input (a no-op while
    /// it is armed).
    pub(super) fn ring_rearm(&mut self, slot: usize) {
        let c = &self.conns[slot];
        let lingering = c.core.state.is(Phase::Lingering);
        // A connection about to move waits with its receive stopped.
        let reads =
            lingering || (ring_deliverable(c) && !c.core.state.is_peer_eof() && !departing(c));
        let ring = self.ring.as_mut().expect("a ring shard");
        if reads && !ring.has_stash(slot) {
            ring.driver.recv(slot as u32);
        }
    }

    /// `read_conn` for a connection on the ring: what waited in its stash
    /// goes to the protocol first, then the receive is armed again.
    pub(crate) fn ring_read(&mut self, slot: usize) {
        let c = &self.conns[slot];
        if c.core.state.is(Phase::Lingering) {
            return self.ring_linger(slot);
        }
        if !ring_deliverable(c) {
            return;
        }
        if c.core
            .extras
            .as_ref()
            .is_some_and(|e| !e.layer_input.is_empty())
        {
            // Bytes read before a layer was installed go through it first.
            let pending = std::mem::take(&mut self.conns[slot].core.extras().layer_input);
            if !self.ingest_layered(slot, &pending) {
                return;
            }
        }
        // At most a read's worth per turn, as the epoll loop reads: other
        // connections get theirs, and a protocol that asks to move between
        // pieces leaves the rest to its new shard.
        let cap = self.ctx.settings.max_read_per_iteration.max(1);
        let ring = self.ring.as_mut().expect("a ring shard");
        let Stash {
            bytes,
            at: from,
            eof,
        } = ring.take_stash(slot);
        let to = bytes.len().min(from.saturating_add(cap));
        if to > from {
            let alive = self.ring_deliver(slot, &bytes[from..to]);
            if !alive || !self.live_slot(slot) {
                return;
            }
            if to < bytes.len() {
                // The rest (and the EOF after it) waits for the next turn.
                let ring = self.ring.as_mut().expect("a ring shard");
                let stash = ring.stash(slot);
                stash.bytes = bytes;
                stash.at = to;
                stash.eof = eof;
                let id = self.conns[slot].core.id;
                self.ctx.read_again.push(id);
                return;
            }
        }
        if eof && !departing(&self.conns[slot]) {
            if !ring_deliverable(&self.conns[slot]) {
                // It paused (or began closing) with the input before the
                // EOF: the EOF waits as a paused epoll connection leaves
                // it unread.
                let ring = self.ring.as_mut().expect("a ring shard");
                ring.stash(slot).eof = true;
                return;
            }
            return self.ring_eof(slot);
        }
        // (A connection that asked to move with the peer's EOF in its
        // stash hears it where it arrives: the socket's EOF stays, and
        // the receive armed there reads it again.)
        self.ring_rearm(slot);
    }

    /// After our FIN: what the stash holds is discarded; the peer's EOF
    /// (already in, or to come) ends the linger.
    pub(crate) fn ring_linger(&mut self, slot: usize) {
        let ring = self.ring.as_mut().expect("a ring shard");
        let Stash { eof, .. } = ring.take_stash(slot);
        if eof {
            return self.release(slot, false);
        }
        ring.driver.recv(slot as u32);
    }

    /// A connection that arrived on the ring with input its old shard had
    /// not delivered: without a layer, that input waits in its stash (a
    /// layer takes it as before).
    pub(crate) fn ring_adopt_input(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        if c.core.layer.is_some() {
            return;
        }
        let Some(e) = c.core.extras.as_mut() else {
            return;
        };
        let bytes = std::mem::take(&mut e.layer_input);
        if let (false, Some(ring)) = (bytes.is_empty(), self.ring.as_mut()) {
            ring.stash(slot).bytes = bytes;
        }
    }
}
