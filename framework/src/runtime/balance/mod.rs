//! How the acceptor picks a shard for each new connection, the load
//! figures it picks by (the shards' published counters, smoothed), and
//! when it stops taking connections at all (admission).

mod admission;
mod load;

pub use admission::Admission;
pub(crate) use admission::Gate;
pub(crate) use load::{LoadTracker, PERIOD as LOAD_PERIOD};

/// Load of one shard as the acceptor sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ShardLoad {
    /// Shard index.
    pub shard: usize,
    /// Connections handed to the shard and not yet closed (closes are
    /// published once per shard loop iteration, so this may lag slightly).
    pub open_connections: u64,
    /// The shard's busy fraction (busy / (busy + idle), 0 to 1), smoothed
    /// over about a quarter of a second (an exponentially weighted moving
    /// average sampled every 25 ms): slow enough not to chase bursts.
    pub busy: f64,
    /// Requests waiting in the shard's inbox when it last drained it.
    pub inbox_depth: u64,
    /// Tasks ready to run at the end of the shard's last iteration.
    pub tasks_ready: u64,
}

impl ShardLoad {
    /// An idle shard with `open_connections` (to test a policy).
    ///
    /// ```
    /// use shardloop::ShardLoad;
    /// let mut l = ShardLoad::new(1, 10);
    /// l.busy = 0.8;
    /// assert_eq!((l.shard, l.open_connections, l.busy), (1, 10, 0.8));
    /// ```
    pub fn new(shard: usize, open_connections: u64) -> Self {
        ShardLoad {
            shard,
            open_connections,
            busy: 0.0,
            inbox_depth: 0,
            tasks_ready: 0,
        }
    }
}

/// Chooses the shard for each accepted connection. Runs on the acceptor thread.
///
/// ```
/// use shardloop::{BalancingPolicy, ShardLoad};
/// /// Sends everything to shard 0: e.g. to measure a single shard.
/// struct Pinned;
/// impl BalancingPolicy for Pinned {
///     fn pick(&mut self, _loads: &[ShardLoad]) -> usize { 0 }
/// }
/// ```
pub trait BalancingPolicy: Send + 'static {
    /// Returns an index into `loads`; the connection goes to
    /// `loads[i].shard`. Only live shards are listed (a shard whose thread
    /// died is left out), in shard order.
    fn pick(&mut self, loads: &[ShardLoad]) -> usize;

    /// True if the policy reads the load figures (`busy`, `inbox_depth`,
    /// `tasks_ready`): the acceptor then samples them every 25 ms, idle or
    /// not, so they are fresh when a connection comes. False by default
    /// (connection counts only: the acceptor sleeps until a connection).
    fn uses_load(&self) -> bool {
        false
    }
}

/// Round-robin: connection `k` goes to shard `k mod N`. The default.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    next: usize,
}

impl BalancingPolicy for RoundRobin {
    fn pick(&mut self, loads: &[ShardLoad]) -> usize {
        let i = self.next % loads.len();
        self.next = i + 1;
        i
    }
}

/// Picks the shard with the fewest open accepted connections (ties: lowest
/// index). Outbound connections a shard makes (a proxy's backends) do not
/// count: they are not the acceptor's to balance.
/// Better than round-robin when connection lifetimes vary a lot.
#[derive(Debug, Default, Clone)]
pub struct LeastConnections;

impl BalancingPolicy for LeastConnections {
    fn pick(&mut self, loads: &[ShardLoad]) -> usize {
        loads
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| (l.open_connections, l.shard))
            .map_or(0, |(i, _)| i)
    }
}

/// Placement by load: a new connection goes to one of the coolest shards,
/// and among those to the one with the fewest open connections.
///
/// "Coolest" is a band: every shard whose smoothed busy fraction is within
/// `band` (default 0.1) of the least busy one. Inside the band the policy is
/// [`LeastConnections`], so small differences, and the noise of the
/// figures, never move the choice (the hysteresis), and a burst of new
/// connections spreads over the cool shards instead of herding onto the one
/// least busy a moment ago (the busy figure lags by design). Shards past
/// `hot` busy, or whose inbox holds `inbox_limit` requests or more, are
/// left out while any shard is not.
///
/// ```
/// use shardloop::{BalancingPolicy, LoadAware, ShardLoad};
/// let mut policy = LoadAware::default();
/// let mut hot = ShardLoad::new(0, 10);
/// hot.busy = 0.9;
/// let mut cool = ShardLoad::new(1, 40);
/// cool.busy = 0.3;
/// // More connections, but less busy: the new connection goes to shard 1.
/// assert_eq!(policy.pick(&[hot, cool]), 1);
/// ```
#[derive(Debug, Clone)]
pub struct LoadAware {
    /// Shards within this much busy fraction of the least busy are equal.
    pub band: f64,
    /// Busy fraction above which a shard takes no new connection while
    /// another can.
    pub hot: f64,
    /// Inbox depth at which a shard takes no new connection while another can.
    pub inbox_limit: u64,
}

impl Default for LoadAware {
    fn default() -> Self {
        LoadAware {
            band: 0.1,
            hot: 0.95,
            inbox_limit: 4096,
        }
    }
}

impl BalancingPolicy for LoadAware {
    fn pick(&mut self, loads: &[ShardLoad]) -> usize {
        let open = |l: &ShardLoad| l.busy <= self.hot && l.inbox_depth < self.inbox_limit;
        let any_open = loads.iter().any(open);
        let eligible = |l: &ShardLoad| !any_open || open(l);
        let coolest = loads
            .iter()
            .filter(|l| eligible(l))
            .map(|l| l.busy)
            .fold(f64::INFINITY, f64::min);
        loads
            .iter()
            .enumerate()
            .filter(|(_, l)| eligible(l) && l.busy <= coolest + self.band)
            .min_by_key(|(_, l)| (l.open_connections, l.shard))
            .map_or(0, |(i, _)| i)
    }

    fn uses_load(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
