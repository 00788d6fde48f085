//! A connection's state on its shard, apart from its protocol: socket,
//! output queue, phase of its life, flags the loop acts on.

pub(crate) use super::conn_state::{ConnState, Phase};
use super::layer::Layer;
use super::shard_ctx::ShardCtx;
use super::timers::wheel::TimerId;
use super::timers::{TimerHandle, TimerTask, Timers};
use crate::api::{CloseReason, ConnId};
use crate::net::{Addr, Stream, WriteBuf};

pub(crate) struct ConnCore {
    pub(crate) id: ConnId,
    pub(crate) stream: Stream,
    pub(crate) peer: Addr,
    /// The local address: looked up when first asked for (`getsockname`
    /// costs a syscall most connections never need), boxed so that a
    /// connection that never asks pays a pointer.
    local: std::cell::OnceCell<Box<Addr>>,
    pub(crate) out: WriteBuf,
    /// Why it is closing or aborting, once decided: boxed, since most
    /// connections are idle; the two commonest reasons are kept in
    /// `common_reason` instead, so a close rarely allocates.
    pub(crate) close_reason: Option<Box<CloseReason>>,
    common_reason: CommonReason,
    /// Phase and flags, changed only through their named transitions
    /// (the state machine of `conn_state.rs`).
    pub(crate) state: ConnState,
    /// Output the peer had not taken at the end of the last flush (saturating):
    /// a write is refused while this is over `max_output_buffer`.
    pub(crate) held: u32,
    /// Work in flight for this connection (protocol holds plus deferred jobs).
    pub(crate) holds: u32,
    /// Output a send in flight took from `out` (the completion backend:
    /// the kernel's until the send completes); counted as unsent.
    pub(crate) in_kernel: u32,
    /// Nanoseconds its callbacks and tasks held the loop in the current
    /// accounting window (saturating at 4.3 s; the window is a second).
    pub(crate) busy_ns: u32,
    pub(crate) idle_ticks: Option<u64>,
    /// The idle check in the wheel (fires at `last_read_tick + idle_ticks`
    /// or later: reads only store the tick, the check re-arms itself).
    pub(crate) idle_timer: Option<TimerId>,
    /// The deadline of the current phase: connect, close flush, or linger.
    pub(crate) phase_timer: Option<TimerId>,
    pub(crate) last_read_tick: u64,
    /// A layer between the socket and the protocol (TLS), if any.
    pub(crate) layer: Option<Box<dyn Layer>>,
    /// What few connections need, out of line (None until first needed).
    pub(crate) extras: Option<Box<Extras>>,
}

/// What few connections need, kept out of line: a plain connection with no
/// protocol timer, task, observer or read deadline pays one pointer for
/// all of it (an idle connection's memory is most of a server's).
#[derive(Default)]
pub(crate) struct Extras {
    /// Timers the protocol set on this connection (cancelled on release).
    pub(crate) timers: Vec<TimerHandle>,
    /// Tasks tied to this connection (dropped on release).
    pub(crate) tasks: Vec<super::exec::executor::TaskId>,
    /// Told when the connection is made and when it ends (reconnecting clients).
    pub(crate) observer: Option<Box<dyn ConnObserver>>,
    /// Bytes the protocol had already read when it installed a layer
    /// (`start_tls` after "STARTTLS\r\n" and the ClientHello in one read):
    /// they go through the layer before anything new from the socket.
    pub(crate) layer_input: Vec<u8>,
    /// The protocol's read deadline, if armed.
    pub(crate) read_deadline: Option<TimerId>,
    /// `Conn::set_max_in_flight`: reading waits while `holds` is at least this.
    pub(crate) max_in_flight: Option<u32>,
    /// How the connection moves to another shard, if its protocol can.
    pub(crate) mobility: Option<Box<super::migrate::Mobility>>,
    /// The race this connect attempt is part of (Happy Eyeballs).
    pub(crate) race: Option<usize>,
}

/// The commonest close reasons, recorded without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommonReason {
    None,
    PeerClosed,
    Done,
}

/// How an observed connection ended.
#[derive(Debug)]
pub(crate) enum ConnectionEnd {
    /// It never connected.
    Failed(std::io::Error),
    /// It was lost after connecting.
    Lost(CloseReason),
}

impl std::fmt::Display for ConnectionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionEnd::Failed(e) => write!(f, "connect failed: {e}"),
            ConnectionEnd::Lost(r) => write!(f, "connection lost: {r}"),
        }
    }
}

/// Watches one outbound connection from outside its protocol.
pub(crate) trait ConnObserver {
    fn made(&mut self, ctx: &mut ShardCtx);
    fn ended(self: Box<Self>, ctx: &mut ShardCtx, end: ConnectionEnd);
}

impl ConnCore {
    /// Output not yet taken by the socket: what is queued, and what a
    /// send in flight holds (backpressure, `Conn::buffered`, metrics).
    #[inline]
    pub(crate) fn unsent(&self) -> usize {
        self.out.len() + self.in_kernel as usize
    }

    /// Adds `d` to the time the connection held its shard this window.
    #[inline]
    pub(crate) fn charge(&mut self, d: std::time::Duration) {
        // A second or more saturates anyway: no 128-bit arithmetic.
        let ns = if d.as_secs() == 0 {
            d.subsec_nanos()
        } else {
            u32::MAX
        };
        self.busy_ns = self.busy_ns.saturating_add(ns);
    }

    pub(crate) fn new(
        id: ConnId,
        stream: Stream,
        peer: Addr,
        local: Option<Addr>,
        state: ConnState,
        now_tick: u64,
    ) -> Self {
        ConnCore {
            id,
            stream,
            peer,
            local: local
                .map(|a| std::cell::OnceCell::from(Box::new(a)))
                .unwrap_or_default(),
            out: WriteBuf::default(),
            close_reason: None,
            common_reason: CommonReason::None,
            state,
            holds: 0,
            busy_ns: 0,
            held: 0,
            in_kernel: 0,
            idle_ticks: None,
            idle_timer: None,
            phase_timer: None,
            last_read_tick: now_tick,
            layer: None,
            extras: None,
        }
    }

    /// Why the connection ends: the reason recorded, or `default`.
    pub(crate) fn reason_or(&self, default: CloseReason) -> CloseReason {
        match (&self.close_reason, self.common_reason) {
            (Some(r), _) => (**r).clone(),
            (None, CommonReason::PeerClosed) => CloseReason::PeerClosed,
            (None, CommonReason::Done) => CloseReason::Done,
            (None, CommonReason::None) => default,
        }
    }

    /// Records why the connection ends unless a reason is already known
    /// (the first wins). The two commonest are a byte, not an allocation.
    pub(crate) fn note_reason(&mut self, reason: CloseReason) {
        if self.close_reason.is_some() || self.common_reason != CommonReason::None {
            return;
        }
        match reason {
            CloseReason::PeerClosed => self.common_reason = CommonReason::PeerClosed,
            CloseReason::Done => self.common_reason = CommonReason::Done,
            other => self.close_reason = Some(Box::new(other)),
        }
    }

    /// Records why the connection ends, over any earlier reason.
    pub(crate) fn set_reason(&mut self, reason: CloseReason) {
        self.close_reason = Some(Box::new(reason));
    }

    /// The state machine's invariants, and those that tie it to the rest
    /// of the connection (checked by the property test between events).
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        self.state.check()?;
        if self.layer.is_none() && self.state.is_fin_sent() && !self.out.is_empty() {
            return Err("output queued after FIN");
        }
        if self.state.closes_when_idle() && self.holds == 0 {
            return Err("close_when_idle pending with nothing holding");
        }
        Ok(())
    }

    /// One more piece of work in flight (`Conn::hold`).
    pub(crate) fn hold(&mut self) {
        self.holds = self.holds.saturating_add(1);
        self.check_in_flight(None);
    }

    /// One piece of work in flight ended (`Conn::unhold`, a deferred
    /// result); a connection held at its in-flight limit reads again.
    pub(crate) fn unhold(&mut self, read_again: &mut Vec<ConnId>) {
        self.holds = self.holds.saturating_sub(1);
        self.check_in_flight(Some(read_again));
    }

    /// Reading waits while the holds are at the protocol's limit.
    pub(crate) fn check_in_flight(&mut self, read_again: Option<&mut Vec<ConnId>>) {
        let limit = self.extras.as_ref().and_then(|e| e.max_in_flight);
        let full = limit.is_some_and(|m| self.holds >= m);
        if self.state.set_in_flight_full(full) && !full {
            if let Some(again) = read_again {
                again.push(self.id);
            }
        }
    }

    /// Sets the local address (from a PROXY header: where the client connected).
    pub(crate) fn set_local_addr(&mut self, local: Addr) {
        self.local = std::cell::OnceCell::from(Box::new(local));
    }

    /// The local address (looked up once, on first use).
    pub(crate) fn local_addr(&self) -> &Addr {
        self.local
            .get_or_init(|| Box::new(self.stream.local_addr().unwrap_or(Addr::Unix(None))))
    }

    pub(crate) fn accepts_output(&self) -> bool {
        self.state.accepts_output()
    }

    /// True while the shard should read from the socket.
    pub(crate) fn wants_input(&self) -> bool {
        self.state.wants_input()
    }

    /// Starts a graceful close: flush, then FIN. A close that has not
    /// finished flushing within `close_timeout` is aborted.
    pub(crate) fn begin_close(&mut self, reason: CloseReason, ctx: &mut ShardCtx) {
        if self.state.begin_closing() {
            self.note_reason(reason);
            let timeout = ctx.settings.close_timeout;
            self.set_phase_timer(&mut ctx.timers, timeout, TimerTask::CloseDeadline(self.id));
            ctx.mark_dirty(self);
        }
    }

    /// Puts a layer under the protocol and starts it: what it says first
    /// (a client's hello) is queued, and its handshake gets a deadline.
    /// For a new connection and for `start_tls` alike.
    pub(crate) fn start_layer(&mut self, mut layer: Box<dyn Layer>, ctx: &mut ShardCtx) {
        let mut wire = super::layer::WireSink {
            out: &mut self.out,
            pool: &mut ctx.pool,
        };
        layer.start(&mut wire);
        let timeout = layer.deadline(&ctx.settings);
        self.layer = Some(layer);
        if !self.out.is_empty() {
            ctx.mark_dirty(self);
        }
        let task = TimerTask::HandshakeDeadline(self.id);
        self.set_phase_timer(&mut ctx.timers, timeout, task);
    }

    /// Replaces the phase deadline.
    pub(crate) fn set_phase_timer(
        &mut self,
        timers: &mut Timers,
        after: std::time::Duration,
        task: TimerTask,
    ) {
        if let Some(old) = self.phase_timer.take() {
            timers.cancel_id(old);
        }
        self.phase_timer = Some(timers.insert_after(after, task));
    }

    /// Remembers a protocol timer so it is cancelled with the connection;
    /// forgets those that ran, now and then, so the list stays short.
    pub(crate) fn track_timer(&mut self, h: TimerHandle, timers: &Timers) {
        let list = &mut self.extras().timers;
        if list.len() >= 16 && list.len().is_power_of_two() {
            list.retain(|t| timers.is_pending(*t));
        }
        list.push(h);
    }

    /// The out-of-line part, made on first use.
    pub(crate) fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The observer, taken (it is told once).
    pub(crate) fn take_observer(&mut self) -> Option<Box<dyn ConnObserver>> {
        self.extras.as_mut().and_then(|e| e.observer.take())
    }

    /// Cancels every timer of this connection (it is being released).
    pub(crate) fn cancel_timers(&mut self, timers: &mut Timers) {
        let mut read_deadline = None;
        if let Some(e) = self.extras.as_mut() {
            for h in e.timers.drain(..) {
                timers.cancel(h);
            }
            read_deadline = e.read_deadline.take();
        }
        for id in [
            self.idle_timer.take(),
            read_deadline,
            self.phase_timer.take(),
        ]
        .into_iter()
        .flatten()
        {
            timers.cancel_id(id);
        }
    }
}
