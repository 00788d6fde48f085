//! `advise` end to end, against shard CPU measured independently: a
//! two-shard server whose requests each cost a fixed amount of CPU, under
//! a paced load, is recommended 2 shards when its shards use 1.0–1.4 cores
//! and 1 shard when they use about 0.3, at the 70 % target. Its own test
//! binary, so no other test competes for this machine's cores meanwhile.

use nix::time::{clock_gettime, ClockId};
use shardloop::{Conn, Handle, Protocol, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// CPU each request costs the shard.
const PER_REQUEST: Duration = Duration::from_micros(200);

fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// Answers each byte with one byte after burning `PER_REQUEST` of the
/// shard thread's CPU (by its CPU clock: preemption does not shorten it).
struct Burn;
impl Protocol for Burn {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        for _ in data {
            let until = thread_cpu() + PER_REQUEST;
            while thread_cpu() < until {
                std::hint::spin_loop();
            }
        }
        conn.write(data);
    }
}

/// CPU seconds of this process's threads whose name starts with `prefix`.
fn threads_cpu_s(prefix: &str) -> f64 {
    let tck = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        total += (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tck;
    }
    total
}

/// Sends `rate` requests per second over 8 connections (at most 4
/// unanswered on each, so a server that falls behind is not flooded)
/// until `until`.
fn paced_load(addr: SocketAddr, rate: f64, until: Instant) {
    let mut conns: Vec<(TcpStream, usize)> = (0..8)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, 0)
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut buf = [0u8; 64];
    while Instant::now() < until {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let (s, outstanding) = &mut conns[sent as usize % 8];
            if *outstanding < 4 && s.write(b"x").unwrap() == 1 {
                *outstanding += 1;
            }
            sent += 1;
        }
        for (s, outstanding) in &mut conns {
            match s.read(&mut buf) {
                Ok(n) => *outstanding = outstanding.saturating_sub(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Advises over a 3 s window of load at `rate`; returns the advice and
/// the shards' CPU cores measured from /proc over the same window.
fn advise_under(
    h: &Handle,
    metrics: SocketAddr,
    rate: f64,
) -> (shardloop_tune::advise::Advice, f64) {
    let addr = h.tcp_addr(0);
    let until = Instant::now() + Duration::from_secs(5);
    let load = std::thread::spawn(move || paced_load(addr, rate, until));
    std::thread::sleep(Duration::from_millis(800));
    let prefix = format!("{}shard", h.thread_name_prefix());
    let (c0, t0) = (threads_cpu_s(&prefix), Instant::now());
    let url = format!("http://{metrics}/metrics");
    let advice = shardloop_tune::advise::advise_live(&url, Duration::from_secs(3), 0.7, 8).unwrap();
    let cores = (threads_cpu_s(&prefix) - c0) / t0.elapsed().as_secs_f64();
    load.join().unwrap();
    (advice, cores)
}

#[test]
fn advise_recommends_the_shards_the_measured_cpu_needs() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let h = Server::builder()
        .shards(2)
        .pinning(shardloop::Pinning::Off)
        .listen("127.0.0.1:0", |_| |_| Burn)
        .metrics(metrics)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let per_request = PER_REQUEST.as_secs_f64();
    for (rate, lo, hi, want) in [(5000.0, 1.0, 1.4, 2), (1300.0, 0.2, 0.45, 1)] {
        let (advice, cores) = advise_under(&h, metrics, rate);
        let seen: f64 = advice.shards.iter().map(|s| s.utilisation).sum();
        let msg = format!(
            "{rate} req/s × {per_request} s: /proc says the shards used {cores:.2} cores, advise {seen:.2} ({}), recommends {}: {:?}",
            advice.utilisation_source, advice.recommended_shards, advice.reasons
        );
        println!("{msg}");
        assert!((lo..=hi).contains(&cores), "the load is as planned: {msg}");
        assert_eq!(advice.utilisation_source, "thread CPU time", "{msg}");
        assert!(
            (seen - cores).abs() <= 0.15 * cores + 0.03,
            "advise reads the CPU /proc sees: {msg}"
        );
        for s in &advice.shards {
            assert!(
                s.busy_utilisation >= 0.8 * s.cpu_utilisation.unwrap(),
                "busy time counts the work: {s:?}"
            );
        }
        assert_eq!(advice.recommended_shards, want, "{msg}");
    }
    h.shutdown();
}
