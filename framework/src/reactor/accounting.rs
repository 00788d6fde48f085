//! What a shard measures of itself: busy time settled against its
//! thread's CPU clock, how late its timers fire, and how much of it each
//! connection takes (its heaviest connections, published once a window).

use super::shard::Shard;
use crate::api::conn_load::{self, ConnLoad};
use crate::net::Addr;
use std::time::Duration;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Shard {
    /// How late a batch of timers fired.
    pub(super) fn record_lag(&mut self, lag: Duration) {
        let c = &mut self.ctx.counters;
        let ns = nanos(lag);
        c.loop_lag_count += 1;
        c.loop_lag_sum_ns += ns;
        match ns {
            0..=100_000 => c.loop_lag_le_100us += 1,
            100_001..=1_000_000 => c.loop_lag_le_1ms += 1,
            1_000_001..=10_000_000 => c.loop_lag_le_10ms += 1,
            10_000_001..=100_000_000 => c.loop_lag_le_100ms += 1,
            _ => c.loop_lag_over_100ms += 1,
        }
    }

    /// Publishes the window's heaviest connections and starts the next
    /// window (one pass over the table a second).
    pub(super) fn publish_heaviest(&mut self) {
        let window = self.ctx.now.saturating_duration_since(self.window_start);
        self.window_start = self.ctx.now;
        let mut top: Vec<(u32, usize)> = Vec::with_capacity(conn_load::HEAVIEST_PER_SHARD + 1);
        // The rebalancer's candidates: the busiest connections it may move.
        let keep = self.rebalancer.as_ref().map_or(0, |r| r.keep());
        let mut movable: Vec<(u32, usize)> = Vec::new();
        let mut attributed = 0u64;
        for (slot, c) in self.conns.iter_mut() {
            let busy = std::mem::take(&mut c.core.busy_ns);
            if busy == 0 || c.proto.is_none() {
                continue;
            }
            attributed += u64::from(busy);
            keep_heaviest(&mut top, conn_load::HEAVIEST_PER_SHARD, busy, slot);
            if let (Some(r), Some(m)) = (
                self.rebalancer.as_ref(),
                c.core.extras.as_ref().and_then(|e| e.mobility.as_ref()),
            ) {
                if m.rebalance && r.settled(m.arrived, self.ctx.now) {
                    keep_heaviest(&mut movable, keep, busy, slot);
                }
            }
        }
        self.rebalance(window, attributed, &movable);
        let heaviest: Vec<ConnLoad> = top
            .into_iter()
            .map(|(busy, slot)| {
                let c = &self.conns[slot].core;
                ConnLoad {
                    conn: c.id,
                    peer: match c.peer {
                        Addr::Tcp(a) => Some(a),
                        _ => None,
                    },
                    busy: Duration::from_nanos(u64::from(busy)),
                    window,
                }
            })
            .collect();
        *self.shared.stats.heaviest[self.ctx.index]
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = heaviest;
    }

    /// Reads the thread's CPU time and settles the window's busy and idle
    /// time. Busy is the loop's wall time out of poll plus the CPU time the
    /// thread spent inside poll (the kernel waking it and handing it
    /// events: real work, which a wall-clock split alone calls idle), so
    /// busy is at least the thread's CPU time, busy plus idle is the wall
    /// time, and a preempted shard still shows busy above its CPU time.
    pub(super) fn settle_busy(&mut self) {
        self.cpu_sampled = self.ctx.now;
        let cpu = thread_cpu_ns();
        let used = cpu.saturating_sub(self.ctx.counters.cpu_ns);
        let (busy, idle) = std::mem::take(&mut self.window);
        let in_poll = used.saturating_sub(busy).min(idle);
        let c = &mut self.ctx.counters;
        c.cpu_ns = cpu;
        c.busy_ns += busy + in_poll;
        c.idle_ns += idle - in_poll;
    }
}

/// Keeps the `n` heaviest (busy, slot) pairs, heaviest first.
fn keep_heaviest(top: &mut Vec<(u32, usize)>, n: usize, busy: u32, slot: usize) {
    if top.len() < n || top.last().is_some_and(|l| busy > l.0) {
        let at = top.partition_point(|(b, _)| *b >= busy);
        top.insert(at, (busy, slot));
        top.truncate(n);
    }
}

/// How often a shard reads its thread's CPU time (`shardloop_shard_cpu_seconds_total`).
pub(super) const CPU_SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// This thread's CPU time, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): an
/// independent check on busy time, which is wall time and counts a
/// preempted shard as busy.
pub(super) fn thread_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64)
        .unwrap_or(0)
}
