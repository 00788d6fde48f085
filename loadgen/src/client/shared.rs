//! What the connections of a run share: the run's settings and counters,
//! the pacing of new connections, a connection's place in the plan.

use crate::codec::Codec;
use crate::config::Mode;
use crate::plan::Schedule;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

/// State shared by every connection of a run.
pub(crate) struct RunShared {
    /// The run's scenario this is (its recorder on each shard).
    pub(crate) scenario: usize,
    /// Nanoseconds after `origin` at which the run was stopped early (an
    /// `abort_on_fail` objective failed); [`UNSET`] while it runs.
    pub(crate) stopped: AtomicU64,
    /// Seeds of the connections' template draws, one each.
    pub(crate) seeds: AtomicU64,
    pub(crate) codec: Codec,
    /// HTTP/2: the requests as streams (`None`: HTTP/1.1 or another
    /// workload, sent as the codec's bytes).
    pub(crate) h2: Option<crate::codec::H2Requests>,
    pub(crate) mode: Mode,
    pub(crate) target: shardloop::Addr,
    /// Requests intended at or after this count (plus `offset`).
    pub(crate) base_measure_from: Instant,
    /// No request is sent after this (plus `offset`).
    pub(crate) base_end: Instant,
    /// Nanoseconds the measured window moves later: the closed loop's
    /// connect phase, set once it is over ([`UNSET`] until then, which puts
    /// the window beyond reach: requests before it are warm-up).
    pub(crate) offset: AtomicU64,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// Closed loop: pause after each answer before the next request.
    pub(crate) think: Duration,
    /// Open loop: the rate plan (warm-up included), from `origin`.
    pub(crate) plan: Option<crate::plan::RatePlan>,
    /// When the plan's time 0 is.
    pub(crate) origin: Instant,
    /// Connections the run keeps open.
    pub(crate) connections: usize,
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

/// `RunShared::offset` before the connect phase is over.
pub(crate) const UNSET: u64 = u64::MAX;

impl RunShared {
    fn shifted(&self, t: Instant) -> Instant {
        let by = match self.offset.load(std::sync::atomic::Ordering::Acquire) {
            UNSET => Duration::from_secs(10 * 365 * 86_400),
            ns => Duration::from_nanos(ns),
        };
        t.checked_add(by).unwrap_or(t)
    }

    /// Requests intended at or after this count.
    pub(crate) fn measure_from(&self) -> Instant {
        self.shifted(self.base_measure_from)
    }

    /// No request is sent after this.
    pub(crate) fn end(&self) -> Instant {
        let end = self.shifted(self.base_end);
        match self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            UNSET => end,
            ns => end.min(self.origin + Duration::from_nanos(ns)),
        }
    }

    /// Stops the run now: no request is sent after this.
    pub(crate) fn stop_now(&self) {
        let ns = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos()
            .min(u128::from(UNSET - 1)) as u64;
        let _ = self.stopped.compare_exchange(
            UNSET,
            ns,
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
        );
    }

    /// A connection connected or failed. The last of the run's connections
    /// to do so ends the connect phase (closed loop): the measured window
    /// starts now, before this connection sends anything, so its first
    /// requests are measured.
    pub(crate) fn connection_resolved(&self) {
        if self.all_resolved() {
            self.end_connect_phase();
        }
    }

    /// Every connection of the run has connected or failed (at least once).
    pub(crate) fn all_resolved(&self) -> bool {
        let done = self.connected.load(std::sync::atomic::Ordering::Acquire)
            + self
                .connect_failed
                .load(std::sync::atomic::Ordering::Acquire);
        done >= self.connections
    }

    /// Ends the connect phase now if it has not ended (once: the first call
    /// wins). Returns how long it lasted.
    pub(crate) fn end_connect_phase(&self) -> Duration {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        let ns = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos()
            .min(u128::from(UNSET - 1)) as u64;
        match self.offset.compare_exchange(UNSET, ns, AcqRel, Acquire) {
            Ok(_) => Duration::from_nanos(ns),
            Err(set) => Duration::from_nanos(set),
        }
    }
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
