//! What a connection pool has done and holds: each pool's own snapshot
//! ([`Pool::stats`](crate::client::Pool::stats)), and each shard's pools
//! by name as `Handle::stats` and `/metrics` show them (published once a
//! second by the shard, like its heaviest connections).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Weak;

/// What a pool has done, per shard (a snapshot).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections opened.
    pub opened: u64,
    /// Checkouts served by an idle connection.
    pub reused: u64,
    /// Connections closed by the pool (idle or too old, unusable,
    /// over `max_idle`, or discarded by their user).
    pub closed: u64,
    /// Checkouts that had to wait for a connection.
    pub waited: u64,
    /// Checkouts that gave up waiting.
    pub timed_out: u64,
    /// Connections open now (idle and in use).
    pub open: u64,
    /// Idle connections now.
    pub idle: u64,
    /// Connections taken out of the pool by `Pooled::detach`.
    pub detached: u64,
}

impl PoolStats {
    /// Adds `other` (pools of one name on one shard are shown as one).
    fn add(&mut self, other: &PoolStats) {
        self.opened += other.opened;
        self.reused += other.reused;
        self.closed += other.closed;
        self.waited += other.waited;
        self.timed_out += other.timed_out;
        self.open += other.open;
        self.idle += other.idle;
        self.detached += other.detached;
    }
}

/// One shard's pools of one name (`PoolOptions::name`), summed.
///
/// ```no_run
/// # fn f(handle: shardloop::Handle) {
/// for p in handle.stats().pools {
///     println!("shard {} pool {}: {} open, {} idle", p.shard, p.pool, p.stats.open, p.stats.idle);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSample {
    /// The shard the pools live on.
    pub shard: usize,
    /// Their name.
    pub pool: String,
    /// Their figures, summed.
    pub stats: PoolStats,
}

/// A pool's figures, live: its pool writes them (relaxed atomics: only
/// its shard's thread writes), its shard's stats board holds them weakly
/// and reads them for `Handle::stats` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    pub(crate) name: String,
    pub(crate) opened: AtomicU64,
    pub(crate) reused: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) waited: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) open: AtomicU64,
    pub(crate) idle: AtomicU64,
    pub(crate) detached: AtomicU64,
}

/// Adds `n` to a pool counter.
pub(crate) fn up(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

/// Takes `n` from a pool gauge.
pub(crate) fn down(c: &AtomicU64, n: u64) {
    c.fetch_sub(n, Relaxed);
}

impl PoolCounters {
    pub(crate) fn named(name: String) -> Self {
        PoolCounters {
            name,
            ..PoolCounters::default()
        }
    }

    pub(crate) fn snapshot(&self) -> PoolStats {
        PoolStats {
            opened: self.opened.load(Relaxed),
            reused: self.reused.load(Relaxed),
            closed: self.closed.load(Relaxed),
            waited: self.waited.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            open: self.open.load(Relaxed),
            idle: self.idle.load(Relaxed),
            detached: self.detached.load(Relaxed),
        }
    }
}

/// One shard's live pools, summed by name, in name order (the dropped
/// ones forgotten).
pub(crate) fn samples(shard: usize, pools: &mut Vec<Weak<PoolCounters>>) -> Vec<PoolSample> {
    let mut by_name: BTreeMap<String, PoolStats> = BTreeMap::new();
    pools.retain(|p| match p.upgrade() {
        Some(p) => {
            by_name
                .entry(p.name.clone())
                .or_default()
                .add(&p.snapshot());
            true
        }
        None => false,
    });
    by_name
        .into_iter()
        .map(|(pool, stats)| PoolSample { shard, pool, stats })
        .collect()
}
