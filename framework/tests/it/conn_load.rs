//! Per-connection load: the time each connection's read callbacks and
//! tasks hold its shard, against what the callbacks measure of themselves;
//! the heaviest connections published in `Handle::stats()` and `/metrics`.

use crate::common::*;
use shardloop::{Conn, Protocol};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// `h`: 2 ms of work in the read callback per byte; `t`: 2 ms in a task
/// of the connection; anything else: echoed at once. Work done is added
/// up by its own clock.
struct Worker(Arc<AtomicU64>);
impl Protocol for Worker {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        for &b in data {
            let done = self.0.clone();
            match b {
                b'h' => {
                    let t = Instant::now();
                    spin(Duration::from_millis(2));
                    done.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    conn.write(b"k");
                }
                b't' => conn.spawn(move |task| async move {
                    let t = Instant::now();
                    spin(Duration::from_millis(2));
                    done.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    task.write(b"k");
                }),
                _ => conn.write(&[b]),
            }
        }
    }
}

/// Sends `byte` every 10 ms until `until`, reading each answer.
fn paced(addr: SocketAddr, byte: u8, until: Instant) -> (TcpStream, std::thread::JoinHandle<()>) {
    let s = connect(addr);
    let mut c = s.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let mut k = [0u8; 1];
        while Instant::now() < until {
            c.write_all(&[byte]).unwrap();
            c.read_exact(&mut k).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (s, t)
}

fn is(peer: &Option<SocketAddr>, s: &TcpStream) -> bool {
    *peer == Some(s.local_addr().unwrap())
}

#[test]
fn the_heaviest_connections_are_named_with_their_share_of_the_shard() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let work = Arc::new(AtomicU64::new(0));
    let w2 = work.clone();
    let (h, addr) = started(
        builder(1)
            .listen("127.0.0.1:0", move |_| {
                let w = w2.clone();
                move |_| Worker(w.clone())
            })
            .metrics(metrics),
    );
    let start = Instant::now();
    let until = start + Duration::from_millis(2600);
    let (heavy, t1) = paced(addr, b'h', until);
    let (tasky, t2) = paced(addr, b't', until);
    let (light, t3) = paced(addr, b'x', until);
    // Past two windows: the last full one is published.
    std::thread::sleep(Duration::from_millis(2300));
    let stats = h.stats();
    let body = scrape_metrics(metrics);
    t1.join().unwrap();
    t2.join().unwrap();
    t3.join().unwrap();
    // Independent figure: the work the callbacks timed, per second, for
    // each of the two working connections.
    let per_conn = work.load(Ordering::Relaxed) as f64 / 1e9 / start.elapsed().as_secs_f64() / 2.0;
    let top = &stats.heaviest_connections;
    println!("work {per_conn:.3} per working connection; heaviest: {top:?}");
    assert!(top.len() >= 2, "{top:?}");
    let first_two: Vec<_> = top[..2].iter().collect();
    for s in [&heavy, &tasky] {
        let c = first_two
            .iter()
            .find(|c| is(&c.peer, s))
            .unwrap_or_else(|| panic!("{:?} is among the two heaviest: {top:?}", s.local_addr()));
        assert!(
            c.share() >= 0.5 * per_conn && c.share() <= 1.5 * per_conn + 0.02,
            "its share {:.3} against {per_conn:.3} it measured: {c:?}",
            c.share()
        );
        assert!(c.window >= Duration::from_millis(900), "{c:?}");
    }
    if let Some(c) = top.iter().find(|c| is(&c.peer, &light)) {
        assert!(c.share() < 0.2 * per_conn, "the light one is light: {c:?}");
    }
    let line = body
        .lines()
        .find(|l| l.starts_with("shardloop_connection_busy_ratio{") && l.contains("rank=\"1\""))
        .unwrap_or_else(|| panic!("no rank 1 in /metrics:\n{body}"));
    assert!(line.contains("shard=\"0\""), "{line}");
    h.shutdown();
}
