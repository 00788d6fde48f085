//! A connection's state as a machine: one lifecycle phase and four groups
//! of flags (read side, write side, close intent, identity), private to
//! this file and changed only through the named transitions below.
//!
//! ```text
//!                 connected()
//!   Connecting ───────────────► Open ──────────── begin_closing() ───────┐
//!   (outbound,                   │  │  (close, close_with_error, idle or │
//!    not made)                   │  │   read timeout, close_when_idle,   │
//!       │                        │  │   layer_failed)                    ▼
//!       │ connect failed         │  │                                 Closing
//!       │ or timed out           │  │ request_half_close()           (flush,
//!       ▼                        │  │   -> HALF_CLOSE + OUT_SHUT;      then FIN)
//!    released                    │  │   fin_sent() once flushed;        │
//!                                │  │   reading goes on                 │ fin_sent()
//!                                │  ▼                                   ▼
//!                                │  (still Open)                    Lingering
//!                                │                               (FIN out; input
//!   request_abort() / a callback │                                discarded until
//!   panicked / I/O error / RST ──┴─► released with RST            the peer's EOF
//!   (from any phase)                                              or a deadline)
//!                                                                      │
//!                                                                      ▼
//!                                                                   released
//! ```
//!
//! `connection_lost` runs once, when the protocol is taken out of the
//! table (`Shard::lose`): before FIN on a graceful close, before the RST
//! on an abort. A connection that was never made (its transport layer's
//! handshake did not finish) gets no `connection_lost`.
//!
//! Invariants ([`ConnState::check`], asserted after every transition in
//! debug builds and after every step of the property test):
//! 1. FIN sent ⇒ output shut (nothing is queued after FIN).
//! 2. Half-close requested ⇒ output shut.
//! 3. Layer failed ⇒ output shut (nothing more can be encoded).
//! 4. Lingering ⇒ FIN sent.
//! 5. Connecting ⇒ outbound, not made, no FIN, no half-close, no
//!    backpressure, not dirty for output it cannot have.
//! 6. Reading resumed (a `reading_resumed` owed) ⇒ reading not paused.
//! 7. Made ⇒ not Connecting.
//! 8. No-linger close ⇒ not Connecting (after a half-close the FIN is
//!    already out, and the close lingers like any other).

/// Where a connection is in its life.
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

// Read side.
/// The protocol (or the task reading it) paused reading.
const READ_PAUSED: u32 = 1 << 0;
/// The shard paused reading: output is above the high-water mark, so TCP
/// flow control slows a peer that sends without reading.
const BACKPRESSURE: u32 = 1 << 1;
/// `resume_reading` was called: tell the protocol before the next read.
const RESUMED: u32 = 1 << 2;
/// The poller reported the read side closed: read until EOF.
const READ_CLOSED: u32 = 1 << 3;
/// The peer's EOF was read.
const PEER_EOF: u32 = 1 << 4;
/// This connection's input is forwarded to another whose output is above
/// the high-water mark: read again once it drains.
const FORWARD_BLOCKED: u32 = 1 << 5;
/// The protocol's work in flight (`holds`) reached its limit
/// (`Conn::set_max_in_flight`): read again once it drops below.
const IN_FLIGHT_FULL: u32 = 1 << 6;

// Write side.
/// Listed in the shard's flush list this iteration.
const DIRTY: u32 = 1 << 8;
/// The socket refused output; waiting for a writable event.
const WRITE_BLOCKED: u32 = 1 << 9;
/// `notify_flushed` was called: `output_flushed` after flushes until the
/// queue is empty.
const FLUSH_WATCH: u32 = 1 << 10;
/// A large write went straight to the socket since the last flush.
const WROTE_THROUGH: u32 = 1 << 11;
/// The protocol was told `pause_producing` and not yet `resume_producing`.
const PRODUCING_PAUSED: u32 = 1 << 12;
/// No more output is accepted: FIN was sent, FIN is owed, or
/// `connection_lost` began.
const OUT_SHUT: u32 = 1 << 13;
/// FIN has been sent.
const FIN_SENT: u32 = 1 << 14;
/// A connection forwarding into this one waits for this output to drain.
const DRAIN_WAITER: u32 = 1 << 15;

// Close intent.
/// `shutdown_write` was called: FIN once the output is flushed.
const HALF_CLOSE: u32 = 1 << 16;
/// `close_without_linger`: close the socket once flushed, without waiting
/// for the peer's FIN.
const NO_LINGER: u32 = 1 << 17;
/// `close_when_idle` was called: close once no work holds the connection.
const CLOSE_WHEN_IDLE: u32 = 1 << 18;
/// `abort` (or an overflow, a layer refusing output): RST at the next chance.
const ABORT: u32 = 1 << 19;
/// A protocol callback panicked: abort, and never call the protocol again.
const PANICKED: u32 = 1 << 20;

// Identity and transport.
/// `connection_made` has run; only a made connection gets `connection_lost`.
const MADE: u32 = 1 << 24;
/// Opened by this side (false: accepted from a listener).
const OUTBOUND: u32 = 1 << 25;
/// In the server-wide open-connection total (not those a `reuse_port`
/// shard accepted itself: they count against its share only).
const COUNTED: u32 = 1 << 26;
/// The transport layer failed: nothing more goes through it.
const LAYER_FAILED: u32 = 1 << 27;
/// Counted in the per-source-address table (released when it goes).
const IP_COUNTED: u32 = 1 << 28;
/// Passed the per-source-address limits (checked once).
const ADDRESS_ADMITTED: u32 = 1 << 29;

/// A connection's phase and flags: 8 bytes where 22 booleans were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnState {
    phase: Phase,
    bits: u32,
}

impl ConnState {
    /// An accepted connection, open, counted in the server-wide total.
    pub(crate) fn inbound() -> Self {
        ConnState {
            phase: Phase::Open,
            bits: COUNTED,
        }
    }

    /// An outbound connection whose connect is under way.
    pub(crate) fn outbound() -> Self {
        ConnState {
            phase: Phase::Connecting,
            bits: COUNTED | OUTBOUND,
        }
    }

    #[inline]
    fn has(&self, bit: u32) -> bool {
        self.bits & bit != 0
    }

    #[inline]
    fn set(&mut self, bit: u32) {
        self.bits |= bit;
        self.checked();
    }

    #[inline]
    fn clear(&mut self, bit: u32) {
        self.bits &= !bit;
    }

    /// Clears `bit`; true if it was set.
    #[inline]
    fn take(&mut self, bit: u32) -> bool {
        let was = self.has(bit);
        self.bits &= !bit;
        was
    }

    #[inline]
    fn checked(&self) {
        debug_assert_eq!(self.check(), Ok(()), "{self:?}");
    }

    /// The invariants listed at the top of this file.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        let b = |bit| self.has(bit);
        let connecting = self.phase == Phase::Connecting;
        let broken = [
            (b(FIN_SENT) && !b(OUT_SHUT), "FIN sent but output accepted"),
            (
                b(HALF_CLOSE) && !b(OUT_SHUT),
                "half-closed but output accepted",
            ),
            (
                b(LAYER_FAILED) && !b(OUT_SHUT),
                "layer failed but output accepted",
            ),
            (
                self.phase == Phase::Lingering && !b(FIN_SENT),
                "lingering before FIN",
            ),
            (
                connecting && (!b(OUTBOUND) || b(MADE | FIN_SENT | HALF_CLOSE | BACKPRESSURE)),
                "connecting with state only an open connection has",
            ),
            (b(RESUMED) && b(READ_PAUSED), "resume owed while paused"),
            (
                connecting && b(NO_LINGER),
                "no-linger close before the connection opened",
            ),
        ];
        broken.iter().find(|r| r.0).map_or(Ok(()), |r| Err(r.1))
    }

    // ---- lifecycle -------------------------------------------------------

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn is(&self, phase: Phase) -> bool {
        self.phase == phase
    }

    /// The connect finished: Connecting → Open.
    pub(crate) fn connected(&mut self) {
        debug_assert_eq!(self.phase, Phase::Connecting);
        self.phase = Phase::Open;
        self.checked();
    }

    /// `connection_made` is about to run.
    pub(crate) fn made(&mut self) {
        debug_assert_ne!(self.phase, Phase::Connecting);
        self.set(MADE);
    }

    pub(crate) fn is_made(&self) -> bool {
        self.has(MADE)
    }

    /// Open → Closing (flush, then FIN), unless already closing or aborting.
    /// True if the phase changed.
    pub(crate) fn begin_closing(&mut self) -> bool {
        if self.phase == Phase::Open && !self.has(ABORT) {
            self.phase = Phase::Closing;
            self.checked();
            return true;
        }
        false
    }

    /// The transport layer failed: output is shut, and an open connection
    /// starts closing (its alert goes out first). True if the phase changed.
    pub(crate) fn layer_failed(&mut self) -> bool {
        self.bits |= LAYER_FAILED | OUT_SHUT;
        let closing = self.phase == Phase::Open;
        if closing {
            self.phase = Phase::Closing;
        }
        self.checked();
        closing
    }

    pub(crate) fn has_layer_failed(&self) -> bool {
        self.has(LAYER_FAILED)
    }

    /// FIN went out (graceful close or half-close).
    pub(crate) fn fin_sent(&mut self) {
        debug_assert_ne!(self.phase, Phase::Connecting);
        self.set(FIN_SENT | OUT_SHUT);
    }

    pub(crate) fn is_fin_sent(&self) -> bool {
        self.has(FIN_SENT)
    }

    /// Closing → Lingering: FIN is out, the peer's input is drained.
    pub(crate) fn linger(&mut self) {
        debug_assert!(self.has(FIN_SENT));
        self.phase = Phase::Lingering;
        self.checked();
    }

    /// Refuses all further output (`connection_lost` began, or the
    /// connection is closing without a FIN).
    pub(crate) fn shut_output(&mut self) {
        self.set(OUT_SHUT);
    }

    /// True while writes are queued: open or closing (a close flushes what
    /// was written before it), not aborting, output not shut.
    pub(crate) fn accepts_output(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing) && !self.has(ABORT | OUT_SHUT)
    }

    /// Closing, or half-closed: the end of the output is due once it is flushed.
    pub(crate) fn is_closing_or_half_closed(&self) -> bool {
        self.phase == Phase::Closing || self.has(HALF_CLOSE)
    }

    /// True once the connection is closing or aborting (`Conn::is_closing`).
    pub(crate) fn is_closing(&self) -> bool {
        self.phase != Phase::Open || self.has(ABORT)
    }

    pub(crate) fn is_outbound(&self) -> bool {
        self.has(OUTBOUND)
    }

    pub(crate) fn is_counted(&self) -> bool {
        self.has(COUNTED)
    }

    /// Accepted by a `reuse_port` shard itself: not in the server-wide total.
    pub(crate) fn uncounted(&mut self) {
        self.clear(COUNTED);
    }

    /// Counted in the per-source-address table.
    pub(crate) fn ip_counted(&mut self) {
        self.set(IP_COUNTED);
    }

    pub(crate) fn is_ip_counted(&self) -> bool {
        self.has(IP_COUNTED)
    }

    /// Passed the per-source-address limits.
    pub(crate) fn address_admitted(&mut self) {
        self.set(ADDRESS_ADMITTED);
    }

    pub(crate) fn is_address_admitted(&self) -> bool {
        self.has(ADDRESS_ADMITTED)
    }

    // ---- close intent ----------------------------------------------------

    /// Asks for an abort (RST). True if it had not been asked for yet.
    pub(crate) fn request_abort(&mut self) -> bool {
        let first = !self.has(ABORT);
        self.set(ABORT);
        first
    }

    pub(crate) fn abort_requested(&self) -> bool {
        self.has(ABORT)
    }

    /// A protocol callback panicked.
    pub(crate) fn callback_panicked(&mut self) {
        self.set(PANICKED);
    }

    pub(crate) fn has_panicked(&self) -> bool {
        self.has(PANICKED)
    }

    /// `shutdown_write`: output is shut now, FIN once it is flushed. True
    /// if this call asked for it (open, not aborting, not asked before).
    pub(crate) fn request_half_close(&mut self) -> bool {
        if self.phase == Phase::Open && !self.has(ABORT | HALF_CLOSE) {
            self.set(HALF_CLOSE | OUT_SHUT);
            return true;
        }
        false
    }

    pub(crate) fn is_half_closed(&self) -> bool {
        self.has(HALF_CLOSE)
    }

    /// `close_without_linger`, on an open connection not aborting.
    pub(crate) fn request_no_linger(&mut self) {
        if self.phase == Phase::Open && !self.has(ABORT) {
            self.set(NO_LINGER);
        }
    }

    pub(crate) fn is_no_linger(&self) -> bool {
        self.has(NO_LINGER)
    }

    /// `close_when_idle` with work still holding the connection.
    pub(crate) fn close_when_idle(&mut self) {
        self.set(CLOSE_WHEN_IDLE);
    }

    /// True (once) if a close waits for the holds to end.
    pub(crate) fn take_close_when_idle(&mut self) -> bool {
        self.take(CLOSE_WHEN_IDLE)
    }

    #[cfg(test)]
    pub(crate) fn closes_when_idle(&self) -> bool {
        self.has(CLOSE_WHEN_IDLE)
    }
}

mod sides;
#[cfg(test)]
mod tests;
