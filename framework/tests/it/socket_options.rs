//! Socket options on listeners (inherited by accepted connections), from
//! the builder and from endpoint strings, and on outbound connections,
//! each read back with getsockopt through `Conn::socket`.

use crate::common::*;
use shardloop::{Conn, Keepalive, Protocol, ShardCtx, SocketOptions};
use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

/// What getsockopt says about a connection's socket.
fn describe(conn: &Conn<'_, impl Protocol>) -> String {
    let s = conn.socket().expect("a kernel socket");
    let ka = s.keepalive().unwrap();
    format!(
        "nodelay={} keepalive={ka} idle={:?} intvl={:?} cnt={:?} rcvbuf={} sndbuf={} user_timeout={:?}",
        s.tcp_nodelay().unwrap(),
        s.tcp_keepalive_time().unwrap(),
        s.tcp_keepalive_interval().unwrap(),
        s.tcp_keepalive_retries().unwrap(),
        s.recv_buffer_size().unwrap(),
        s.send_buffer_size().unwrap(),
        s.tcp_user_timeout().unwrap(),
    )
}

/// Writes its socket's options and closes.
struct Report;
impl Protocol for Report {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let line = describe(conn);
        conn.write(line.as_bytes());
        conn.close();
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

fn report_of(addr: std::net::SocketAddr) -> String {
    let mut c = connect(addr);
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    s
}

fn field(report: &str, name: &str) -> String {
    report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {report}"))
        .to_string()
}

fn wanted() -> SocketOptions {
    SocketOptions {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(60),
            interval: Some(Duration::from_secs(10)),
            count: Some(5),
        }),
        recv_buffer: Some(65536),
        send_buffer: Some(131072),
        user_timeout: Some(Duration::from_millis(2500)),
        ..SocketOptions::default()
    }
}

fn check(report: &str) {
    assert_eq!(field(report, "nodelay"), "true", "{report}");
    assert_eq!(field(report, "keepalive"), "true", "{report}");
    assert_eq!(field(report, "idle"), "60s", "{report}");
    assert_eq!(field(report, "intvl"), "10s", "{report}");
    assert_eq!(field(report, "cnt"), "5", "{report}");
    // Linux doubles the sizes it is given (bookkeeping overhead).
    assert!(
        field(report, "rcvbuf").parse::<usize>().unwrap() >= 65536,
        "{report}"
    );
    assert!(
        field(report, "sndbuf").parse::<usize>().unwrap() >= 131072,
        "{report}"
    );
    assert_eq!(field(report, "user_timeout"), "Some(2.5s)", "{report}");
}

#[test]
fn listener_options_from_the_builder_reach_accepted_connections() {
    let (h, addr) = started(builder(1).listen(
        shardloop::endpoint::Listen::from("127.0.0.1:0").socket_options(wanted()),
        |_| |_| Report,
    ));
    check(&report_of(addr));
    // Without options: TCP_NODELAY is on by default, keep-alive off.
    h.shutdown();
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", |_| |_| Report));
    let plain = report_of(addr);
    assert_eq!(field(&plain, "nodelay"), "true", "{plain}");
    assert_eq!(field(&plain, "keepalive"), "false", "{plain}");
    h.shutdown();
}

#[test]
fn listener_options_from_an_endpoint_string() {
    let ep = "tcp:port=0:interface=127.0.0.1:keepAlive=60:keepAliveInterval=10:keepAliveCount=5:rcvBuf=65536:sndBuf=131072:userTimeout=2.5:fastOpen=16:backlog=64";
    let (h, addr) = started(builder(1).listen(ep, |_| |_| Report));
    check(&report_of(addr));
    h.shutdown();
    let (h, addr) = started(
        builder(1).listen("tcp:port=0:interface=127.0.0.1:noDelay=false", |_| {
            |_| Report
        }),
    );
    assert_eq!(field(&report_of(addr), "nodelay"), "false");
    h.shutdown();
}

#[test]
fn an_ipv6_listener_honours_v6only() {
    // Dual-stack ([::] also takes IPv4) unless v6Only: an IPv4 client on
    // 127.0.0.1 gets in exactly when v6Only=false.
    for (v6only, ipv4_gets_in) in [("false", true), ("true", false)] {
        let ep = format!(r"tcp6:port=0:v6Only={v6only}");
        let (h, _) = started(builder(1).listen(ep, |_| |_| Report));
        let port = h.tcp_addr(0).port();
        let v4 = std::net::TcpStream::connect(("127.0.0.1", port));
        assert_eq!(v4.is_ok(), ipv4_gets_in, "v6Only={v6only}: {v4:?}");
        let v6 = report_of(std::net::SocketAddr::from((
            std::net::Ipv6Addr::LOCALHOST,
            port,
        )));
        assert_eq!(field(&v6, "nodelay"), "true");
        h.shutdown();
    }
}

/// An outbound probe: reports its own socket's options.
struct Probe(mpsc::Sender<String>);
impl Protocol for Probe {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let _ = self.0.send(describe(conn));
        conn.close();
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    fn connect_failed(&mut self, _: &mut ShardCtx, e: &std::io::Error) {
        let _ = self.0.send(format!("failed: {e}"));
    }
}

#[test]
fn outbound_connections_get_the_servers_defaults_or_their_own() {
    let (target, addr) = echo_server(1);
    let (client, _) = started(
        builder(1)
            .outbound_socket_options(wanted())
            .listen("127.0.0.1:0", |_| |_| Echo),
    );
    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    client
        .post_to(0, move |ctx| ctx.connect(addr, Probe(t)))
        .unwrap();
    check(&rx.recv_timeout(Duration::from_secs(30)).unwrap());

    let own = SocketOptions {
        nodelay: Some(false),
        ..SocketOptions::default()
    };
    client
        .post_to(0, move |ctx| {
            ctx.connect(
                shardloop::endpoint::Connect::tcp(addr).socket_options(own),
                Probe(tx),
            )
        })
        .unwrap();
    let r = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(field(&r, "nodelay"), "false", "{r}");
    assert_eq!(
        field(&r, "keepalive"),
        "false",
        "its own options replace the defaults: {r}"
    );
    client.shutdown();
    target.shutdown();
}
