//! A connection's state on its shard, apart from its protocol: socket,
//! output queue, phase of its life, flags the loop acts on.

use super::shard_ctx::ShardCtx;
use crate::api::{CloseReason, ConnId};
use crate::net::{Addr, Stream, WriteBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Outbound connection waiting for the connect to finish.
    Connecting,
    Open,
    /// `close()` was called: flush, then FIN.
    Closing,
    /// FIN sent and protocol gone; draining the peer's input until EOF.
    Lingering,
}

pub(crate) struct ConnCore {
    pub(crate) id: ConnId,
    pub(crate) stream: Stream,
    pub(crate) peer: Addr,
    pub(crate) local: Addr,
    pub(crate) out: WriteBuf,
    pub(crate) phase: Phase,
    /// Why it is closing or aborting, once decided.
    pub(crate) close_reason: Option<CloseReason>,
    pub(crate) abort_requested: bool,
    pub(crate) panicked: bool,
    pub(crate) read_paused: bool,
    pub(crate) producing_paused: bool,
    /// Listed in the shard's flush list this iteration.
    pub(crate) dirty: bool,
    /// The socket refused output; waiting for a writable event.
    pub(crate) write_blocked: bool,
    /// The poller reported the read side closed: read until EOF.
    pub(crate) read_closed: bool,
    pub(crate) peer_eof: bool,
    /// `resume_reading` was called: tell the protocol before reading.
    pub(crate) resumed: bool,
    pub(crate) idle_ticks: Option<u64>,
    pub(crate) idle_armed: bool,
    pub(crate) last_read_tick: u64,
    /// Told when the connection is made and when it ends (reconnecting clients).
    pub(crate) observer: Option<Box<dyn ConnObserver>>,
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
    pub(crate) fn new(
        id: ConnId,
        stream: Stream,
        peer: Addr,
        local: Addr,
        phase: Phase,
        now_tick: u64,
    ) -> Self {
        ConnCore {
            id,
            stream,
            peer,
            local,
            out: WriteBuf::default(),
            phase,
            close_reason: None,
            abort_requested: false,
            panicked: false,
            read_paused: false,
            producing_paused: false,
            dirty: false,
            write_blocked: false,
            read_closed: false,
            peer_eof: false,
            resumed: false,
            idle_ticks: None,
            idle_armed: false,
            last_read_tick: now_tick,
            observer: None,
        }
    }

    pub(crate) fn accepts_output(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing) && !self.abort_requested
    }

    /// Starts a graceful close: flush, then FIN.
    pub(crate) fn begin_close(&mut self, reason: CloseReason, ctx: &mut ShardCtx) {
        if self.phase == Phase::Open && !self.abort_requested {
            self.phase = Phase::Closing;
            self.close_reason.get_or_insert(reason);
            ctx.mark_dirty(self);
        }
    }
}
