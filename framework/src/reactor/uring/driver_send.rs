//! The driver's sends: a connection's whole output queue handed to one
//! `sendmsg` (vectored), kept until its completion; zero-copy sends
//! (`SENDMSG_ZC`) whose bytes are kept until the kernel's notification.

use super::{user_data, zc_user_data, Completion, Driver, Kind, Op, ZcSend, NOTIF_USAGE_ZC_COPIED};
use crate::net::{BufPool, WriteBuf};
use io_uring::cqueue;
use std::io;

/// A send in flight: the queue it writes from, and the message header and
/// vector that point into it (boxed: the kernel reads them where they are).
pub(super) struct SendOp {
    /// Its `user_data` (what a cancel names).
    pub(super) ud: u64,
    pub(super) out: WriteBuf,
    iov: Vec<libc::iovec>,
    msg: libc::msghdr,
}

/// At most this many buffers go into one send.
const MAX_IOV: usize = 64;

impl Driver {
    /// Sends `out` on `slot`; the queue is the kernel's until
    /// [`Completion::Sent`] gives it back. Refused (given back) while
    /// another send is in flight or when there is nothing to send.
    ///
    /// A send of at least `zero_copy` bytes (if set) goes without a copy
    /// (`SENDMSG_ZC`) where the kernel has it: the bytes sent stay here
    /// until the kernel's notification that it no longer reads them. A
    /// connection whose zero-copy send the kernel copied anyway (a local
    /// peer) sends by copy from then on.
    pub(crate) fn send(
        &mut self,
        slot: u32,
        out: WriteBuf,
        zero_copy: Option<usize>,
    ) -> Result<(), WriteBuf> {
        if out.is_empty() || self.sending(slot) || !self.slot(slot).live {
            return Err(out);
        }
        let zc = self.zc_supported
            && !self.slot(slot).copies
            && zero_copy.is_some_and(|t| out.len() >= t);
        let mut op = Box::new(SendOp {
            ud: 0,
            out,
            iov: Vec::with_capacity(MAX_IOV),
            // SAFETY: a zeroed msghdr is the "no address, no control
            // data" header; the vector is set below.
            msg: unsafe { std::mem::zeroed() },
        });
        let SendOp { out, iov, msg, .. } = &mut *op;
        iov.extend(out.slices(MAX_IOV).map(|s| libc::iovec {
            iov_base: s.as_ptr() as *mut libc::c_void,
            iov_len: s.len(),
        }));
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        let (fd, gen) = {
            let o = self.slot(slot);
            (o.fd, o.gen)
        };
        let msg = &op.msg as *const libc::msghdr;
        if zc {
            self.zc_seq += 1;
            op.ud = zc_user_data(self.zc_seq);
            self.zc.insert(
                op.ud,
                ZcSend {
                    slot,
                    gen,
                    kept: None,
                },
            );
        } else {
            op.ud = user_data(Kind::Send, slot, gen);
        }
        let ud = op.ud;
        self.slot(slot).send = Some(op);
        let send = Op::Send {
            fd,
            msg,
            zero_copy: zc,
        };
        self.push(send, ud);
        Ok(())
    }

    /// A zero-copy send's result, or its notification.
    pub(super) fn zc_completion(
        &mut self,
        ud: u64,
        res: i32,
        flags: u32,
        pool: &mut BufPool,
    ) -> Option<Completion> {
        if cqueue::notif(flags) {
            // The kernel reads none of its bytes any more.
            let rec = self.zc.remove(&ud)?;
            if res as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                if let Some(o) = self.ops.get_mut(rec.slot as usize) {
                    if o.live && o.gen == rec.gen {
                        o.copies = true;
                    }
                }
            }
            if let Some(mut kept) = rec.kept {
                kept.clear(pool);
            }
            return None;
        }
        // Its result: a notification follows if `more`.
        let more = cqueue::more(flags);
        let rec = self.zc.get_mut(&ud)?;
        let slot = rec.slot;
        let current = self.ops.get(slot as usize).is_some_and(|o| {
            o.live && o.gen == rec.gen && o.send.as_ref().is_some_and(|op| op.ud == ud)
        });
        let op = if current {
            self.ops[slot as usize].send.take()
        } else {
            // Its connection went: the send was in the graveyard.
            self.graveyard.remove(&ud)
        };
        let Some(op) = op else {
            self.zc.remove(&ud);
            return None;
        };
        let SendOp { mut out, .. } = *op;
        let n = usize::try_from(res).unwrap_or(0);
        if more && n > 0 {
            rec.kept = Some(out.split_sent(n));
        } else {
            out.advance(n, pool);
        }
        if !more {
            self.zc.remove(&ud);
        }
        if !current {
            out.clear(pool);
            return None;
        }
        let sent = if res >= 0 {
            Ok(n)
        } else {
            Err(io::Error::from_raw_os_error(-res))
        };
        Some(Completion::Sent { slot, sent, out })
    }
}
