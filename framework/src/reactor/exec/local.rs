//! What a running task can reach of its shard without a reference to it:
//! a thread-local record of the shard the thread is running now, holding
//! the shard's clock and the requests tasks make (wake-ups, timers,
//! operations on their connection, new tasks), which the shard applies
//! after each poll. Same-shard wake-ups are a push onto this record: no
//! lock, no syscall.

use super::executor::TaskId;
use crate::api::{ConnId, PoolCounters};
use crate::reactor::names::Resolved;
use crate::reactor::{ConnOp, PendingConnect};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A future a shard owns.
pub(crate) type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// The shard this thread is running, and what its tasks asked for.
pub(crate) struct Local {
    pub(crate) server: usize,
    pub(crate) shard: usize,
    pub(crate) now: Instant,
    /// Tasks woken from this thread.
    pub(crate) ready: Vec<TaskId>,
    /// Timers tasks want: wake this waker at this instant.
    pub(crate) timers: Vec<(Instant, std::task::Waker)>,
    /// Operations on connections, to run with their protocol.
    pub(crate) conn_ops: Vec<(ConnId, ConnOp)>,
    /// Tasks spawned from inside tasks.
    pub(crate) spawns: Vec<(LocalFuture, Option<ConnId>)>,
    /// Outbound connections opened from tasks.
    pub(crate) connects: Vec<PendingConnect>,
    /// Host names the resolver answered, for the shard's cache.
    pub(crate) answers: Vec<Resolved>,
    /// Connection pools made on this shard, to publish their figures.
    pub(crate) pools: Vec<Arc<PoolCounters>>,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Marks this thread as running `shard` of `server` until dropped (the
/// previous state, for a test thread driving several shards, comes back).
pub(crate) struct Entered {
    previous: Option<Local>,
    /// The thread was already running this shard: leave it as it is.
    nested: bool,
}

pub(crate) fn enter(server: usize, shard: usize, now: Instant) -> Entered {
    if with_shard(server, shard, |l| l.now = now).is_some() {
        return Entered {
            previous: None,
            nested: true,
        };
    }
    let local = Local {
        server,
        shard,
        now,
        ready: Vec::new(),
        timers: Vec::new(),
        conn_ops: Vec::new(),
        spawns: Vec::new(),
        connects: Vec::new(),
        answers: Vec::new(),
        pools: Vec::new(),
    };
    Entered {
        previous: LOCAL.with(|l| l.borrow_mut().replace(local)),
        nested: false,
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if self.nested {
            return;
        }
        let previous = self.previous.take();
        LOCAL.with(|l| *l.borrow_mut() = previous);
    }
}

/// Runs `f` on the current shard's record; `None` outside a shard.
pub(crate) fn with<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    LOCAL.with(|l| l.borrow_mut().as_mut().map(f))
}

/// Runs `f` on the record if this thread is running `shard` of `server`.
pub(crate) fn with_shard<R>(
    server: usize,
    shard: usize,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    LOCAL.with(|l| {
        l.borrow_mut()
            .as_mut()
            .filter(|local| local.server == server && local.shard == shard)
            .map(f)
    })
}

/// True if tasks of the current shard asked for anything not yet applied.
pub(crate) fn has_requests() -> bool {
    with(|l| {
        !l.ready.is_empty()
            || !l.timers.is_empty()
            || !l.conn_ops.is_empty()
            || !l.spawns.is_empty()
            || !l.connects.is_empty()
            || !l.answers.is_empty()
            || !l.pools.is_empty()
    })
    .unwrap_or(false)
}

/// What tasks asked for since the last call, taken out of the record.
#[derive(Default)]
pub(crate) struct Requests {
    pub(crate) ready: Vec<TaskId>,
    pub(crate) timers: Vec<(Instant, std::task::Waker)>,
    pub(crate) conn_ops: Vec<(ConnId, ConnOp)>,
    pub(crate) spawns: Vec<(LocalFuture, Option<ConnId>)>,
    pub(crate) connects: Vec<PendingConnect>,
    pub(crate) answers: Vec<Resolved>,
    pub(crate) pools: Vec<Arc<PoolCounters>>,
}

impl Requests {
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty()
            && self.timers.is_empty()
            && self.conn_ops.is_empty()
            && self.spawns.is_empty()
            // A connect alone is a request too: dropping it would leave
            // its task waiting forever.
            && self.connects.is_empty()
            && self.answers.is_empty()
            && self.pools.is_empty()
    }
}

pub(crate) fn take_requests() -> Requests {
    with(|l| Requests {
        ready: std::mem::take(&mut l.ready),
        timers: std::mem::take(&mut l.timers),
        conn_ops: std::mem::take(&mut l.conn_ops),
        spawns: std::mem::take(&mut l.spawns),
        connects: std::mem::take(&mut l.connects),
        answers: std::mem::take(&mut l.answers),
        pools: std::mem::take(&mut l.pools),
    })
    .unwrap_or_default()
}

/// The current shard's clock, or the real one outside a shard.
pub(crate) fn now() -> Instant {
    with(|l| l.now).unwrap_or_else(Instant::now)
}
