//! One reactor shard: a thread with its own `mio::Poll`, connection table,
//! timer wheel and inbox. Everything a connection owns lives here and is
//! touched only by this thread.
//!
//! One loop iteration: poll (timeout = next timer) → dispatch I/O events →
//! reads deferred by the fairness cap → drain the inbox in one batch → local
//! messages → due timers → flush every connection written to (one
//! `write`/`writev` each) → publish stats.
//!
//! The work is split by what drives it: `io` (readiness events, reads,
//! flushes), `lifecycle` (a connection's birth and death), `outbound`
//! (connects), `dispatch` (inbox messages and timers).

use super::accounting;
use super::conn_core::ConnCore;
use super::envelope::Envelope;
use super::erased::{ErasedFactory, ErasedProto};
use super::shard_ctx::ShardCtx;
use super::shared::{ServerHandle, Shared};
use crate::api::conn_load;
use crate::api::ConnId;
use crate::sync::marks::LoopPhase;
use crate::sync::worker::PoolSender;
use crossbeam_channel::Receiver;
use mio::{Events, Poll, Token};
use slab::Slab;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The poll token of a shard's bus waker.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);
/// The poll token of the shard's timerfd (sub-millisecond timer ticks).
pub(crate) const TIMERFD_TOKEN: Token = Token(usize::MAX - 1);
/// A shard's own listener `k` is token `LISTENER_TOKEN_BASE - k`.
pub(crate) const LISTENER_TOKEN_BASE: usize = usize::MAX - 2;
/// Tokens at or above this are the shard's own (never a connection slot).
pub(crate) const FIRST_SPECIAL_TOKEN: usize = usize::MAX - 1024;
/// A shard holds at most this many own listeners (tokens down from
/// `LISTENER_TOKEN_BASE`).
pub(crate) const MAX_OWN_LISTENERS: usize = 256;
/// A shard's UDP socket `k` is token `UDP_TOKEN_BASE - k`.
pub(crate) const UDP_TOKEN_BASE: usize = LISTENER_TOKEN_BASE - MAX_OWN_LISTENERS;
/// A shard holds at most this many UDP sockets.
pub(crate) const MAX_UDP_SOCKETS: usize = UDP_TOKEN_BASE - FIRST_SPECIAL_TOKEN;

/// A connection on its shard: its state and (until `connection_lost`) its protocol.
pub(crate) struct Connection {
    pub(super) core: ConnCore,
    /// `None` once `connection_lost` ran (lingering after FIN).
    pub(super) proto: Option<Box<dyn ErasedProto>>,
}

/// What a shard thread needs to start.
pub(crate) struct ShardInit {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    pub(crate) rx: Receiver<Envelope>,
    pub(crate) shared: Arc<Shared>,
    /// The runtime's handle, for `ShardCtx::handle`.
    pub(crate) handle: ServerHandle,
    pub(crate) read_buffer_size: usize,
    pub(crate) events_capacity: usize,
    pub(crate) nodelay: bool,
    pub(crate) timer_tick: Duration,
    pub(crate) pool: Option<PoolSender>,
    /// This shard's own `SO_REUSEPORT` listeners, with their index.
    pub(crate) listeners: Vec<(usize, mio::net::TcpListener)>,
    /// Connections this shard accepts itself at most (its share of
    /// `max_connections`).
    pub(crate) connection_share: usize,
    /// This shard's `listen_udp` sockets, with the maker of their protocol.
    pub(crate) udp: Vec<(std::net::UdpSocket, crate::reactor::udp::UdpMaker)>,
    /// Receive slot size: the largest datagram delivered whole.
    pub(crate) udp_max_datagram: usize,
    /// Run the completion backend (io_uring, probed at start).
    pub(crate) uring: bool,
}

/// What the poller said about one connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Readiness {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) read_closed: bool,
}

pub(crate) struct Shard {
    pub(super) poll: Poll,
    pub(super) events: Events,
    pub(super) ready: Vec<(usize, Readiness)>,
    pub(super) rx: Receiver<Envelope>,
    pub(super) inbox_backlog: bool,
    pub(super) conns: Slab<Connection>,
    pub(super) factories: Vec<Box<dyn ErasedFactory>>,
    pub(super) read_buf: Box<[u8]>,
    /// What layers (TLS) decoded from the read buffer, for the protocol.
    pub(super) app_buf: Vec<u8>,
    /// This shard's own listeners (`reuse_port`), by token offset.
    pub(super) own_listeners: Vec<(usize, mio::net::TcpListener)>,
    pub(super) connection_share: usize,
    /// Own listeners with connections left to accept (batch used up).
    pub(super) accept_again: Vec<usize>,
    /// UDP sockets on this shard.
    pub(super) udp: super::udp::UdpTable,
    /// `listen_udp` sockets to start when the loop begins.
    pub(super) udp_init: Vec<(std::net::UdpSocket, crate::reactor::udp::UdpMaker)>,
    pub(super) envelopes: Vec<Envelope>,
    pub(super) next_generation: u32,
    pub(super) nodelay: bool,
    #[cfg(target_os = "linux")]
    pub(super) precise: Option<super::precise_wake::PreciseWake>,
    pub(super) shared: Arc<Shared>,
    pub(super) ctx: ShardCtx,
    /// The loop phase in progress and when it began.
    pub(super) phase: (LoopPhase, Instant),
    /// When the loop last woke from its poll: busy time runs from here to
    /// the next poll, whatever the iteration did in between.
    pub(super) woke: Instant,
    /// When the thread's CPU time was last read (`cpu_ns`, sampled: the
    /// read is a syscall the hot path does not pay every iteration).
    pub(super) cpu_sampled: Instant,
    /// The loop's wall-clock split since that read: out of poll (busy) and
    /// in it (idle), settled into the counters at the next read.
    pub(super) window: (u64, u64),
    /// When the connections' current accounting window began.
    pub(super) window_start: Instant,
    /// Moves busy connections to cooler shards (`ServerBuilder::rebalance`).
    pub(super) rebalancer: Option<super::migrate::rebalance::Rebalancer>,
    /// Connects racing their addresses (Happy Eyeballs).
    pub(super) races: Slab<super::race::Race>,
    pub(super) race_generation: u64,
    /// Host names' answers and the connects waiting for them.
    pub(super) names: super::names::Names,
    /// The completion backend's ring, when the shard runs it.
    #[cfg(target_os = "linux")]
    pub(crate) ring: Option<Box<super::uring::Ring>>,
}

/// Registers a shard's own listeners; one the poller refuses is dropped
/// (logged), so the kernel sends its connections to the other shards.
fn register_listeners(
    poll: &Poll,
    listeners: Vec<(usize, mio::net::TcpListener)>,
) -> Vec<(usize, mio::net::TcpListener)> {
    let mut kept = Vec::with_capacity(listeners.len());
    for (index, mut l) in listeners {
        if kept.len() >= MAX_OWN_LISTENERS {
            tracing::error!("too many reuse_port listeners for one shard; closing the rest");
            break;
        }
        let token = Token(LISTENER_TOKEN_BASE - kept.len());
        match poll
            .registry()
            .register(&mut l, token, mio::Interest::READABLE)
        {
            Ok(()) => kept.push((index, l)),
            Err(e) => tracing::error!(error = %e, "cannot register a shard's listener; closing it"),
        }
    }
    kept
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Shard {
    pub(crate) fn new(init: ShardInit) -> Self {
        let shared = init.shared;
        let factories = shared
            .listeners
            .factories
            .iter()
            .map(|make| make(init.index))
            .collect();
        let settings = shared.settings.load_full();
        #[cfg(target_os = "linux")]
        let precise = if init.timer_tick < Duration::from_millis(1) {
            match super::precise_wake::PreciseWake::new(init.poll.registry()) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "no timerfd: sub-millisecond timers fire on 1 ms boundaries");
                    None
                }
            }
        } else {
            None
        };
        #[cfg(target_os = "linux")]
        let ring = if init.uring {
            use std::os::fd::AsRawFd;
            match super::uring::Ring::new(init.poll.as_raw_fd()) {
                Ok(r) => Some(Box::new(r)),
                Err(e) => {
                    tracing::error!(shard = init.index, error = %e, "cannot set up this shard's io_uring; it runs on epoll");
                    None
                }
            }
        } else {
            None
        };
        #[cfg(target_os = "linux")]
        let on_ring = ring.is_some();
        #[cfg(not(target_os = "linux"))]
        let on_ring = false;
        let own_listeners = if on_ring {
            // The ring accepts from them (armed below).
            let mut l = init.listeners;
            l.truncate(MAX_OWN_LISTENERS);
            l
        } else {
            register_listeners(&init.poll, init.listeners)
        };
        let mut ctx = ShardCtx::new(init.index, &shared, init.handle, settings, init.timer_tick);
        ctx.workers = init.pool;
        let mut shard = Shard {
            poll: init.poll,
            events: Events::with_capacity(init.events_capacity),
            ready: Vec::with_capacity(init.events_capacity),
            rx: init.rx,
            inbox_backlog: false,
            conns: Slab::new(),
            factories,
            read_buf: vec![0u8; init.read_buffer_size].into_boxed_slice(),
            app_buf: Vec::new(),
            own_listeners,
            connection_share: init.connection_share,
            accept_again: Vec::new(),
            udp: super::udp::UdpTable::new(init.udp_max_datagram),
            udp_init: init.udp,
            envelopes: Vec::new(),
            next_generation: 0,
            nodelay: init.nodelay,
            #[cfg(target_os = "linux")]
            precise,
            phase: (LoopPhase::Polling, Instant::now()),
            woke: Instant::now(),
            cpu_sampled: Instant::now(),
            window: (0, 0),
            window_start: Instant::now(),
            rebalancer: shared
                .rebalance
                .map(super::migrate::rebalance::Rebalancer::new),
            races: Slab::new(),
            race_generation: 0,
            names: Default::default(),
            #[cfg(target_os = "linux")]
            ring,
            ctx,
            shared,
        };
        #[cfg(target_os = "linux")]
        if on_ring {
            for k in 0..shard.own_listeners.len() {
                shard.ring_listen(k);
            }
        }
        shard
    }

    /// The shard thread's loop, until a stop has closed every connection.
    pub(crate) fn run(mut self) {
        let index = self.ctx.index;
        tracing::debug!(shard = index, "shard started");
        // This thread runs this shard from now on: tasks reach it through
        // the thread-local record.
        let _entered = super::exec::local::enter(self.shared.id, index, self.ctx.now);
        self.start_udp();
        // CPU time from here on is the loop's (settle_busy reads deltas).
        self.ctx.counters.cpu_ns = accounting::thread_cpu_ns();
        loop {
            self.refresh_settings();
            self.ctx.flush_outbox();
            let (timeout, before_poll) = self.poll_timeout();
            // Busy from the last wake-up until now: all of the iteration
            // (I/O callbacks, inbox, timers, tasks, flushes). The clock
            // read is the one poll_timeout made anyway.
            let busy = before_poll.saturating_duration_since(self.woke);
            self.window.0 += nanos(busy);
            self.mark(LoopPhase::Polling, before_poll);
            let timeout =
                if timeout != Some(Duration::ZERO) && !self.shared.inboxes[index].park(&self.rx) {
                    Some(Duration::ZERO)
                } else {
                    timeout
                };
            let polled = self.wait_io(timeout);
            self.shared.inboxes[index].unpark();
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(shard = index, error = %e, "poll failed; shard exits");
                    break;
                }
            }
            self.ctx.update_clock();
            let now = self.ctx.now;
            self.woke = now;
            self.window.1 += nanos(now.saturating_duration_since(before_poll));
            self.ctx.counters.loop_iterations += 1;
            let now_ns = self.shared.nanos_since_epoch(now);
            self.shared.activity[index].next_iteration(now_ns);
            self.mark(LoopPhase::Io, now);

            self.dispatch();
            self.run_ready_work();

            if self.ctx.stopping && self.conns.is_empty() {
                break;
            }
        }
        self.ctx.flush_outbox();
        self.settle_busy();
        self.publish();
        self.mark(LoopPhase::Stopped, Instant::now());
        tracing::debug!(shard = index, "shard stopped");
    }

    /// Waits for I/O: on the ring (which also submits this iteration's
    /// sends), or in epoll.
    fn wait_io(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if self.ring.is_some() {
            return self.ring_wait(timeout);
        }
        self.poll.poll(&mut self.events, timeout)
    }

    /// Acts on what the wait brought.
    fn dispatch(&mut self) {
        #[cfg(target_os = "linux")]
        if self.ring.is_some() {
            return self.ring_dispatch();
        }
        self.dispatch_io();
    }

    /// Marks the loop phase for the watchdog (and for the per-kind slow
    /// counters: a phase that held the loop past the threshold is counted,
    /// whether one callback or a batch of them held it).
    pub(super) fn mark(&mut self, phase: LoopPhase, at: Instant) {
        let (previous, since) = std::mem::replace(&mut self.phase, (phase, at));
        if at.saturating_duration_since(since) > self.ctx.settings.slow_callback_threshold {
            let c = &mut self.ctx.counters;
            match previous {
                LoopPhase::Io => c.slow_callbacks += 1,
                LoopPhase::Inbox => c.slow_messages += 1,
                LoopPhase::Timers => c.slow_timers += 1,
                LoopPhase::Tasks => c.slow_tasks += 1,
                LoopPhase::Flush => c.slow_flushes += 1,
                LoopPhase::Polling | LoopPhase::Stopped => {}
            }
        }
        self.shared.activity[self.ctx.index].enter(phase);
    }

    /// Everything an iteration does after dispatching I/O events: deferred
    /// reads, the inbox, local messages, due timers, connects, one flush per
    /// written connection, published stats.
    pub(crate) fn run_ready_work(&mut self) {
        self.read_deferred();
        self.accept_deferred();
        self.udp_deferred();
        self.mark(LoopPhase::Inbox, Instant::now());
        self.drain_inbox();
        self.run_local();
        self.mark(LoopPhase::Timers, Instant::now());
        self.fire_timers();
        self.run_local();
        self.mark(LoopPhase::Tasks, Instant::now());
        self.run_tasks();
        self.start_connects();
        self.open_pending_udp();
        self.mark(LoopPhase::Flush, Instant::now());
        self.flush_dirty();
        self.depart_pending();
        self.publish();
    }

    /// True while the shard has work it can do without waiting for I/O.
    pub(crate) fn has_ready_work(&self) -> bool {
        self.inbox_backlog
            || !self.ctx.read_again.is_empty()
            || !self.accept_again.is_empty()
            || !self.udp.again.is_empty()
            || !self.ctx.pending_udp.is_empty()
            || !self.ctx.local.is_empty()
            || !self.ctx.dirty.is_empty()
            || !self.ctx.pending_connects.is_empty()
            || !self.ctx.tasks.queue.is_empty()
            || !self.ctx.moves.departures.is_empty()
            || super::exec::local::has_requests()
            || self.ring_has_more()
    }

    /// The ring's epoll set had more events than one poll took, or
    /// receives wait for buffers.
    fn ring_has_more(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self
            .ring
            .as_ref()
            .is_some_and(|r| r.epoll_again || !r.starved.is_empty());
        #[cfg(not(target_os = "linux"))]
        false
    }

    fn refresh_settings(&mut self) {
        let current = self.shared.settings.load();
        if !Arc::ptr_eq(&current, &self.ctx.settings) {
            self.ctx.settings = arc_swap::Guard::into_inner(current);
        }
    }

    /// The poll timeout and the time it was computed at.
    pub(crate) fn poll_timeout(&mut self) -> (Option<Duration>, Instant) {
        let now = Instant::now();
        if self.has_ready_work() {
            return (Some(Duration::ZERO), now);
        }
        let Some(tick) = self.ctx.timers.wheel.next_deadline() else {
            return (None, now);
        };
        let at = self.ctx.timers.instant_of(tick);
        let left = at.saturating_duration_since(now);
        #[cfg(target_os = "linux")]
        if let Some(p) = self.precise.as_mut().filter(|_| !left.is_zero()) {
            p.arm(at, now);
            // The timerfd wakes us; the poll timeout is only a backstop.
            return (Some(left + Duration::from_millis(1)), now);
        }
        (Some(left), now)
    }

    fn publish(&mut self) {
        let c = &mut self.ctx.counters;
        c.connections_open = self.conns.len() as u64;
        c.tasks_ready = self.ctx.tasks.queue.len() as u64;
        // Summing every connection's queue is O(connections): sampled.
        if c.loop_iterations % 64 == 0 {
            c.output_buffered = self.conns.iter().map(|(_, c)| c.core.unsent() as u64).sum();
        }
        if self.ctx.now.saturating_duration_since(self.cpu_sampled) >= accounting::CPU_SAMPLE_EVERY
        {
            self.settle_busy();
        }
        if self.ctx.now.saturating_duration_since(self.window_start) >= conn_load::WINDOW {
            self.publish_heaviest();
        }
        self.shared.stats.shards[self.ctx.index].publish(&self.ctx.counters);
    }

    /// The connection's state-machine invariants (None: not in the table).
    #[cfg(test)]
    pub(crate) fn check_conn(&self, id: ConnId) -> Option<Result<(), &'static str>> {
        self.live(id).then(|| self.conns[id.slot()].core.check())
    }

    /// True if `id` names a connection still in the table (same generation).
    pub(crate) fn live(&self, id: ConnId) -> bool {
        self.conns.get(id.slot()).is_some_and(|c| c.core.id == id)
    }

    /// The shard's context: its clock, timers, services and bus.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn ctx_mut(&mut self) -> &mut ShardCtx {
        &mut self.ctx
    }

    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn ctx_ref(&self) -> &ShardCtx {
        &self.ctx
    }

    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn shared_ref(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The protocol of a live connection, before `connection_lost`.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
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

    /// Whether the connection's protocol has paused reading.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn reading_paused(&self, id: ConnId) -> bool {
        self.live(id) && self.conns[id.slot()].core.state.is_read_paused()
    }

    /// The connections in the table (open or still flushing), in slot order.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn connection_ids(&self) -> Vec<ConnId> {
        self.conns.iter().map(|(_, c)| c.core.id).collect()
    }

    /// True if other shards or threads left work in the inbox (a detached
    /// shard has no poller to wake it).
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn inbox_waiting(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Output the connection has queued that the socket has not taken.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn buffered(&self, id: ConnId) -> usize {
        if self.live(id) {
            self.conns[id.slot()].core.unsent()
        } else {
            0
        }
    }
}

/// Without io_uring, no connection is ever on a ring.
#[cfg(not(target_os = "linux"))]
impl Shard {
    pub(crate) fn ring_takes(&self, _stream: &crate::net::Stream) -> bool {
        false
    }
    pub(crate) fn ring_open(&mut self, _slot: usize) {}
    pub(crate) fn ring_close(
        &mut self,
        _slot: usize,
        stream: crate::net::Stream,
    ) -> Option<crate::net::Stream> {
        Some(stream)
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn a_connection_record_stays_small() {
        // An idle connection's memory is most of a server's: this record,
        // its slab slot, and the kernel's socket. 248 bytes at API 1.0.
        let size = std::mem::size_of::<super::Connection>();
        println!("Connection: {size} bytes");
        assert!(size <= 248, "Connection grew to {size} bytes");
    }
}
