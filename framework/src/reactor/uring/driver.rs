//! The completion backend's engine, apart from the shard: one ring per
//! shard, multishot receives into the provided-buffer ring, sends that
//! take a connection's output queue with them to the kernel (so nothing
//! writes to or frees those bytes until the send completes), cancels, and
//! readiness of other descriptors (the shard's epoll set) watched through
//! the same ring. Submissions queue up during an iteration and go to the
//! kernel together, in the one `io_uring_enter` that also waits.
//!
//! Operations name their connection by slot and generation in
//! `user_data`; a completion for a slot since reused is recognised as
//! stale, and a send still in flight when its connection goes keeps its
//! buffers (the "graveyard") until the kernel is done with them.

#[path = "driver_accept.rs"]
mod accept;
#[path = "driver_send.rs"]
mod send;
use send::SendOp;

use super::buf_ring::{BufRing, Piece};
use super::kernel::{Kernel, Op};
use crate::net::{BufPool, WriteBuf};
use io_uring::cqueue;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

/// What an operation is, in the low byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Recv = 1,
    Send = 2,
    Cancel = 3,
    Poll = 4,
    Accept = 5,
    /// A zero-copy send: the rest of its `user_data` is a sequence number
    /// (its result and its notification share it, and the notification
    /// may come after the next send of the same connection).
    SendZc = 6,
    Close = 7,
}

fn zc_user_data(seq: u64) -> u64 {
    (seq << 8) | Kind::SendZc as u64
}

/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a notification's result.
pub(crate) const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

fn user_data(kind: Kind, slot: u32, gen: u32) -> u64 {
    (u64::from(gen & 0xff_ffff) << 40) | (u64::from(slot) << 8) | kind as u64
}

fn parts(ud: u64) -> (u8, u32, u32) {
    ((ud & 0xff) as u8, (ud >> 8) as u32, (ud >> 40) as u32)
}

/// A connection's multishot receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Recv {
    #[default]
    Off,
    Armed,
    /// Asked to stop; its last completion has not come yet.
    Cancelling,
}

/// What the driver keeps for one connection slot.
#[derive(Default)]
struct Ops {
    gen: u32,
    fd: RawFd,
    live: bool,
    recv: Recv,
    send: Option<Box<SendOp>>,
    /// A zero-copy send to this socket was copied by the kernel anyway
    /// (a local peer): its sends copy from now on, as that is cheaper.
    copies: bool,
}

/// A zero-copy send whose notification has not come: the bytes the
/// kernel may still read are kept here once its result is in.
struct ZcSend {
    slot: u32,
    gen: u32,
    kept: Option<WriteBuf>,
}

/// One completion, interpreted.
pub(crate) enum Completion {
    /// Bytes for `slot` in a receive buffer (read them with
    /// [`BufRing::filled`] or [`Driver::filled`], then recycle the piece).
    /// The receive may have ended with it: call [`Driver::recv`] after (a
    /// no-op while it is armed) if the connection still wants input.
    Data { slot: u32, piece: Piece },
    /// The peer's FIN: no more data for `slot`.
    Eof { slot: u32 },
    /// The receive failed.
    RecvError { slot: u32, error: io::Error },
    /// The receive stopped (cancelled, or, if `starved`, out of buffers)
    /// and `slot` still wants input: arm it again with [`Driver::recv`]
    /// when it does (once buffers are back, if starved).
    RecvStopped { slot: u32, starved: bool },
    /// A send finished: `sent` bytes of `out` went out (`Err`: it failed);
    /// the rest of `out`, and anything queued since, is the caller's again.
    Sent {
        slot: u32,
        sent: io::Result<usize>,
        out: WriteBuf,
    },
    /// A watched descriptor is readable.
    Polled { tag: u32 },
    /// Listener `listener` accepted a connection: its socket
    /// (non-blocking, close-on-exec).
    Accepted { listener: u32, fd: OwnedFd },
    /// Listener `listener`'s accept failed and stopped (out of
    /// descriptors or memory): arm it again with [`Driver::listen`] later.
    AcceptFailed { listener: u32, error: io::Error },
}

pub(crate) struct Driver {
    kernel: Kernel,
    /// The receive buffers (out only while lent: [`Driver::lend_buffers`]).
    bufs: Option<BufRing>,
    bgid: u16,
    ops: Vec<Ops>,
    /// Sends of connections that went while the kernel still read their
    /// buffers, by `user_data`.
    graveyard: HashMap<u64, Box<SendOp>>,
    /// Submissions that did not fit the queue: pushed after the next
    /// submit.
    overflow: Vec<(Op, u64)>,
    /// Descriptors watched for readability, by tag (re-armed when their
    /// multishot poll ends).
    watched: Vec<(u32, RawFd)>,
    /// Listeners accepted from, by index: the descriptor while it is
    /// accepted from (`None` once let go), and whether its multishot
    /// accept is armed.
    listeners: Vec<(Option<RawFd>, bool)>,
    /// Zero-copy sends until their notification, by `user_data`.
    zc: HashMap<u64, ZcSend>,
    zc_seq: u64,
    /// The kernel has `IORING_OP_SENDMSG_ZC` (6.1).
    zc_supported: bool,
    reaped: VecDeque<(u64, i32, u32)>,
}

impl Driver {
    /// A ring of `entries` submissions and a group of `buffers` receive
    /// buffers of `size` bytes, consumed `incremental`ly if asked (see
    /// [`BufRing`]: refused by a kernel older than 6.12).
    pub(crate) fn new(
        entries: u32,
        buffers: u16,
        size: usize,
        incremental: bool,
    ) -> io::Result<Driver> {
        // (The start-up probe's answer, kept: no probe per shard.)
        let zc_supported = super::probe::probe().is_ok_and(|f| f.send_msg_zc);
        Driver::on(
            Kernel::ring(entries)?,
            buffers,
            size,
            incremental,
            zc_supported,
        )
    }

    /// The driver of `kernel` (zero-copy sends if it has them).
    pub(crate) fn on(
        mut kernel: Kernel,
        buffers: u16,
        size: usize,
        incremental: bool,
        zc_supported: bool,
    ) -> io::Result<Driver> {
        let bufs = BufRing::new(&mut kernel, 0, buffers, size, incremental)?;
        Ok(Driver {
            kernel,
            bgid: bufs.bgid(),
            bufs: Some(bufs),
            ops: Vec::new(),
            graveyard: HashMap::new(),
            overflow: Vec::new(),
            watched: Vec::new(),
            listeners: Vec::new(),
            zc: HashMap::new(),
            zc_seq: 0,
            zc_supported,
            reaped: VecDeque::new(),
        })
    }

    fn push(&mut self, op: Op, ud: u64) {
        // SAFETY: every operation submitted here names memory that
        // outlives it: provided buffers (the ring's), a `SendOp` boxed and
        // kept until its completion (or in the graveyard), or nothing.
        let pushed = unsafe { self.kernel.push(op, ud) };
        if !pushed {
            self.overflow.push((op, ud));
        }
    }

    fn slot(&mut self, slot: u32) -> &mut Ops {
        let i = slot as usize;
        if self.ops.len() <= i {
            self.ops.resize_with(i + 1, Ops::default);
        }
        &mut self.ops[i]
    }

    /// Starts driving a connected socket in `slot` (generation `gen`):
    /// its receive is armed.
    pub(crate) fn open(&mut self, slot: u32, gen: u32, fd: RawFd) {
        let o = self.slot(slot);
        debug_assert!(!o.live, "slot {slot} opened twice");
        *o = Ops {
            gen,
            fd,
            live: true,
            ..Ops::default()
        };
        self.recv(slot);
    }

    /// Arms `slot`'s multishot receive (if it is not armed or stopping).
    pub(crate) fn recv(&mut self, slot: u32) {
        let bgid = self.bgid;
        let o = self.slot(slot);
        if !o.live || o.recv != Recv::Off {
            return;
        }
        o.recv = Recv::Armed;
        let (fd, ud) = (o.fd, user_data(Kind::Recv, slot, o.gen));
        self.push(Op::Recv { fd, bgid }, ud);
    }

    /// Stops `slot`'s receive (reading paused): completions already on
    /// their way still come, then [`Completion::RecvStopped`].
    pub(crate) fn stop_recv(&mut self, slot: u32) {
        let o = self.slot(slot);
        if !o.live || o.recv != Recv::Armed {
            return;
        }
        o.recv = Recv::Cancelling;
        let (target, gen) = (user_data(Kind::Recv, slot, o.gen), o.gen);
        self.push(Op::Cancel { target }, user_data(Kind::Cancel, slot, gen));
    }

    /// True if `slot` holds a connection driven here.
    #[inline]
    pub(crate) fn is_open(&self, slot: u32) -> bool {
        self.ops.get(slot as usize).is_some_and(|o| o.live)
    }

    /// True while `slot`'s receive is armed or stopping.
    pub(crate) fn receiving(&self, slot: u32) -> bool {
        self.ops
            .get(slot as usize)
            .is_some_and(|o| o.live && o.recv != Recv::Off)
    }

    /// The receive buffers, to read a [`Completion::Data`]'s bytes while
    /// the caller also uses the driver (give them back with
    /// [`return_buffers`](Driver::return_buffers)).
    pub(crate) fn lend_buffers(&mut self) -> Option<BufRing> {
        self.bufs.take()
    }

    pub(crate) fn return_buffers(&mut self, bufs: BufRing) {
        self.bufs = Some(bufs);
    }

    /// Receive buffers given back to the kernel since the last call.
    pub(crate) fn take_returned(&mut self) -> usize {
        self.bufs.as_mut().map_or(0, BufRing::take_returned)
    }

    /// Bytes of `slot`'s send in flight (0 without one).
    pub(crate) fn in_flight(&self, slot: u32) -> usize {
        self.ops
            .get(slot as usize)
            .and_then(|o| o.send.as_ref())
            .map_or(0, |op| op.out.len())
    }

    /// True while a send of `slot` is in flight.
    pub(crate) fn sending(&self, slot: u32) -> bool {
        self.ops
            .get(slot as usize)
            .is_some_and(|o| o.live && o.send.is_some())
    }

    /// `slot`'s connection is gone (or moves to another shard): its
    /// receive is cancelled, a send in flight keeps its buffers until the
    /// kernel is done, and completions still to come for it are ignored.
    ///
    /// `close`: its socket, for the ring to close after the cancels (the
    /// caller gave up the descriptor). A socket closed through the ring
    /// keeps its number until the ring reaches the close, so every
    /// operation queued before it (which names the socket by number)
    /// still meets this socket, not a new connection's that took the
    /// number; and the close costs no system call of its own.
    pub(crate) fn close(&mut self, slot: u32, close: Option<RawFd>) {
        let o = self.slot(slot);
        if !o.live {
            if let Some(fd) = close {
                self.push(Op::Close { fd }, user_data(Kind::Close, slot, 0));
            }
            return;
        }
        o.live = false;
        let gen = o.gen;
        let recv = std::mem::take(&mut o.recv);
        if let Some(op) = o.send.take() {
            let ud = op.ud;
            self.graveyard.insert(ud, op);
            // A peer that reads nothing would hold it (and the socket)
            // forever.
            self.push(
                Op::Cancel { target: ud },
                user_data(Kind::Cancel, slot, gen),
            );
        }
        if recv == Recv::Armed {
            let target = user_data(Kind::Recv, slot, gen);
            self.push(Op::Cancel { target }, user_data(Kind::Cancel, slot, gen));
        }
        if let Some(fd) = close {
            self.push(Op::Close { fd }, user_data(Kind::Close, slot, gen));
        }
    }

    /// Watches `fd` for readability (the shard's epoll set, through the
    /// ring): [`Completion::Polled`] with `tag` each time it is.
    pub(crate) fn watch(&mut self, tag: u32, fd: RawFd) {
        self.watched.push((tag, fd));
        self.arm_poll(tag, fd);
    }

    fn arm_poll(&mut self, tag: u32, fd: RawFd) {
        self.push(Op::Poll { fd }, user_data(Kind::Poll, tag, 0));
    }

    /// The bytes a [`Completion::Data`] names.
    #[cfg(test)]
    pub(crate) fn filled(&self, piece: Piece) -> &[u8] {
        self.bufs.as_ref().map_or(&[], |b| b.filled(piece))
    }

    /// Done with a piece once its bytes were handed on (its buffer goes
    /// back if the kernel is done with it).
    pub(crate) fn recycle(&mut self, piece: Piece) {
        if let Some(b) = self.bufs.as_mut() {
            b.recycle(piece);
        }
    }

    /// True if the receive buffers are consumed incrementally.
    #[cfg(test)]
    pub(crate) fn incremental(&self) -> bool {
        self.bufs.as_ref().is_some_and(BufRing::incremental)
    }

    /// Submits everything queued without waiting (a send to a socket with
    /// room completes right away), and takes in the completions there are.
    pub(crate) fn submit(&mut self) -> io::Result<()> {
        self.wait(Some(Duration::ZERO))
    }

    /// True if completions are waiting to be read with [`next`](Driver::next).
    pub(crate) fn has_completions(&self) -> bool {
        !self.reaped.is_empty()
    }

    /// The next completion if it is a send's (stale ones skipped).
    pub(crate) fn next_send(&mut self, pool: &mut BufPool) -> Option<Completion> {
        while self
            .reaped
            .front()
            .is_some_and(|&(ud, _, _)| parts(ud).0 == Kind::Send as u8)
        {
            let (ud, res, flags) = self.reaped.pop_front().expect("checked");
            if let Some(c) = self.interpret(ud, res, flags, pool) {
                return Some(c);
            }
        }
        None
    }

    fn after_submit(&mut self) {
        for (op, ud) in std::mem::take(&mut self.overflow) {
            self.push(op, ud);
        }
        self.kernel.reap(&mut self.reaped);
    }

    /// Submits everything queued and waits until at least one completion
    /// is in or `timeout` passes (`None`: no limit; zero: no wait). The
    /// completions are then read with [`next`](Driver::next).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if let Some(b) = self.bufs.as_ref() {
            b.publish();
        }
        self.kernel.enter(timeout)?;
        self.after_submit();
        Ok(())
    }

    /// The next completion of the last [`wait`](Driver::wait), stale ones
    /// (for connections since closed) dealt with and skipped.
    pub(crate) fn next(&mut self, pool: &mut BufPool) -> Option<Completion> {
        while let Some((ud, res, flags)) = self.reaped.pop_front() {
            if let Some(c) = self.interpret(ud, res, flags, pool) {
                return Some(c);
            }
        }
        None
    }

    fn interpret(
        &mut self,
        ud: u64,
        res: i32,
        flags: u32,
        pool: &mut BufPool,
    ) -> Option<Completion> {
        let (kind, slot, gen) = parts(ud);
        if kind == Kind::Poll as u8 {
            if !cqueue::more(flags) {
                // A multishot poll can end (an error, an overflow): again.
                if let Some(&(tag, fd)) = self.watched.iter().find(|(t, _)| *t == slot) {
                    self.arm_poll(tag, fd);
                }
            }
            return Some(Completion::Polled { tag: slot });
        }
        if kind == Kind::Cancel as u8 {
            return None;
        }
        if kind == Kind::Close as u8 {
            if res < 0 {
                // Only a bug of ours (a number closed twice) can do this.
                tracing::error!(error = %io::Error::from_raw_os_error(-res), "io_uring close failed");
            }
            return None;
        }
        if kind == Kind::Accept as u8 {
            return self.accepted(slot, res, cqueue::more(flags));
        }
        if kind == Kind::SendZc as u8 {
            return self.zc_completion(ud, res, flags, pool);
        }
        let current = self
            .ops
            .get(slot as usize)
            .is_some_and(|o| o.live && o.gen & 0xff_ffff == gen);
        if kind == Kind::Send as u8 {
            if !current || self.ops[slot as usize].send.is_none() {
                // A closed connection's send: its buffers can go now
                // (unless a notification for it is still due).
                self.graveyard.remove(&ud);
                return None;
            }
            let op = self.ops[slot as usize].send.take().expect("checked");
            let SendOp { mut out, .. } = *op;
            let sent = if res >= 0 {
                out.advance(res as usize, pool);
                Ok(res as usize)
            } else {
                Err(io::Error::from_raw_os_error(-res))
            };
            return Some(Completion::Sent { slot, sent, out });
        }
        // A receive. Its piece is accounted for first, stale or not: the
        // next piece of an incrementally consumed buffer starts after it.
        let piece = match (cqueue::buffer_select(flags), self.bufs.as_mut()) {
            (Some(bid), Some(bufs)) => {
                bufs.piece(bid, res.max(0) as usize, cqueue::buffer_more(flags))
            }
            _ => None,
        };
        if !current || res <= 0 {
            // (A piece with no bytes: none is named, but one would be
            // given back rather than lost.)
            if let Some(piece) = piece {
                self.recycle(piece);
            }
            if !current {
                return None;
            }
        }
        let more = cqueue::more(flags);
        let o = &mut self.ops[slot as usize];
        if !more {
            o.recv = Recv::Off;
        }
        match (res, piece) {
            (n, Some(piece)) if n > 0 => Some(Completion::Data { slot, piece }),
            (0, _) => Some(Completion::Eof { slot }),
            (e, _) if e == -libc::ENOBUFS || e == -libc::ECANCELED => {
                Some(Completion::RecvStopped {
                    slot,
                    starved: e == -libc::ENOBUFS,
                })
            }
            (e, _) if e < 0 => Some(Completion::RecvError {
                slot,
                error: io::Error::from_raw_os_error(-e),
            }),
            // Data with no buffer named: cannot happen with buffer
            // selection; treated as a stop so the caller re-arms.
            _ => Some(Completion::RecvStopped {
                slot,
                starved: false,
            }),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Closes still queued (the shard's last connections) go to the
        // kernel: the descriptors would stay open otherwise. (What else is
        // queued is harmless: the memory it names is kept below.) Twice:
        // what did not fit the queue is pushed after the first submit.
        if self.kernel.queued() || !self.overflow.is_empty() {
            let _ = self.submit();
            let _ = self.submit();
        }
        let busy = !self.graveyard.is_empty()
            || !self.zc.is_empty()
            || self
                .ops
                .iter()
                .any(|o| o.live && (o.recv != Recv::Off || o.send.is_some()));
        if busy {
            // The ring's teardown ends its operations after we return: the
            // memory they may still touch is left to the process (a shard
            // drops its driver once, when its thread ends).
            std::mem::forget(std::mem::take(&mut self.graveyard));
            std::mem::forget(std::mem::take(&mut self.zc));
            for o in &mut self.ops {
                std::mem::forget(o.send.take());
            }
            std::mem::forget(self.bufs.take());
        } else if let Some(b) = self.bufs.take() {
            b.release(&mut self.kernel);
        }
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
