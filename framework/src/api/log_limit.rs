//! A budget for log lines a peer can cause: a flood of bad datagrams,
//! connections past a limit or failing handshakes must not become a flood
//! of log lines (disk, CPU, and the operator's attention).

use std::time::{Duration, Instant};

/// Lets at most `per_second` lines through in each second and counts the
/// rest; the next line let through reports how many were held back, so
/// nothing goes unsaid, only unrepeated.
///
/// ```
/// use shardloop::LogLimit;
/// let mut limit = LogLimit::new(2);
/// let mut logged = Vec::new();
/// for n in 0..1000 {
///     if let Some(suppressed) = limit.allow() {
///         // tracing::warn!(suppressed, n, "datagram too long; dropped");
///         logged.push((n, suppressed));
///     }
/// }
/// assert_eq!(logged, [(0, 0), (1, 0)]); // the other 998 wait for the next second
/// ```
#[derive(Debug, Clone)]
pub struct LogLimit {
    per_second: u32,
    window: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogLimit {
    /// At most `per_second` lines a second (at least one).
    pub const fn new(per_second: u32) -> Self {
        LogLimit {
            per_second: if per_second == 0 { 1 } else { per_second },
            window: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged now: `Some(n)` with the number of lines
    /// held back since the last one let through (log it with the line), or
    /// `None` (count it, log nothing).
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`allow`](LogLimit::allow) at a given time.
    pub fn allow_at(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .window
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window = Some(now);
            self.used = 0;
        }
        if self.used < self.per_second {
            self.used += 1;
            return Some(std::mem::take(&mut self.suppressed));
        }
        self.suppressed = self.suppressed.saturating_add(1);
        None
    }

    /// Lines held back and not yet reported.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// The budgets of one shard, one per kind of line a peer can cause.
#[derive(Debug, Clone)]
pub(crate) struct LogLimits {
    pub(crate) slow_callback: LogLimit,
    pub(crate) connection_limit: LogLimit,
    pub(crate) output_overflow: LogLimit,
    pub(crate) close_timeout: LogLimit,
    pub(crate) callback_panic: LogLimit,
    pub(crate) accept_error: LogLimit,
    pub(crate) transport: LogLimit,
    pub(crate) protocol_error: LogLimit,
}

impl Default for LogLimits {
    fn default() -> Self {
        let l = LogLimit::new(5);
        LogLimits {
            slow_callback: l.clone(),
            connection_limit: l.clone(),
            output_overflow: l.clone(),
            close_timeout: l.clone(),
            callback_panic: l.clone(),
            accept_error: l.clone(),
            transport: l.clone(),
            protocol_error: l,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_per_second_and_the_held_back_count_on_the_next_line() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(3);
        let got: Vec<_> = (0..10).map(|_| l.allow_at(t0)).collect();
        assert_eq!(got[..3], [Some(0), Some(0), Some(0)]);
        assert!(got[3..].iter().all(Option::is_none));
        assert_eq!(l.suppressed(), 7);
        let later = t0 + Duration::from_millis(999);
        assert_eq!(l.allow_at(later), None, "still the same second");
        let next = t0 + Duration::from_secs(1);
        assert_eq!(
            l.allow_at(next),
            Some(8),
            "the next line reports the 8 held back"
        );
        assert_eq!(l.suppressed(), 0);
        assert_eq!(
            LogLimit::new(0).allow_at(t0),
            Some(0),
            "at least one a second"
        );
    }
}
