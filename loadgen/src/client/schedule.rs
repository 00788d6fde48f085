//! A connection's place in the open-loop plan: its first send, the next
//! one, and the requests it had due but never sent.

use super::{Due, LoadConn, RunShared};
use crate::plan::Schedule;
use crate::recorder::recorder;
use shardloop::Conn;
use std::time::{Duration, Instant};

/// When `schedule`'s next send is (the end of the run once it has none).
pub(super) fn next_send(shared: &RunShared, schedule: &mut Schedule) -> Instant {
    match shared.plan.as_ref().and_then(|plan| schedule.next(plan)) {
        Some(t) => shared.origin + Duration::from_secs_f64(t),
        None => shared.end(),
    }
}

impl LoadConn {
    /// Open loop: the first send of connection `index` of `conns`, skipping
    /// what the plan had due before now (it was not this connection's yet).
    pub(crate) fn first_due(shared: &RunShared, mut schedule: Schedule) -> Option<Due> {
        let plan = shared.plan.as_ref()?;
        let now = Instant::now();
        loop {
            let t = schedule.next(plan);
            let next = t.map_or(shared.end(), |t| shared.origin + Duration::from_secs_f64(t));
            if next >= now || t.is_none() {
                return Some(Due { next, schedule });
            }
        }
    }

    /// Moves to the next planned send.
    pub(super) fn advance(&mut self) {
        if let Some(s) = self.schedule.as_mut() {
            self.next_intended = next_send(&self.shared, s);
        }
    }

    /// Open loop: requests this connection's schedule had due before the
    /// end that it never sent (it was at its in-flight limit), counted so
    /// they do not vanish from the report.
    pub(super) fn count_unsent(&mut self, conn: &mut Conn<'_, Self>) {
        if std::mem::replace(&mut self.unsent_counted, true) {
            return;
        }
        let (Some(plan), Some(s)) = (self.shared.plan.as_ref(), self.schedule.as_ref()) else {
            return;
        };
        let end = self.shared.end();
        if self.next_intended >= end {
            return;
        }
        let from = self
            .shared
            .measure_from()
            .saturating_duration_since(self.shared.origin);
        let pending = u64::from(self.next_intended >= self.shared.measure_from());
        let n = pending + s.remaining_after(plan, from.as_secs_f64());
        recorder(conn.shard(), self.shared.scenario).with(|s| s.unsent += n);
    }
}
