//! The cross-shard message bus: one inbox per shard (a `crossbeam-channel`
//! plus a `mio::Waker`) and the parked flag that spares a busy shard a
//! wake-up syscall per message.

use crate::conn_id::ConnId;
use crate::context::ShardCtx;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use crossbeam_utils::CachePadded;
use std::any::Any;
use std::sync::atomic::{fence, AtomicBool, Ordering};
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
        stream: crate::transport::Stream,
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
    /// Graceful stop: close every connection, abort what is left at `deadline`.
    Stop {
        deadline: Instant,
    },
}

/// The sending half of one shard's inbox; shared by every sender.
pub(crate) struct Inbox {
    tx: Sender<Envelope>,
    waker: mio::Waker,
    parked: CachePadded<AtomicBool>,
}

impl Inbox {
    pub(crate) fn new(waker: mio::Waker) -> (Inbox, Receiver<Envelope>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Inbox {
                tx,
                waker,
                parked: CachePadded::new(AtomicBool::new(false)),
            },
            rx,
        )
    }

    /// Queues `env` and wakes the shard only if it is parked in `poll`.
    /// Returns false if the shard has exited.
    pub(crate) fn send(&self, env: Envelope) -> bool {
        if self.tx.send(env).is_err() {
            return false;
        }
        // Pairs with the fence in `park`: either the shard sees our message
        // when it re-checks its queue, or we see it parked and wake it.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                tracing::error!(error = %e, "cannot wake shard");
            }
        }
        true
    }

    /// Called by the owning shard before a blocking poll. Returns false when
    /// messages are already waiting, in which case the shard must not block.
    pub(crate) fn park(&self, rx: &Receiver<Envelope>) -> bool {
        self.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if rx.is_empty() {
            true
        } else {
            self.parked.store(false, Ordering::Relaxed);
            false
        }
    }

    /// Called by the owning shard after poll returns.
    pub(crate) fn unpark(&self) {
        self.parked.store(false, Ordering::Relaxed);
    }

    /// Wakes the shard regardless of its parked flag.
    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// Drains up to `max` envelopes, flattening batches, into `out`.
pub(crate) fn drain(rx: &Receiver<Envelope>, max: usize, out: &mut Vec<Envelope>) -> bool {
    let mut taken = 0;
    while taken < max {
        match rx.try_recv() {
            Ok(Envelope::Batch(batch)) => {
                taken += batch.len();
                out.extend(batch);
            }
            Ok(env) => {
                taken += 1;
                out.push(env);
            }
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return false,
        }
    }
    !rx.is_empty()
}

/// All shards' inboxes, shared by the shards, the acceptor and every `Handle`.
pub(crate) type Inboxes = Arc<[Inbox]>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn busy_shard_is_not_woken_and_parked_shard_is() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let (inbox, rx) = Inbox::new(waker);
        let mut events = mio::Events::with_capacity(8);

        // Not parked: sends queue without waking.
        for _ in 0..100 {
            assert!(inbox.send(Envelope::Run(Box::new(|_| {}))));
        }
        poll.poll(&mut events, Some(Duration::from_millis(0)))
            .unwrap();
        assert!(events.is_empty(), "no wake-up while busy");
        // Messages are waiting, so parking refuses.
        assert!(!inbox.park(&rx));
        let mut out = Vec::new();
        assert!(!drain(&rx, 1000, &mut out));
        assert_eq!(out.len(), 100);

        // Parked: the first send wakes, later ones do not add wake-ups.
        assert!(inbox.park(&rx));
        inbox.send(Envelope::Run(Box::new(|_| {})));
        inbox.send(Envelope::Run(Box::new(|_| {})));
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1);
        inbox.unpark();
    }

    #[test]
    fn drain_flattens_batches_and_reports_leftovers() {
        let poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let (inbox, rx) = Inbox::new(waker);
        inbox.send(Envelope::Batch(
            (0..3).map(|_| Envelope::Run(Box::new(|_| {}))).collect(),
        ));
        inbox.send(Envelope::Run(Box::new(|_| {})));
        inbox.send(Envelope::Run(Box::new(|_| {})));
        let mut out = Vec::new();
        assert!(drain(&rx, 4, &mut out), "one left over");
        assert_eq!(out.len(), 4);
        out.clear();
        assert!(!drain(&rx, 4, &mut out));
        assert_eq!(out.len(), 1);
    }
}
