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
    let hot = Arc::new(AtomicBool::new(true));
    let flag = hot.clone();
    h.post_to(0, move |ctx| {
        ctx.call_every(Duration::from_millis(10), move |_| {
            if flag.load(Ordering::Relaxed) {
                let until = Instant::now() + Duration::from_millis(8);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        });
    })
    .unwrap();
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
