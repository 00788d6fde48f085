//! The cross-shard message bus: one inbox per shard (a `crossbeam-channel`
//! plus a `mio::Waker`) and the parked flag that spares a busy shard a
//! wake-up syscall per message.
//!
//! The protocol: a shard about to block in `poll` sets `parked`, then
//! re-checks its queue (`park`); a sender queues first, then wakes the shard
//! only if it finds `parked` set, clearing it (`send`). The two `SeqCst`
//! fences order "queue, then read flag" against "set flag, then read queue",
//! so at least one side sees the other: no message waits on a sleeping shard.

use super::capacity::{Capacity, Full};
use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{fence, AtomicBool, Ordering};

/// The sending half of one shard's inbox; shared by every sender.
pub(crate) struct Inbox<T> {
    tx: Sender<T>,
    waker: mio::Waker,
    parked: CachePadded<AtomicBool>,
    /// How many requests may wait (control messages take no slot).
    pub(crate) capacity: Capacity,
}

impl<T> Inbox<T> {
    /// An inbox holding at most `capacity` requests.
    pub(crate) fn new(waker: mio::Waker, capacity: usize) -> (Inbox<T>, Receiver<T>) {
        // The channel itself is unbounded: the capacity counts requests,
        // and control messages must never be refused.
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Inbox {
                tx,
                waker,
                parked: CachePadded::new(AtomicBool::new(false)),
                capacity: Capacity::new(capacity),
            },
            rx,
        )
    }

    /// Queues a request if the inbox has room (a slot the receiver gives
    /// back when it drains it).
    pub(crate) fn send_request(&self, msg: T) -> Result<(), Refused> {
        self.capacity.take().map_err(|Full| Refused::Full)?;
        self.send_taken(msg)
    }

    /// Queues a request whose slot the caller took; the slot comes back
    /// if the shard has exited.
    pub(crate) fn send_taken(&self, msg: T) -> Result<(), Refused> {
        if self.send(msg) {
            Ok(())
        } else {
            self.capacity.give_back(1);
            Err(Refused::Stopped)
        }
    }

    /// Queues `msg` (control traffic, or a request whose slot the caller
    /// took) and wakes the shard only if it is parked in `poll`. Returns
    /// false if the shard has exited.
    pub(crate) fn send(&self, msg: T) -> bool {
        self.send_or_return(msg).is_ok()
    }

    /// As [`send`](Inbox::send), but a message the shard can no longer
    /// take (it has exited) comes back to the caller.
    pub(crate) fn send_or_return(&self, msg: T) -> Result<(), T> {
        if let Err(e) = self.tx.send(msg) {
            return Err(e.into_inner());
        }
        // Pairs with the fence in `park`: either the shard sees our message
        // when it re-checks its queue, or we see it parked and wake it.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                tracing::error!(error = %e, "cannot wake shard");
            }
        }
        Ok(())
    }

    /// Called by the owning shard before a blocking poll. Returns false when
    /// messages are already waiting, in which case the shard must not block.
    pub(crate) fn park(&self, rx: &Receiver<T>) -> bool {
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

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The inbox holds its capacity of requests.
    Full,
    /// The shard has exited.
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn inbox<T>() -> (mio::Poll, Inbox<T>, Receiver<T>) {
        let poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let (inbox, rx) = Inbox::new(waker, 1 << 20);
        (poll, inbox, rx)
    }

    #[test]
    fn busy_shard_is_not_woken_and_parked_shard_is() {
        let (mut poll, inbox, rx) = inbox::<u32>();
        let mut events = mio::Events::with_capacity(8);

        // Not parked: sends queue without waking.
        for i in 0..100 {
            assert!(inbox.send(i));
        }
        poll.poll(&mut events, Some(Duration::from_millis(0)))
            .unwrap();
        assert!(events.is_empty(), "no wake-up while busy");
        // Messages are waiting, so parking refuses.
        assert!(!inbox.park(&rx));
        assert_eq!(rx.try_iter().count(), 100);

        // Parked: the first send wakes, later ones do not add wake-ups.
        assert!(inbox.park(&rx));
        inbox.send(1);
        inbox.send(2);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1);
        inbox.unpark();
    }

    /// Several threads send while the receiver parks and sleeps whenever its
    /// queue is empty, exactly as a shard does. A lost wake-up shows as a
    /// poll that sleeps to its (long) timeout with messages queued; a lost or
    /// reordered message shows in the per-sender sequence check.
    #[test]
    fn parked_flag_protocol_loses_no_wakeup_and_no_message() {
        const SENDERS: usize = 4;
        const PER_SENDER: u64 = 40_000;
        let (mut poll, inbox, rx) = inbox::<(usize, u64)>();
        let inbox = Arc::new(inbox);
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for seq in 0..PER_SENDER {
                        assert!(inbox.send((s, seq)));
                        // Bursts and pauses, so the receiver parks often
                        // and senders race with it parking.
                        match fastrand::u32(0..64) {
                            0 => std::thread::sleep(Duration::from_micros(50)),
                            1..=8 => std::thread::yield_now(),
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u64; SENDERS];
        let mut received = 0u64;
        let mut parks = 0u64;
        let mut events = mio::Events::with_capacity(8);
        while received < SENDERS as u64 * PER_SENDER {
            for (s, seq) in rx.try_iter() {
                assert_eq!(seq, next[s], "sender {s}: message lost or reordered");
                next[s] += 1;
                received += 1;
            }
            if inbox.park(&rx) {
                parks += 1;
                poll.poll(&mut events, Some(Duration::from_secs(10)))
                    .unwrap();
                inbox.unpark();
                if events.is_empty() {
                    assert!(
                        rx.is_empty(),
                        "lost wake-up: slept 10 s with {} messages queued",
                        rx.len()
                    );
                }
            }
        }
        for t in senders {
            t.join().unwrap();
        }
        assert_eq!(next, [PER_SENDER; SENDERS]);
        assert!(rx.is_empty());
        assert!(
            parks > 0,
            "the receiver never parked: the test proved nothing"
        );
    }
}
