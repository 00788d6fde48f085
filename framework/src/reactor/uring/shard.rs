//! The shard on the completion backend: it waits on its ring instead of
//! epoll, takes each connection's input from the ring's buffers, and hands
//! each connection's output queue to the kernel in a send submitted with
//! the iteration's others. What stays readiness-driven (the bus's
//! wake-ups, the timerfd, UDP sockets, listeners, connects in progress)
//! keeps its epoll set, itself watched through the ring.
//!
//! A connection joins the ring once it is connected (accepted, connected,
//! or arrived from another shard) and leaves it when it ends or moves.
//! Input the protocol cannot take when it arrives (reading paused, the
//! connection closing) is kept in the connection's stash, the receive
//! stopped, and delivered in order when reading resumes: what was in
//! flight is all a stopped peer can make us hold.

use super::driver::{Completion, Driver};
use crate::api::CloseReason;
use crate::net::Stream;
use crate::reactor::conn_core::Phase;
use crate::reactor::shard::Shard;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

/// The tag of the shard's epoll set, watched through the ring.
const EPOLL_TAG: u32 = 0;
/// Submissions the ring holds (its completion queue holds twice that).
const RING_ENTRIES: u32 = 4096;
/// Receive buffers per shard, and their size: what all the shard's
/// connections can have received and not yet handed on, at once (taken at
/// start: a fixed cost of the shard, none of a connection's). Consumed
/// incrementally (Linux 6.12), a buffer holds the pieces of many
/// receives, so they can be large: a burst up to the epoll loop's read
/// (64 KiB) arrives in one piece (one completion, one callback) where a
/// 16 KiB buffer split it in four. And they should be few: the kernel
/// takes them in turn, so all of them are the memory the receives' copies
/// write to, where the epoll loop reads into one hot buffer. (4 KiB × 16
/// pipelined echo, io-uring ÷ epoll per CPU-second, 5 rounds each, 64 and
/// 1,000 connections: 32 × 64 KiB 0.88–0.93, 16 × 64 KiB 0.95–0.98;
/// 8 × 64 KiB 1.01 with 64 connections but 0.80 with 1,000, which run
/// out of buffers; 128 × 64 KiB 0.74; 16 KiB buffers worse at any count.)
/// Without incremental consumption a buffer is a receive's whatever its
/// size, so they are smaller and more.
const INC_BUFFERS: u16 = 16;
const INC_BUFFER_SIZE: usize = 64 * 1024;
const BUFFERS: u16 = 128;
const BUFFER_SIZE: usize = 16 * 1024;

/// Input that arrived when its connection could not take it.
#[derive(Default)]
pub(super) struct Stash {
    pub(super) bytes: Vec<u8>,
    /// `bytes[..at]` were delivered already.
    pub(super) at: usize,
    pub(super) eof: bool,
}

/// A shard's ring and what it keeps per connection.
pub(crate) struct Ring {
    pub(super) driver: Driver,
    /// By slot.
    /// By slot, boxed: a connection that never stashes pays a pointer.
    stash: Vec<Option<Box<Stash>>>,
    /// The epoll set had more events than one poll takes: poll it again
    /// without waiting.
    pub(crate) epoll_again: bool,
    /// Connections whose receive ran out of buffers (slot, generation),
    /// in the order they did: re-armed as buffers come back.
    pub(crate) starved: std::collections::VecDeque<(usize, u32)>,
}

impl Ring {
    /// A ring for a shard whose epoll set is `epoll`.
    pub(crate) fn new(epoll: RawFd) -> io::Result<Ring> {
        let incremental = super::probe::probe().is_ok_and(|f| f.incremental_buffers);
        let driver = if incremental {
            Driver::new(RING_ENTRIES, INC_BUFFERS, INC_BUFFER_SIZE, true)?
        } else {
            Driver::new(RING_ENTRIES, BUFFERS, BUFFER_SIZE, false)?
        };
        Ok(Ring::on(driver, epoll))
    }

    fn on(mut driver: Driver, epoll: RawFd) -> Ring {
        driver.watch(EPOLL_TAG, epoll);
        Ring {
            driver,
            stash: Vec::new(),
            epoll_again: false,
            starved: std::collections::VecDeque::new(),
        }
    }

    pub(super) fn stash(&mut self, slot: usize) -> &mut Stash {
        if self.stash.len() <= slot {
            self.stash.resize_with(slot + 1, || None);
        }
        self.stash[slot].get_or_insert_with(Box::default)
    }

    /// What `slot` has stashed (empty if nothing), the stash freed.
    pub(super) fn take_stash(&mut self, slot: usize) -> Stash {
        self.stash
            .get_mut(slot)
            .and_then(Option::take)
            .map_or_else(Stash::default, |b| *b)
    }

    pub(super) fn has_stash(&self, slot: usize) -> bool {
        self.stash
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.at < s.bytes.len() || s.eof)
    }
}

/// The descriptor of a kernel socket (a virtual stream has none, but in
/// a scripted kernel's).
fn fd_of(stream: &Stream) -> Option<RawFd> {
    match stream {
        Stream::Tcp(s) => Some(s.as_raw_fd()),
        Stream::Unix(s) => Some(s.as_raw_fd()),
        #[cfg(all(test, target_os = "linux"))]
        Stream::Virtual(v) => v.ring_fd(),
        #[cfg(not(all(test, target_os = "linux")))]
        Stream::Virtual(_) => None,
    }
}

/// How a test's scripted kernel is set up.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScriptedRing {
    /// Receive buffers (a power of two) and their size.
    pub(crate) buffers: u16,
    pub(crate) buffer_size: usize,
    /// Consumed incrementally (Linux 6.12), or whole.
    pub(crate) incremental: bool,
    /// The kernel has `SENDMSG_ZC`.
    pub(crate) zero_copy: bool,
}

impl Shard {
    /// Runs this shard's connections on a scripted kernel from now on
    /// (the testing kit's completion model).
    #[cfg(test)]
    pub(crate) fn use_scripted_ring(
        &mut self,
        kernel: Box<dyn super::kernel::Scripted>,
        how: ScriptedRing,
    ) -> io::Result<()> {
        let kernel = super::kernel::Kernel::Scripted(kernel);
        let ScriptedRing {
            buffers,
            buffer_size,
            incremental,
            zero_copy,
        } = how;
        let driver = Driver::on(kernel, buffers, buffer_size, incremental, zero_copy)?;
        self.ring = Some(Box::new(Ring::on(driver, self.poll.as_raw_fd())));
        Ok(())
    }

    /// True if the connection in `slot` does its I/O through the ring.
    #[inline]
    pub(crate) fn on_ring(&self, slot: usize) -> bool {
        self.ring
            .as_ref()
            .is_some_and(|r| r.driver.is_open(slot as u32))
    }

    /// Whether a connection about to be set up goes on the ring (then it
    /// is not registered with epoll).
    pub(crate) fn ring_takes(&self, stream: &Stream) -> bool {
        self.ring.is_some() && fd_of(stream).is_some()
    }

    /// Puts the live connection in `slot` on the ring: its receive armed.
    pub(crate) fn ring_open(&mut self, slot: usize) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        let Some(c) = self.conns.get(slot) else {
            return;
        };
        if let Some(fd) = fd_of(&c.core.stream) {
            ring.take_stash(slot);
            ring.driver.open(slot as u32, c.core.id.generation(), fd);
        }
    }

    /// The connection in `slot` has ended: off the ring, which closes
    /// its socket after cancelling what it had armed on it. Returns the
    /// stream back if the connection was not on the ring (its drop closes
    /// it).
    pub(crate) fn ring_close(&mut self, slot: usize, stream: Stream) -> Option<Stream> {
        if !self.on_ring(slot) {
            return Some(stream);
        }
        let ring = self.ring.as_mut().expect("on the ring");
        ring.take_stash(slot);
        let fd = match stream {
            Stream::Tcp(s) => Some(s.into_raw_fd()),
            Stream::Unix(s) => Some(s.into_raw_fd()),
            // (A scripted kernel's socket: the kernel forgets its number,
            // the stream drops here.)
            Stream::Virtual(v) => fd_of(&Stream::Virtual(v)),
        };
        ring.driver.close(slot as u32, fd);
        None
    }

    /// Submits the iteration's operations and waits for completions.
    /// Sends to sockets with room complete as they are submitted: those
    /// are settled here, before waiting, so that a reply does not cost a
    /// wake-up of its own for its completion (the epoll loop's write
    /// needs none either).
    pub(crate) fn ring_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ring_feed_starved();
        let ring = self.ring.as_mut().expect("a ring shard");
        ring.driver.submit()?;
        if ring.epoll_again || !ring.starved.is_empty() {
            // (Starved receives wait for their turn: no sleeping on them.)
            return Ok(());
        }
        let mut settled = false;
        while let Some(c) = self
            .ring
            .as_mut()
            .expect("a ring shard")
            .driver
            .next_send(&mut self.ctx.pool)
        {
            self.on_completion(c);
            settled = true;
        }
        let ring = self.ring.as_ref().expect("a ring shard");
        if ring.driver.has_completions() {
            return Ok(());
        }
        let timeout = if settled {
            // Their bookkeeping (a flush watch, a producer resumed) may
            // have left work or set a timer.
            let (again, _) = self.poll_timeout();
            match (timeout, again) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        } else {
            timeout
        };
        let ring = self.ring.as_mut().expect("a ring shard");
        ring.driver.wait(timeout)
    }

    /// Re-arms receives that ran out of buffers, oldest first: one per
    /// buffer given back since the last iteration (at least one, so each
    /// iteration makes progress). Re-armed all at once, as they were, a
    /// thousand connections with bulk input met the empty ring again and
    /// again: seven `ENOBUFS` completions per one with data (4 KiB × 16
    /// pipelined echo, 1,000 connections, 16 buffers).
    fn ring_feed_starved(&mut self) {
        let ring = self.ring.as_mut().expect("a ring shard");
        if ring.starved.is_empty() {
            return;
        }
        let mut budget = ring.driver.take_returned().max(1);
        while budget > 0 {
            let ring = self.ring.as_mut().expect("a ring shard");
            let Some((slot, gen)) = ring.starved.pop_front() else {
                break;
            };
            let current = self
                .conns
                .get(slot)
                .is_some_and(|c| c.core.id.generation() == gen);
            if current && self.live_slot(slot) {
                self.ring_rearm(slot);
                budget -= 1;
            }
        }
    }

    /// Acts on the completions of the last wait.
    pub(crate) fn ring_dispatch(&mut self) {
        // Each completion is read (and checked against its connection's
        // generation) just before it is acted on: acting on one may close
        // a connection and give its slot to a new one, so a completion
        // read earlier could be taken for the new connection's.
        // A send's completion is bookkeeping, as an epoll loop's write is
        // none: the events are receives and the epoll set's (counted by
        // `dispatch_io`); one wait is one wake-up however its events came.
        let (wakeups, events_before) = (self.ctx.counters.wakeups, self.ctx.counters.events);
        let mut before = self.ctx.now;
        let mut epoll_again =
            std::mem::take(&mut self.ring.as_mut().expect("a ring shard").epoll_again);
        loop {
            let ring = self.ring.as_mut().expect("a ring shard");
            let c = match ring.driver.next(&mut self.ctx.pool) {
                Some(c) => c,
                None if epoll_again => {
                    epoll_again = false;
                    Completion::Polled { tag: EPOLL_TAG }
                }
                None => break,
            };
            let slot = match &c {
                Completion::Data { slot, .. }
                | Completion::Eof { slot }
                | Completion::RecvError { slot, .. }
                | Completion::RecvStopped { slot, .. } => {
                    self.ctx.counters.events += 1;
                    Some(*slot as usize)
                }
                Completion::Sent { slot, .. } => Some(*slot as usize),
                Completion::Polled { .. } => None,
                Completion::Accepted { .. } | Completion::AcceptFailed { .. } => {
                    self.ctx.counters.events += 1;
                    None
                }
            };
            self.on_completion(c);
            before = match slot {
                Some(slot) => self.charge_callback(slot, before),
                None => Instant::now(),
            };
        }
        self.ctx.now = before;
        if self.ctx.counters.events > events_before {
            self.ctx.counters.wakeups = wakeups + 1;
        }
    }

    fn on_completion(&mut self, c: Completion) {
        match c {
            Completion::Polled { tag } => {
                debug_assert_eq!(tag, EPOLL_TAG, "the only descriptor watched");
                // The epoll set has events: take them as the epoll loop does.
                if let Err(e) = self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
                    if e.kind() != io::ErrorKind::Interrupted {
                        tracing::error!(shard = self.ctx.index, error = %e, "epoll_wait failed");
                    }
                }
                let full = self.events.iter().count() >= self.events.capacity();
                if let Some(ring) = self.ring.as_mut() {
                    ring.epoll_again = full;
                }
                self.dispatch_io();
            }
            Completion::Data { slot, piece } => self.ring_data(slot as usize, piece),
            Completion::Eof { slot } => {
                let slot = slot as usize;
                if !self.live_slot(slot) {
                    return;
                }
                let ring = self.ring.as_mut().expect("a ring shard");
                let c = &self.conns[slot];
                if departing(c) {
                    // The receive armed where it arrives reads the EOF
                    // again (a socket's EOF stays): the protocol hears it
                    // there, after the input that travels with it.
                    return;
                }
                if ring.has_stash(slot) || !ring_deliverable(c) {
                    if c.core.state.is(Phase::Lingering) {
                        return self.release(slot, false);
                    }
                    ring.stash(slot).eof = true;
                    return;
                }
                self.ring_eof(slot);
            }
            Completion::RecvError { slot, error } => {
                let slot = slot as usize;
                if self.live_slot(slot) {
                    self.finish(slot, CloseReason::io(&error), true);
                }
            }
            Completion::RecvStopped { slot, starved } => {
                let slot = slot as usize;
                if !self.live_slot(slot) {
                    return;
                }
                if starved {
                    // Out of buffers: armed again as buffers come back
                    // (`ring_feed_starved`), not at once, where it would
                    // only meet the empty ring again.
                    let gen = self.conns[slot].core.id.generation();
                    let ring = self.ring.as_mut().expect("a ring shard");
                    ring.starved.push_back((slot, gen));
                } else {
                    // Stopped for a pause that may be over: arm again if
                    // it reads.
                    self.ring_rearm(slot);
                }
            }
            Completion::Accepted { listener, fd } => self.ring_accepted(listener as usize, fd),
            Completion::AcceptFailed { listener, error } => {
                self.accept_failed(listener as usize, &error)
            }
            Completion::Sent { slot, sent, out } => {
                // Its bookkeeping (a flush watch, a producer resumed) is
                // the flush's, as on the epoll loop: timed as that phase.
                let previous = self.phase.0;
                self.mark(crate::sync::marks::LoopPhase::Flush, Instant::now());
                self.ring_sent(slot as usize, sent, out);
                self.mark(previous, Instant::now());
            }
        }
    }

    pub(super) fn live_slot(&self, slot: usize) -> bool {
        self.conns.contains(slot) && self.on_ring(slot)
    }

    /// `flush_conn` for a connection on the ring: its whole queue goes to
    /// the kernel in one send (unless one is in flight: its completion
    /// sends the rest).
    pub(crate) fn ring_flush(&mut self, slot: usize) {
        let ring = self.ring.as_mut().expect("a ring shard");
        if ring.driver.sending(slot as u32) {
            // What the peer has not taken: the send in flight and what
            // waits behind it (the output cap applies to both).
            let c = &mut self.conns[slot];
            c.core.held = u32::try_from(c.core.unsent()).unwrap_or(u32::MAX);
            return;
        }
        let c = &mut self.conns[slot];
        if !c.core.out.is_empty() && !departing(c) {
            // (A connection about to move sends nothing new: its queue
            // goes with it.)
            let out = std::mem::take(&mut c.core.out);
            let zero_copy = self.ctx.settings.zero_copy_threshold;
            match ring.driver.send(slot as u32, out, zero_copy) {
                Ok(()) => {
                    // Until it completes: no write of its own goes past it.
                    c.core.state.set_write_blocked(true);
                    let held = ring.driver.in_flight(slot as u32);
                    c.core.in_kernel = u32::try_from(held).unwrap_or(u32::MAX);
                    c.core.held = c.core.in_kernel;
                    return;
                }
                Err(out) => c.core.out = out,
            }
        }
        self.flushed(slot, 0);
    }

    /// A send completed: the unsent rest goes back in front of what was
    /// queued since, and the flush's bookkeeping runs as after a write.
    fn ring_sent(&mut self, slot: usize, sent: io::Result<usize>, mut out: crate::net::WriteBuf) {
        if !self.live_slot(slot) {
            out.clear(&mut self.ctx.pool);
            return;
        }
        let n = match sent {
            Ok(n) => n,
            Err(e) => {
                out.clear(&mut self.ctx.pool);
                return self.finish(slot, CloseReason::io(&e), true);
            }
        };
        self.ctx.counters.bytes_out += n as u64;
        let c = &mut self.conns[slot];
        c.core.in_kernel = 0;
        out.append(std::mem::take(&mut c.core.out));
        c.core.out = out;
        c.core.state.set_write_blocked(false);
        if !c.core.out.is_empty() {
            // The rest goes with this iteration's other sends.
            self.ctx.mark_dirty(&mut c.core);
        }
        self.flushed(slot, n);
    }

    /// A ring connection that was to move and no longer is (its move was
    /// refused) receives and sends again.
    pub(crate) fn ring_resume(&mut self, slot: usize) {
        if !self.live_slot(slot) || departing(&self.conns[slot]) {
            return;
        }
        self.ring_rearm(slot);
        let c = &mut self.conns[slot];
        if !c.core.out.is_empty() {
            self.ctx.mark_dirty(&mut c.core);
        }
    }

    /// A ring connection may move only with nothing in the kernel's hands:
    /// its receive stopped (asked for here: the move is tried again once
    /// it has) and no send in flight. Input it holds undelivered goes with
    /// it (as input read before a layer, which the arriving side hands on
    /// first); a stashed EOF need not: the socket's EOF stays, and the
    /// receive armed where it arrives reads it again.
    pub(crate) fn ring_quiesce(&mut self, slot: usize) -> Quiet {
        let ring = self.ring.as_mut().expect("a ring shard");
        if ring.driver.sending(slot as u32) || ring.driver.receiving(slot as u32) {
            ring.driver.stop_recv(slot as u32);
            return Quiet::NotYet;
        }
        let Stash { bytes, at, .. } = ring.take_stash(slot);
        let bytes = &bytes[at.min(bytes.len())..];
        ring.driver.close(slot as u32, None);
        if !bytes.is_empty() {
            self.conns[slot]
                .core
                .extras()
                .layer_input
                .extend_from_slice(bytes);
        }
        Quiet::Now
    }
}

/// Whether a ring connection can be moved now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Quiet {
    Now,
    NotYet,
}

/// A move to another shard was asked for and waits for the ring to let
/// the connection go.
pub(super) fn departing(c: &crate::reactor::shard::Connection) -> bool {
    c.core
        .extras
        .as_ref()
        .and_then(|e| e.mobility.as_ref())
        .is_some_and(|m| m.target.is_some())
}

/// The connection takes input now (open, its protocol alive, reading not
/// paused or held).
pub(super) fn ring_deliverable(c: &crate::reactor::shard::Connection) -> bool {
    c.core.state.is(Phase::Open) && c.proto.is_some() && c.core.wants_input()
}
