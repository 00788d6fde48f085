//! The worker pool's queue, as the shards see it: jobs, the bounded sender
//! each shard holds, and the error deferred work can end in. The threads
//! that run the jobs are the runtime's (runtime/worker.rs).

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::any::Any;

/// Why deferred work produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeferError {
    /// The function panicked; the message is the panic's, if it was text.
    #[error("deferred work panicked: {0}")]
    Panicked(String),
    /// The pool's queue is full: the server is overloaded with blocking work.
    #[error("worker pool queue is full")]
    Overloaded,
    /// The server has no worker threads (`workers(0, _)`) or is stopping.
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

/// The text of a panic's payload (a `&str` or `String` message).
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".into())
}
