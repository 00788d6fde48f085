//! Protocols talking to each other through a simulated network, in one
//! thread, on one virtual clock, every choice drawn from a seed: Twisted's
//! `iosim` and `task.Clock`, turmoil's hosts, with a hostile wire.
//!
//! - [`connected`] joins one client protocol to one server protocol
//!   ([`SimPair`]): the simplest use, Twisted's `connectedServerAndClient`.
//! - [`World`] holds hosts with names, each one server of several shards,
//!   that listen on ports and connect to each other by name (through the
//!   shards' own resolver cache, Happy Eyeballs and connect timeouts):
//!   servers, their backends and their clients at once.
//!
//! Every connection is a real connection of a real shard: the protocols,
//! framing, TLS, timers, the bus between shards and tasks run exactly the
//! production code, unchanged. What one end flushes is cut into pieces of
//! random sizes and delivered after a random latency, in order (TCP never
//! reorders; loss shows as delay), no faster than the receiver reads (a
//! [`Network::window`] of bytes in flight or unread, so a peer that stops
//! reading fills the sender's buffers). A FIN follows an end's last byte,
//! an abort arrives as a reset, bytes sent to a closed connection are
//! answered with a reset, and the network may reset a connection itself at
//! random. The same seed gives the same run, byte for byte and tick for
//! tick, and the trace records it so a failure replays and can be shown.

mod pair;
#[cfg(test)]
mod pair_tests;
mod world;
#[cfg(test)]
mod world_tests;

pub use pair::{connected, SimPair};
pub use world::{HostId, LinkEvent, World, WorldEvent};

use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// How the simulated wire behaves; every draw comes from the seed.
#[derive(Debug, Clone)]
pub struct Network {
    /// Flushed bytes are cut into pieces of 1 to this many bytes.
    pub max_piece: usize,
    /// Each piece arrives after a latency drawn in this range (never
    /// before a piece sent earlier the same way).
    pub latency: (Duration, Duration),
    /// The chance, per piece delivered, that the network resets the
    /// connection there (both sides get a reset; nothing more arrives).
    pub reset_chance: f64,
    /// Bytes one direction of a [`World`] connection holds in flight and
    /// unread by the receiver; past it the sender's socket fills, and then
    /// its connection's output (TCP's window and the receive buffer).
    pub window: usize,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            max_piece: 7,
            latency: (Duration::from_micros(50), Duration::from_millis(5)),
            reset_chance: 0.0,
            window: 256 * 1024,
        }
    }
}

impl Network {
    /// A latency drawn from the range.
    fn latency(&self, rng: &mut fastrand::Rng) -> Duration {
        let (lo, hi) = self.latency;
        let span = u64::try_from(hi.saturating_sub(lo).as_nanos()).unwrap_or(u64::MAX);
        lo + Duration::from_nanos(rng.u64(0..=span))
    }

    /// The size of the next piece of `left` bytes.
    fn piece(&self, rng: &mut fastrand::Rng, left: usize) -> usize {
        rng.usize(1..=self.max_piece.max(1)).min(left)
    }

    /// Whether the network resets the connection at this piece.
    fn cuts(&self, rng: &mut fastrand::Rng) -> bool {
        self.reset_chance > 0.0 && rng.f64() < self.reset_chance
    }
}

/// Which end of a connection an event concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The connecting end.
    Client,
    /// The accepting end.
    Server,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// What arrived at an end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// A piece of the other end's bytes.
    Data(Vec<u8>),
    /// The other end's FIN.
    Fin,
    /// A reset (the other end aborted, or the network cut it).
    Reset,
}

/// One delivery of a [`SimPair`] run: when (virtual time since the
/// start), to whom, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Virtual time since the run began.
    pub at: Duration,
    /// The end it arrived at.
    pub to: Side,
    /// What arrived.
    pub what: Arrival,
}

/// What is on its way, in order of arrival; things sent the same way
/// (the same lane: one direction of one connection) never overtake each
/// other, as on a TCP connection.
struct Timeline<T> {
    due: BinaryHeap<Due<T>>,
    /// Sequence numbers keep equal times in the order they were sent.
    sent: u64,
    /// When the last thing sent on each lane arrives.
    lanes: HashMap<(usize, Side), Duration>,
}

struct Due<T> {
    at: Duration,
    seq: u64,
    what: T,
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Due<T> {}

impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Due<T> {
    /// Earliest first (the heap is a max-heap).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<T> Timeline<T> {
    fn new() -> Self {
        Timeline {
            due: BinaryHeap::new(),
            sent: 0,
            lanes: HashMap::new(),
        }
    }

    /// Sends `what` on `lane`, to arrive at `at` or after everything sent
    /// on the lane before it.
    fn send(&mut self, lane: (usize, Side), at: Duration, what: T) {
        let last = self.lanes.entry(lane).or_default();
        let at = at.max(*last);
        *last = at;
        self.sent += 1;
        self.due.push(Due {
            at,
            seq: self.sent,
            what,
        });
    }

    /// When the next thing arrives.
    fn next_at(&self) -> Option<Duration> {
        self.due.peek().map(|d| d.at)
    }

    /// The next thing that has arrived by `now`.
    fn arrived(&mut self, now: Duration) -> Option<T> {
        if self.next_at()? > now {
            return None;
        }
        self.due.pop().map(|d| d.what)
    }

    fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    fn clear(&mut self) {
        self.due.clear();
    }
}
