//! Blocking work off the shards: a bounded pool of worker threads
//! (Twisted's `deferToThread`). The result, or the panic as an error, comes
//! back to the shard that asked; the callback never leaves that shard.

use crate::reactor::{Envelope, Inboxes};
use crate::sync::worker::{panic_message, DeferError, Job};
use crossbeam_channel::Receiver;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A worker thread's loop: ends when every shard has dropped its sender.
pub(crate) fn work(rx: Receiver<Job>, inboxes: Inboxes) {
    for job in rx.iter() {
        // Unwind safety: the job owns what it touches and is consumed by the
        // call; the worker keeps no state between jobs.
        let result = catch_unwind(AssertUnwindSafe(job.run)).unwrap_or_else(|p| {
            let msg = panic_message(p.as_ref());
            Box::new(Err::<(), DeferError>(DeferError::Panicked(msg))) as Box<dyn Any + Send>
        });
        if let Some((shard, key)) = job.home {
            inboxes[shard].send(Envelope::Deferred { key, result });
        }
    }
}
