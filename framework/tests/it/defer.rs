//! Blocking work through `defer_to_thread`.

use crate::common::*;
use shardloop::testing::FakeTransport;
use shardloop::{Conn, DeferError, Protocol};
use std::io::{Read, Write};
use std::time::Duration;

/// "sum N" → sums 1..=N on a worker (sleeping to be blocking) and answers;
/// "boom" → the work panics; the error is written back.
struct Summer;
impl Protocol for Summer {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let text = String::from_utf8_lossy(data).trim().to_string();
        if text == "boom" {
            conn.defer_to_thread(
                || -> u64 { panic!("worker exploded") },
                |_p, conn, r: Result<u64, DeferError>| {
                    conn.write(format!("{}\n", r.unwrap_err()).as_bytes());
                },
            );
            return;
        }
        let n: u64 = text.trim_start_matches("sum ").parse().unwrap_or(0);
        conn.defer_to_thread(
            move || {
                std::thread::sleep(Duration::from_millis(20));
                (1..=n).sum::<u64>()
            },
            |_p, conn, r| conn.write(format!("{}\n", r.unwrap()).as_bytes()),
        );
    }
}

fn ask(s: &mut std::net::TcpStream, q: &str) -> String {
    s.write_all(q.as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let mut out = String::new();
    while !out.ends_with('\n') {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    out
}

#[test]
fn results_and_panics_come_back_to_the_connection() {
    init_tracing();
    let h = builder(2)
        .listen("127.0.0.1:0", |_| |_| Summer)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.tcp_addr(0);
    // Several connections at once: blocking work does not block the shards.
    let clients: Vec<_> = (1..=8u64)
        .map(|k| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                assert_eq!(
                    ask(&mut s, &format!("sum {}", k * 100)),
                    format!("{}\n", (1..=k * 100).sum::<u64>())
                );
                assert!(ask(&mut s, "boom").contains("worker exploded"));
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        h.stats().total().callback_panics,
        0,
        "a worker panic is not a callback panic"
    );
    h.shutdown();
}

#[test]
fn result_for_a_closed_connection_is_dropped() {
    init_tracing();
    let h = builder(1)
        .listen("127.0.0.1:0", |_| |_| Summer)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut s = connect(h.tcp_addr(0));
    s.write_all(b"sum 10").unwrap();
    drop(s); // gone before the worker (20 ms) finishes
    wait_for("dropped result counted", || {
        h.stats().total().messages_dropped == 1
    });
    h.shutdown();
}

#[test]
fn zero_workers_means_unavailable_not_a_hang() {
    init_tracing();
    let h = builder(1)
        .workers(0, 1)
        .listen("127.0.0.1:0", |_| |_| Summer)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut s = connect(h.tcp_addr(0));
    assert!(ask(&mut s, "boom").contains("no worker pool"));
    h.shutdown();
}

#[test]
fn testing_kit_runs_deferred_work_inline() {
    let mut t = FakeTransport::new(Summer);
    t.receive(b"sum 4");
    assert_eq!(t.take_written(), b"10\n");
}
