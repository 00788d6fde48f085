//! Where a connection's input goes when not to `data_received`: to a task
//! reading it (`Conn::spawn_stream`), or straight into the output of
//! another connection on the same shard (`Conn::forward_to`, a proxy's
//! splice: no bus message, no copy into a `Vec`, backpressure by itself).

use super::conn::Conn;
use super::exec::input::SharedInput;
use super::lifecycle::invoke;
use super::protocol::Protocol;
use super::shard::{Connection, Shard};
use super::shard_ctx::ShardCtx;
use crate::api::ConnId;
use crate::error::ForwardError;
use slab::Slab;

/// A connection's input, routed away from its protocol's `data_received`.
pub(crate) enum Route {
    /// To the task that reads it.
    Task(SharedInput),
    /// Into this connection's output (same shard).
    Forward(ConnId),
}

/// Hands bytes read from `slot` to where its route says; called only while
/// some connection of the shard has a route (otherwise the read paths call
/// `data_received` directly).
pub(super) fn route_input(
    conns: &mut Slab<Connection>,
    ctx: &mut ShardCtx,
    slot: usize,
    data: &[u8],
) {
    let id = conns[slot].core.id;
    let to = match ctx.routes.get(&id) {
        Some(Route::Task(input)) => {
            if input.borrow_mut().push(data) {
                conns[slot].core.state.pause_reading();
            }
            return;
        }
        Some(&Route::Forward(to)) => Some(to),
        None => None,
    };
    if !to.is_some_and(|to| forward(conns, ctx, slot, to, data)) {
        // No route, or the target is gone: the protocol decides.
        invoke(&mut conns[slot], ctx, |p, core, ctx| {
            p.data_received(core, ctx, data)
        });
    }
}

/// Queues `data` (read from `slot`) on `to`. False if `to` is gone or no
/// longer takes output. The reader stops reading while `to`'s output is
/// above the high-water mark, and reads again once it drains to the low one.
fn forward(
    conns: &mut Slab<Connection>,
    ctx: &mut ShardCtx,
    slot: usize,
    to: ConnId,
    data: &[u8],
) -> bool {
    let Some(target) = conns.get_mut(to.slot()) else {
        return false;
    };
    if target.core.id != to || target.proto.is_none() || !target.core.accepts_output() {
        return false;
    }
    // A refusal (overflow, a layer's error) marks the target for the flush
    // that ends it.
    target.core.write(ctx, data);
    ctx.counters.bytes_forwarded += data.len() as u64;
    if target.core.unsent() >= ctx.settings.high_water_mark {
        target.core.state.wait_for_drain();
        let from = conns[slot].core.id;
        conns[slot].core.state.block_forwarding();
        ctx.drain_waiters.push((to, from));
    }
    true
}

impl Shard {
    /// `target`'s output drained (or it is gone): connections forwarding
    /// into it read again.
    pub(super) fn wake_forwarders(&mut self, target: ConnId) {
        let mut i = 0;
        while i < self.ctx.drain_waiters.len() {
            let (t, from) = self.ctx.drain_waiters[i];
            if t != target {
                i += 1;
                continue;
            }
            self.ctx.drain_waiters.swap_remove(i);
            if self.live(from) {
                let c = &mut self.conns[from.slot()];
                if c.core.state.unblock_forwarding() {
                    self.ctx.read_again.push(from);
                }
            }
        }
    }

    /// The connection is going: its route goes with it (a reading task
    /// is told why), and so do the waits on or of it.
    pub(super) fn drop_route(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        let id = c.core.id;
        if c.core.state.take_drain_waiter() {
            self.wake_forwarders(id);
        }
        if self.ctx.routes.is_empty() {
            return;
        }
        match self.ctx.routes.remove(&id) {
            Some(Route::Task(input)) => {
                let reason = self.conns[slot].core.reason_or(crate::CloseReason::Done);
                input.borrow_mut().lose(&reason);
            }
            Some(Route::Forward(_)) => self.ctx.drain_waiters.retain(|&(_, f)| f != id),
            None => {}
        }
    }
}

impl<P: Protocol> Conn<'_, P> {
    /// From now on the bytes this connection reads go straight into the
    /// output of `target`, another connection on the same shard, as if
    /// `target` had written them: no `data_received`, no bus message, no
    /// copy into a `Vec`. This connection stops reading while `target`'s
    /// output is above the high-water mark and resumes when it drains, so
    /// a slow reader on one side slows the sender on the other through TCP
    /// flow control. EOF still comes to `eof_received` (pass it on with a
    /// message: `shutdown_write` there keeps the other direction open).
    /// If `target` closes, input goes to `data_received` again.
    ///
    /// Bytes reach `target` in the order they are read; anything sent to
    /// it by message travels separately, so once forwarding starts send
    /// the stream's bytes only this way.
    ///
    /// ```
    /// use shardloop::{Conn, ConnId, Protocol};
    /// /// One end of a same-shard proxy: told its partner's id, it splices.
    /// struct End;
    /// impl Protocol for End {
    ///     type Message = ConnId;
    ///     fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {
    ///         // Only before the partner is known, or after it is gone.
    ///     }
    ///     fn message(&mut self, conn: &mut Conn<'_, Self>, partner: ConnId) {
    ///         if conn.forward_to(partner).is_err() {
    ///             conn.close();
    ///         }
    ///     }
    /// }
    /// ```
    pub fn forward_to(&mut self, target: ConnId) -> Result<(), ForwardError> {
        let me = self.core.id;
        if target == me {
            return Err(ForwardError::ToItself);
        }
        if target.shard() != self.ctx.index {
            return Err(ForwardError::OtherShard);
        }
        match self.ctx.routes.get(&me) {
            Some(Route::Task(_)) => Err(ForwardError::ReadByTask),
            _ => {
                self.ctx.routes.insert(me, Route::Forward(target));
                Ok(())
            }
        }
    }

    /// Input goes to `data_received` again.
    pub fn stop_forwarding(&mut self) {
        let me = self.core.id;
        if let Some(Route::Forward(_)) = self.ctx.routes.get(&me) {
            self.ctx.routes.remove(&me);
            self.ctx.drain_waiters.retain(|&(_, f)| f != me);
            if self.core.state.unblock_forwarding() {
                self.ctx.read_again.push(me);
            }
        }
    }

    /// From now on this connection's input (and its EOF) goes to the
    /// returned buffer, for a task to read, instead of `data_received`.
    /// Hands `data` (bytes this protocol read before its task took the
    /// input over) to the task reading the connection, first in line.
    pub(crate) fn push_task_input(&mut self, data: &[u8]) {
        let input = self.route_input_to_task();
        if input.borrow_mut().push(data) {
            self.pause_reading();
        }
    }

    pub(crate) fn route_input_to_task(&mut self) -> SharedInput {
        let me = self.core.id;
        if let Some(Route::Task(input)) = self.ctx.routes.get(&me) {
            return input.clone();
        }
        self.stop_forwarding();
        let input = SharedInput::default();
        self.ctx.routes.insert(me, Route::Task(input.clone()));
        input
    }
}
