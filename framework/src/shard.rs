//! One reactor shard: a thread with its own `mio::Poll`, connection table,
//! timer wheel and inbox. Everything a connection owns lives here and is
//! touched only by this thread.
//!
//! One loop iteration: poll (timeout = next timer) → dispatch I/O events →
//! reads deferred by the fairness cap → drain the inbox in one batch → local
//! messages → due timers → flush every connection written to (one
//! `write`/`writev` each) → publish stats.

use crate::bus::{self, Envelope};
use crate::conn::{ConnCore, Phase};
use crate::conn_id::ConnId;
use crate::context::ShardCtx;
use crate::protocol::{CloseReason, ErasedFactory, ErasedProto};
use crate::server::{Handle, ServerInner};
use crate::timer_wheel::TimerId;
use crate::timers::{RepeatFn, TimerTask};
use crate::transport::{Addr, Stream};
use crossbeam_channel::Receiver;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);
/// The shard's timerfd, used when the timer tick is finer than epoll's 1 ms.
const TIMERFD_TOKEN: Token = Token(usize::MAX - 1);

/// Wakes the shard at a sub-millisecond deadline: `epoll_wait` only takes
/// milliseconds (mio rounds up), so a fine timer tick would otherwise fire
/// up to a millisecond late.
#[cfg(target_os = "linux")]
struct PreciseWake {
    fd: timerfd::TimerFd,
    armed_for: Option<Instant>,
}

#[cfg(target_os = "linux")]
impl PreciseWake {
    fn new(registry: &mio::Registry) -> io::Result<Self> {
        use std::os::fd::AsRawFd;
        let fd = timerfd::TimerFd::new_custom(timerfd::ClockId::Monotonic, true, true)?;
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            TIMERFD_TOKEN,
            Interest::READABLE,
        )?;
        Ok(PreciseWake {
            fd,
            armed_for: None,
        })
    }

    /// Arms the timer for `at` (once per distinct deadline: one syscall).
    fn arm(&mut self, at: Instant, now: Instant) {
        if self.armed_for == Some(at) {
            return;
        }
        let left = at
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        self.fd.set_state(
            timerfd::TimerState::Oneshot(left),
            timerfd::SetTimeFlags::Default,
        );
        self.armed_for = Some(at);
    }
}

struct Connection {
    core: ConnCore,
    /// `None` once `connection_lost` ran (lingering after FIN).
    proto: Option<Box<dyn ErasedProto>>,
}

/// What a shard thread needs to start.
pub(crate) struct ShardInit {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    pub(crate) rx: Receiver<Envelope>,
    pub(crate) handle: Handle,
    pub(crate) read_buffer_size: usize,
    pub(crate) events_capacity: usize,
    pub(crate) nodelay: bool,
    pub(crate) timer_tick: Duration,
    pub(crate) pool: Option<crate::worker::PoolSender>,
}

pub(crate) struct Shard {
    poll: Poll,
    events: Events,
    ready: Vec<(usize, Readiness)>,
    rx: Receiver<Envelope>,
    inbox_backlog: bool,
    conns: Slab<Connection>,
    factories: Vec<Box<dyn ErasedFactory>>,
    read_buf: Box<[u8]>,
    envelopes: Vec<Envelope>,
    fired: Vec<(TimerId, TimerTask)>,
    next_generation: u32,
    nodelay: bool,
    #[cfg(target_os = "linux")]
    precise: Option<PreciseWake>,
    inner: Arc<ServerInner>,
    ctx: ShardCtx,
}

#[derive(Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    read_closed: bool,
}

/// Runs a protocol callback, turning a panic into a flag on the connection.
fn invoke(
    conn: &mut Connection,
    ctx: &mut ShardCtx,
    f: impl FnOnce(&mut dyn ErasedProto, &mut ConnCore, &mut ShardCtx),
) {
    let Some(proto) = conn.proto.as_mut() else {
        return;
    };
    let core = &mut conn.core;
    if catch_unwind(AssertUnwindSafe(|| f(proto.as_mut(), core, ctx))).is_err() {
        ctx.counters.callback_panics += 1;
        tracing::error!(conn = %conn.core.id, "protocol callback panicked; aborting the connection");
        conn.core.panicked = true;
    }
}

impl Shard {
    pub(crate) fn new(init: ShardInit) -> Self {
        let inner = init.handle.inner.clone();
        let factories = inner
            .factory_makers
            .iter()
            .map(|make| make(init.index))
            .collect();
        let settings = inner.settings.load_full();
        let pool = init.pool;
        #[cfg(target_os = "linux")]
        let precise = if init.timer_tick < Duration::from_millis(1) {
            match PreciseWake::new(init.poll.registry()) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "no timerfd: sub-millisecond timers fire on 1 ms boundaries");
                    None
                }
            }
        } else {
            None
        };
        Shard {
            poll: init.poll,
            events: Events::with_capacity(init.events_capacity),
            ready: Vec::with_capacity(init.events_capacity),
            rx: init.rx,
            inbox_backlog: false,
            conns: Slab::new(),
            factories,
            read_buf: vec![0u8; init.read_buffer_size].into_boxed_slice(),
            envelopes: Vec::new(),
            fired: Vec::new(),
            next_generation: 0,
            nodelay: init.nodelay,
            #[cfg(target_os = "linux")]
            precise,
            ctx: {
                let mut ctx = ShardCtx::new(init.index, init.handle, settings, init.timer_tick);
                ctx.workers = pool;
                ctx
            },
            inner,
        }
    }

    pub(crate) fn run(mut self) {
        let index = self.ctx.index;
        tracing::debug!(shard = index, "shard started");
        loop {
            self.refresh_settings();
            self.ctx.flush_outbox();
            let timeout = self.poll_timeout();
            let inbox = &self.inner.inboxes[index];
            let timeout = if timeout != Some(Duration::ZERO) && !inbox.park(&self.rx) {
                Some(Duration::ZERO)
            } else {
                timeout
            };
            let polled = self.poll.poll(&mut self.events, timeout);
            inbox.unpark();
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(shard = index, error = %e, "poll failed; shard exits");
                    break;
                }
            }
            self.ctx.update_clock();
            self.ctx.counters.loop_iterations += 1;

            self.dispatch_io();
            self.read_deferred();
            self.drain_inbox();
            self.run_local();
            self.fire_timers();
            self.run_local();
            self.start_connects();
            self.flush_dirty();
            self.publish();

            if self.ctx.stopping && self.conns.is_empty() {
                break;
            }
        }
        self.ctx.flush_outbox();
        self.publish();
        tracing::debug!(shard = index, "shard stopped");
    }

    fn refresh_settings(&mut self) {
        let current = self.inner.settings.load();
        if !Arc::ptr_eq(&current, &self.ctx.settings) {
            self.ctx.settings = arc_swap::Guard::into_inner(current);
        }
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        if self.inbox_backlog
            || !self.ctx.read_again.is_empty()
            || !self.ctx.local.is_empty()
            || !self.ctx.dirty.is_empty()
            || !self.ctx.pending_connects.is_empty()
        {
            return Some(Duration::ZERO);
        }
        let tick = self.ctx.timers.wheel.next_deadline()?;
        let at = self.ctx.timers.instant_of(tick);
        let now = Instant::now();
        let left = at.saturating_duration_since(now);
        #[cfg(target_os = "linux")]
        if let Some(p) = self.precise.as_mut().filter(|_| !left.is_zero()) {
            p.arm(at, now);
            // The timerfd wakes us; the poll timeout is only a backstop.
            return Some(left + Duration::from_millis(1));
        }
        Some(left)
    }

    fn publish(&mut self) {
        self.ctx.counters.connections_open = self.conns.len() as u64;
        self.inner.stats.shards[self.ctx.index].publish(&self.ctx.counters);
    }

    // ---- I/O ---------------------------------------------------------------

    fn dispatch_io(&mut self) {
        self.ready.clear();
        for ev in self.events.iter() {
            if ev.token() == WAKER_TOKEN || ev.token() == TIMERFD_TOKEN {
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
        if self.ready.is_empty() {
            return;
        }
        self.ctx.counters.wakeups += 1;
        self.ctx.counters.events += self.ready.len() as u64;
        let threshold = self.ctx.settings.slow_callback_threshold;
        let mut before = self.ctx.now;
        for i in 0..self.ready.len() {
            let (slot, r) = self.ready[i];
            let Some(c) = self.conns.get_mut(slot) else {
                continue;
            };
            if c.core.phase == Phase::Connecting {
                self.finish_connect(slot);
                match self.conns.get(slot) {
                    Some(c) if c.core.phase != Phase::Connecting => {}
                    _ => continue,
                }
            }
            let c = &mut self.conns[slot];
            if r.writable && c.core.write_blocked {
                c.core.write_blocked = false;
                self.ctx.mark_dirty(&mut c.core);
            }
            if r.read_closed {
                c.core.read_closed = true;
            }
            if r.readable || r.read_closed {
                self.read_conn(slot);
            }
            let after = Instant::now();
            if after.duration_since(before) > threshold {
                self.ctx.counters.slow_callbacks += 1;
                tracing::warn!(
                    shard = self.ctx.index,
                    slot,
                    took_ms = after.duration_since(before).as_millis() as u64,
                    "slow callback held the shard's loop"
                );
            }
            before = after;
        }
        self.ctx.now = before;
    }

    fn read_deferred(&mut self) {
        if self.ctx.read_again.is_empty() {
            return;
        }
        let again = std::mem::take(&mut self.ctx.read_again);
        for id in &again {
            if !self.live(*id) {
                continue;
            }
            let c = &mut self.conns[id.slot()];
            if c.core.resumed {
                c.core.resumed = false;
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

    fn live(&self, id: ConnId) -> bool {
        self.conns.get(id.slot()).is_some_and(|c| c.core.id == id)
    }

    /// Reads from one connection until it would block, the fairness cap is
    /// hit, or the protocol pauses or closes.
    fn read_conn(&mut self, slot: usize) {
        let cap = self.ctx.settings.max_read_per_iteration;
        let mut total = 0usize;
        loop {
            let c = &mut self.conns[slot];
            match c.core.phase {
                Phase::Lingering => return self.drain_lingering(slot),
                Phase::Closing | Phase::Connecting => return,
                Phase::Open => {}
            }
            if c.core.read_paused || c.core.peer_eof || c.proto.is_none() {
                return;
            }
            match c.core.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    c.core.peer_eof = true;
                    c.core.close_reason.get_or_insert(CloseReason::PeerClosed);
                    invoke(c, &mut self.ctx, |p, core, ctx| p.eof_received(core, ctx));
                    self.after_callback(slot);
                    return;
                }
                Ok(n) => {
                    self.ctx.counters.bytes_in += n as u64;
                    c.core.last_read_tick = self.ctx.now_tick;
                    let data = &self.read_buf[..n];
                    invoke(c, &mut self.ctx, |p, core, ctx| {
                        p.data_received(core, ctx, data)
                    });
                    if !self.after_callback(slot) {
                        return;
                    }
                    total += n;
                    let drained = n < self.read_buf.len() && !self.conns[slot].core.read_closed;
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

    /// After FIN: discard input until EOF so closing does not send RST.
    fn drain_lingering(&mut self, slot: usize) {
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

    /// Applies what a callback asked for. Returns false if the connection is gone.
    fn after_callback(&mut self, slot: usize) -> bool {
        // A callback of pause/resume may itself write or abort: re-check, bounded.
        for _ in 0..4 {
            let c = &mut self.conns[slot];
            if c.core.panicked {
                self.finish(slot, CloseReason::CallbackPanic, true);
                return false;
            }
            if c.core.abort_requested {
                let reason = c.core.close_reason.clone().unwrap_or(CloseReason::Aborted);
                self.finish(slot, reason, true);
                return false;
            }
            if c.proto.is_some()
                && !c.core.producing_paused
                && c.core.out.len() >= self.ctx.settings.high_water_mark
            {
                c.core.producing_paused = true;
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

    fn flush_dirty(&mut self) {
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

    fn flush_conn(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if !c.core.dirty {
            return;
        }
        c.core.dirty = false;
        if c.core.abort_requested {
            let reason = c.core.close_reason.clone().unwrap_or(CloseReason::Aborted);
            return self.finish(slot, reason, true);
        }
        if !c.core.write_blocked && !c.core.out.is_empty() {
            match c.core.out.flush_to(&mut c.core.stream, &mut self.ctx.pool) {
                Ok((n, blocked)) => {
                    self.ctx.counters.bytes_out += n as u64;
                    c.core.write_blocked = blocked;
                }
                Err(e) => return self.finish(slot, CloseReason::io(&e), true),
            }
        }
        if c.core.producing_paused && c.core.out.len() <= self.ctx.settings.low_water_mark {
            c.core.producing_paused = false;
            invoke(c, &mut self.ctx, |p, core, ctx| {
                p.resume_producing(core, ctx)
            });
            if !self.after_callback(slot) {
                return;
            }
        }
        let c = &mut self.conns[slot];
        if c.core.phase == Phase::Closing && c.core.out.is_empty() {
            self.send_fin(slot);
        }
    }

    /// Graceful end: all output is out; send FIN, tell the protocol, then
    /// linger until the peer's EOF (or a deadline) before closing the socket.
    fn send_fin(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        c.core.stream.shutdown_write();
        let reason = c.core.close_reason.clone().unwrap_or(CloseReason::Done);
        self.lose(slot, &reason);
        let c = &mut self.conns[slot];
        if c.core.peer_eof {
            return self.release(slot, false);
        }
        c.core.phase = Phase::Lingering;
        let linger = self.ctx.settings.close_linger;
        let id = c.core.id;
        self.ctx.timers.once(linger, TimerTask::Linger(id));
        self.drain_lingering(slot);
    }

    /// Calls `connection_lost` once and drops the protocol.
    fn lose(&mut self, slot: usize, reason: &CloseReason) {
        let c = &mut self.conns[slot];
        let Some(mut proto) = c.proto.take() else {
            return;
        };
        if let Stream::Fake(f) = &c.core.stream {
            f.record_lost(reason);
        }
        let core = &mut c.core;
        let ctx = &mut self.ctx;
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
        if let Some(o) = self.conns[slot].core.observer.take() {
            o.ended(
                &mut self.ctx,
                crate::conn::ConnectionEnd::Lost(reason.clone()),
            );
        }
    }

    /// Ends a connection now: `connection_lost`, then the socket closes
    /// (with RST if `rst`).
    fn finish(&mut self, slot: usize, reason: CloseReason, rst: bool) {
        self.lose(slot, &reason);
        self.release(slot, rst);
    }

    fn release(&mut self, slot: usize, rst: bool) {
        let mut c = self.conns.remove(slot);
        c.core.out.clear(&mut self.ctx.pool);
        if rst {
            c.core.stream.reset_on_close();
        }
        let _ = self.poll.registry().deregister(&mut c.core.stream);
        self.ctx.counters.connections_closed += 1;
        self.inner.open_total.fetch_sub(1, Ordering::Relaxed);
    }

    // ---- driven by the testing kit ------------------------------------------

    /// A shard with no thread, driven by hand with a manual clock.
    pub(crate) fn detached(
        settings: crate::settings::Settings,
        tick: Duration,
    ) -> crate::error::Result<Shard> {
        let (inner, poll, rx) = ServerInner::detached(settings)?;
        let mut shard = Shard::new(ShardInit {
            index: 0,
            poll,
            rx,
            handle: Handle { inner },
            read_buffer_size: 64 * 1024,
            events_capacity: 16,
            nodelay: true,
            timer_tick: tick,
            pool: None,
        });
        shard.ctx.inline_deferred = true;
        let origin = shard.ctx.timers.origin();
        shard.ctx.timers.set_manual_clock(origin);
        shard.ctx.update_clock();
        Ok(shard)
    }

    pub(crate) fn ctx_mut(&mut self) -> &mut ShardCtx {
        &mut self.ctx
    }

    /// Opens a connection over `stream` driven by `proto`, as an accept would.
    pub(crate) fn open_with(&mut self, stream: Stream, proto: Box<dyn ErasedProto>) -> ConnId {
        let slot = self.conns.vacant_key();
        let peer = stream.peer_addr().unwrap_or(Addr::Unix(None));
        let local = stream.local_addr().unwrap_or(Addr::Unix(None));
        self.inner.open_total.fetch_add(1, Ordering::Relaxed);
        let id = self.establish(slot, stream, peer, local, proto);
        self.turn();
        id
    }

    /// Delivers `data` as if read from the socket (honouring paused reading:
    /// the caller holds it back then).
    pub(crate) fn deliver(&mut self, id: ConnId, data: &[u8]) {
        if self.live(id) {
            let slot = id.slot();
            let c = &mut self.conns[slot];
            if c.core.phase == Phase::Open && c.proto.is_some() {
                self.ctx.counters.bytes_in += data.len() as u64;
                c.core.last_read_tick = self.ctx.now_tick;
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    p.data_received(core, ctx, data)
                });
                self.after_callback(slot);
            }
        }
        self.turn();
    }

    /// Lets the connection read again (after the fake peer sent EOF, or
    /// after output room appeared).
    pub(crate) fn poke(&mut self, id: ConnId, readable: bool, writable: bool) {
        if self.live(id) {
            let slot = id.slot();
            let c = &mut self.conns[slot];
            if writable && c.core.write_blocked {
                c.core.write_blocked = false;
                self.ctx.mark_dirty(&mut c.core);
            }
            if readable {
                self.read_conn(slot);
            }
        }
        self.turn();
    }

    /// Delivers a typed message to a connection.
    pub(crate) fn message(&mut self, id: ConnId, msg: Box<dyn std::any::Any + Send>) {
        self.handle_envelope(Envelope::ToConn { to: id, msg });
        self.turn();
    }

    /// Moves the manual clock and runs everything due.
    pub(crate) fn advance_clock(&mut self, by: Duration) {
        let now = self.ctx.now + by;
        self.ctx.timers.set_manual_clock(now);
        self.ctx.update_clock();
        self.turn();
    }

    /// The protocol of a live connection.
    pub(crate) fn protocol_any(&mut self, id: ConnId) -> Option<&mut dyn std::any::Any> {
        if !self.live(id) {
            return None;
        }
        self.conns[id.slot()].proto.as_mut().map(|p| p.as_any_mut())
    }

    /// True while the connection's protocol is alive (before `connection_lost`).
    pub(crate) fn is_open(&self, id: ConnId) -> bool {
        self.live(id) && self.conns[id.slot()].proto.is_some()
    }

    /// Whether the protocol has paused reading.
    pub(crate) fn reading_paused(&self, id: ConnId) -> bool {
        self.live(id) && self.conns[id.slot()].core.read_paused
    }

    /// Output the connection has buffered (not yet accepted by the socket).
    pub(crate) fn buffered(&self, id: ConnId) -> usize {
        if self.live(id) {
            self.conns[id.slot()].core.out.len()
        } else {
            0
        }
    }

    /// One loop iteration without polling: deferred reads, local messages,
    /// timers, outbound connects, flush.
    fn turn(&mut self) {
        for _ in 0..8 {
            self.read_deferred();
            self.run_local();
            self.fire_timers();
            self.run_local();
            self.start_connects();
            self.flush_dirty();
            if self.ctx.read_again.is_empty()
                && self.ctx.local.is_empty()
                && self.ctx.dirty.is_empty()
            {
                break;
            }
        }
        self.publish();
    }

    // ---- new connections -----------------------------------------------------

    fn accept(&mut self, mut stream: Stream, listener: usize) {
        let limit = self.ctx.settings.max_connections_per_shard;
        if self.ctx.stopping || self.conns.len() >= limit {
            self.ctx.counters.connections_rejected += 1;
            self.inner.open_total.fetch_sub(1, Ordering::Relaxed);
            if !self.ctx.stopping {
                tracing::warn!(
                    shard = self.ctx.index,
                    limit,
                    "per-shard connection limit reached; closing new connection"
                );
            }
            return;
        }
        let slot = self.conns.vacant_key();
        let addrs = stream
            .peer_addr()
            .and_then(|p| Ok((p, stream.local_addr()?)));
        let registered = self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        );
        let (peer, local) = match (addrs, registered) {
            (Ok(a), Ok(())) => a,
            (Err(e), _) | (_, Err(e)) => {
                // The peer left before we got to it, or the poller refused.
                tracing::debug!(error = %e, "dropping connection before it started");
                self.ctx.counters.connections_rejected += 1;
                self.inner.open_total.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        };
        if self.nodelay {
            stream.set_nodelay();
        }
        let factory = &mut self.factories[listener];
        let proto = match catch_unwind(AssertUnwindSafe(|| factory.build(peer.clone()))) {
            Ok(p) => p,
            Err(_) => {
                self.ctx.counters.callback_panics += 1;
                self.ctx.counters.connections_rejected += 1;
                self.inner.open_total.fetch_sub(1, Ordering::Relaxed);
                tracing::error!(shard = self.ctx.index, %peer, "factory panicked; connection dropped");
                let _ = self.poll.registry().deregister(&mut stream);
                return;
            }
        };
        self.establish(slot, stream, peer, local, proto);
    }

    /// The idle timeout new connections start with, in ticks.
    fn default_idle_ticks(&self) -> Option<u64> {
        self.ctx
            .settings
            .idle_timeout
            .map(|t| self.ctx.timers.ticks_of(t).max(1))
    }

    /// Puts an open connection into `slot` (the slab's vacant key, already
    /// used as its poll token) and tells its protocol.
    fn establish(
        &mut self,
        slot: usize,
        stream: Stream,
        peer: Addr,
        local: Addr,
        proto: Box<dyn ErasedProto>,
    ) -> ConnId {
        let id = ConnId::new(self.ctx.index as u16, slot as u32, self.next_generation);
        self.next_generation = self.next_generation.wrapping_add(1);
        let mut core = ConnCore::new(id, stream, peer, local, Phase::Open, self.ctx.now_tick);
        core.idle_ticks = self.default_idle_ticks();
        let inserted = self.conns.insert(Connection {
            core,
            proto: Some(proto),
        });
        debug_assert_eq!(inserted, slot, "slab fills its vacant key first");
        self.ctx.counters.connections_accepted += 1;
        let c = &mut self.conns[slot];
        self.ctx.arm_idle(&mut c.core);
        invoke(c, &mut self.ctx, |p, core, ctx| {
            p.connection_made(core, ctx)
        });
        self.after_callback(slot);
        id
    }

    // ---- outbound connections ----------------------------------------------

    fn start_connects(&mut self) {
        if self.ctx.pending_connects.is_empty() {
            return;
        }
        for pc in std::mem::take(&mut self.ctx.pending_connects) {
            let proto = pc.proto;
            let connected = match &pc.addr {
                Addr::Tcp(a) => mio::net::TcpStream::connect(*a).map(Stream::Tcp),
                Addr::Unix(Some(p)) => mio::net::UnixStream::connect(p).map(Stream::Unix),
                Addr::Unix(None) => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot connect to an unnamed Unix socket",
                )),
            };
            let entry = self.conns.vacant_entry();
            let slot = entry.key();
            let registered = connected.and_then(|mut s| {
                self.poll
                    .registry()
                    .register(&mut s, Token(slot), Interest::READABLE | Interest::WRITABLE)
                    .map(|()| s)
            });
            let stream = match registered {
                Ok(s) => s,
                Err(e) => {
                    self.report_connect_failure(Some(proto), pc.observer, e);
                    continue;
                }
            };
            let local = stream.local_addr().unwrap_or(Addr::Unix(None));
            let id = ConnId::new(self.ctx.index as u16, slot as u32, self.next_generation);
            self.next_generation = self.next_generation.wrapping_add(1);
            let mut core = ConnCore::new(
                id,
                stream,
                pc.addr,
                local,
                Phase::Connecting,
                self.ctx.now_tick,
            );
            core.observer = pc.observer;
            entry.insert(Connection {
                core,
                proto: Some(proto),
            });
            self.inner.open_total.fetch_add(1, Ordering::Relaxed);
            if let Some(t) = pc.timeout {
                self.ctx.timers.once(t, TimerTask::ConnectTimeout(id));
            }
        }
    }

    /// The poller reported progress on a connecting socket: connected or failed?
    fn finish_connect(&mut self, slot: usize) {
        let c = &mut self.conns[slot];
        let failed = match c.core.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match c.core.stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failed {
            return self.fail_connect(slot, e);
        }
        c.core.phase = Phase::Open;
        if let Ok(local) = c.core.stream.local_addr() {
            c.core.local = local;
        }
        if self.nodelay {
            c.core.stream.set_nodelay();
        }
        let idle = self.default_idle_ticks();
        let c = &mut self.conns[slot];
        c.core.idle_ticks = idle;
        c.core.last_read_tick = self.ctx.now_tick;
        self.ctx.counters.connections_accepted += 1;
        self.ctx.arm_idle(&mut c.core);
        if let Some(o) = c.core.observer.as_mut() {
            o.made(&mut self.ctx);
        }
        let c = &mut self.conns[slot];
        invoke(c, &mut self.ctx, |p, core, ctx| {
            p.connection_made(core, ctx)
        });
        self.after_callback(slot);
    }

    fn fail_connect(&mut self, slot: usize, error: io::Error) {
        let mut c = self.conns.remove(slot);
        let _ = self.poll.registry().deregister(&mut c.core.stream);
        self.inner.open_total.fetch_sub(1, Ordering::Relaxed);
        self.report_connect_failure(c.proto.take(), c.core.observer.take(), error);
    }

    /// An outbound connection never came up: count it, then tell its
    /// protocol (`connect_failed`) and its observer (a reconnecting client).
    fn report_connect_failure(
        &mut self,
        proto: Option<Box<dyn ErasedProto>>,
        observer: Option<Box<dyn crate::conn::ConnObserver>>,
        error: io::Error,
    ) {
        self.ctx.counters.connect_failures += 1;
        if let Some(mut proto) = proto {
            let ctx = &mut self.ctx;
            if catch_unwind(AssertUnwindSafe(|| proto.connect_failed(ctx, &error))).is_err() {
                self.ctx.counters.callback_panics += 1;
                tracing::error!("connect_failed panicked");
            }
        }
        if let Some(o) = observer {
            o.ended(&mut self.ctx, crate::conn::ConnectionEnd::Failed(error));
        }
    }

    // ---- bus -------------------------------------------------------------------

    fn drain_inbox(&mut self) {
        let max = self.ctx.settings.max_bus_messages_per_iteration;
        self.inbox_backlog = bus::drain(&self.rx, max, &mut self.envelopes);
        self.ctx.counters.bus_received += self.envelopes.len() as u64;
        let mut envs = std::mem::take(&mut self.envelopes);
        for env in envs.drain(..) {
            self.handle_envelope(env);
        }
        self.envelopes = envs;
    }

    fn run_local(&mut self) {
        // Bounded: local messages that send more local messages wait a turn.
        let n = self.ctx.local.len();
        for _ in 0..n {
            let Some(env) = self.ctx.local.pop_front() else {
                break;
            };
            self.handle_envelope(env);
        }
    }

    fn handle_envelope(&mut self, env: Envelope) {
        match env {
            Envelope::Accepted { stream, listener } => self.accept(stream, listener),
            Envelope::Run(f) => self.run_task(f),
            Envelope::Broadcast(f) => self.run_task(move |ctx| f(ctx)),
            Envelope::ToConn { to, msg } => {
                if !self.live(to) {
                    self.ctx.counters.messages_dropped += 1;
                    return;
                }
                let slot = to.slot();
                let c = &mut self.conns[slot];
                let mut delivered = true;
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    delivered = p.message(core, ctx, msg);
                });
                if !delivered {
                    self.ctx.counters.messages_dropped += 1;
                    tracing::warn!(conn = %to, "message of the wrong type for this connection's protocol dropped");
                }
                self.after_callback(slot);
            }
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
            Envelope::Stop { deadline } => self.begin_stop(deadline),
        }
    }

    fn run_task(&mut self, f: impl FnOnce(&mut ShardCtx)) {
        let ctx = &mut self.ctx;
        if catch_unwind(AssertUnwindSafe(|| f(ctx))).is_err() {
            self.ctx.counters.callback_panics += 1;
            tracing::error!(
                shard = self.ctx.index,
                "task submitted to the shard panicked"
            );
        }
    }

    fn begin_stop(&mut self, deadline: Instant) {
        if self.ctx.stopping {
            return;
        }
        self.ctx.stopping = true;
        let left = deadline.saturating_duration_since(Instant::now());
        self.ctx.timers.once(left, TimerTask::StopDeadline);
        let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for slot in slots {
            let c = &mut self.conns[slot];
            if c.proto.is_some() {
                c.core
                    .close_reason
                    .get_or_insert(CloseReason::ServerStopped);
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    p.server_stopping(core, ctx)
                });
                self.after_callback(slot);
            }
        }
    }

    // ---- timers ----------------------------------------------------------------

    fn fire_timers(&mut self) {
        let now = self.ctx.now_tick;
        self.ctx.timers.wheel.advance(now, &mut self.fired);
        if self.fired.is_empty() {
            return;
        }
        self.ctx.counters.timers_fired += self.fired.len() as u64;
        let mut fired = std::mem::take(&mut self.fired);
        for (_, task) in fired.drain(..) {
            self.run_timer(task, now);
        }
        self.fired = fired;
    }

    fn run_timer(&mut self, task: TimerTask, now: u64) {
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
                            self.ctx.timers.cancel(crate::timers::TimerHandle(
                                crate::timers::HandleKind::Repeat { key, generation },
                            ));
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
                c.core.idle_armed = false;
                let Some(idle) = c.core.idle_ticks else {
                    return;
                };
                if c.core.phase != Phase::Open {
                    return;
                }
                let due = c.core.last_read_tick + idle;
                if now >= due {
                    c.core.begin_close(CloseReason::IdleTimeout, &mut self.ctx);
                } else {
                    self.ctx.arm_idle(&mut c.core);
                }
            }
            TimerTask::Linger(conn) => {
                if self.live(conn) && self.conns[conn.slot()].core.phase == Phase::Lingering {
                    self.release(conn.slot(), false);
                }
            }
            TimerTask::ConnectTimeout(conn) => {
                if self.live(conn) && self.conns[conn.slot()].core.phase == Phase::Connecting {
                    self.fail_connect(
                        conn.slot(),
                        io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                    );
                }
            }
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
                    match self.conns[slot].core.phase {
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
