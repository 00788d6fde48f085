//! How the acceptor picks a shard for each new connection.

/// Load of one shard as the acceptor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLoad {
    /// Shard index.
    pub shard: usize,
    /// Connections handed to the shard and not yet closed (closes are
    /// published once per shard loop iteration, so this may lag slightly).
    pub open_connections: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(open: &[u64]) -> Vec<ShardLoad> {
        open.iter()
            .enumerate()
            .map(|(shard, &open_connections)| ShardLoad {
                shard,
                open_connections,
            })
            .collect()
    }

    #[test]
    fn round_robin_cycles() {
        let mut rr = RoundRobin::default();
        let l = loads(&[5, 0, 9]);
        let picks: Vec<_> = (0..7).map(|_| rr.pick(&l)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn least_connections_picks_minimum() {
        let mut lc = LeastConnections;
        assert_eq!(lc.pick(&loads(&[5, 2, 9, 2])), 1);
        assert_eq!(lc.pick(&loads(&[0, 0])), 0);
    }
}
