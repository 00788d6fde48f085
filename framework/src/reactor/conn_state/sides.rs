//! The read side and the write side of the connection state: pausing,
//! backpressure, EOF; flush marks, blocked output, flush watches, producer
//! pauses, forwarding waits.

use super::*;

impl ConnState {
    // ---- read side -------------------------------------------------------

    /// True while the shard should read from the socket.
    pub(crate) fn wants_input(&self) -> bool {
        !self.has(READ_PAUSED | BACKPRESSURE | PEER_EOF | FORWARD_BLOCKED | IN_FLIGHT_FULL)
    }

    /// The protocol (or its reading task) pauses reading; a resume not yet
    /// reported is forgotten, since reading is paused again.
    pub(crate) fn pause_reading(&mut self) {
        self.bits = (self.bits | READ_PAUSED) & !RESUMED;
        self.checked();
    }

    /// Resumes reading; true if it was paused (then `reading_resumed` is owed).
    pub(crate) fn resume_reading(&mut self) -> bool {
        if self.take(READ_PAUSED) {
            self.set(RESUMED);
            return true;
        }
        false
    }

    pub(crate) fn is_read_paused(&self) -> bool {
        self.has(READ_PAUSED)
    }

    /// True (once) if `reading_resumed` is owed.
    pub(crate) fn take_resumed(&mut self) -> bool {
        self.take(RESUMED)
    }

    /// The output reached the high-water mark on an open connection: stop
    /// reading. True if this starts it.
    pub(crate) fn start_backpressure(&mut self) -> bool {
        if self.phase == Phase::Open && !self.has(BACKPRESSURE) {
            self.set(BACKPRESSURE);
            return true;
        }
        false
    }

    /// The output drained to the low-water mark: true if reading was held.
    pub(crate) fn end_backpressure(&mut self) -> bool {
        self.take(BACKPRESSURE)
    }

    /// The poller said the peer's FIN is in: read until EOF.
    pub(crate) fn read_closed(&mut self) {
        self.set(READ_CLOSED);
    }

    pub(crate) fn is_read_closed(&self) -> bool {
        self.has(READ_CLOSED)
    }

    /// The peer's EOF was read.
    pub(crate) fn peer_eof(&mut self) {
        self.set(PEER_EOF);
    }

    pub(crate) fn is_peer_eof(&self) -> bool {
        self.has(PEER_EOF)
    }

    /// The connection this one forwards into is full: stop reading.
    pub(crate) fn block_forwarding(&mut self) {
        self.set(FORWARD_BLOCKED);
    }

    /// The forwarding target drained (or forwarding stopped): true if
    /// reading was held for it.
    pub(crate) fn unblock_forwarding(&mut self) -> bool {
        self.take(FORWARD_BLOCKED)
    }

    /// Whether the protocol's work in flight is at its limit: reading
    /// waits while it is. True if this changed it.
    pub(crate) fn set_in_flight_full(&mut self, full: bool) -> bool {
        let was = self.has(IN_FLIGHT_FULL);
        if full {
            self.bits |= IN_FLIGHT_FULL;
        } else {
            self.bits &= !IN_FLIGHT_FULL;
        }
        was != full
    }

    // ---- write side ------------------------------------------------------

    /// Marks the connection for a flush this iteration; true if it was not
    /// marked yet (the caller lists it).
    pub(crate) fn mark_dirty(&mut self) -> bool {
        let first = !self.has(DIRTY);
        self.bits |= DIRTY;
        first
    }

    /// True (once) if a flush is due.
    pub(crate) fn take_dirty(&mut self) -> bool {
        self.take(DIRTY)
    }

    /// Whether the socket refused output (waiting for a writable event).
    pub(crate) fn set_write_blocked(&mut self, blocked: bool) {
        self.bits = (self.bits & !WRITE_BLOCKED) | if blocked { WRITE_BLOCKED } else { 0 };
    }

    pub(crate) fn is_write_blocked(&self) -> bool {
        self.has(WRITE_BLOCKED)
    }

    /// The socket is writable again: true if output was waiting for it.
    pub(crate) fn writable(&mut self) -> bool {
        self.take(WRITE_BLOCKED)
    }

    /// True if something waits for the output to drain: reading held by
    /// backpressure, a forwarder, a paused producer (one test for all).
    pub(crate) fn waits_for_drain(&self) -> bool {
        self.has(BACKPRESSURE | DRAIN_WAITER | PRODUCING_PAUSED)
    }

    /// A connection forwarding into this one waits for the output to drain.
    pub(crate) fn wait_for_drain(&mut self) {
        self.bits |= DRAIN_WAITER;
    }

    /// Whether forwarders wait for this output to drain.
    pub(crate) fn is_drain_waiter(&self) -> bool {
        self.has(DRAIN_WAITER)
    }

    /// The connection moved to another shard: it is on no flush list
    /// there yet and has no writable event pending (the new poller reports
    /// the socket's readiness afresh).
    pub(crate) fn moved(&mut self) {
        self.clear(DIRTY | WRITE_BLOCKED);
    }

    /// True (once) if forwarders wait for this output to drain.
    pub(crate) fn take_drain_waiter(&mut self) -> bool {
        self.take(DRAIN_WAITER)
    }

    /// `notify_flushed`.
    pub(crate) fn watch_flush(&mut self) {
        self.bits |= FLUSH_WATCH;
    }

    pub(crate) fn watches_flush(&self) -> bool {
        self.has(FLUSH_WATCH)
    }

    /// `output_flushed` is about to run: the watch goes on while output is left.
    pub(crate) fn flush_reported(&mut self, output_left: bool) {
        if !output_left {
            self.clear(FLUSH_WATCH);
        }
    }

    /// A large write went straight to the socket.
    pub(crate) fn wrote_through(&mut self) {
        self.bits |= WROTE_THROUGH;
    }

    /// True (once) if a write went straight to the socket since the last flush.
    pub(crate) fn take_wrote_through(&mut self) -> bool {
        self.take(WROTE_THROUGH)
    }

    /// The output reached the high-water mark: true if the protocol is to
    /// be told `pause_producing` now.
    pub(crate) fn pause_producing(&mut self) -> bool {
        let first = !self.has(PRODUCING_PAUSED);
        self.bits |= PRODUCING_PAUSED;
        first
    }

    /// The output drained: true if the protocol is to be told `resume_producing`.
    pub(crate) fn resume_producing(&mut self) -> bool {
        self.take(PRODUCING_PAUSED)
    }
}
