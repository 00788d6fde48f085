use crate::common::*;
use std::io::{Read, Write};

/// 200 concurrent clients, each streaming a distinct pattern in uneven
/// chunks; every byte must come back, in order.
fn round_trip(shards: usize) {
    let (h, addr) = echo_server(shards);
    let clients: Vec<_> = (0..200u32)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut sent = 0usize;
                for round in 0..40usize {
                    let len = 1 + (c as usize * 7919 + round * 104_729) % 9000;
                    let chunk: Vec<u8> = (0..len)
                        .map(|i| ((sent + i) as u32 ^ c.wrapping_mul(2_654_435_761)) as u8)
                        .collect();
                    s.write_all(&chunk).unwrap();
                    let mut back = vec![0u8; len];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, chunk, "client {c} round {round}");
                    sent += len;
                }
                sent
            })
        })
        .collect();
    let total: usize = clients.into_iter().map(|t| t.join().unwrap()).sum();
    wait_for("bytes counted", || {
        h.stats().total().bytes_out == total as u64
    });
    let stats = h.stats().total();
    assert_eq!(stats.bytes_in, total as u64);
    assert_eq!(stats.connections_accepted, 200);
    assert_eq!(stats.callback_panics, 0);
    h.shutdown();
}

#[test]
fn echo_round_trip_one_shard_200_clients() {
    round_trip(1);
}

#[test]
fn echo_round_trip_four_shards_200_clients() {
    round_trip(4);
}

#[test]
fn connections_spread_round_robin() {
    let (h, addr) = echo_server(4);
    // Connect one at a time so accept order is connect order.
    let mut clients = Vec::new();
    for i in 0..40 {
        let mut s = connect(addr);
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        clients.push(s);
        let _ = i;
    }
    wait_for("40 accepted", || {
        h.stats().total().connections_accepted == 40
    });
    let stats = h.stats();
    for s in &stats.shards {
        assert_eq!(s.connections_accepted, 10, "shard {} got {:?}", s.shard, s);
        assert_eq!(s.connections_open, 10);
    }
    drop(clients);
    wait_for("all closed", || h.stats().total().connections_open == 0);
    assert_eq!(h.stats().total().connections_closed, 40);
    h.shutdown();
}

#[test]
fn least_connections_fills_the_emptiest_shard() {
    init_tracing();
    let h = builder(2)
        .balancing(shardloop::LeastConnections)
        .listen("127.0.0.1:0", |_| |_| Echo)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.tcp_addr(0);
    let open = |n: usize| -> Vec<std::net::TcpStream> {
        (0..n)
            .map(|_| {
                let mut s = connect(addr);
                s.write_all(b"x").unwrap();
                s.read_exact(&mut [0u8; 1]).unwrap();
                s
            })
            .collect()
    };
    let first = open(4);
    wait_for("4 accepted", || h.stats().total().connections_open == 4);
    assert_eq!(h.stats().shards[0].connections_open, 2);
    // Close the two on shard 0 (round 0 and 2 of the alternation).
    let mut first = first.into_iter();
    let a = first.next().unwrap();
    let b = first.next().unwrap();
    let c = first.next().unwrap();
    let d = first.next().unwrap();
    drop(a);
    drop(c);
    wait_for("closed published", || {
        h.stats().shards[0].connections_closed == 2
    });
    let more = open(2);
    wait_for("2 more", || h.stats().total().connections_accepted == 6);
    assert_eq!(
        h.stats().shards[0].connections_open,
        2,
        "both new ones went to the empty shard"
    );
    drop((b, d, more));
    h.shutdown();
}
