//! What the driver asks of the kernel, in our words: the operations it
//! submits ([`Op`]), the completions it reads back (`user_data`, result,
//! flags: the kernel's own encoding, read with `io_uring::cqueue`), the
//! receive buffers it registers, and the wait. [`Kernel::Ring`] is a real
//! `io_uring`; in the crate's tests, [`Kernel::Scripted`] is a kernel that
//! works against the testing kit's scripted sockets, so the shard's
//! completion path runs, unchanged, in the same socket-free tests as its
//! readiness path (see `testing/fake_kernel.rs`).
//!
//! The boundary is this enum, not a trait object: outside tests it has one
//! variant, and the hot path pays no indirection for the seam.

use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// One operation, as the driver submits it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// A multishot receive on `fd` into buffer group `bgid`.
    Recv { fd: RawFd, bgid: u16 },
    /// A `sendmsg` of the vector `msg` names (`MSG_NOSIGNAL`); zero-copy
    /// (`SENDMSG_ZC`, usage reported) if asked.
    Send {
        fd: RawFd,
        msg: *const libc::msghdr,
        zero_copy: bool,
    },
    /// Cancels the operation whose `user_data` is `target`.
    Cancel { target: u64 },
    /// A multishot readability poll of `fd`.
    Poll { fd: RawFd },
    /// A multishot accept on listening socket `fd` (non-blocking,
    /// close-on-exec sockets).
    Accept { fd: RawFd },
    /// Closes descriptor `fd` (ours to close: nothing else holds it).
    Close { fd: RawFd },
}

/// `IORING_SEND_ZC_REPORT_USAGE`: the notification says whether the
/// kernel copied the bytes after all (loopback, a device without
/// scatter-gather); the `io-uring` crate exports these per architecture.
const SEND_ZC_REPORT_USAGE: u16 = 8;

impl Op {
    fn entry(self, ud: u64) -> squeue::Entry {
        let sqe = match self {
            Op::Recv { fd, bgid } => opcode::RecvMulti::new(types::Fd(fd), bgid).build(),
            Op::Send {
                fd,
                msg,
                zero_copy: true,
            } => opcode::SendMsgZc::new(types::Fd(fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .ioprio(SEND_ZC_REPORT_USAGE)
                .build(),
            Op::Send { fd, msg, .. } => opcode::SendMsg::new(types::Fd(fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
            Op::Cancel { target } => opcode::AsyncCancel::new(target).build(),
            Op::Poll { fd } => opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
                .multi(true)
                .build(),
            Op::Accept { fd } => opcode::AcceptMulti::new(types::Fd(fd))
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build(),
            Op::Close { fd } => opcode::Close::new(types::Fd(fd)).build(),
        };
        sqe.user_data(ud)
    }
}

/// A kernel that runs the driver's operations.
// (The scripted variant exists in tests only: boxing the ring to even the
// sizes would add a pointer chase to every submission outside them.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Kernel {
    Ring(IoUring),
    /// The testing kit's kernel over scripted sockets.
    #[cfg(test)]
    Scripted(Box<dyn Scripted>),
}

/// A kernel in a test: it takes operations, does what its sockets allow
/// when the driver submits, and hands back completions as a ring would.
#[cfg(test)]
pub(crate) trait Scripted {
    /// Takes an operation (memory it names stays valid until its last
    /// completion, as for a ring).
    fn push(&mut self, op: Op, ud: u64);
    /// Runs every operation as far as the sockets allow now.
    fn run(&mut self);
    /// The completions there are, in order: (`user_data`, result, flags).
    fn reap(&mut self, into: &mut std::collections::VecDeque<(u64, i32, u32)>);
    /// A provided-buffer ring registered: `count` entries at `entries`.
    fn register_buffers(&mut self, entries: u64, count: u16, bgid: u16, incremental: bool);
    fn unregister_buffers(&mut self, bgid: u16);
}

impl Kernel {
    /// A ring of `entries` submissions, for one issuing thread.
    pub(crate) fn ring(entries: u32) -> io::Result<Kernel> {
        let ring = IoUring::builder()
            // The shard is the only thread submitting.
            .setup_single_issuer()
            .setup_coop_taskrun()
            .build(entries)
            .or_else(|_| IoUring::new(entries))?;
        Ok(Kernel::Ring(ring))
    }

    /// Queues `op`, to go at the next submit; false if the submission
    /// queue is full (nothing queued).
    ///
    /// # Safety
    /// Memory `op` names (a send's message header and what it points to,
    /// the buffers of its group) must stay valid until the operation's
    /// last completion.
    #[inline]
    pub(crate) unsafe fn push(&mut self, op: Op, ud: u64) -> bool {
        match self {
            // SAFETY: the caller's promise above.
            Kernel::Ring(ring) => unsafe { ring.submission().push(&op.entry(ud)).is_ok() },
            #[cfg(test)]
            Kernel::Scripted(k) => {
                k.push(op, ud);
                true
            }
        }
    }

    /// True if operations are queued and not yet submitted.
    pub(crate) fn queued(&mut self) -> bool {
        match self {
            Kernel::Ring(ring) => !ring.submission().is_empty(),
            #[cfg(test)]
            Kernel::Scripted(_) => false,
        }
    }

    /// Submits what is queued and waits until at least one completion is
    /// in or `timeout` passes (`Some(ZERO)`: no wait; `None`: no limit).
    /// A wait that ends on its timeout, a signal, or a full completion
    /// queue (read it, submit again later) is not an error.
    pub(crate) fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let result = match self {
            Kernel::Ring(ring) => match timeout {
                Some(t) if t.is_zero() => ring.submit(),
                Some(t) => {
                    let ts = types::Timespec::from(t);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    ring.submitter().submit_with_args(1, &args)
                }
                None => ring.submit_and_wait(1),
            },
            #[cfg(test)]
            Kernel::Scripted(k) => {
                k.run();
                Ok(0)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves the completions there are into `into`.
    pub(crate) fn reap(&mut self, into: &mut std::collections::VecDeque<(u64, i32, u32)>) {
        match self {
            Kernel::Ring(ring) => {
                into.extend(
                    ring.completion()
                        .map(|c| (c.user_data(), c.result(), c.flags())),
                );
            }
            #[cfg(test)]
            Kernel::Scripted(k) => k.reap(into),
        }
    }

    /// Registers `count` receive buffers whose ring of entries is at
    /// `entries`, as group `bgid`, consumed `incremental`ly
    /// (`IOU_PBUF_RING_INC`) if asked.
    ///
    /// # Safety
    /// The entries (page-aligned) and the buffers they name must stay
    /// valid until [`unregister_buffers`](Self::unregister_buffers)
    /// succeeds.
    pub(crate) unsafe fn register_buffers(
        &mut self,
        entries: u64,
        count: u16,
        bgid: u16,
        incremental: bool,
    ) -> io::Result<()> {
        /// `IOU_PBUF_RING_INC` (exported by the `io-uring` crate per
        /// architecture only).
        const IOU_PBUF_RING_INC: u16 = 2;
        match self {
            // SAFETY: the caller's promise above.
            Kernel::Ring(ring) => unsafe {
                ring.submitter().register_buf_ring_with_flags(
                    entries,
                    count,
                    bgid,
                    if incremental { IOU_PBUF_RING_INC } else { 0 },
                )
            },
            #[cfg(test)]
            Kernel::Scripted(k) => {
                k.register_buffers(entries, count, bgid, incremental);
                Ok(())
            }
        }
    }

    /// Unregisters buffer group `bgid`: the kernel no longer writes there.
    pub(crate) fn unregister_buffers(&mut self, bgid: u16) -> io::Result<()> {
        match self {
            Kernel::Ring(ring) => ring.submitter().unregister_buf_ring(bgid),
            #[cfg(test)]
            Kernel::Scripted(k) => {
                k.unregister_buffers(bgid);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
impl Kernel {
    /// The real ring, for tests that drive it by hand.
    pub(crate) fn io_uring(&mut self) -> &mut IoUring {
        match self {
            Kernel::Ring(ring) => ring,
            Kernel::Scripted(_) => panic!("a scripted kernel has no ring"),
        }
    }
}
