//! What the connections of a run share: the run's settings and counters,
//! the pacing of new connections, a connection's place in the plan.

use crate::codec::Codec;
use crate::config::Mode;
use crate::plan::Schedule;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

/// State shared by every connection of a run.
pub(crate) struct RunShared {
    pub(crate) codec: Codec,
    pub(crate) mode: Mode,
    pub(crate) target: std::net::SocketAddr,
    /// Requests intended at or after this count.
    pub(crate) measure_from: Instant,
    /// No request is sent after this.
    pub(crate) end: Instant,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// Open loop: the rate plan (warm-up included), from `origin`.
    pub(crate) plan: Option<crate::plan::RatePlan>,
    /// When the plan's time 0 is.
    pub(crate) origin: Instant,
    pub(crate) connected: AtomicUsize,
    pub(crate) connect_failed: AtomicUsize,
    /// Connections still running (not finished draining).
    pub(crate) active: AtomicUsize,
    pub(crate) replaced: AtomicU64,
    /// The first connect error, for a clear message when none connects.
    pub(crate) first_connect_error: std::sync::OnceLock<String>,
    pub(crate) tls: Option<crate::config::TlsTarget>,
    /// Responses per connection before it is closed and replaced.
    pub(crate) reconnect_every: Option<u64>,
    /// Connections closed on purpose by `reconnect_every` and replaced.
    pub(crate) reconnects: AtomicU64,
    /// `--conn-rate`: time between two new connections on one shard.
    pub(crate) conn_interval: Option<Duration>,
}

/// Paces new connections on one shard (`--conn-rate`).
#[derive(Default)]
pub(crate) struct ConnPacer {
    next: Option<Instant>,
}

impl ConnPacer {
    /// The time of the next free slot, at `interval` from the previous one.
    pub(crate) fn slot(&mut self, now: Instant, interval: Duration) -> Instant {
        let slot = self.next.map_or(now, |n| n.max(now));
        self.next = Some(slot + interval);
        slot
    }
}

/// Where a connection stands in the open-loop plan: its next intended send
/// and the schedule beyond it. A replacement connection takes it over.
pub(crate) struct Due {
    pub(crate) next: Instant,
    pub(crate) schedule: Schedule,
}
