//! Helpers shared by the integration tests (real sockets on 127.0.0.1).
#![allow(dead_code)]

use shardloop::{Conn, Handle, Protocol, Server, ServerBuilder};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

pub struct Echo;

impl Protocol for Echo {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
}

/// Builder with test-friendly defaults: unpinned (tests share two cores).
pub fn builder(shards: usize) -> ServerBuilder {
    Server::builder()
        .shards(shards)
        .pinning(shardloop::Pinning::Off)
}

pub fn echo_server(shards: usize) -> (Handle, SocketAddr) {
    started(with_echo(builder(shards)))
}

/// `b` with an echo listener on a free loopback port.
pub fn with_echo(b: ServerBuilder) -> ServerBuilder {
    b.listen("127.0.0.1:0", |_| |_| Echo)
}

/// Builds and starts `b`; returns its handle and first listener's address.
pub fn started(b: ServerBuilder) -> (Handle, SocketAddr) {
    init_tracing();
    let h = b.build().unwrap().start().unwrap();
    let addr = h.tcp_addr(0);
    (h, addr)
}

/// Polls `cond` until it holds; panics with `what` after a generous limit.
/// Not a timing assertion: the limit only keeps a broken build from hanging.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < limit, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads until EOF (or a reset, which ends the stream too); returns the bytes.
pub fn read_to_end_lossy(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e.kind())),
        }
    }
}

/// Path of an example binary, built first (see `shardloop_devtools::build`).
pub fn example_bin(name: &str) -> std::path::PathBuf {
    shardloop_devtools::build("shardloop", shardloop_devtools::Target::Example(name))
}

/// Starts an example with these arguments and reads the address it prints.
pub fn start_example(name: &str, args: &[&str]) -> shardloop_devtools::Spawned {
    let mut cmd = std::process::Command::new(example_bin(name));
    cmd.args(args).env("RUST_LOG", "error");
    shardloop_devtools::Spawned::start(cmd).unwrap_or_else(|e| panic!("start example {name}: {e}"))
}

/// A process's resident memory, in KiB (`VmRSS`).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Runs `f` as a task on shard 0 of `h`; its result (30 s at most).
pub fn on_shard<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    h: &Handle,
    f: impl FnOnce() -> F + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    h.post_to(0, move |ctx| {
        ctx.spawn_local(async move {
            let _ = tx.send(f().await);
        });
    })
    .unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("the task answered")
}

/// Both futures to their ends, polled together (on a shard: no Send).
pub async fn join2<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.is_some(), rb.is_some()) {
            (true, true) => std::task::Poll::Ready((ra.take().unwrap(), rb.take().unwrap())),
            _ => std::task::Poll::Pending,
        }
    })
    .await
}

/// The body of `GET /metrics` from `addr`.
pub fn scrape_metrics(addr: SocketAddr) -> String {
    let mut s = connect(addr);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (response, _) = read_to_end_lossy(&mut s);
    let response = String::from_utf8_lossy(&response).into_owned();
    match response.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => panic!("no HTTP response from /metrics: {response:?}"),
    }
}
