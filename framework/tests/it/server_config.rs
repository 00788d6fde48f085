//! Server configuration on real sockets: several listeners and protocols,
//! connection limits, hot-reloaded settings, descriptor exhaustion.

use crate::common::*;
use shardloop::{Conn, Protocol};
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// Answers every chunk with its length as text.
struct Count;
impl Protocol for Count {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(format!("{}\n", data.len()).as_bytes());
    }
}

#[test]
fn two_listeners_with_different_protocols_in_one_server() {
    init_tracing();
    let h = builder(2)
        .listen("127.0.0.1:0", |_| |_| Echo)
        .listen("127.0.0.1:0", |_| |_| Count)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let (echo_addr, count_addr) = (h.tcp_addr(0), h.tcp_addr(1));
    assert_ne!(echo_addr.port(), count_addr.port());
    for _ in 0..4 {
        let mut e = connect(echo_addr);
        e.write_all(b"abc").unwrap();
        let mut b = [0u8; 3];
        e.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"abc");
        let mut c = connect(count_addr);
        c.write_all(b"abcde").unwrap();
        let mut b = [0u8; 2];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"5\n");
    }
    h.shutdown();
}

#[test]
fn global_connection_limit_closes_extra_connections() {
    init_tracing();
    let h = builder(2)
        .max_connections(3)
        .listen("127.0.0.1:0", |_| |_| Echo)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.tcp_addr(0);
    let mut kept: Vec<_> = (0..3)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"k").unwrap();
            s.read_exact(&mut [0u8; 1]).unwrap();
            s
        })
        .collect();
    let mut extra = connect(addr);
    let (got, _) = read_to_end_lossy(&mut extra);
    assert!(got.is_empty(), "extra connection closed without service");
    assert_eq!(h.stats().rejected_by_acceptor, 1);
    // Freeing one makes room again.
    kept.pop();
    wait_for("slot freed", || h.stats().total().connections_open == 2);
    let mut again = connect(addr);
    again.write_all(b"y").unwrap();
    let mut b = [0u8; 1];
    again.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"y");
    h.shutdown();
}

#[test]
fn per_shard_limit_rejects_on_the_shard() {
    init_tracing();
    let h = builder(1)
        .settings(shardloop::Settings {
            max_connections_per_shard: 1,
            ..shardloop::Settings::default()
        })
        .listen("127.0.0.1:0", |_| |_| Echo)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.tcp_addr(0);
    let mut first = connect(addr);
    first.write_all(b"1").unwrap();
    first.read_exact(&mut [0u8; 1]).unwrap();
    let mut second = connect(addr);
    let (got, _) = read_to_end_lossy(&mut second);
    assert!(got.is_empty());
    // The shard closes the socket before it publishes its counters at the
    // end of the loop iteration: the client can see EOF first.
    wait_for("the rejection is counted", || {
        h.stats().total().connections_rejected >= 1
    });
    assert_eq!(h.stats().total().connections_rejected, 1);
    h.shutdown();
}

#[test]
fn settings_hot_reload_reaches_running_shards() {
    let (h, addr) = echo_server(2);
    assert!(
        h.update_settings(|s| {
            s.low_water_mark = 10;
            s.high_water_mark = 5;
        })
        .is_err(),
        "inconsistent settings rejected"
    );
    h.update_settings(|s| s.idle_timeout = Some(Duration::from_millis(100)))
        .unwrap();
    // Let both shards take the new settings (they wake on update).
    wait_for("settings seen", || {
        let (tx, rx) = std::sync::mpsc::channel();
        for shard in 0..2 {
            let tx = tx.clone();
            h.post_to(shard, move |ctx| {
                tx.send(ctx.settings().idle_timeout).unwrap();
            })
            .unwrap();
        }
        (0..2).all(|_| rx.recv().unwrap() == Some(Duration::from_millis(100)))
    });
    let mut s = connect(addr);
    let (got, err) = read_to_end_lossy(&mut s);
    assert!(
        got.is_empty() && err.is_none(),
        "closed by the new idle timeout"
    );
    wait_for("idle timeout counted", || {
        h.stats().total().idle_timeouts == 1
    });
    h.shutdown();
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; after the ')' they are 12th and 13th.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Runs the echo example with 48 descriptors, opens more connections than it
/// can accept, and checks that the acceptor backs off (does not spin) and
/// serves the waiting connections once descriptors free up.
#[test]
fn accept_backs_off_on_emfile_and_recovers() {
    emfile_backoff("");
}

/// The same with the shard accepting on its own `SO_REUSEPORT` listener
/// (on io_uring: its multishot accept fails, and is armed again later).
#[test]
fn own_listener_backs_off_on_emfile_and_recovers() {
    emfile_backoff("--reuse-port");
}

fn emfile_backoff(extra: &str) {
    rlimit::increase_nofile_limit(4096).unwrap();
    let bin = example_bin("echo");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n 48 && exec {} --shards 1 --port 0 --no-pin {extra}",
            bin.display()
        ))
        .env("RUST_LOG", "error");
    let server = shardloop_devtools::Spawned::start(cmd).unwrap();
    let (pid, addr) = (server.pid(), server.addr);
    let mut clients: Vec<_> = (0..70).map(|_| connect(addr)).collect();
    // Some are served, the rest wait in the backlog while accept fails.
    let mut served = Vec::new();
    for (i, s) in clients.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.write_all(b"e").unwrap();
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).is_ok() {
            served.push(i);
        }
    }
    assert!(
        served.len() > 10 && served.len() < 48,
        "served {}",
        served.len()
    );
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    // A spinning acceptor burns ~100 ticks a second; backing off, almost none.
    assert!(used < 30, "acceptor spun: {used} ticks in 1 s");
    // Free descriptors: the waiting connections get served.
    let waiting: Vec<usize> = (0..70).filter(|i| !served.contains(i)).collect();
    let mut rest: Vec<_> = Vec::new();
    for (i, s) in clients.into_iter().enumerate() {
        if waiting.contains(&i) {
            rest.push(s);
        }
    }
    for s in rest.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"e");
    }
    drop(server);
}

#[test]
fn reuse_port_mode_accepts_on_every_shard_without_the_acceptor() {
    let (h, addr) = started(builder(2).listen(
        shardloop::endpoint::Listen::from("127.0.0.1:0").socket_options(shardloop::SocketOptions {
            reuse_port: Some(true),
            ..Default::default()
        }),
        |_| |_| Echo,
    ));
    let mut seen = 0;
    // The kernel hashes each connection's addresses: 64 of them reach both shards.
    for i in 0..64u8 {
        let mut c = connect(addr);
        c.write_all(&[i]).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], i);
        seen += 1;
    }
    assert_eq!(seen, 64);
    wait_for("every connection counted", || {
        h.stats().total().connections_accepted == 64
    });
    let per_shard: Vec<u64> = h
        .stats()
        .shards
        .iter()
        .map(|s| s.connections_accepted)
        .collect();
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    let names = thread_names(&h);
    assert!(
        names.iter().any(|n| n.contains("shard")) && names.iter().all(|n| !n.contains("acceptor")),
        "no acceptor thread in reuse_port mode: {names:?}"
    );
    h.shutdown();
    // Stopped: the port refuses connections.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// The names of this process's threads that belong to `h`.
fn thread_names(h: &shardloop::Handle) -> Vec<String> {
    let prefix = h.thread_name_prefix();
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}
