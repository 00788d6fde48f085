//! A kernel for the completion (io_uring) backend with no kernel behind
//! it: it runs the driver's operations against the testing kit's scripted
//! sockets, as a ring would, so the shard's completion path runs in the
//! same socket-free tests as its readiness path.
//!
//! It keeps the ring's rules: a multishot receive takes a buffer from the
//! provided-buffer ring (reading the entries and the tail the driver
//! publishes, and writing into the buffers, as the kernel does; consumed
//! incrementally or whole), ends with `ENOBUFS` when none is left, with
//! its EOF (result 0) or with its error; a send that finds the socket
//! full waits (no completion); a cancel ends its target with `ECANCELED`
//! and answers `ENOENT` when the target is done; a zero-copy send's result
//! comes with `F_MORE` and its notification after it (held until the test
//! releases it, if asked).
//!
//! An operation is tried when it is submitted; one that finds nothing to
//! do (no input, no room: a scripted `WouldBlock`) waits for its socket's
//! wake-up ([`FakeKernel::wake`], the kernel's internal poll), which the
//! harness gives where the readiness model reports the socket ready.

use super::fake_socket::FakeSocket;
use crate::reactor::{UringOp as Op, UringScripted as Scripted};
use io_uring::types::BufRingEntry;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

// The completion flags, as the kernel sets them (`io_uring.h`); a test
// below checks them against the `io-uring` crate's readers.
const F_BUFFER: u32 = 1;
const F_MORE: u32 = 2;
const F_NOTIF: u32 = 8;
const F_BUF_MORE: u32 = 16;
const BUFFER_SHIFT: u32 = 16;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a notification's result.
const ZC_COPIED: i32 = i32::MIN;

/// Descriptor numbers of scripted sockets start here: no real descriptor
/// is this high, so an operation that reached a real ring would fail.
const FIRST_FD: RawFd = 1 << 28;

/// The kernel's side of the provided-buffer ring.
struct Provided {
    entries: *const BufRingEntry,
    count: u16,
    incremental: bool,
    /// The next entry the kernel takes.
    head: u16,
    /// Bytes of the head buffer already used (incremental).
    used: u32,
}

impl Provided {
    /// The buffer at the head, if the driver has published one: where
    /// the next bytes go, how many fit, and its id.
    fn head(&self) -> Option<(*mut u8, usize, u16)> {
        // SAFETY: `entries` is the ring the driver registered (`count`
        // entries, page-aligned, alive until it unregisters, which drops
        // this); the tail is the first entry's reserved field, written by
        // the driver's `publish` with a Release store.
        let tail = unsafe {
            (*BufRingEntry::tail(self.entries).cast::<AtomicU16>()).load(Ordering::Acquire)
        };
        if tail == self.head {
            return None;
        }
        let i = usize::from(self.head & (self.count - 1));
        // SAFETY: `i` < count; the driver wrote this entry before the
        // tail that shows it.
        let e = unsafe { &*self.entries.add(i) };
        let room = e.len().saturating_sub(self.used) as usize;
        let at = (e.addr() + u64::from(self.used)) as *mut u8;
        Some((at, room, e.bid()))
    }

    /// `n` bytes went into the head buffer, which had `room`: whether the
    /// kernel goes on filling it (`F_BUF_MORE`).
    fn consume(&mut self, n: usize, room: usize) -> bool {
        if self.incremental && n < room {
            self.used += n as u32;
            return true;
        }
        self.head = self.head.wrapping_add(1);
        self.used = 0;
        false
    }
}

/// An operation the kernel holds.
#[derive(Clone, Copy)]
struct InFlight {
    seq: u64,
    ud: u64,
    op: Op,
    /// It found nothing to do and waits for its socket's wake-up.
    parked: bool,
}

#[derive(Default)]
struct State {
    sockets: HashMap<RawFd, FakeSocket>,
    next_fd: RawFd,
    /// Operations in flight, in the order they were submitted.
    ops: Vec<InFlight>,
    seq: u64,
    cq: VecDeque<(u64, i32, u32)>,
    bufs: Option<Provided>,
    /// Zero-copy notifications wait for [`FakeKernel::notify`].
    hold_notifications: bool,
    held: Vec<(u64, i32, u32)>,
    /// Zero-copy notifications say the bytes were copied (a local peer).
    zc_copies: bool,
    /// Completions posted so far.
    posted: usize,
    /// Receives submitted.
    receives: usize,
    /// Sockets closed through the ring.
    closed: usize,
    /// Receives ended for want of a buffer, and receives that filled one.
    out_of_buffers: usize,
    filled: usize,
    /// Sends tried without a copy (`SENDMSG_ZC`), and with one.
    zero_copy_sends: usize,
    copied_sends: usize,
}

/// A handle on the scripted kernel: the driver holds one, the test another.
#[derive(Clone, Default)]
pub(crate) struct FakeKernel(Rc<RefCell<State>>);

impl FakeKernel {
    /// Makes `socket` one of this kernel's, under a descriptor number the
    /// driver's operations name.
    pub(crate) fn attach(&self, socket: &FakeSocket) -> RawFd {
        let mut st = self.0.borrow_mut();
        let fd = FIRST_FD + st.next_fd;
        st.next_fd += 1;
        st.sockets.insert(fd, socket.clone());
        socket.lock().ring_fd = Some(fd);
        fd
    }

    /// Socket `fd` became readable and/or writable: its waiting receive
    /// and/or send try again at the next run.
    pub(crate) fn wake(&self, fd: RawFd, readable: bool, writable: bool) {
        for o in self.0.borrow_mut().ops.iter_mut() {
            let wakes = match o.op {
                Op::Recv { fd: f, .. } => readable && f == fd,
                Op::Send { fd: f, .. } => writable && f == fd,
                _ => false,
            };
            if wakes {
                o.parked = false;
            }
        }
    }

    /// Holds zero-copy notifications until [`notify`](Self::notify)
    /// (the kernel may send them long after the send's result).
    pub(crate) fn hold_notifications(&self, hold: bool) {
        self.0.borrow_mut().hold_notifications = hold;
    }

    /// Posts the notifications held so far.
    pub(crate) fn notify(&self) {
        let mut st = self.0.borrow_mut();
        let held = std::mem::take(&mut st.held);
        st.posted += held.len();
        st.cq.extend(held);
    }

    /// Zero-copy sends report that the kernel copied the bytes anyway.
    pub(crate) fn zero_copy_copies(&self, copies: bool) {
        self.0.borrow_mut().zc_copies = copies;
    }

    /// Completions posted so far (to tell whether a run did anything).
    pub(crate) fn posted(&self) -> usize {
        self.0.borrow().posted
    }

    /// Receives so far that ended for want of a buffer (`ENOBUFS`), and
    /// that put bytes in one.
    pub(crate) fn buffer_use(&self) -> (usize, usize) {
        let st = self.0.borrow();
        (st.out_of_buffers, st.filled)
    }

    /// Sockets closed through the ring so far.
    pub(crate) fn closed(&self) -> usize {
        self.0.borrow().closed
    }

    /// Receives submitted so far (one per arming of a multishot receive).
    pub(crate) fn receives(&self) -> usize {
        self.0.borrow().receives
    }

    /// Sends tried so far: (zero-copy, copied).
    pub(crate) fn sends(&self) -> (usize, usize) {
        let st = self.0.borrow();
        (st.zero_copy_sends, st.copied_sends)
    }

    /// Operations in flight on descriptor `fd`: (receives, sends).
    pub(crate) fn in_flight(&self, fd: RawFd) -> (usize, usize) {
        let st = self.0.borrow();
        let on = |recv: bool| {
            st.ops
                .iter()
                .filter(|o| match o.op {
                    Op::Recv { fd: f, .. } => recv && f == fd,
                    Op::Send { fd: f, .. } => !recv && f == fd,
                    _ => false,
                })
                .count()
        };
        (on(true), on(false))
    }
}

/// The errno a scripted failure stands for.
fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(match e.kind() {
        io::ErrorKind::ConnectionReset => libc::ECONNRESET,
        io::ErrorKind::BrokenPipe => libc::EPIPE,
        io::ErrorKind::ConnectionAborted => libc::ECONNABORTED,
        io::ErrorKind::TimedOut => libc::ETIMEDOUT,
        io::ErrorKind::NotConnected => libc::ENOTCONN,
        _ => libc::EIO,
    })
}

/// What one try of an operation came to.
enum Outcome {
    /// Nothing to do now: it waits for its socket's wake-up.
    Waits,
    /// Done (its last completion posted).
    Done,
}

impl State {
    fn post(&mut self, ud: u64, res: i32, flags: u32) {
        self.posted += 1;
        self.cq.push_back((ud, res, flags));
    }

    fn recv(&mut self, ud: u64, fd: RawFd) -> Outcome {
        let Some(socket) = self.sockets.get(&fd).cloned() else {
            self.post(ud, -libc::EBADF, 0);
            return Outcome::Done;
        };
        loop {
            if !socket.lock().has_input() {
                return Outcome::Waits;
            }
            let Some((at, room, bid)) = self.bufs.as_ref().and_then(Provided::head) else {
                // Out of buffers: the multishot receive ends.
                self.out_of_buffers += 1;
                self.post(ud, -libc::ENOBUFS, 0);
                return Outcome::Done;
            };
            // SAFETY: `at`..`at + room` lies in the head buffer the driver
            // gave the kernel (the entry's address and length, less what
            // was used): the driver reads none of it until a completion
            // names it.
            let buf = unsafe { std::slice::from_raw_parts_mut(at, room) };
            match socket.clone().read(buf) {
                Ok(0) => {
                    // The peer's FIN: no buffer taken, the receive ends.
                    self.post(ud, 0, 0);
                    return Outcome::Done;
                }
                Ok(n) => {
                    let more = self.bufs.as_mut().expect("checked").consume(n, room);
                    let flags = F_BUFFER
                        | (u32::from(bid) << BUFFER_SHIFT)
                        | F_MORE
                        | if more { F_BUF_MORE } else { 0 };
                    self.filled += 1;
                    self.post(ud, n as i32, flags);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Waits,
                Err(e) => {
                    self.post(ud, -errno(&e), 0);
                    return Outcome::Done;
                }
            }
        }
    }

    fn send(&mut self, ud: u64, fd: RawFd, msg: *const libc::msghdr, zero_copy: bool) -> Outcome {
        let Some(socket) = self.sockets.get(&fd).cloned() else {
            self.post(ud, -libc::EBADF, 0);
            return Outcome::Done;
        };
        // SAFETY: the driver keeps the header, the vector it points to and
        // the bytes that points to until this send's last completion.
        // (The length's type differs between C libraries.)
        #[allow(clippy::unnecessary_cast)]
        let slices: Vec<IoSlice<'_>> = unsafe {
            let msg = &*msg;
            std::slice::from_raw_parts(msg.msg_iov, msg.msg_iovlen as usize)
                .iter()
                .map(|v| IoSlice::new(std::slice::from_raw_parts(v.iov_base.cast(), v.iov_len)))
                .collect()
        };
        if zero_copy {
            self.zero_copy_sends += 1;
        } else {
            self.copied_sends += 1;
        }
        match socket.clone().write_vectored(&slices) {
            Ok(n) if zero_copy => {
                self.post(ud, n as i32, F_MORE);
                let usage = if self.zc_copies { ZC_COPIED } else { 0 };
                if self.hold_notifications {
                    self.held.push((ud, usage, F_NOTIF));
                } else {
                    self.post(ud, usage, F_NOTIF);
                }
                Outcome::Done
            }
            Ok(n) => {
                self.post(ud, n as i32, 0);
                Outcome::Done
            }
            // A full socket: the kernel tries again when it has room.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Outcome::Waits,
            Err(e) => {
                self.post(ud, -errno(&e), 0);
                Outcome::Done
            }
        }
    }

    fn cancel(&mut self, ud: u64, target: u64) {
        // (A cancel ends at once: only an operation that waits is found.)
        let found = self
            .ops
            .iter()
            .position(|o| o.ud == target && !matches!(o.op, Op::Cancel { .. }));
        let Some(i) = found else {
            return self.post(ud, -libc::ENOENT, 0);
        };
        match self.ops.remove(i).op {
            Op::Send {
                zero_copy: true, ..
            } => {
                // Nothing was sent: its notification follows at once.
                self.post(target, -libc::ECANCELED, F_MORE);
                self.post(target, 0, F_NOTIF);
            }
            _ => self.post(target, -libc::ECANCELED, 0),
        }
        self.post(ud, 0, 0);
    }
}

impl Scripted for FakeKernel {
    fn push(&mut self, op: Op, ud: u64) {
        let mut st = self.0.borrow_mut();
        st.seq += 1;
        let seq = st.seq;
        if let Op::Recv { .. } = op {
            st.receives += 1;
        }
        st.ops.push(InFlight {
            seq,
            ud,
            op,
            parked: false,
        });
    }

    fn run(&mut self) {
        let mut st = self.0.borrow_mut();
        // Each operation in submission order; one may end another (a
        // cancel), so each is looked up by its sequence number in turn.
        let order: Vec<u64> = st.ops.iter().map(|o| o.seq).collect();
        for seq in order {
            let Some(i) = st.ops.iter().position(|o| o.seq == seq) else {
                continue;
            };
            let InFlight { ud, op, parked, .. } = st.ops[i];
            if parked {
                continue;
            }
            let outcome = match op {
                Op::Recv { fd, .. } => st.recv(ud, fd),
                Op::Send { fd, msg, zero_copy } => st.send(ud, fd, msg, zero_copy),
                Op::Cancel { target } => {
                    st.ops.remove(i);
                    st.cancel(ud, target);
                    continue;
                }
                Op::Close { fd } => {
                    let res = match st.sockets.remove(&fd) {
                        Some(_) => 0,
                        None => -libc::EBADF,
                    };
                    st.closed += 1;
                    st.post(ud, res, 0);
                    Outcome::Done
                }
                // The shard's epoll set and listeners: nothing happens on
                // them in these tests.
                Op::Poll { .. } | Op::Accept { .. } => Outcome::Waits,
            };
            match outcome {
                Outcome::Done => st.ops.retain(|o| o.seq != seq),
                Outcome::Waits => {
                    if let Some(o) = st.ops.iter_mut().find(|o| o.seq == seq) {
                        o.parked = true;
                    }
                }
            }
        }
    }

    fn reap(&mut self, into: &mut VecDeque<(u64, i32, u32)>) {
        into.extend(self.0.borrow_mut().cq.drain(..));
    }

    fn register_buffers(&mut self, entries: u64, count: u16, _bgid: u16, incremental: bool) {
        self.0.borrow_mut().bufs = Some(Provided {
            entries: entries as *const BufRingEntry,
            count,
            incremental,
            head: 0,
            used: 0,
        });
    }

    fn unregister_buffers(&mut self, _bgid: u16) {
        self.0.borrow_mut().bufs = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io_uring::cqueue;

    #[test]
    fn the_flags_are_the_kernels_as_the_crate_reads_them() {
        let flags = F_BUFFER | (7 << BUFFER_SHIFT) | F_MORE | F_BUF_MORE;
        assert_eq!(cqueue::buffer_select(flags), Some(7));
        assert!(cqueue::more(flags) && cqueue::buffer_more(flags));
        assert!(!cqueue::notif(flags));
        assert!(cqueue::notif(F_NOTIF) && !cqueue::more(F_NOTIF));
        assert_eq!(
            ZC_COPIED as u32,
            crate::reactor::URING_ZC_COPIED,
            "the driver reads the same bit"
        );
    }
}
