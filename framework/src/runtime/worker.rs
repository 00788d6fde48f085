//! Blocking work off the shards: a bounded pool of worker threads
//! (Twisted's `deferToThread`). The result, or the panic as an error, comes
//! back to the shard that asked; the callback never leaves that shard.

use crate::reactor::{Envelope, Inboxes};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Why deferred work produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeferError {
    /// The function panicked; the message is the panic's, if it was text.
    #[error("deferred work panicked: {0}")]
    Panicked(String),
    /// The pool's queue is full: the server is overloaded with blocking work.
    #[error("worker pool queue is full")]
    Overloaded,
    /// The server has no worker threads (`worker_threads(0)`) or is stopping.
    #[error("no worker pool available")]
    Unavailable,
}

/// Recovers the `Result<T, DeferError>` a job sent home. A panic travels as
/// `Result<(), DeferError>` (the worker does not know `T`), so both shapes are accepted.
pub(crate) fn unbox_result<T: 'static>(result: Box<dyn Any + Send>) -> Result<T, DeferError> {
    match result.downcast::<Result<T, DeferError>>() {
        Ok(r) => *r,
        Err(other) => match other.downcast::<Result<(), DeferError>>() {
            Ok(r) => Err(r.err().unwrap_or(DeferError::Unavailable)),
            Err(_) => Err(DeferError::Unavailable),
        },
    }
}

/// A job: runs the function and sends its boxed result home.
pub(crate) struct Job {
    pub(crate) run: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>,
    /// Where the result goes (shard, key); `None` when the job delivers it
    /// itself (a promise's resolver).
    pub(crate) home: Option<(usize, u64)>,
}

/// Each shard's handle on the pool.
#[derive(Clone)]
pub(crate) struct PoolSender {
    pub(crate) tx: Sender<Job>,
}

impl PoolSender {
    /// Queues a job without blocking.
    pub(crate) fn submit(&self, job: Job) -> Result<(), DeferError> {
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(DeferError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(DeferError::Unavailable),
        }
    }
}

/// Creates the queue: `capacity` jobs at most may wait.
pub(crate) fn queue(capacity: usize) -> (PoolSender, Receiver<Job>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    (PoolSender { tx }, rx)
}

/// A worker thread's loop: ends when every shard has dropped its sender.
pub(crate) fn work(rx: Receiver<Job>, inboxes: Inboxes) {
    for job in rx.iter() {
        // Unwind safety: the job owns what it touches and is consumed by the
        // call; the worker keeps no state between jobs.
        let result = catch_unwind(AssertUnwindSafe(job.run)).unwrap_or_else(|p| {
            let msg = super::supervisor::panic_message(p.as_ref());
            Box::new(Err::<(), DeferError>(DeferError::Panicked(msg))) as Box<dyn Any + Send>
        });
        if let Some((shard, key)) = job.home {
            inboxes[shard].send(Envelope::Deferred { key, result });
        }
    }
}
