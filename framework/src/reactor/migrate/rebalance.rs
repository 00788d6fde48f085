//! The rebalancer: once a window (a second), each shard compares its busy
//! fraction with the other shards' and, if it is hot, moves some of its
//! busiest movable connections to a cool shard. Every shard ranks the
//! shards the same way from the same published figures, and the k-th
//! hottest sends only to the k-th coolest, so two hot shards never pile
//! onto one cool shard in the same window.

use crate::reactor::shard::Shard;
use std::time::{Duration, Instant};

/// When shards move connections among themselves
/// (`ServerBuilder::rebalance`). Only connections whose protocol allows it
/// ([`Conn::set_migratable`](crate::Conn::set_migratable)) move.
///
/// A shard moves connections while it is at least `min_busy` busy and at
/// least `gap` busier than its partner (the k-th coolest shard for the k-th
/// hottest); it moves a connection only if that narrows the difference by
/// `gap / 2` or more (so it never just swaps which shard is hot: no
/// oscillation), at most `max_moves` a window, and never one that moved
/// within `settle`.
///
/// ```
/// use shardloop::{Rebalance, Server};
/// let mut rule = Rebalance::default();
/// rule.max_moves = 2;
/// let builder = Server::builder().rebalance(rule);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Rebalance {
    /// A shard less busy than this moves nothing (default 0.5).
    pub min_busy: f64,
    /// The busy difference worth acting on (default 0.1): the hysteresis.
    pub gap: f64,
    /// Connections one shard moves per window at most (default 4).
    pub max_moves: usize,
    /// A connection stays at least this long where it arrived (default 10 s).
    pub settle: Duration,
}

impl Default for Rebalance {
    fn default() -> Self {
        Rebalance {
            min_busy: 0.5,
            gap: 0.1,
            max_moves: 4,
            settle: Duration::from_secs(10),
        }
    }
}

impl Rebalance {
    /// Checks the ranges (`ServerBuilder::build` calls it).
    pub(crate) fn validate(&self) -> Result<(), String> {
        let fraction = |x: f64| (0.0..=1.0).contains(&x);
        if !fraction(self.min_busy) || !fraction(self.gap) || self.gap == 0.0 {
            return Err(format!(
                "rebalance: need 0 <= min_busy <= 1 and 0 < gap <= 1, got {} and {}",
                self.min_busy, self.gap
            ));
        }
        Ok(())
    }
}

/// A connection the shard could move: its slot and its share of the
/// shard's time in the window (0 to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) slot: usize,
    pub(crate) share: f64,
}

/// Which of `candidates` (heaviest first) shard `me` sends where, given
/// every shard's busy fraction in the window (`None`: a dead shard).
pub(crate) fn plan(
    me: usize,
    busy: &[Option<f64>],
    candidates: &[Candidate],
    rule: &Rebalance,
) -> Vec<(usize, usize)> {
    let Some(mine) = busy.get(me).copied().flatten() else {
        return Vec::new();
    };
    if mine < rule.min_busy {
        return Vec::new();
    }
    // Hottest first; ties by index, so every shard ranks alike.
    let mut ranked: Vec<(usize, f64)> = busy
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.map(|b| (i, b)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let rank = ranked.iter().position(|&(i, _)| i == me).unwrap_or(0);
    let (target, theirs) = ranked[ranked.len() - 1 - rank];
    if target == me {
        return Vec::new();
    }
    let (mut mine, mut theirs) = (mine, theirs);
    let mut moves = Vec::new();
    for c in candidates {
        if moves.len() >= rule.max_moves || mine - theirs < rule.gap {
            break;
        }
        let gap = mine - theirs;
        // Moving it must narrow the difference by half the band at least.
        if c.share <= 0.0 || (gap - 2.0 * c.share).abs() > gap - rule.gap / 2.0 {
            continue;
        }
        mine -= c.share;
        theirs += c.share;
        moves.push((c.slot, target));
    }
    moves
}

/// A shard's rebalancing state: the other shards' counters at the start
/// of the window.
pub(crate) struct Rebalancer {
    rule: Rebalance,
    last: Vec<(u64, u64)>,
}

impl Rebalancer {
    pub(crate) fn new(rule: Rebalance) -> Self {
        Rebalancer {
            rule,
            last: Vec::new(),
        }
    }

    /// Whether a connection that arrived at `arrived` may move again.
    pub(crate) fn settled(&self, arrived: Option<Instant>, now: Instant) -> bool {
        arrived.is_none_or(|t| now.saturating_duration_since(t) >= self.rule.settle)
    }

    /// Candidates kept per window (a few more than it may move: some may
    /// not fit).
    pub(crate) fn keep(&self) -> usize {
        self.rule.max_moves.saturating_mul(4).clamp(1, 64)
    }
}

impl Shard {
    /// Runs the rebalancer at the end of a window: `movable` are the
    /// shard's busiest movable connections (busy nanoseconds, slot),
    /// heaviest first, and `attributed` the busy time of every connection.
    pub(crate) fn rebalance(
        &mut self,
        window: Duration,
        attributed: u64,
        movable: &[(u32, usize)],
    ) {
        let Some(r) = self.rebalancer.as_mut() else {
            return;
        };
        let shards = self.shared.inboxes.len();
        let now: Vec<(u64, u64)> = (0..shards)
            .map(|i| {
                let (busy, idle, _, _) = self.shared.stats.load_of(i);
                (busy, idle)
            })
            .collect();
        let last = std::mem::replace(&mut r.last, now.clone());
        if last.len() != shards || movable.is_empty() || window.is_zero() {
            return;
        }
        let busy: Vec<Option<f64>> = (0..shards)
            .map(|i| {
                let dead = self.shared.dead[i].load(std::sync::atomic::Ordering::Acquire);
                let b = now[i].0.saturating_sub(last[i].0) as f64;
                let idle = now[i].1.saturating_sub(last[i].1) as f64;
                (!dead && b + idle > 0.0).then(|| b / (b + idle))
            })
            .collect();
        // A connection's own time leaves out the loop's overhead (polls,
        // flushes): spread the shard's busy time over its connections in
        // proportion, so a move is weighed by what it really takes away.
        let mine = busy[self.ctx.index].unwrap_or(0.0);
        let own = attributed as f64 / window.as_nanos() as f64;
        let scale = if own > 0.0 {
            (mine / own).clamp(1.0, 4.0)
        } else {
            1.0
        };
        let candidates: Vec<Candidate> = movable
            .iter()
            .map(|&(ns, slot)| Candidate {
                slot,
                share: ns as f64 / window.as_nanos() as f64 * scale,
            })
            .collect();
        for (slot, target) in plan(self.ctx.index, &busy, &candidates, &r.rule) {
            let c = &mut self.conns[slot];
            let id = c.core.id;
            if let Some(m) = c.core.extras.as_mut().and_then(|e| e.mobility.as_mut()) {
                if m.target.replace(target as u16).is_none() {
                    self.ctx.moves.departures.push(id);
                }
            }
        }
    }
}
