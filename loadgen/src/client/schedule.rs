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
    /// Open loop: the first send of a new connection, skipping what its
    /// share of the plan had due before now (its start came late: a busy
    /// shard, a slow machine). The skipped requests that fell in the
    /// measured window are counted as due and never sent (`unsent`) on
    /// this shard, so that they do not vanish from the report.
    pub(crate) fn first_due(
        ctx: &mut shardloop::ShardCtx,
        shared: &RunShared,
        mut schedule: Schedule,
    ) -> Option<Due> {
        let plan = shared.plan.as_ref()?;
        let now = Instant::now();
        let (from, end) = (shared.measure_from(), shared.end());
        let mut skipped = 0u64;
        loop {
            let t = schedule.next(plan);
            let next = t.map_or(end, |t| shared.origin + Duration::from_secs_f64(t));
            if next >= now || t.is_none() {
                if skipped > 0 {
                    recorder(ctx, shared.scenario).with(|s| s.unsent += skipped);
                }
                return Some(Due { next, schedule });
            }
            skipped += u64::from(next >= from && next < end);
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
