//! Live connection migration through real sockets: byte-exact streams
//! (plain and TLS) while connections hop between shards, state that
//! travels, deadlines re-armed, messages to former ids forwarded, refusals,
//! and the rebalancer moving busy connections off a hot shard.

use crate::common::*;
use crate::tls::{client_tls, server_tls, tls_connect};
use shardloop::endpoint::Listen;
use shardloop::{
    CloseReason, Conn, ConnId, Migrate, MigrateError, Protocol, Rebalance, RoundRobin, Settings,
};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Echoes; moves to the next shard every `every` bytes; on EOF writes how
/// many bytes it saw and how many shards it visited, then closes.
struct Hopper {
    every: u64,
    seen: u64,
    visited: u32,
    lost: Arc<AtomicU64>,
}

impl Protocol for Hopper {
    type Message = String;
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
        let before = self.seen / self.every;
        self.seen += data.len() as u64;
        if self.seen / self.every != before {
            let next = (conn.shard().index() + 1) % conn.shard().shards();
            conn.migrate_to(next)
                .expect("an open echo connection moves");
        }
    }
    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(format!("\nseen={} visited={}\n", self.seen, self.visited).as_bytes());
        conn.close();
    }
    fn message(&mut self, conn: &mut Conn<'_, Self>, msg: String) {
        conn.write(msg.as_bytes());
    }
    fn connection_lost(&mut self, _: &mut Conn<'_, Self>, _: &CloseReason) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }
}

impl Migrate for Hopper {
    type Packed = Self;
    fn pack(self, _: &mut Conn<'_, Self>) -> Self {
        self
    }
    fn unpack(mut p: Self, _: &mut Conn<'_, Self>) -> Self {
        p.visited += 1;
        p
    }
}

fn hopper(every: u64, lost: &Arc<AtomicU64>) -> impl Fn(shardloop::Addr) -> Hopper + Clone {
    let lost = lost.clone();
    move |_| Hopper {
        every,
        seen: 0,
        visited: 0,
        lost: lost.clone(),
    }
}

/// Deterministic bytes, in chunks of varying size.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn chunk_sizes(total: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    let mut left = total;
    let mut out = Vec::new();
    while left > 0 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (1 + (x >> 33) as usize % 24_000).min(left);
        out.push(n);
        left -= n;
    }
    out
}

fn trailer(s: &mut impl Read) -> String {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    String::from_utf8(rest).unwrap()
}

#[test]
fn streams_stay_byte_exact_while_connections_hop_between_shards() {
    let lost = Arc::new(AtomicU64::new(0));
    let make = hopper(32 * 1024, &lost);
    // Small reads: many moves, each with bytes still in flight both ways.
    let settings = Settings {
        max_read_per_iteration: 16 * 1024,
        ..Settings::default()
    };
    let (h, addr) = started(
        builder(3)
            .settings(settings)
            .listen("127.0.0.1:0", move |_| make.clone()),
    );
    const LEN: usize = 2 << 20;
    let clients: Vec<_> = (0..6u64)
        .map(|k| {
            std::thread::spawn(move || {
                let data = pattern(LEN, k + 1);
                let s = connect(addr);
                let mut w = s.try_clone().unwrap();
                let sent = data.clone();
                let writer = std::thread::spawn(move || {
                    let mut at = 0;
                    for n in chunk_sizes(LEN, k + 7) {
                        w.write_all(&sent[at..at + n]).unwrap();
                        at += n;
                    }
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut r = s;
                let mut got = vec![0u8; LEN];
                r.read_exact(&mut got).unwrap();
                writer.join().unwrap();
                assert!(got == data, "client {k}: the echo differs");
                trailer(&mut r)
            })
        })
        .collect();
    for c in clients {
        let t = c.join().unwrap();
        let visited: u32 = t.split("visited=").nth(1).unwrap().trim().parse().unwrap();
        assert!(t.starts_with(&format!("\nseen={LEN} ")), "{t:?}");
        // A move is asked for at each 32 KiB crossed and happens at the end
        // of the loop iteration (reads of 16 KiB to 64 KiB a turn).
        assert!(
            visited >= 8,
            "only {visited} moves; {:?}",
            h.stats().total()
        );
    }
    wait_for("every connection lost once", || {
        lost.load(Ordering::Relaxed) == 6
    });
    let total = h.stats().total();
    assert_eq!(total.migrated_in, total.migrated_out);
    assert!(total.migrated_in >= 6 * 8, "{}", total.migrated_in);
    assert_eq!(total.migrations_refused, 0);
    let metrics = shardloop::metrics::render(&h.stats());
    assert!(metrics.contains("shardloop_connections_migrated_total{shard=\"0\",direction=\"in\"}"));
    h.shutdown();
}

#[test]
fn a_tls_session_moves_with_its_connection() {
    let lost = Arc::new(AtomicU64::new(0));
    let make = hopper(16 * 1024, &lost);
    let (h, addr) = started(builder(2).listen(
        Listen::from("127.0.0.1:0").tls(server_tls(&[])),
        move |_| make.clone(),
    ));
    let mut s = tls_connect(addr, &client_tls(&[])).unwrap();
    const LEN: usize = 1 << 20;
    let data = pattern(LEN, 99);
    let mut got = Vec::with_capacity(LEN);
    // Several records in flight each way while the session moves.
    for (i, chunk) in data.chunks(40_000).enumerate() {
        s.write_all(chunk).unwrap();
        s.flush().unwrap();
        let mut buf = vec![0u8; chunk.len()];
        s.read_exact(&mut buf).unwrap();
        got.extend_from_slice(&buf);
        assert!(got[..] == data[..got.len()], "chunk {i} differs");
    }
    s.conn.send_close_notify();
    s.flush().unwrap();
    s.sock.shutdown(Shutdown::Write).unwrap();
    let t = trailer(&mut s);
    assert!(t.starts_with(&format!("\nseen={LEN} ")), "{t:?}");
    let visited: u32 = t.split("visited=").nth(1).unwrap().trim().parse().unwrap();
    assert!(visited >= 10, "{visited}");
    assert_eq!(h.stats().total().tls_errors, 0);
    h.shutdown();
}

/// Records its id; moves on "move", reports its id on "id".
struct Named(Arc<Mutex<Vec<ConnId>>>);
impl Protocol for Named {
    type Message = String;
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        self.0.lock().unwrap().push(conn.id());
        conn.set_read_timeout(Some(Duration::from_millis(800)));
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        match data {
            b"move" => {
                let next = (conn.shard().index() + 1) % conn.shard().shards();
                let here = conn.shard().index();
                assert_eq!(conn.migrate_to(here), Err(MigrateError::AlreadyThere(here)));
                assert!(matches!(
                    conn.migrate_to(9),
                    Err(MigrateError::NoSuchShard { shard: 9, .. })
                ));
                conn.migrate_to(next).unwrap();
                conn.write(b"ok");
            }
            b"hold" => {
                let next = (conn.shard().index() + 1) % conn.shard().shards();
                conn.hold();
                assert_eq!(conn.migrate_to(next), Err(MigrateError::Busy));
                conn.unhold();
                conn.write(b"busy");
            }
            _ => conn.write(conn.id().to_string().as_bytes()),
        }
    }
    fn message(&mut self, conn: &mut Conn<'_, Self>, msg: String) {
        conn.write(msg.as_bytes());
    }
}
impl Migrate for Named {
    type Packed = Arc<Mutex<Vec<ConnId>>>;
    fn pack(self, _: &mut Conn<'_, Self>) -> Self::Packed {
        self.0
    }
    fn unpack(ids: Self::Packed, conn: &mut Conn<'_, Self>) -> Self {
        ids.lock().unwrap().push(conn.id());
        Named(ids)
    }
}

fn ask(s: &mut std::net::TcpStream, what: &[u8]) -> String {
    s.write_all(what).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn messages_to_former_ids_follow_the_connection_and_deadlines_move_too() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let ids2 = ids.clone();
    let (h, addr) = started(builder(2).listen("127.0.0.1:0", move |_| {
        let ids = ids2.clone();
        move |_| Named(ids.clone())
    }));
    let mut s = connect(addr);
    assert_eq!(ask(&mut s, b"hold"), "busy");
    assert_eq!(ask(&mut s, b"move"), "ok");
    assert_eq!(ask(&mut s, b"move"), "ok");
    wait_for("two arrivals", || ids.lock().unwrap().len() == 3);
    let seen = ids.lock().unwrap().clone();
    assert_eq!(ask(&mut s, b"id?"), seen[2].to_string());
    assert_eq!(seen[0].shard(), seen[2].shard(), "back where it started");
    assert_ne!(seen[0], seen[2], "with a new id");
    // Every former id still reaches it (through one or two hops).
    for (i, id) in seen.iter().enumerate() {
        h.send(*id, format!("via{i}")).unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, format!("via{i}").as_bytes());
    }
    // The read deadline (800 ms from connect) moved with it: it still
    // closes the connection, though it was set on another shard's wheel.
    let (rest, _) = read_to_end_lossy(&mut s);
    assert!(rest.is_empty());
    wait_for("the read deadline counted", || {
        h.stats().total().read_timeouts == 1
    });
    // Once it is gone, its former ids are forgotten everywhere.
    drop(s);
    wait_for("closed", || h.stats().total().connections_open == 0);
    let before = h.stats().total().messages_dropped;
    for id in &seen {
        h.send(*id, "late".to_string()).unwrap();
    }
    wait_for("late messages dropped", || {
        h.stats().total().messages_dropped == before + 3
    });
    h.shutdown();
}

/// 1 ms of work per byte when `busy`, else echo; movable by the rebalancer.
struct Spinner;
impl Protocol for Spinner {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.set_migratable(true);
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        for &b in data {
            if b == b'w' {
                let until = Instant::now() + Duration::from_millis(1);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            conn.write(&[b]);
        }
    }
}
impl Migrate for Spinner {
    type Packed = Self;
    fn pack(self, _: &mut Conn<'_, Self>) -> Self {
        self
    }
    fn unpack(p: Self, _: &mut Conn<'_, Self>) -> Self {
        p
    }
}

#[test]
fn the_rebalancer_moves_busy_connections_off_a_hot_shard() {
    let mut rule = Rebalance::default();
    rule.min_busy = 0.3;
    rule.settle = Duration::from_secs(30);
    let (h, addr) = started(
        builder(2)
            .balancing(RoundRobin::default())
            .rebalance(rule)
            .listen("127.0.0.1:0", |_| |_| Spinner),
    );
    // Round-robin puts connections 0, 2, 4, 6 (the busy ones) on shard 0.
    let until = Instant::now() + Duration::from_secs(20);
    let moved = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let mut conns = Vec::new();
    for k in 0..8 {
        let s = connect(addr);
        conns.push(s.try_clone().unwrap());
        let byte = if k % 2 == 0 { b'w' } else { b'i' };
        let h = h.clone();
        let moved = moved.clone();
        threads.push(std::thread::spawn(move || {
            let mut s = s;
            let mut k = [0u8; 1];
            while Instant::now() < until && moved.load(Ordering::Relaxed) == 0 {
                s.write_all(&[byte; 4]).unwrap();
                for _ in 0..4 {
                    s.read_exact(&mut k).unwrap();
                    assert_eq!(k[0], byte, "the stream stays exact across moves");
                }
                if byte == b'i' {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if h.stats().total().migrated_in >= 1 {
                    moved.store(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let stats = h.stats();
    assert!(stats.total().migrated_in >= 1, "nothing moved: {stats:?}");
    assert_eq!(
        stats.shards[0].migrated_out,
        stats.total().migrated_out,
        "from the hot shard"
    );
    drop(conns);
    h.shutdown();
}

#[test]
fn a_rebalance_rule_out_of_range_is_refused_at_build() {
    let mut bad = Rebalance::default();
    bad.gap = 0.0;
    let err = builder(2).rebalance(bad).build().err().expect("refused");
    assert!(err.to_string().contains("gap"), "{err}");
}
