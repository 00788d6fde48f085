//! The driver against real sockets: an echo through multishot receives
//! and sends that own their queue, a large reply sent in pieces and read
//! back whole, a paused receive that leaves the bytes in the socket, a
//! connection closed with a send in flight, stale completions after a
//! slot is reused, an eventfd watched through the ring, and a multishot
//! accept cancelled before its listener closes.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ours, _) = l.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    (ours, peer)
}

fn driver() -> Option<Driver> {
    match super::super::probe::probe() {
        Ok(_) => Some(Driver::new(64, 8, 4096, false).unwrap()),
        Err(m) => {
            println!("skipped: io_uring unusable here: {m}");
            None
        }
    }
}

/// A driver whose buffers are consumed incrementally (Linux 6.12), if
/// this kernel has that.
fn incremental_driver() -> Option<Driver> {
    let features = super::super::probe::probe().ok()?;
    if !features.incremental_buffers {
        println!("skipped: no incremental buffer rings here");
        return None;
    }
    Some(Driver::new(64, 2, 64, true).unwrap())
}

/// Waits (bounded) for completions until `f` says it has what it wants.
fn until(d: &mut Driver, pool: &mut BufPool, mut f: impl FnMut(&mut Driver, Completion) -> bool) {
    for _ in 0..200 {
        d.wait(Some(Duration::from_millis(50))).unwrap();
        while let Some(c) = d.next(pool) {
            if f(d, c) {
                return;
            }
        }
    }
    panic!("the awaited completion never came");
}

#[test]
fn an_echo_through_multishot_receives_and_owned_sends() {
    if let Some(d) = driver() {
        echo(d);
    }
}

#[test]
fn an_echo_through_incrementally_consumed_buffers() {
    if let Some(d) = incremental_driver() {
        assert!(d.incremental());
        echo(d);
    }
}

/// Messages echoed back, and the peer's FIN seen.
fn echo(mut d: Driver) {
    let mut pool = BufPool::default();
    let (ours, mut peer) = pair();
    d.open(3, 7, ours.as_raw_fd());
    // (The last spans both of the incremental driver's 64-byte buffers.)
    let long = [b'x'; 100];
    for msg in [&b"ping"[..], b"second message", b"3", &long] {
        peer.write_all(msg).unwrap();
        let mut got = Vec::new();
        until(&mut d, &mut pool, |d, c| match c {
            Completion::Data { slot: 3, piece } => {
                got.extend_from_slice(d.filled(piece));
                d.recycle(piece);
                d.recv(3);
                got.len() >= msg.len()
            }
            _ => false,
        });
        assert_eq!(got, msg);
        let mut out = WriteBuf::default();
        out.push(&got, &mut pool);
        assert!(d.send(3, out, None).is_ok());
        assert!(d.sending(3));
        until(&mut d, &mut pool, |_, c| match c {
            Completion::Sent { slot: 3, sent, out } => {
                assert_eq!(sent.unwrap(), msg.len());
                assert!(out.is_empty());
                true
            }
            _ => false,
        });
        let mut back = vec![0; msg.len()];
        peer.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    drop(peer);
    until(&mut d, &mut pool, |_, c| {
        matches!(c, Completion::Eof { slot: 3 })
    });
    d.close(3, None);
}

#[test]
fn a_large_reply_goes_out_whole_in_as_many_sends_as_it_takes() {
    let Some(mut d) = driver() else { return };
    let mut pool = BufPool::default();
    let (ours, mut peer) = pair();
    d.open(0, 1, ours.as_raw_fd());
    let body: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0; 64 << 10];
        while all.len() < 8 << 20 {
            let n = peer.read(&mut buf).unwrap();
            assert!(n > 0);
            all.extend_from_slice(&buf[..n]);
            // A slow reader: the socket fills and sends come back short.
            std::thread::sleep(Duration::from_micros(50));
        }
        all
    });
    let mut out = WriteBuf::default();
    out.push_owned(body.clone(), &mut pool);
    let mut pending = Some(out);
    let mut sends = 0;
    while let Some(out) = pending.take() {
        d.send(0, out, None).map_err(|_| "refused").unwrap();
        sends += 1;
        until(&mut d, &mut pool, |_, c| match c {
            Completion::Sent { slot: 0, sent, out } => {
                assert!(sent.unwrap() > 0);
                if !out.is_empty() {
                    pending = Some(out);
                }
                true
            }
            _ => false,
        });
    }
    assert_eq!(reader.join().unwrap(), body);
    println!("8 MiB in {sends} sends");
    d.close(0, None);
}

#[test]
fn a_stopped_receive_leaves_the_bytes_in_the_socket_until_rearmed() {
    let Some(mut d) = driver() else { return };
    let mut pool = BufPool::default();
    let (ours, mut peer) = pair();
    d.open(1, 1, ours.as_raw_fd());
    d.stop_recv(1);
    until(&mut d, &mut pool, |_, c| {
        matches!(c, Completion::RecvStopped { slot: 1, .. })
    });
    peer.write_all(b"while paused").unwrap();
    // Nothing arrives while stopped.
    d.wait(Some(Duration::from_millis(30))).unwrap();
    assert!(d.next(&mut pool).is_none());
    d.recv(1);
    let mut got = Vec::new();
    until(&mut d, &mut pool, |d, c| match c {
        Completion::Data { slot: 1, piece } => {
            got.extend_from_slice(d.filled(piece));
            d.recycle(piece);
            d.recv(1);
            got.len() == 12
        }
        _ => false,
    });
    assert_eq!(got, b"while paused");
    d.close(1, None);
}

#[test]
fn a_closed_slot_keeps_its_send_until_done_and_ignores_stale_completions() {
    let Some(mut d) = driver() else { return };
    let mut pool = BufPool::default();
    let (ours, mut peer) = pair();
    d.open(2, 1, ours.as_raw_fd());
    let mut out = WriteBuf::default();
    out.push_owned(vec![9u8; 4 << 20], &mut pool);
    d.send(2, out, None).map_err(|_| "refused").unwrap();
    // Gone with its send in flight: the buffers wait in the graveyard.
    d.close(2, None);
    assert!(!d.sending(2));
    assert!(d.send(2, WriteBuf::default(), None).is_err());
    // The slot is reused by another connection before the old completions.
    let (ours2, mut peer2) = pair();
    d.open(2, 2, ours2.as_raw_fd());
    let reader = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = peer.read_to_end(&mut sink);
    });
    drop(ours);
    peer2.write_all(b"new").unwrap();
    let mut got = Vec::new();
    until(&mut d, &mut pool, |d, c| match c {
        Completion::Data { slot: 2, piece } => {
            got.extend_from_slice(d.filled(piece));
            d.recycle(piece);
            d.recv(2);
            got.len() == 3
        }
        Completion::Sent { .. } => panic!("the old connection's send reached the new one"),
        _ => false,
    });
    assert_eq!(got, b"new");
    // The old send completes (the peer reads it, or the socket closed):
    // its buffers go then.
    for _ in 0..100 {
        if d.graveyard.is_empty() {
            break;
        }
        d.wait(Some(Duration::from_millis(20))).unwrap();
        while d.next(&mut pool).is_some() {}
    }
    assert!(d.graveyard.is_empty(), "the old send never completed");
    d.close(2, None);
    reader.join().unwrap();
}

#[test]
fn a_watched_descriptor_wakes_the_wait() {
    let Some(mut d) = driver() else { return };
    let mut pool = BufPool::default();
    let (r, mut w) = std::io::pipe().unwrap();
    d.watch(42, r.as_raw_fd());
    w.write_all(b"x").unwrap();
    until(&mut d, &mut pool, |_, c| {
        matches!(c, Completion::Polled { tag: 42 })
    });
}

#[test]
fn a_reset_is_reported_as_a_reset() {
    let Some(mut d) = driver() else { return };
    let mut pool = BufPool::default();
    let (ours, peer) = pair();
    d.open(4, 1, ours.as_raw_fd());
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    until(&mut d, &mut pool, |_, c| match c {
        Completion::RecvError { slot, error } => {
            assert_eq!(slot, 4);
            assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
            true
        }
        Completion::Eof { .. } => panic!("a reset read as a clean end"),
        _ => false,
    });
    d.close(4, None);
}

#[test]
fn a_multishot_accept_takes_every_connection_until_cancelled() {
    let Some(mut d) = driver() else { return };
    let mut pool = BufPool::default();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    d.listen(2, l.as_raw_fd());
    let peers: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut accepted = Vec::new();
    until(&mut d, &mut pool, |_, c| match c {
        Completion::Accepted { listener: 2, fd } => {
            accepted.push(std::net::TcpStream::from(fd));
            accepted.len() == peers.len()
        }
        _ => false,
    });
    // Each is a connected, non-blocking socket of one of the peers.
    let mut ports: Vec<_> = accepted
        .iter()
        .map(|s| s.peer_addr().unwrap().port())
        .collect();
    let mut expected: Vec<_> = peers
        .iter()
        .map(|p| p.local_addr().unwrap().port())
        .collect();
    ports.sort_unstable();
    expected.sort_unstable();
    assert_eq!(ports, expected);
    let mut one = [0u8; 1];
    let e = std::io::Read::read(&mut &accepted[0], &mut one).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    // Cancelled, then closed: the socket is gone at once (an armed accept
    // would have kept it open), so a new connection is refused.
    d.unlisten_all();
    d.wait(Some(Duration::from_millis(50))).unwrap();
    while d.next(&mut pool).is_some() {}
    drop(l);
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_zero_copy_send_keeps_its_bytes_until_notified_and_a_local_peer_turns_it_off() {
    let Some(mut d) = driver() else { return };
    if !d.zc_supported {
        println!("skipped: no SENDMSG_ZC here");
        return;
    }
    let mut pool = BufPool::default();
    let (ours, mut peer) = pair();
    d.open(1, 5, ours.as_raw_fd());
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0; 300_000];
        peer.read_exact(&mut got).unwrap();
        got
    });
    let mut out = WriteBuf::default();
    out.push(&big, &mut pool);
    d.send(1, out, Some(1)).map_err(|_| "refused").unwrap();
    assert_eq!(d.zc.len(), 1, "sent without a copy");
    // Until every byte is out and every notification in: what a send
    // left goes out again (by copy once the kernel said it copied).
    let mut sent = 0;
    for _ in 0..400 {
        d.wait(Some(Duration::from_millis(20))).unwrap();
        while let Some(c) = d.next(&mut pool) {
            if let Completion::Sent {
                slot: 1,
                sent: n,
                out,
            } = c
            {
                sent += n.unwrap();
                if !out.is_empty() {
                    d.send(1, out, Some(1)).map_err(|_| "refused").unwrap();
                }
            }
        }
        if sent == big.len() && d.zc.is_empty() {
            break;
        }
    }
    assert_eq!(sent, big.len());
    assert!(d.zc.is_empty(), "every notification came");
    assert_eq!(reader.join().unwrap(), big);
    // Loopback: the kernel copied, so this connection copies from now on.
    assert!(d.ops[1].copies);
    let mut out = WriteBuf::default();
    out.push(&big[..100_000], &mut pool);
    d.send(1, out, Some(1)).map_err(|_| "refused").unwrap();
    assert!(d.zc.is_empty(), "a plain send this time");
    d.close(1, None);
}

#[test]
fn a_socket_closed_through_the_ring_keeps_its_number_until_the_close_runs() {
    use std::os::fd::IntoRawFd;
    let Some(mut d) = driver() else { return };
    let mut pool = BufPool::default();
    let (ours, mut peer) = pair();
    d.open(5, 1, ours.as_raw_fd());
    let fd = ours.into_raw_fd();
    d.close(5, Some(fd));
    // Queued, not yet submitted: the number is still this socket's, so a
    // new socket cannot take it.
    let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_ne!(other.as_raw_fd(), fd);
    d.submit().unwrap();
    while d.next(&mut pool).is_some() {}
    // The ring closed it: the peer reads EOF.
    peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(peer.read(&mut byte).unwrap(), 0);
    assert!(!d.is_open(5));
}
