//! The provided-buffer ring against a real socket: a multishot receive
//! takes its buffers, each completion names the buffer and the bytes, a
//! recycled buffer is taken again, and running out ends the multishot
//! receive (ENOBUFS) until buffers come back.

use super::*;
use crate::reactor::uring::kernel::Kernel;
use io_uring::IoUring;
use io_uring::{cqueue, opcode, types};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// A connected pair on loopback: (our end, the peer).
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ours, _) = l.accept().unwrap();
    (ours, peer)
}

fn ring() -> Option<Kernel> {
    match super::super::probe::probe() {
        Ok(_) => Some(Kernel::Ring(IoUring::new(32).unwrap())),
        Err(m) => {
            // The epoll backend is what such a machine runs; the fallback
            // is tested where the backend is chosen.
            println!("skipped: io_uring unusable here: {m}");
            None
        }
    }
}

/// Arms a multishot receive on `fd` selecting from `bufs`.
fn arm(ring: &mut Kernel, fd: i32, bufs: &BufRing) {
    let ring = ring.io_uring();
    let sqe = opcode::RecvMulti::new(types::Fd(fd), bufs.bgid())
        .build()
        .user_data(7);
    // SAFETY: the entry refers to no memory of ours (the buffers are the
    // ring's, registered).
    unsafe { ring.submission().push(&sqe).unwrap() };
    ring.submit().unwrap();
}

/// The piece a completion names.
fn piece(bufs: &mut BufRing, res: i32, flags: u32) -> Piece {
    let bid = cqueue::buffer_select(flags).expect("a buffer is named");
    bufs.piece(bid, res as usize, cqueue::buffer_more(flags))
        .expect("a piece the ring gave")
}

/// Waits for the next completion: (result, flags).
fn next(ring: &mut Kernel) -> (i32, u32) {
    let ring = ring.io_uring();
    ring.submit_and_wait(1).unwrap();
    let cqe: cqueue::Entry = ring.completion().next().expect("a completion");
    assert_eq!(cqe.user_data(), 7);
    (cqe.result(), cqe.flags())
}

#[test]
fn multishot_receives_fill_named_buffers_that_come_back_when_recycled() {
    let Some(mut ring) = ring() else { return };
    let (ours, mut peer) = pair();
    let mut bufs = BufRing::new(&mut ring, 1, 4, 64, false).unwrap();
    arm(&mut ring, ours.as_raw_fd(), &bufs);
    let mut seen = Vec::new();
    for msg in [&b"hello"[..], b"world", b"third", b"fourth", b"fifth"] {
        peer.write_all(msg).unwrap();
        let (res, flags) = next(&mut ring);
        assert_eq!(res, msg.len() as i32);
        assert!(cqueue::more(flags), "the receive stays armed");
        let p = piece(&mut bufs, res, flags);
        assert_eq!((p.at, p.last), (0, true), "a whole buffer each");
        assert_eq!(bufs.filled(p), msg);
        seen.push(p.bid);
        // Back at once, as the shard does after the protocol's callback.
        bufs.recycle(p);
        bufs.publish();
    }
    // Four buffers, five messages: a recycled buffer was taken again.
    let mut distinct = seen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() <= 4, "{seen:?}");
    // The peer's FIN: a zero-length completion ends the receive.
    drop(peer);
    let (res, flags) = next(&mut ring);
    assert_eq!(res, 0);
    assert!(!cqueue::more(flags));
    bufs.release(&mut ring);
}

#[test]
fn running_out_of_buffers_ends_the_receive_until_they_come_back() {
    let Some(mut ring) = ring() else { return };
    let (ours, mut peer) = pair();
    let mut bufs = BufRing::new(&mut ring, 2, 2, 16, false).unwrap();
    arm(&mut ring, ours.as_raw_fd(), &bufs);
    let mut held = Vec::new();
    for msg in [&b"one"[..], b"two"] {
        peer.write_all(msg).unwrap();
        let (res, flags) = next(&mut ring);
        assert_eq!(res, 3);
        held.push(piece(&mut bufs, res, flags));
    }
    // Both buffers are ours: the next bytes find none.
    peer.write_all(b"three").unwrap();
    let (res, flags) = next(&mut ring);
    assert_eq!(res, -libc::ENOBUFS);
    assert!(!cqueue::more(flags), "the multishot receive ended");
    // Given back and re-armed, the waiting bytes arrive.
    for p in held {
        bufs.recycle(p);
    }
    bufs.publish();
    arm(&mut ring, ours.as_raw_fd(), &bufs);
    let (res, flags) = next(&mut ring);
    assert_eq!(res, 5);
    let p = piece(&mut bufs, res, flags);
    assert_eq!(bufs.filled(p), b"three");
    bufs.release(&mut ring);
}

/// A ring consumed incrementally, or `None` on a kernel older than 6.12
/// (the shard then runs the whole-buffer ring above).
fn incremental(ring: &mut Kernel, bgid: u16, count: u16, size: usize) -> Option<BufRing> {
    if !super::super::probe::probe().is_ok_and(|f| f.incremental_buffers) {
        println!("skipped: no incremental buffer rings here");
        return None;
    }
    Some(BufRing::new(ring, bgid, count, size, true).unwrap())
}

#[test]
fn incremental_buffers_hold_many_receives_each_at_its_offset() {
    let Some(mut ring) = ring() else { return };
    let (ours, mut peer) = pair();
    let Some(mut bufs) = incremental(&mut ring, 4, 2, 16) else {
        return;
    };
    assert!(bufs.incremental());
    arm(&mut ring, ours.as_raw_fd(), &bufs);
    // 5 + 5 + 6 bytes fill the first 16-byte buffer exactly; the next
    // message starts the second buffer.
    let mut pieces = Vec::new();
    for msg in [&b"hello"[..], b"world", b"sixsix", b"next"] {
        peer.write_all(msg).unwrap();
        let (res, flags) = next(&mut ring);
        assert_eq!(res, msg.len() as i32);
        let p = piece(&mut bufs, res, flags);
        assert_eq!(bufs.filled(p), msg);
        pieces.push(p);
        bufs.recycle(p);
        bufs.publish();
    }
    let summary: Vec<_> = pieces.iter().map(|p| (p.at, p.last)).collect();
    assert_eq!(summary, [(0, false), (5, false), (10, true), (0, false)]);
    assert_eq!(pieces[0].bid, pieces[2].bid);
    assert_ne!(pieces[2].bid, pieces[3].bid, "a finished buffer is left");
    // A message larger than what is left of the buffer comes in pieces.
    peer.write_all(b"0123456789abcdef").unwrap();
    let mut got = Vec::new();
    while got.len() < 16 {
        let (res, flags) = next(&mut ring);
        assert!(res > 0, "{res}");
        let p = piece(&mut bufs, res, flags);
        got.extend_from_slice(bufs.filled(p));
        bufs.recycle(p);
        bufs.publish();
    }
    assert_eq!(got, b"0123456789abcdef");
    bufs.release(&mut ring);
}

#[test]
fn sizes_the_kernel_refuses_are_refused_here() {
    let Some(mut ring) = ring() else { return };
    for (count, size) in [(3, 64), (0, 64), (4, 0)] {
        assert!(
            BufRing::new(&mut ring, 3, count, size, false).is_err(),
            "{count} × {size}"
        );
    }
    let mut bufs = BufRing::new(&mut ring, 3, 2, 8, false).unwrap();
    assert!(bufs.piece(2, 1, false).is_none(), "no buffer 2 of 2");
    assert!(bufs.piece(0, 9, false).is_none(), "no 9 bytes in 8");
    assert_eq!(bufs.buffer_size(), 8);
    bufs.release(&mut ring);
    // Incrementally, pieces that would run past the buffer are refused.
    let Some(mut bufs) = incremental(&mut ring, 5, 2, 8) else {
        return;
    };
    assert!(bufs.piece(0, 6, true).is_some());
    assert!(bufs.piece(0, 3, true).is_none(), "6 + 3 > 8");
    bufs.release(&mut ring);
}
