//! Telemetry: `/metrics` in the Prometheus text format, scraped with curl;
//! the stall detector seeing a blocked callback while it blocks.

use crate::common::*;
use shardloop::{Conn, LoopPhase, Protocol};
use shardloop_devtools::prom::parse_exposition;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

fn scrape(addr: std::net::SocketAddr) -> String {
    let o = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "--max-time",
            "10",
            &format!("http://{addr}/metrics"),
        ])
        .output()
        .expect("curl is needed by this test (apt-get install -y curl)");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn metrics_are_valid_exposition_and_counters_grow_under_load() {
    let (h, addr, metrics) = with_metrics(2);
    let first = scrape(metrics);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        first
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{first}"
    );
    let body = first.split("\r\n\r\n").nth(1).unwrap();
    let before = parse_exposition(body);
    for name in [
        "shardloop_shard_busy_seconds_total{shard=\"0\"}",
        "shardloop_shard_idle_seconds_total{shard=\"1\"}",
        "shardloop_connections_open{shard=\"0\"}",
        "shardloop_loop_lag_seconds_count{shard=\"0\"}",
        "shardloop_slow_callbacks_total{shard=\"1\",kind=\"task\"}",
        "shardloop_bus_messages_total{shard=\"0\",direction=\"in\"}",
    ] {
        assert!(before.contains_key(name), "missing {name}");
    }
    let mut s = connect(addr);
    for _ in 0..100 {
        s.write_all(&[7u8; 1000]).unwrap();
        let mut b = [0u8; 1000];
        s.read_exact(&mut b).unwrap();
    }
    let after = parse_exposition(scrape(metrics).split("\r\n\r\n").nth(1).unwrap());
    let total = |m: &HashMap<String, f64>, name: &str| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with(name))
            .map(|(_, v)| v)
            .sum()
    };
    assert!(
        total(&after, "shardloop_bytes_received_total")
            >= total(&before, "shardloop_bytes_received_total") + 100_000.0
    );
    assert!(
        total(&after, "shardloop_shard_loop_iterations_total")
            > total(&before, "shardloop_shard_loop_iterations_total")
    );
    assert!(total(&after, "shardloop_shard_idle_seconds_total") > 0.0);
    h.shutdown();
}

/// Blocks its shard for 300 ms on "block".
struct Blocker;
impl Protocol for Blocker {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if data == b"block" {
            std::thread::sleep(Duration::from_millis(300));
        }
        conn.write(b"ok");
    }
}

#[test]
fn a_blocked_callback_is_reported_while_it_blocks() {
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", |_| |_| Blocker));
    let mut s = connect(addr);
    s.write_all(b"hi").unwrap();
    let mut b = [0u8; 2];
    s.read_exact(&mut b).unwrap();
    let id_hint = "0:"; // shard 0
    s.write_all(b"block").unwrap();
    // Seen during the block, not after: the report exists before the reply.
    wait_for("a stall report", || !h.stalls().is_empty());
    s.read_exact(&mut b).unwrap();
    let reports = h.stalls();
    assert_eq!(reports.len(), 1, "one stall, one report: {reports:?}");
    let r = &reports[0];
    assert_eq!(r.shard, 0);
    assert_eq!(r.phase, LoopPhase::Io);
    assert!(
        r.conn.as_deref().is_some_and(|c| c.starts_with(id_hint)),
        "{r:?}"
    );
    assert!(r.stuck_for >= Duration::from_millis(100));
    assert_eq!(h.stats().shards[0].stalls, 1);
    // And nothing more once the loop is back.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.stalls().len(), 1);
    h.shutdown();
}

/// A server with an echo listener and `/metrics`: the echo and metrics addresses.
fn with_metrics(
    shards: usize,
) -> (
    shardloop::Handle,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (h, echo) = started(
        builder(shards)
            .listen("127.0.0.1:0", |_| |_| Echo)
            .metrics(metrics_port),
    );
    let metrics = h.tcp_addr(1);
    (h, echo, metrics)
}

#[test]
fn slowloris_connections_to_metrics_are_closed_at_the_head_deadline() {
    let (h, _, metrics) = with_metrics(1);
    // Half a request head each, and some that send nothing at all.
    let mut conns: Vec<std::net::TcpStream> = (0..40)
        .map(|k| {
            let mut c = connect(metrics);
            if k % 2 == 0 {
                c.write_all(b"GET /metr").unwrap();
            }
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            c
        })
        .collect();
    // A keep-alive scraper that finished its request is not cut by it.
    let mut scraper = connect(metrics);
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64 * 1024];
    let n = scraper.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    for c in &mut conns {
        let mut b = [0u8; 512];
        let got = c.read(&mut b);
        // Closed by the server (10 s head deadline), no answer.
        assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
    }
    wait_for("the read deadlines counted", || {
        h.stats().total().read_timeouts >= 40
    });
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let n = scraper.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "the idle scraper still served"
    );
    h.shutdown();
}

#[test]
fn pipelined_scrapes_are_answered_as_read_and_the_data_path_keeps_answering() {
    let (h, echo, metrics) = with_metrics(1);
    let mut flood = connect(metrics);
    let req = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    let n = 2000;
    flood.write_all(&req.repeat(n)).unwrap();
    // While the scrapes wait for their reader, echo answers.
    let mut e = connect(echo);
    for _ in 0..50 {
        e.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        e.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
    }
    // Then every scrape is answered, in order, once read.
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    flood
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (mut answers, mut scanned) = (0usize, 0usize);
    while answers < n {
        let k = flood.read(&mut buf).unwrap();
        assert!(k > 0, "closed after {answers} answers");
        all.extend_from_slice(&buf[..k]);
        // Count status lines in what is new (each byte looked at once).
        let from = scanned.saturating_sub(14);
        answers += all[from..]
            .windows(15)
            .filter(|w| *w == b"HTTP/1.1 200 OK")
            .count();
        scanned = all.len();
        all.drain(..from);
        scanned -= from;
    }
    assert_eq!(answers, n);
    h.shutdown();
}
