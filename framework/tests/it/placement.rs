//! Placement by load through real sockets: with `LoadAware`, new
//! connections avoid a shard that is busy, and go back to it once it
//! cools down.

use crate::common::*;
use shardloop::{Conn, LoadAware, Protocol};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Says which shard it is on, then idles.
struct WhichShard;
impl Protocol for WhichShard {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let shard = conn.shard().index() as u8;
        conn.write(&[b'0' + shard]);
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

fn shard_of(addr: std::net::SocketAddr) -> (std::net::TcpStream, usize) {
    let mut s = connect(addr);
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    (s, usize::from(b[0] - b'0'))
}

#[test]
fn new_connections_avoid_a_busy_shard_and_return_when_it_cools() {
    let (h, addr) = started(
        builder(2)
            .balancing(LoadAware::default())
            .listen("127.0.0.1:0", |_| |_| WhichShard),
    );
    // Shard 0 spins 8 ms of every 10 ms.
    let hot = spin_while_set(&h, Duration::from_millis(8));
    // Longer than the average's time constant (250 ms), with room.
    std::thread::sleep(Duration::from_millis(1000));
    let mut kept = Vec::new();
    let mut on = [0usize; 2];
    for _ in 0..20 {
        let (s, shard) = shard_of(addr);
        on[shard] += 1;
        kept.push(s);
    }
    assert_eq!(on, [0, 20], "every new connection avoided the busy shard");
    // Cooled down: shard 0 has fewer connections and is as idle as shard
    // 1, so it takes the new ones again.
    hot.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1500));
    let mut on = [0usize; 2];
    for _ in 0..10 {
        let (s, shard) = shard_of(addr);
        on[shard] += 1;
        kept.push(s);
    }
    assert_eq!(on, [10, 0], "back to the shard with fewer connections");
    h.shutdown();
}

#[test]
fn admission_holds_new_connections_while_every_shard_is_saturated() {
    use std::io::{ErrorKind, Write};
    let (h, addr) = started(
        builder(1)
            .admission(shardloop::Admission::new(0.6, 0.3))
            .listen("127.0.0.1:0", |_| |_| Echo),
    );
    let served_before = {
        let mut s = connect(addr);
        s.write_all(b"a").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        b[0] == b'a'
    };
    assert!(served_before);
    // The only shard spins 9 ms of every 10.
    let hot = spin_while_set(&h, Duration::from_millis(9));
    wait_for("the acceptor to pause", || h.stats().admission_pauses >= 1);
    // The kernel completes the handshake; nobody accepts it yet.
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(b"b").unwrap();
    let mut b = [0u8; 1];
    let early = s.read(&mut b);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "not served while saturated: {early:?}"
    );
    // Cooled down: accepted, and its byte answered.
    hot.store(false, Ordering::Relaxed);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"b");
    let stats = h.stats();
    assert_eq!(stats.admission_pauses, 1);
    assert!(
        stats.admission_paused_ns >= 500_000_000,
        "{}",
        stats.admission_paused_ns
    );
    h.shutdown();
}

/// Makes shard 0 spin `each` of every 10 ms while the returned flag is set.
fn spin_while_set(h: &shardloop::Handle, each: Duration) -> Arc<AtomicBool> {
    let hot = Arc::new(AtomicBool::new(true));
    let flag = hot.clone();
    h.post_to(0, move |ctx| {
        ctx.call_every(Duration::from_millis(10), move |_| {
            if flag.load(Ordering::Relaxed) {
                let until = Instant::now() + each;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        });
    })
    .unwrap();
    hot
}
