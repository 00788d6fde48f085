//! What reaches a shard other than I/O: bus envelopes (new connections,
//! closures, typed messages, deferred results, stop) and due timers.

use super::conn_core::Phase;
use super::envelope::{self, Envelope};
use super::lifecycle::invoke;
use super::shard::Shard;
use super::shard_ctx::ShardCtx;
use super::timers::{HandleKind, RepeatFn, TimerHandle, TimerTask};
use crate::api::CloseReason;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

impl Shard {
    pub(super) fn drain_inbox(&mut self) {
        let max = self.ctx.settings.max_bus_messages_per_iteration;
        let inbox = &self.shared.inboxes[self.ctx.index];
        let c = &mut self.ctx.counters;
        c.inbox_depth = inbox.capacity.depth() as u64;
        let drained = envelope::drain(&self.rx, max, &mut self.envelopes);
        self.inbox_backlog = drained.more;
        // The slots of the requests taken are free again (they run now).
        inbox.capacity.give_back(drained.requests);
        inbox.capacity.drained(self.ctx.now);
        c.bus_received += self.envelopes.len() as u64;
        let mut envs = std::mem::take(&mut self.envelopes);
        for env in envs.drain(..) {
            self.handle_envelope(env);
        }
        self.envelopes = envs;
    }

    pub(super) fn run_local(&mut self) {
        // Bounded: local messages that send more local messages wait a turn.
        let n = self.ctx.local.len();
        for _ in 0..n {
            let Some(env) = self.ctx.local.pop_front() else {
                break;
            };
            self.handle_envelope(env);
        }
    }

    pub(super) fn handle_envelope(&mut self, env: Envelope) {
        match env {
            Envelope::Accepted {
                stream,
                peer,
                listener,
            } => self.accept(stream, peer, listener),
            Envelope::Run(f) => self.run_task(f),
            Envelope::Broadcast(f) => self.run_task(move |ctx| f(ctx)),
            Envelope::ToConn { to, msg } => {
                if self.live(to) {
                    self.deliver(to, msg);
                } else {
                    // Gone, or moved to another shard (then forwarded).
                    self.redirect(to, msg);
                }
            }
            Envelope::Migrated(m) => self.arrive(*m),
            Envelope::Forget(ids) => self.forget(&ids),
            Envelope::Batch(batch) => {
                for env in batch {
                    self.handle_envelope(env);
                }
            }
            Envelope::Deferred { key, result } => {
                let Some(cb) = self.ctx.deferred.remove(&key) else {
                    return;
                };
                match cb.conn {
                    None => self.run_task(move |ctx| (cb.f)(None, None, ctx, result)),
                    Some(id) if self.live(id) && self.conns[id.slot()].proto.is_some() => {
                        let c = &mut self.conns[id.slot()];
                        invoke(c, &mut self.ctx, |p, core, ctx| {
                            (cb.f)(Some(p.as_any_mut()), Some(core), ctx, result)
                        });
                        self.after_callback(id.slot());
                    }
                    // Its connection closed meanwhile: the result is dropped.
                    Some(_) => self.ctx.counters.messages_dropped += 1,
                }
            }
            Envelope::Stop { deadline, drain } => {
                if drain.is_zero() || self.ctx.stopping {
                    self.begin_stop(deadline);
                } else {
                    // Draining: no new connections (the acceptor stops, and
                    // this shard's own listeners close now); keep serving.
                    self.close_own_listeners();
                    self.ctx
                        .timers
                        .insert_after(drain, TimerTask::BeginStop(deadline));
                }
            }
            Envelope::Wake(task) => self.ctx.tasks.woken_from_bus(task),
        }
    }

    /// Hands a typed message to a live connection's protocol.
    pub(super) fn deliver(&mut self, to: crate::api::ConnId, msg: Box<dyn std::any::Any + Send>) {
        let slot = to.slot();
        let c = &mut self.conns[slot];
        // Closing (its protocol already told `connection_lost`): dropped.
        let mut delivered = c.proto.is_some();
        invoke(c, &mut self.ctx, |p, core, ctx| {
            delivered = p.message(core, ctx, msg);
        });
        if !delivered {
            self.ctx.counters.messages_dropped += 1;
            tracing::warn!(conn = %to, "message of the wrong type for this connection's protocol dropped");
        }
        self.after_callback(slot);
    }

    pub(super) fn run_task(&mut self, f: impl FnOnce(&mut ShardCtx)) {
        // Shard-level work: no connection's callback runs now.
        self.shared.activity[self.ctx.index].returned();
        let ctx = &mut self.ctx;
        // Unwind safety: a shard task reaches only the context through `&mut`,
        // which stays as a returning task could leave it; the task itself is gone.
        if catch_unwind(AssertUnwindSafe(|| f(ctx))).is_err() {
            self.ctx.counters.callback_panics += 1;
            tracing::error!(
                shard = self.ctx.index,
                "task submitted to the shard panicked"
            );
        }
    }

    pub(super) fn begin_stop(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        // A later stop request may bring the deadline forward (stop_now).
        self.ctx.timers.insert_after(left, TimerTask::StopDeadline);
        if self.ctx.stopping {
            return;
        }
        self.ctx.stopping = true;
        self.close_own_listeners();
        self.close_all_udp();
        let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for slot in slots {
            let c = &mut self.conns[slot];
            if c.proto.is_some() && !c.core.state.is_made() && c.core.state.is(Phase::Open) {
                // Mid-handshake: nothing to finish; close it now.
                c.core.set_reason(CloseReason::ServerStopped);
                c.core
                    .begin_close(CloseReason::ServerStopped, &mut self.ctx);
                continue;
            }
            if c.proto.is_some() {
                c.core.note_reason(CloseReason::ServerStopped);
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    p.server_stopping(core, ctx)
                });
                self.after_callback(slot);
            }
        }
    }

    /// Runs every timer due now, in deadline order. One cancelled by an
    /// earlier one of the same batch is skipped.
    pub(super) fn fire_timers(&mut self) {
        let now = self.ctx.now_tick;
        let (due, earliest) = self.ctx.timers.collect_due(now);
        if let Some(deadline) = earliest {
            // How late this batch fires: from its earliest deadline to the
            // start of the timer phase (the mark just read the clock). It
            // counts a loop that overslept and a loop too busy to sleep.
            let due_at = self.ctx.timers.instant_of(deadline);
            self.record_lag(self.phase.1.saturating_duration_since(due_at));
        }
        for i in 0..due {
            if let Some(task) = self.ctx.timers.take_firing(i) {
                self.ctx.counters.timers_fired += 1;
                self.run_timer(task, now);
            }
        }
        self.ctx.timers.end_firing();
    }

    pub(super) fn run_timer(&mut self, task: TimerTask, now: u64) {
        match task {
            TimerTask::ShardOnce(f) => self.run_task(f),
            TimerTask::ConnOnce { conn, f } => {
                if self.live(conn) {
                    let c = &mut self.conns[conn.slot()];
                    invoke(c, &mut self.ctx, |p, core, ctx| {
                        f(p.as_any_mut(), core, ctx)
                    });
                    self.after_callback(conn.slot());
                }
            }
            TimerTask::Repeat { key, generation } => {
                let Some(f) = self.ctx.timers.take_repeat(key, generation, now) else {
                    return;
                };
                match f {
                    RepeatFn::Shard(mut f) => {
                        self.run_task(|ctx| f(ctx));
                        self.ctx
                            .timers
                            .restore_repeat(key, generation, RepeatFn::Shard(f));
                    }
                    RepeatFn::Conn(conn, mut f) => {
                        if !self.live(conn) || self.conns[conn.slot()].proto.is_none() {
                            // Its connection is gone: the repeating timer ends.
                            let shard = self.ctx.index as u16;
                            let kind = HandleKind::Repeat { key, generation };
                            self.ctx.timers.cancel(TimerHandle { shard, kind });
                            return;
                        }
                        let c = &mut self.conns[conn.slot()];
                        invoke(c, &mut self.ctx, |p, core, ctx| {
                            f(p.as_any_mut(), core, ctx)
                        });
                        self.ctx
                            .timers
                            .restore_repeat(key, generation, RepeatFn::Conn(conn, f));
                        self.after_callback(conn.slot());
                    }
                }
            }
            TimerTask::Idle(conn) => {
                if !self.live(conn) {
                    return;
                }
                let c = &mut self.conns[conn.slot()];
                c.core.idle_timer = None;
                let Some(idle) = c.core.idle_ticks else {
                    return;
                };
                if !c.core.state.is(Phase::Open) {
                    return;
                }
                let due = c.core.last_read_tick.saturating_add(idle);
                if now >= due {
                    c.core.begin_close(CloseReason::IdleTimeout, &mut self.ctx);
                } else {
                    self.ctx.arm_idle(&mut c.core);
                }
            }
            TimerTask::ReadDeadline(conn) => {
                if !self.live(conn) {
                    return;
                }
                let c = &mut self.conns[conn.slot()];
                if let Some(e) = c.core.extras.as_mut() {
                    e.read_deadline = None;
                }
                if c.core.state.is(Phase::Open) && c.proto.is_some() {
                    self.ctx.counters.read_timeouts += 1;
                    tracing::debug!(conn = %conn, "read deadline passed; closing");
                    c.core.begin_close(CloseReason::ReadTimeout, &mut self.ctx);
                }
            }
            TimerTask::CloseDeadline(conn) => {
                if self.live(conn) && self.conns[conn.slot()].core.state.is(Phase::Closing) {
                    let c = &mut self.conns[conn.slot()];
                    c.core.phase_timer = None;
                    self.ctx.counters.close_timeouts += 1;
                    if let Some(suppressed) = self.ctx.log_limits.close_timeout.allow() {
                        tracing::warn!(
                            conn = %conn,
                            unsent = c.core.unsent(),
                            suppressed,
                            "graceful close did not flush in time (peer not reading); aborting"
                        );
                    }
                    c.core.set_reason(CloseReason::CloseTimeout);
                    self.finish(conn.slot(), CloseReason::CloseTimeout, true);
                }
            }
            TimerTask::Linger(conn) => {
                if self.live(conn) && self.conns[conn.slot()].core.state.is(Phase::Lingering) {
                    self.release(conn.slot(), false);
                }
            }
            TimerTask::ConnectTimeout(conn) => {
                if self.live(conn) && self.conns[conn.slot()].core.state.is(Phase::Connecting) {
                    self.fail_connect(
                        conn.slot(),
                        io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                    );
                }
            }
            TimerTask::RaceNext(race, generation) => self.race_timer(race, generation, false),
            TimerTask::RaceDeadline(race, generation) => self.race_timer(race, generation, true),
            TimerTask::HandshakeDeadline(conn) => {
                if !self.live(conn) {
                    return;
                }
                let c = &mut self.conns[conn.slot()];
                c.core.phase_timer = None;
                let pending = c.core.layer.as_ref().filter(|l| !l.is_ready());
                if let Some(reason) = pending.map(|l| l.timeout_reason()) {
                    if c.core.state.is(Phase::Open) {
                        self.layer_failed(conn.slot(), reason);
                    }
                }
            }
            TimerTask::AcceptAgain(k) => self.accept_own(k),
            TimerTask::WakeTask(waker) => waker.wake(),
            TimerTask::BeginStop(deadline) => self.begin_stop(deadline),
            TimerTask::StopDeadline => {
                let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                if !slots.is_empty() {
                    tracing::warn!(
                        shard = self.ctx.index,
                        connections = slots.len(),
                        "stop deadline passed; aborting remaining connections"
                    );
                }
                for slot in slots {
                    match self.conns[slot].core.state.phase() {
                        Phase::Connecting => self.fail_connect(
                            slot,
                            io::Error::new(io::ErrorKind::Interrupted, "server stopped"),
                        ),
                        Phase::Lingering => self.release(slot, false),
                        _ => self.finish(slot, CloseReason::ServerStopped, true),
                    }
                }
            }
        }
    }
}
