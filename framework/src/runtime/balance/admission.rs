//! Admission: the acceptor stops taking new connections while every shard
//! is saturated, and takes them again once one has room, with hysteresis.
//! Connections that arrive meanwhile wait in the kernel's accept queue
//! (and past its length the kernel drops their SYNs, which clients retry):
//! the cheapest refusal there is, and the one that loses no connection a
//! shard could still have served.

use std::time::{Duration, Instant};

/// When the acceptor pauses (`ServerBuilder::admission`): while the least
/// busy shard's smoothed busy fraction is at or above `pause_above`, and
/// until it falls to `resume_below` or under.
///
/// ```
/// use shardloop::{Admission, Server};
/// let builder = Server::builder().admission(Admission::default());
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Admission {
    /// Pause at this busy fraction of the least busy shard (default 0.95).
    pub pause_above: f64,
    /// Resume at this one (default 0.85; below `pause_above`: the gap is
    /// the hysteresis).
    pub resume_below: f64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            pause_above: 0.95,
            resume_below: 0.85,
        }
    }
}

impl Admission {
    /// Pause at `pause_above`, resume at `resume_below`.
    pub fn new(pause_above: f64, resume_below: f64) -> Self {
        Admission {
            pause_above,
            resume_below,
        }
    }
}

/// The acceptor's admission state.
#[derive(Debug)]
pub(crate) struct Gate {
    rule: Admission,
    paused_since: Option<Instant>,
    /// Pauses so far.
    pub(crate) pauses: u64,
    /// Time paused, finished pauses only.
    pub(crate) paused: Duration,
}

impl Gate {
    pub(crate) fn new(rule: Admission) -> Self {
        Gate {
            rule,
            paused_since: None,
            pauses: 0,
            paused: Duration::ZERO,
        }
    }

    /// Updates the state with the least busy shard's figure at `now`.
    /// Returns what changed: `Some(true)` resumed, `Some(false)` paused.
    pub(crate) fn update(&mut self, coolest: f64, now: Instant) -> Option<bool> {
        match self.paused_since {
            None if coolest >= self.rule.pause_above => {
                self.paused_since = Some(now);
                self.pauses += 1;
                Some(false)
            }
            Some(since) if coolest <= self.rule.resume_below => {
                self.paused += now.saturating_duration_since(since);
                self.paused_since = None;
                Some(true)
            }
            _ => None,
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused_since.is_some()
    }

    /// Time paused including a pause in progress.
    pub(crate) fn paused_until(&self, now: Instant) -> Duration {
        self.paused
            + self
                .paused_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_at_the_high_mark_and_resumes_only_below_the_low_one() {
        let t0 = Instant::now();
        let mut g = Gate::new(Admission::default());
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(g.update(0.90, at(0)), None);
        assert_eq!(g.update(0.96, at(25)), Some(false));
        assert!(g.is_paused());
        // Between the marks: no flapping either way.
        for (i, b) in [0.93, 0.97, 0.86, 0.94].into_iter().enumerate() {
            assert_eq!(g.update(b, at(50 + 25 * i as u64)), None);
        }
        assert_eq!(g.paused_until(at(125)), Duration::from_millis(100));
        assert_eq!(g.update(0.85, at(150)), Some(true));
        assert!(!g.is_paused());
        assert_eq!(
            g.update(0.94, at(175)),
            None,
            "below the high mark: accepting"
        );
        assert_eq!((g.pauses, g.paused), (1, Duration::from_millis(125)));
    }
}
