//! UDP on 127.0.0.1: the udp_echo example with a Python client over many
//! source ports (spread over the shards), oversized datagrams, connected
//! client sockets and ICMP errors, multicast on loopback, close, and a
//! panicking protocol.

use crate::common::*;
use shardloop::udp::{DatagramProtocol, Udp};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn udp_echo_answers_a_python_client_from_64_ports() {
    let ex = start_example("udp_echo", &["--port", "0", "--shards", "2", "--no-pin"]);
    let script = format!(
        r#"
import socket
for i in range(64):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    msg = b"datagram %d " % i + bytes(range(256)) * (i % 5)
    s.sendto(msg, ("127.0.0.1", {port}))
    data, addr = s.recvfrom(65536)
    assert data == msg, (i, len(data), len(msg))
    assert addr == ("127.0.0.1", {port}), addr
print("ok 64")
"#,
        port = ex.addr.port()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3 is needed by this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok 64\n");
}

/// Echoes; reports errors; panics on "boom"; closes on "bye".
struct Probe(mpsc::Sender<String>);
impl DatagramProtocol for Probe {
    fn started(&mut self, udp: &mut Udp<'_>) {
        let _ = self
            .0
            .send(format!("started {}", udp.local_addr().unwrap().port() > 0));
    }
    fn datagram_received(&mut self, udp: &mut Udp<'_>, data: &[u8], from: SocketAddr) {
        match data {
            b"boom" => panic!("a bad datagram"),
            b"bye" => udp.close(),
            _ => udp.send_to(data, from),
        }
    }
    fn error_received(&mut self, _: &mut Udp<'_>, e: &std::io::Error) {
        let _ = self.0.send(format!("error {:?}", e.kind()));
    }
    fn stopped(&mut self, _: &mut Udp<'_>) {
        let _ = self.0.send("stopped".into());
    }
}

fn probe_server(max: usize) -> (shardloop::Handle, SocketAddr, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    init_tracing();
    let mut options = shardloop::LoopOptions::default();
    options.udp_max_datagram = max;
    let h = builder(2)
        .loop_options(options)
        .listen_udp("127.0.0.1:0", move |_| Probe(tx.lock().unwrap().clone()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.udp_addr(0);
    (h, addr, rx)
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

#[test]
fn oversized_datagrams_and_panics_are_reported_and_the_socket_goes_on() {
    let (h, addr, rx) = probe_server(1000);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "started true"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "started true"
    );
    let c = client();
    c.send_to(&[7u8; 1001], addr).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "error InvalidData"
    );
    c.send_to(b"boom", addr).unwrap();
    // Exactly at the limit: delivered whole.
    c.send_to(&[9u8; 1000], addr).unwrap();
    let mut buf = [0u8; 2000];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[9u8; 1000][..]);
    wait_for("counted", || {
        let t = h.stats().total();
        t.udp_errors == 1 && t.callback_panics == 1 && t.udp_datagrams_out == 1
    });
    assert_eq!(h.stats().total().udp_datagrams_in, 3);
    h.shutdown();
}

#[test]
fn the_kernel_spreads_senders_over_every_shard() {
    let (h, addr, _rx) = probe_server(65536);
    for i in 0..64u8 {
        let c = client();
        c.send_to(&[i], addr).unwrap();
        let mut b = [0u8; 4];
        let (n, from) = c.recv_from(&mut b).unwrap();
        assert_eq!((&b[..n], from), (&[i][..], addr));
    }
    wait_for("all counted", || h.stats().total().udp_datagrams_in == 64);
    let per_shard: Vec<u64> = h
        .stats()
        .shards
        .iter()
        .map(|s| s.udp_datagrams_in)
        .collect();
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    h.shutdown();
}

#[test]
fn close_stops_the_socket() {
    let (h, addr, rx) = probe_server(65536);
    for _ in 0..2 {
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    let c = client();
    c.send_to(b"bye", addr).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "stopped");
    h.shutdown();
    // The other shard's socket stops with the server.
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "stopped");
}

/// A connected client: sends on start, reports answers and errors.
struct Ask(mpsc::Sender<String>);
impl DatagramProtocol for Ask {
    fn started(&mut self, udp: &mut Udp<'_>) {
        udp.send(b"ping");
    }
    fn datagram_received(&mut self, udp: &mut Udp<'_>, data: &[u8], from: SocketAddr) {
        let _ = self.0.send(format!(
            "{} from {}",
            String::from_utf8_lossy(data),
            udp.remote_addr() == Some(from)
        ));
    }
    fn error_received(&mut self, _: &mut Udp<'_>, e: &std::io::Error) {
        let _ = self.0.send(format!("error {:?}", e.kind()));
    }
}

#[test]
fn a_connected_client_gets_answers_and_icmp_errors() {
    let (server, addr, _rx) = probe_server(65536);
    let (client_srv, _) = echo_server(1);
    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    client_srv
        .post_to(0, move |ctx| {
            ctx.udp_connect(addr, Ask(t)).unwrap();
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "ping from true"
    );
    // Nobody on this port: the kernel's ICMP port unreachable comes back.
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    client_srv
        .post_to(0, move |ctx| {
            ctx.udp_connect(dead, Ask(tx)).unwrap();
        })
        .unwrap();
    let e = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(e, format!("error {:?}", ErrorKind::ConnectionRefused));
    server.shutdown();
    client_srv.shutdown();
}

/// Joins a group on loopback and reports what arrives.
struct Member(mpsc::Sender<String>);
impl DatagramProtocol for Member {
    fn started(&mut self, udp: &mut Udp<'_>) {
        let joined = udp.join_multicast_v4(Ipv4Addr::new(239, 255, 7, 7), Ipv4Addr::LOCALHOST);
        let _ = self.0.send(format!("joined {}", joined.is_ok()));
    }
    fn datagram_received(&mut self, udp: &mut Udp<'_>, data: &[u8], _: SocketAddr) {
        let _ = self.0.send(String::from_utf8_lossy(data).into_owned());
        let left = udp.leave_multicast_v4(Ipv4Addr::new(239, 255, 7, 7), Ipv4Addr::LOCALHOST);
        let _ = self.0.send(format!("left {}", left.is_ok()));
    }
}

#[test]
fn multicast_join_receive_and_leave_on_loopback() {
    let (h, _) = echo_server(1);
    let (tx, rx) = mpsc::channel();
    let port = std::sync::Arc::new(std::sync::Mutex::new(0u16));
    let p = port.clone();
    h.post_to(0, move |ctx| {
        let a = ctx.udp_bind(([0, 0, 0, 0], 0).into(), Member(tx)).unwrap();
        *p.lock().unwrap() = a.port();
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "joined true"
    );
    let port = *port.lock().unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&sender)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    sender
        .send_to(b"to the group", (Ipv4Addr::new(239, 255, 7, 7), port))
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "to the group"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "left true"
    );
    h.shutdown();
}

#[test]
fn twenty_thousand_oversize_datagrams_make_a_bounded_number_of_log_lines() {
    let log = std::env::temp_dir().join(format!("udp-flood-{}.log", std::process::id()));
    let mut cmd = std::process::Command::new(crate::common::example_bin("udp_echo"));
    cmd.args([
        "--port",
        "0",
        "--shards",
        "2",
        "--max-datagram",
        "512",
        "--no-pin",
    ])
    .env("RUST_LOG", "warn")
    .stderr(std::fs::File::create(&log).unwrap());
    let server = shardloop_devtools::Spawned::start(cmd).unwrap();
    let c = client();
    let started = std::time::Instant::now();
    for _ in 0..20_000 {
        let _ = c.send_to(&[b'x'; 1000], server.addr);
    }
    // The echo still works, and the flood is over.
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"ping", server.addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    let secs = started.elapsed().as_secs() + 1;
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines = text.lines().filter(|l| l.contains("UDP error")).count() as u64;
    // 5 lines a second per shard, 2 shards.
    assert!(lines <= 10 * secs, "{lines} log lines in about {secs} s");
    assert!(lines >= 1, "the first is logged");
    assert!(
        text.contains("suppressed") || lines < 10,
        "held-back lines are counted"
    );
}
