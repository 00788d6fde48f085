//! What travels on the bus to a shard, and how a shard drains its inbox.

use super::shard_ctx::ShardCtx;
use crate::api::ConnId;
use crate::sync::bus::Inbox;
use crossbeam_channel::{Receiver, TryRecvError};
use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

/// A closure run once on a shard.
pub(crate) type Task = Box<dyn FnOnce(&mut ShardCtx) + Send>;
/// A closure run on every shard.
pub(crate) type SharedTask = Arc<dyn Fn(&mut ShardCtx) + Send + Sync>;

/// What travels on the bus.
pub(crate) enum Envelope {
    /// A connection from the acceptor, for listener `listener`.
    Accepted {
        stream: crate::net::Stream,
        peer: crate::net::Addr,
        listener: usize,
    },
    Run(Task),
    Broadcast(SharedTask),
    ToConn {
        to: ConnId,
        msg: Box<dyn Any + Send>,
    },
    /// Several envelopes from one shard's loop iteration, sent as one.
    Batch(Vec<Envelope>),
    /// The result of work deferred to the worker pool.
    Deferred {
        key: u64,
        result: Box<dyn Any + Send>,
    },
    /// A task of this shard was woken from another thread.
    Wake(super::exec::executor::TaskId),
    /// A connection moving to this shard.
    Migrated(Box<super::migrate::Migrant>),
    /// Stop forwarding messages for these ids: their connection (which
    /// moved away) has ended.
    Forget(Vec<ConnId>),
    /// Graceful stop: close every connection, abort what is left at `deadline`.
    Stop {
        deadline: Instant,
        /// Keep serving this long first (the drain delay); zero: at once.
        drain: std::time::Duration,
    },
}

impl Envelope {
    /// A request: it holds a slot of the target's inbox capacity until the
    /// target drains it. Everything else is control traffic.
    fn is_request(&self) -> bool {
        matches!(
            self,
            Envelope::Run(_) | Envelope::Broadcast(_) | Envelope::ToConn { .. }
        )
    }
}

/// What one drain took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Envelopes are still waiting (the `max` ran out).
    pub(crate) more: bool,
    /// Requests among those taken: slots to give back.
    pub(crate) requests: usize,
}

/// Drains up to `max` envelopes, flattening batches, into `out`.
pub(crate) fn drain(rx: &Receiver<Envelope>, max: usize, out: &mut Vec<Envelope>) -> Drained {
    let start = out.len();
    let mut more = true;
    while out.len() - start < max {
        match rx.try_recv() {
            Ok(Envelope::Batch(batch)) => out.extend(batch),
            Ok(env) => out.push(env),
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {
                more = false;
                break;
            }
        }
    }
    Drained {
        more: more && !rx.is_empty(),
        requests: out[start..].iter().filter(|e| e.is_request()).count(),
    }
}

/// All shards' inboxes, shared by the shards, the acceptor and every `Handle`.
pub(crate) type Inboxes = Arc<[Inbox<Envelope>]>;

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox() -> (mio::Poll, Inbox<Envelope>, Receiver<Envelope>) {
        let poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let (inbox, rx) = Inbox::new(waker, 64);
        (poll, inbox, rx)
    }

    #[test]
    fn drain_flattens_batches_and_reports_leftovers() {
        let (_poll, inbox, rx) = inbox();
        inbox.send(Envelope::Batch(
            (0..3).map(|_| Envelope::Run(Box::new(|_| {}))).collect(),
        ));
        inbox.send(Envelope::Run(Box::new(|_| {})));
        inbox.send(Envelope::Run(Box::new(|_| {})));
        inbox.send(Envelope::Stop {
            deadline: Instant::now(),
            drain: std::time::Duration::ZERO,
        });
        let mut out = Vec::new();
        let d = drain(&rx, 4, &mut out);
        assert_eq!((d.more, d.requests), (true, 4), "two left over");
        assert_eq!(out.len(), 4);
        out.clear();
        let d = drain(&rx, 4, &mut out);
        assert_eq!((d.more, d.requests), (false, 1), "a stop is no request");
        assert_eq!(out.len(), 2);
    }
}
