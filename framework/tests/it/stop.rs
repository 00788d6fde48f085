//! Graceful stop. In its own test binary so the thread check sees only this
//! process's servers.

use crate::common::*;
use shardloop::{Conn, Protocol};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn threads_named(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn graceful_stop_with_1000_connections_meets_deadline_and_joins_all_threads() {
    rlimit::increase_nofile_limit(8192).unwrap();
    let (h, addr) = echo_server(4);
    let prefix = h.thread_name_prefix();
    // A thread names itself once it runs, so wait for all of them.
    wait_for(
        "4 shards, acceptor, 4 workers and the watchdog named",
        || threads_named(&prefix).len() == 10,
    );
    let mut clients: Vec<_> = (0..1000)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"p").unwrap();
            s
        })
        .collect();
    for s in clients.iter_mut() {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
    }
    wait_for("1000 open", || h.stats().total().connections_open == 1000);
    let deadline = Duration::from_secs(3);
    let started = Instant::now();
    h.stop_within(deadline);
    h.wait();
    let took = started.elapsed();
    // Generous slack: this checks the deadline is enforced, not speed.
    assert!(
        took < deadline + Duration::from_secs(2),
        "stop took {took:?}"
    );
    // Joined threads have exited; the kernel drops a finished thread from
    // /proc a moment after join returns (it reaps it after waking the
    // joiner), so allow for that, not for a live thread.
    wait_for("every server thread gone from /proc", || {
        threads_named(&prefix).is_empty()
    });
    // Every client sees a clean EOF: connections were closed, not reset.
    for s in clients.iter_mut() {
        let (rest, err) = read_to_end_lossy(s);
        assert!(rest.is_empty());
        assert_eq!(err, None);
    }
    let t = h.stats().total();
    assert_eq!(t.connections_closed, 1000);
    assert_eq!(t.connections_open, 0);
    // New connections are refused once stopped.
    assert!(std::net::TcpStream::connect(addr).is_err());
    assert!(h.post_to(0, |_| {}).is_err());
}

/// Ignores the stop request: must be aborted at the deadline.
struct Stubborn;
impl Protocol for Stubborn {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
    fn server_stopping(&mut self, _conn: &mut Conn<'_, Self>) {}
}

#[test]
fn stop_aborts_connections_that_outlive_the_deadline() {
    init_tracing();
    let h = builder(2)
        .listen("127.0.0.1:0", |_| |_| Stubborn)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.tcp_addr(0);
    let mut clients: Vec<_> = (0..10).map(|_| connect(addr)).collect();
    for s in clients.iter_mut() {
        s.write_all(b"x").unwrap();
        s.read_exact(&mut [0u8; 1]).unwrap();
    }
    let started = Instant::now();
    h.stop_within(Duration::from_millis(300));
    h.wait();
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "waited for the deadline"
    );
    for s in clients.iter_mut() {
        let (_, err) = read_to_end_lossy(s);
        assert_eq!(
            err,
            Some(std::io::ErrorKind::ConnectionReset),
            "aborted with RST"
        );
    }
    assert_eq!(h.stats().total().connections_closed, 10);
}
