//! The loop's own figures against independent ones: a shard's busy
//! seconds against its thread's CPU time read from /proc, busy plus idle
//! against the wall clock, and the exported thread CPU time against /proc.
//! Ratios with wide bounds, no timing thresholds.

use crate::common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// CPU seconds of this process's thread called `name` (utime + stime).
fn thread_cpu_s(name: &str) -> f64 {
    let tck: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        // Fields after the command's closing parenthesis; utime and stime
        // are the 14th and 15th of the line.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        return ticks / tck;
    }
    panic!("no thread {name}");
}

pub(crate) struct Window {
    busy: f64,
    idle: f64,
    cpu_exported: f64,
    cpu_proc: f64,
    wall: f64,
}

/// Runs `load` for `secs` against a one-shard server and reads the shard's
/// figures over that window.
pub(crate) fn measure(h: &shardloop::Handle, secs: f64, load: impl FnOnce(Instant)) -> Window {
    let name = format!("{}shard0", h.thread_name_prefix());
    // Let the counters publish (they are read every 10 ms at most).
    std::thread::sleep(Duration::from_millis(50));
    let s0 = h.stats().shards[0].clone();
    let (p0, t0) = (thread_cpu_s(&name), Instant::now());
    load(t0 + Duration::from_secs_f64(secs));
    std::thread::sleep(Duration::from_millis(50));
    let s1 = h.stats().shards[0].clone();
    let (p1, wall) = (thread_cpu_s(&name), t0.elapsed().as_secs_f64());
    let secs = |ns: u64| ns as f64 / 1e9;
    Window {
        busy: secs(s1.busy_ns - s0.busy_ns),
        idle: secs(s1.idle_ns - s0.idle_ns),
        cpu_exported: secs(s1.cpu_ns - s0.cpu_ns),
        cpu_proc: p1 - p0,
        wall,
    }
}

pub(crate) fn check(what: &str, w: &Window) {
    let msg = format!(
        "{what}: busy {:.3}s idle {:.3}s thread CPU {:.3}s (exported {:.3}s) over {:.3}s",
        w.busy, w.idle, w.cpu_proc, w.cpu_exported, w.wall
    );
    println!("{msg}");
    assert!(w.cpu_proc > 0.05, "the load did something: {msg}");
    assert!(w.busy >= 0.8 * w.cpu_proc, "busy time misses work: {msg}");
    assert!(w.busy <= w.wall * 1.02, "{msg}");
    assert!(
        ((w.busy + w.idle) - w.wall).abs() <= 0.05 * w.wall + 0.06,
        "{msg}"
    );
    assert!(
        (w.cpu_exported - w.cpu_proc).abs() <= 0.2 * w.cpu_proc + 0.03,
        "the exported thread CPU time agrees with /proc: {msg}"
    );
}

#[test]
fn busy_time_counts_the_io_callbacks_of_a_ping_pong_connection() {
    let (h, addr) = echo_server(1);
    let w = measure(&h, 1.5, |until| {
        let mut s = connect(addr);
        let mut b = [0u8; 64];
        while Instant::now() < until {
            s.write_all(&[7u8; 64]).unwrap();
            s.read_exact(&mut b).unwrap();
        }
    });
    check("echo 64 B ping-pong", &w);
    h.shutdown();
}

#[test]
fn busy_time_counts_pipelined_4_kib_echoes_on_several_connections() {
    let (h, addr) = echo_server(1);
    let w = measure(&h, 1.5, |until| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = connect(addr);
                    let mut b = vec![0u8; 4 * 4096];
                    while Instant::now() < until {
                        s.write_all(&[1u8; 4 * 4096]).unwrap();
                        s.read_exact(&mut b).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    check("pipelined 4 KiB echoes, 4 connections", &w);
    h.shutdown();
}

/// Works a little on a timer every millisecond while connected.
struct Ticker;
impl shardloop::Protocol for Ticker {
    type Message = ();
    fn connection_made(&mut self, conn: &mut shardloop::Conn<'_, Self>) {
        conn.call_every(Duration::from_millis(1), |_, _| {
            // Some CPU work in the timer callback.
            let mut x = 0u64;
            for i in 0..20_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        });
    }
    fn data_received(&mut self, _: &mut shardloop::Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn busy_time_counts_timer_callbacks() {
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", |_| |_| Ticker));
    let w = measure(&h, 1.5, |until| {
        let _c = connect(addr);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    });
    check("a timer every millisecond", &w);
    h.shutdown();
}

struct UdpEcho;
impl shardloop::udp::DatagramProtocol for UdpEcho {
    fn datagram_received(
        &mut self,
        udp: &mut shardloop::udp::Udp<'_>,
        data: &[u8],
        from: std::net::SocketAddr,
    ) {
        udp.send_to(data, from);
    }
}

/// A one-shard server with a UDP echo socket.
pub(crate) fn udp_echo_server() -> shardloop::Handle {
    builder(1)
        .listen_udp("127.0.0.1:0", |_| UdpEcho)
        .build()
        .unwrap()
        .start()
        .unwrap()
}

#[test]
fn busy_time_counts_udp_datagrams() {
    let h = udp_echo_server();
    let addr = h.udp_addr(0);
    let w = measure(&h, 1.5, |until| {
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 64];
        while Instant::now() < until {
            c.send_to(&[3u8; 64], addr).unwrap();
            let _ = c.recv_from(&mut b);
        }
    });
    check("UDP echo ping-pong", &w);
    h.shutdown();
}

/// Each byte received starts a task that works, sleeps 1 ms, works again.
struct Tasks;
impl shardloop::Protocol for Tasks {
    type Message = ();
    fn data_received(&mut self, conn: &mut shardloop::Conn<'_, Self>, data: &[u8]) {
        for _ in data {
            conn.spawn(|_task| async move {
                for _ in 0..2 {
                    let mut x = 0u64;
                    for i in 0..5_000u64 {
                        x = x.wrapping_mul(31).wrapping_add(i);
                    }
                    std::hint::black_box(x);
                    shardloop::task::sleep(Duration::from_millis(1)).await;
                }
            });
        }
    }
}

#[test]
fn busy_time_counts_task_polls() {
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", |_| |_| Tasks));
    let w = measure(&h, 1.5, |until| {
        let mut c = connect(addr);
        while Instant::now() < until {
            c.write_all(&[1u8; 2]).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    check("tasks that work, sleep and work", &w);
    h.shutdown();
}
