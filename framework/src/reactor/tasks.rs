//! The shard's executor step: poll ready tasks within a budget, and apply
//! what tasks asked for (wake-ups, timers, operations on their connection,
//! new tasks). Runs after I/O and timers, before the flush.

use super::exec::executor::TaskId;
use super::exec::local;
use super::lifecycle::invoke;
use super::shard::Shard;
use super::timers::TimerTask;
use crate::api::CloseReason;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll};
use std::time::Instant;

impl Shard {
    /// Polls ready tasks, at most `max_task_polls_per_iteration`. A task
    /// that wakes itself while it is polled (it yields) runs again in the
    /// next iteration, after I/O and timers have had their turn, as
    /// tokio's `yield_now` does; a task another task wakes runs in this one.
    pub(crate) fn run_tasks(&mut self) {
        self.apply_task_requests(None);
        let mut yielded = Vec::new();
        let budget = self.ctx.settings.max_task_polls_per_iteration;
        for _ in 0..budget {
            let Some(id) = self.ctx.tasks.queue.pop_front() else {
                break;
            };
            let Some((mut future, waker, conn)) = self.ctx.tasks.take(id) else {
                continue; // finished or cancelled since it was woken
            };
            if conn.is_some_and(|c| !self.is_open(c)) {
                self.ctx.tasks.remove(id);
                continue;
            }
            self.ctx.counters.task_polls += 1;
            let mut cx = Context::from_waker(&waker);
            let activity = &self.shared.activity[self.ctx.index];
            // A connection's task is timed for its share of the shard (two
            // clock reads a poll, only for tasks tied to a connection).
            let started = match conn {
                Some(c) => {
                    activity.running(c);
                    Some(Instant::now())
                }
                None => {
                    activity.returned();
                    None
                }
            };
            // Unwind safety: the future is the only state the poll touches
            // mutably; after a panic it is dropped, never polled again.
            let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
            if let (Some(c), Some(t)) = (conn, started) {
                if self.live(c) {
                    self.conns[c.slot()].core.charge(t.elapsed());
                }
            }
            match polled {
                Ok(Poll::Pending) => self.ctx.tasks.put_back(id, future),
                Ok(Poll::Ready(())) => {
                    self.ctx.tasks.remove(id);
                    drop(future);
                }
                Err(_) => {
                    self.ctx.tasks.remove(id);
                    // Unwind safety: dropping a panicked future may panic again.
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
                    self.ctx.counters.callback_panics += 1;
                    match conn.filter(|c| self.live(*c)) {
                        Some(c) => {
                            tracing::error!(conn = %c, "connection task panicked; aborting the connection");
                            self.finish(c.slot(), CloseReason::CallbackPanic, true);
                        }
                        None => tracing::error!(shard = self.ctx.index, "shard task panicked"),
                    }
                }
            }
            if self.apply_task_requests(Some(id)) {
                yielded.push(id);
            }
        }
        self.ctx.tasks.queue.extend(yielded);
    }

    /// Applies what tasks (and callbacks touching task state) asked for.
    /// Returns true if `polled`, the task just polled, woke itself: it is
    /// left out of the queue for the caller to defer.
    pub(crate) fn apply_task_requests(&mut self, polled: Option<TaskId>) -> bool {
        let mut woke_itself = false;
        // Operations may ask for more: a few rounds, the rest next iteration.
        for _ in 0..8 {
            let r = local::take_requests();
            if r.is_empty() {
                break;
            }
            for id in r.ready {
                if Some(id) == polled {
                    woke_itself = true;
                } else {
                    self.ctx.tasks.queue.push_back(id);
                }
            }
            self.ctx.pending_connects.extend(r.connects);
            for answer in r.answers {
                self.name_resolved(answer);
            }
            if !r.pools.is_empty() {
                let mut pools = self.shared.stats.pools[self.ctx.index]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                pools.extend(r.pools.iter().map(std::sync::Arc::downgrade));
            }
            for (at, waker) in r.timers {
                let after = at.saturating_duration_since(self.ctx.now);
                self.ctx
                    .timers
                    .insert_after(after, TimerTask::WakeTask(waker));
            }
            for (future, conn) in r.spawns {
                self.ctx.counters.tasks_spawned += 1;
                let id = self.ctx.tasks.spawn(future, conn);
                if let Some(c) = conn.filter(|c| self.live(*c)) {
                    self.conns[c.slot()].core.extras().tasks.push(id);
                }
            }
            for (conn, op) in r.conn_ops {
                if !self.is_open(conn) {
                    continue;
                }
                let c = &mut self.conns[conn.slot()];
                invoke(c, &mut self.ctx, |p, core, ctx| {
                    op(p.as_any_mut(), core, ctx)
                });
                self.after_callback(conn.slot());
            }
        }
        woke_itself
    }
}
