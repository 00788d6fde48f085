//! The move itself: a connection leaves one shard (`depart`) and joins
//! another (`arrive`); messages to its former ids are forwarded.

use super::{check_movable, Migrant, Mobility};
use crate::api::{CloseReason, ConnId};
use crate::reactor::conn_core::ConnCore;
use crate::reactor::envelope::Envelope;
use crate::reactor::lifecycle::invoke;
use crate::reactor::shard::{Connection, Shard};
use crate::reactor::timers::TimerTask;
use mio::event::Source;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

impl Shard {
    /// Moves the connections whose protocols asked to move this iteration
    /// (after their callbacks returned, before the flush).
    pub(crate) fn depart_pending(&mut self) {
        if self.ctx.moves.departures.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.ctx.moves.departures) {
            if !self.live(id) {
                continue;
            }
            let target = self.conns[id.slot()]
                .core
                .extras
                .as_mut()
                .and_then(|e| e.mobility.as_mut())
                .and_then(|m| m.target.take());
            if let Some(target) = target {
                if !self.depart(id.slot(), usize::from(target)) {
                    // Refused, or waiting for the ring: a ring connection
                    // whose move was given up takes up its I/O again.
                    #[cfg(target_os = "linux")]
                    self.ring_resume(id.slot());
                }
            }
        }
    }

    /// Takes the connection in `slot` out of this shard and sends it to
    /// `target`. Returns false (and keeps it) if it cannot move now.
    pub(crate) fn depart(&mut self, slot: usize, target: usize) -> bool {
        let c = &mut self.conns[slot];
        let dead = self.shared.dead[target].load(std::sync::atomic::Ordering::Acquire);
        let has_packer = c.core.extras.as_ref().is_some_and(|e| e.mobility.is_some());
        if dead || !has_packer || c.proto.is_none() || check_movable(&c.core, &self.ctx).is_err() {
            self.ctx.counters.migrations_refused += 1;
            return false;
        }
        if !self.leave_poller(slot, target) {
            return false;
        }
        // Out of the table: from here on nothing of this shard reaches it.
        let Connection { mut core, proto } = self.conns.remove(slot);
        let proto = proto.expect("checked: the protocol is alive");
        let old = core.id;
        let mobility = core
            .extras
            .as_mut()
            .and_then(|e| e.mobility.take())
            .expect("checked: it has a packer");
        let ctx = &mut self.ctx;
        // Unwind safety: the protocol is consumed either way; a panic leaves
        // the core as a returning `pack` could, and the connection is then
        // closed with RST (there is no protocol left to tell).
        let packed = catch_unwind(AssertUnwindSafe(|| (mobility.pack)(proto, &mut core, ctx)));
        let Ok(unpack) = packed else {
            ctx.counters.callback_panics += 1;
            tracing::error!(conn = %old, "Migrate::pack panicked; connection reset");
            // Its former ids are forgotten where they were forwarded.
            core.extras().mobility = Some(mobility);
            self.retire(core, true);
            return false;
        };
        let migrant = self.pack_core(core, *mobility, unpack);
        // Messages to any id it had here, or forwarded through here, follow it.
        self.ctx.moves.forwards.insert(old, target as u16);
        for former in &migrant.former {
            if self.ctx.moves.aliases.remove(former).is_some() {
                self.ctx.moves.forwards.insert(*former, target as u16);
            }
        }
        self.ctx.counters.migrated_out += 1;
        self.ctx.counters.bus_sent += 1;
        if let Err(Envelope::Migrated(back)) =
            self.shared.inboxes[target].send_or_return(Envelope::Migrated(Box::new(migrant)))
        {
            // The target exited meanwhile: the connection arrives back
            // here (counted in by `arrive`, as it was counted out above).
            self.arrive(*back);
        }
        true
    }

    /// The core's parts that travel, its timers cancelled here.
    fn pack_core(
        &mut self,
        mut core: ConnCore,
        mobility: Mobility,
        unpack: super::Unpack,
    ) -> Migrant {
        let timers = &mut self.ctx.timers;
        let now_tick = self.ctx.now_tick;
        let read_deadline = core
            .extras
            .as_ref()
            .and_then(|e| e.read_deadline)
            .and_then(|id| timers.wheel.deadline(id))
            .map(|tick| {
                timers
                    .instant_of(tick)
                    .saturating_duration_since(self.ctx.now)
            });
        core.cancel_timers(timers);
        let idle = core
            .idle_ticks
            .map(|t| (t, now_tick.saturating_sub(core.last_read_tick)));
        let (layer_input, max_in_flight) = core
            .extras
            .take()
            .map(|e| (e.layer_input, e.max_in_flight))
            .unwrap_or_default();
        let mut former = mobility.former;
        former.push(core.id);
        let local = core.local_addr().clone();
        let mut state = core.state;
        state.moved();
        Migrant {
            local,
            stream: core.stream,
            peer: core.peer,
            out: core.out,
            state,
            held: core.held,
            busy_ns: core.busy_ns,
            idle,
            read_deadline,
            layer: core.layer,
            layer_input,
            max_in_flight,
            pack: mobility.pack,
            rebalance: mobility.rebalance,
            former,
            unpack,
        }
    }

    /// Takes a connection that moved here: a slot, the poller, its
    /// deadlines, its protocol unpacked; then it reads and flushes as if it
    /// had always been here.
    pub(crate) fn arrive(&mut self, m: Migrant) {
        let Migrant {
            mut stream,
            peer,
            local,
            out,
            state,
            held,
            busy_ns,
            idle,
            read_deadline,
            layer,
            layer_input,
            max_in_flight,
            pack,
            rebalance,
            former,
            unpack,
        } = m;
        let slot = self.conns.vacant_key();
        let on_ring = self.ring_takes(&stream);
        let registered = self.register_conn(slot, &mut stream);
        let id = ConnId::new(self.ctx.index as u16, slot as u32, self.next_generation);
        self.next_generation = self.next_generation.wrapping_add(1);
        let mut core = ConnCore::new(id, stream, peer, Some(local), state, self.ctx.now_tick);
        core.out = out;
        core.held = held;
        core.busy_ns = busy_ns;
        core.layer = layer;
        if let Some((ticks, ago)) = idle {
            core.idle_ticks = Some(ticks);
            core.last_read_tick = self.ctx.now_tick.saturating_sub(ago);
        }
        let e = core.extras();
        e.layer_input = layer_input;
        e.max_in_flight = max_in_flight;
        e.mobility = Some(Box::new(Mobility {
            pack,
            rebalance,
            target: None,
            former,
            arrived: Some(self.ctx.now),
        }));
        self.ctx.counters.migrated_in += 1;
        if let Err(e) = registered {
            tracing::warn!(conn = %id, error = %e, "the poller refused a migrated connection; reset");
            return self.retire(core, true);
        }
        let ctx = &mut self.ctx;
        // Unwind safety: as for any callback: the connection is reset.
        let Ok(proto) = catch_unwind(AssertUnwindSafe(|| unpack(&mut core, ctx))) else {
            ctx.counters.callback_panics += 1;
            tracing::error!(conn = %id, "Migrate::unpack panicked; connection reset");
            return self.retire(core, true);
        };
        for former in &core.extras().mobility.as_ref().expect("set above").former {
            self.ctx.moves.aliases.insert(*former, id);
        }
        let inserted = self.conns.insert(Connection {
            core,
            proto: Some(proto),
        });
        debug_assert_eq!(inserted, slot);
        if on_ring {
            self.ring_open(slot);
            #[cfg(target_os = "linux")]
            self.ring_adopt_input(slot);
        }
        self.rearm(slot, read_deadline);
        let c = &mut self.conns[slot];
        if self.ctx.stopping {
            c.core.note_reason(CloseReason::ServerStopped);
            invoke(c, &mut self.ctx, |p, core, ctx| {
                p.server_stopping(core, ctx)
            });
        }
        if !self.after_callback(slot) {
            return;
        }
        let c = &mut self.conns[slot];
        if !c.core.out.is_empty() {
            self.ctx.mark_dirty(&mut c.core);
        }
        // Whatever arrived meanwhile, or a layer holds decoded, is read now.
        self.ctx.read_again.push(id);
    }

    /// Takes a departing connection off this shard's poller: out of epoll,
    /// or off the ring once nothing of it is in the kernel's hands (until
    /// then the move waits, tried again each iteration). False if it
    /// cannot leave now (a refusal is counted; a wait is not).
    fn leave_poller(&mut self, slot: usize, target: usize) -> bool {
        #[cfg(target_os = "linux")]
        if self.on_ring(slot) {
            return match self.ring_quiesce(slot) {
                crate::reactor::uring::Quiet::Now => true,
                crate::reactor::uring::Quiet::NotYet => {
                    let c = &mut self.conns[slot];
                    if let Some(m) = c.core.extras.as_mut().and_then(|e| e.mobility.as_mut()) {
                        m.target = Some(target as u16);
                    }
                    self.ctx.moves.departures.push(c.core.id);
                    false
                }
            };
        }
        let _ = target;
        let c = &mut self.conns[slot];
        if c.core.stream.deregister(self.poll.registry()).is_err() {
            self.ctx.counters.migrations_refused += 1;
            return false;
        }
        true
    }

    /// Sets the moved connection's deadlines on this shard's wheel.
    fn rearm(&mut self, slot: usize, read_deadline: Option<Duration>) {
        let core = &mut self.conns[slot].core;
        self.ctx.arm_idle(core);
        if let Some(left) = read_deadline {
            let task = TimerTask::ReadDeadline(core.id);
            core.extras().read_deadline = Some(self.ctx.timers.insert_after(left, task));
        }
    }

    /// A message for `to`, which is not in the table: delivered to the id
    /// it has now if it moved here, sent on if it moved on, else dropped.
    pub(crate) fn redirect(&mut self, to: ConnId, msg: Box<dyn Any + Send>) {
        if let Some(&now) = self.ctx.moves.aliases.get(&to) {
            if self.live(now) {
                return self.deliver(now, msg);
            }
        }
        match self.ctx.moves.forwards.get(&to) {
            Some(&shard) => {
                let env = Envelope::ToConn { to, msg };
                if self.ctx.forward_request(usize::from(shard), env).is_err() {
                    self.ctx.counters.messages_dropped += 1;
                }
            }
            None => self.ctx.counters.messages_dropped += 1,
        }
    }

    /// Its former shards stop forwarding for a connection that ended.
    pub(crate) fn forget_former(&mut self, core: &ConnCore) {
        let Some(m) = core.extras.as_ref().and_then(|e| e.mobility.as_ref()) else {
            return;
        };
        if m.former.is_empty() {
            return;
        }
        let mut shards: Vec<usize> = m.former.iter().map(|id| id.shard()).collect();
        shards.sort_unstable();
        shards.dedup();
        for id in &m.former {
            self.ctx.moves.aliases.remove(id);
        }
        for shard in shards {
            self.ctx
                .route_control(shard, Envelope::Forget(m.former.clone()));
        }
    }

    /// Forwarding for these ids ends (their connection closed).
    pub(crate) fn forget(&mut self, ids: &[ConnId]) {
        for id in ids {
            self.ctx.moves.forwards.remove(id);
        }
    }
}
