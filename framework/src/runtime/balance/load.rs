//! The acceptor's view of each shard's load: the busy and idle time the
//! shards publish, turned into a busy fraction every `PERIOD` and smoothed
//! (an exponentially weighted moving average with a time constant of
//! `SMOOTHING`), so that a placement decision never follows one burst.

use super::ShardLoad;
use std::time::{Duration, Instant};

/// How often the figures are sampled (the acceptor reads them at most
/// this often: a few relaxed loads per shard).
pub(crate) const PERIOD: Duration = Duration::from_millis(25);
/// The moving average's time constant.
pub(crate) const SMOOTHING: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, Default)]
struct Shard {
    /// Busy and idle nanoseconds at the last sample.
    busy_ns: u64,
    idle_ns: u64,
    /// The smoothed busy fraction.
    busy: f64,
    inbox_depth: u64,
    tasks_ready: u64,
}

/// Smoothed load per shard, fed with the shards' published counters.
#[derive(Debug)]
pub(crate) struct LoadTracker {
    shards: Vec<Shard>,
    last: Option<Instant>,
}

/// What a shard published: busy ns, idle ns, inbox depth, ready tasks.
pub(crate) type Published = (u64, u64, u64, u64);

impl LoadTracker {
    pub(crate) fn new(shards: usize) -> Self {
        LoadTracker {
            shards: vec![Shard::default(); shards],
            last: None,
        }
    }

    /// Takes a sample at `now` if `PERIOD` has passed since the last one,
    /// reading each shard's counters with `read`.
    pub(crate) fn sample(&mut self, now: Instant, mut read: impl FnMut(usize) -> Published) {
        let Some(last) = self.last else {
            // The first reading is the baseline for the next one.
            for (i, s) in self.shards.iter_mut().enumerate() {
                let (busy_ns, idle_ns, inbox_depth, tasks_ready) = read(i);
                *s = Shard {
                    busy_ns,
                    idle_ns,
                    busy: 0.0,
                    inbox_depth,
                    tasks_ready,
                };
            }
            self.last = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(last);
        if elapsed < PERIOD {
            return;
        }
        self.last = Some(now);
        // The weight of this sample: what `elapsed` is worth against the
        // time constant, however late the sample came.
        let alpha = 1.0 - (-elapsed.as_secs_f64() / SMOOTHING.as_secs_f64()).exp();
        for (i, s) in self.shards.iter_mut().enumerate() {
            let (busy_ns, idle_ns, inbox_depth, tasks_ready) = read(i);
            let busy = busy_ns.saturating_sub(s.busy_ns);
            let idle = idle_ns.saturating_sub(s.idle_ns);
            // A shard that published nothing in the period (stuck in one
            // long iteration) keeps its figure: no news is not idleness.
            if busy + idle > 0 {
                let fraction = busy as f64 / (busy + idle) as f64;
                s.busy += alpha * (fraction - s.busy);
            }
            s.busy_ns = busy_ns;
            s.idle_ns = idle_ns;
            s.inbox_depth = inbox_depth;
            s.tasks_ready = tasks_ready;
        }
    }

    /// A shard's smoothed busy fraction.
    pub(crate) fn busy(&self, shard: usize) -> f64 {
        self.shards.get(shard).map_or(0.0, |s| s.busy)
    }

    /// Fills in a shard's load figures.
    pub(crate) fn fill(&self, load: &mut ShardLoad) {
        if let Some(s) = self.shards.get(load.shard) {
            load.busy = s.busy;
            load.inbox_depth = s.inbox_depth;
            load.tasks_ready = s.tasks_ready;
        }
    }
}
