//! A shard inbox's capacity: how many requests (closures, typed messages)
//! may wait in it. A sender takes a slot before it queues a request (one
//! atomic add; the slot is given back if the inbox is full) and the
//! receiving shard gives slots back in one subtraction per drain. Control
//! traffic (wake-ups, replies, worker results, new connections, stop) takes
//! no slot: each of those is bounded by what caused it, and refusing one
//! would lose a result or hang a task.
//!
//! A full inbox never blocks: the sender gets `Full` at once and decides
//! (Seastar's `smp_service_group` limits cross-shard work the same way).
//! The time the inbox spent full runs from the first refusal to the next
//! drain, the moment room appears.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// The inbox was full: the request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

pub(crate) struct Capacity {
    /// Requests queued (or about to be: taken by a sender still batching).
    depth: CachePadded<AtomicUsize>,
    limit: usize,
    /// Requests refused because the inbox was full.
    rejected: AtomicU64,
    /// When the inbox was first found full since the last drain, in ns
    /// since `epoch` plus one (0: not full).
    full_since: AtomicU64,
    /// Nanoseconds spent full, settled at each drain.
    full_ns: AtomicU64,
    epoch: Instant,
}

impl Capacity {
    pub(crate) fn new(limit: usize) -> Self {
        Capacity {
            depth: CachePadded::new(AtomicUsize::new(0)),
            limit: limit.max(1),
            rejected: AtomicU64::new(0),
            full_since: AtomicU64::new(0),
            full_ns: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Takes a slot for one request, or says the inbox is full.
    #[inline]
    pub(crate) fn take(&self) -> Result<(), Full> {
        // Add first, then check: never more than `limit` slots are held,
        // whatever the number of senders racing (a refused add is undone).
        if self.depth.fetch_add(1, Relaxed) < self.limit {
            return Ok(());
        }
        self.depth.fetch_sub(1, Relaxed);
        self.refused();
        Err(Full)
    }

    #[cold]
    fn refused(&self) {
        self.rejected.fetch_add(1, Relaxed);
        let now = self.nanos(Instant::now()) + 1;
        let _ = self.full_since.compare_exchange(0, now, Relaxed, Relaxed);
    }

    /// Gives back `n` slots: their requests were drained (or never sent).
    #[inline]
    pub(crate) fn give_back(&self, n: usize) {
        if n > 0 {
            self.depth.fetch_sub(n, Relaxed);
        }
    }

    /// The receiving shard drained its inbox at `now`: a full spell ends.
    #[inline]
    pub(crate) fn drained(&self, now: Instant) {
        if self.full_since.load(Relaxed) == 0 {
            return;
        }
        let since = self.full_since.swap(0, Relaxed);
        if since > 0 {
            let spent = (self.nanos(now) + 1).saturating_sub(since);
            self.full_ns.fetch_add(spent, Relaxed);
        }
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Relaxed)
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }

    /// Nanoseconds spent full by `now`, a spell still in progress included
    /// (a shard stuck in one iteration drains nothing, and is full all along).
    pub(crate) fn full_ns_at(&self, now: Instant) -> u64 {
        let since = self.full_since.load(Relaxed);
        let current = if since == 0 {
            0
        } else {
            (self.nanos(now) + 1).saturating_sub(since)
        };
        self.full_ns.load(Relaxed) + current
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_limit_holds_and_slots_come_back() {
        let c = Capacity::new(3);
        assert!(c.take().is_ok());
        assert!(c.take().is_ok());
        assert!(c.take().is_ok());
        assert_eq!(c.take(), Err(Full));
        assert_eq!(c.take(), Err(Full));
        assert_eq!((c.depth(), c.rejected()), (3, 2));
        c.give_back(2);
        assert!(c.take().is_ok());
        assert_eq!(c.depth(), 2);
    }

    #[test]
    fn time_full_runs_from_the_first_refusal_to_the_drain() {
        let c = Capacity::new(1);
        c.take().unwrap();
        c.drained(Instant::now());
        assert_eq!(
            c.full_ns_at(Instant::now()),
            0,
            "never full, nothing counted"
        );
        let t0 = Instant::now();
        assert_eq!(c.take(), Err(Full));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.take(), Err(Full));
        let t1 = Instant::now();
        // Still full: the spell so far counts.
        assert!(Duration::from_nanos(c.full_ns_at(t1)) >= Duration::from_millis(20));
        c.give_back(1);
        c.drained(t1);
        let full = Duration::from_nanos(c.full_ns_at(t1 + Duration::from_secs(5)));
        assert!(
            full <= t1 - t0 && full >= Duration::from_millis(20),
            "{full:?}"
        );
        // A drain with no refusal since adds nothing.
        c.drained(Instant::now() + Duration::from_secs(1));
        assert_eq!(Duration::from_nanos(c.full_ns_at(Instant::now())), full);
    }

    /// Many threads taking and giving back: the depth never passes the
    /// limit, and every slot taken is accounted for.
    #[test]
    fn racing_senders_never_pass_the_limit() {
        let c = Arc::new(Capacity::new(8));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut held = 0usize;
                    let mut refused = 0u64;
                    for i in 0..50_000 {
                        match c.take() {
                            Ok(()) => held += 1,
                            Err(Full) => refused += 1,
                        }
                        assert!(
                            c.depth() <= 8 + 4,
                            "transient overshoot is one per racing sender"
                        );
                        if i % 3 == 0 && held > 0 {
                            c.give_back(held);
                            held = 0;
                        }
                    }
                    c.give_back(held);
                    refused
                })
            })
            .collect();
        let refused: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(c.depth(), 0);
        assert_eq!(c.rejected(), refused);
    }
}
