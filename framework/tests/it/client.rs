//! Outbound connections from a shard (`ShardCtx::connect_tcp`).

use crate::common::*;
use shardloop::endpoint::Connect;
use shardloop::{CloseReason, Conn, Protocol, Server, ShardCtx};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

#[derive(Debug, PartialEq)]
enum Outcome {
    Echoed(Vec<u8>),
    Failed(std::io::ErrorKind),
    Lost(CloseReason),
}

struct Client {
    tx: Sender<Outcome>,
    got: Vec<u8>,
}

impl Protocol for Client {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(b"hello backend");
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() == 13 {
            self.tx.send(Outcome::Echoed(self.got.clone())).unwrap();
            conn.close();
        }
    }
    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.tx.send(Outcome::Lost(reason.clone())).unwrap();
    }
    fn connect_failed(&mut self, _shard: &mut ShardCtx, error: &std::io::Error) {
        self.tx.send(Outcome::Failed(error.kind())).unwrap();
    }
}

fn client_only(shards: usize) -> shardloop::Handle {
    init_tracing();
    Server::builder()
        .shards(shards)
        .pinning(shardloop::Pinning::Off)
        .build()
        .unwrap()
        .start()
        .unwrap()
}

#[test]
fn connect_tcp_round_trip_from_every_shard() {
    let (server, addr) = echo_server(1);
    let clients = client_only(2);
    let (tx, rx) = channel();
    for shard in 0..2 {
        let tx = tx.clone();
        clients
            .post_to(shard, move |ctx| {
                ctx.connect(
                    addr,
                    Client {
                        tx,
                        got: Vec::new(),
                    },
                )
            })
            .unwrap();
    }
    let mut outcomes: Vec<_> = (0..4)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        vec![
            Outcome::Echoed(b"hello backend".to_vec()),
            Outcome::Echoed(b"hello backend".to_vec()),
            Outcome::Lost(CloseReason::Done),
            Outcome::Lost(CloseReason::Done),
        ]
    );
    let stats = clients.stats();
    assert!(stats.shards.iter().all(|s| s.connections_accepted == 1));
    clients.shutdown();
    server.shutdown();
}

#[test]
fn connect_to_closed_port_reports_refused() {
    // Bind then drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let clients = client_only(1);
    let (tx, rx) = channel();
    clients
        .post_to(0, move |ctx| {
            ctx.connect(
                port,
                Client {
                    tx,
                    got: Vec::new(),
                },
            )
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        Outcome::Failed(std::io::ErrorKind::ConnectionRefused)
    );
    wait_for("failure counted", || {
        clients.stats().total().connect_failures == 1
    });
    assert_eq!(clients.stats().total().connections_open, 0);
    clients.shutdown();
}

#[test]
fn connect_timeout_fires_when_handshake_never_completes() {
    // A listener that never accepts, with its backlog full: Linux drops
    // further SYNs, so a new connect stays pending.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    let clients = client_only(1);
    let (tx, rx) = channel();
    clients
        .post_to(0, move |ctx| {
            ctx.connect(
                Connect::tcp(addr).timeout(Duration::from_millis(300)),
                Client {
                    tx,
                    got: Vec::new(),
                },
            )
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        Outcome::Failed(std::io::ErrorKind::TimedOut)
    );
    clients.shutdown();
    drop(sock);
}

/// Sends "hi" on connect and reports what comes back.
struct Hello {
    tx: Sender<Vec<u8>>,
}
impl Protocol for Hello {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(b"hi");
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.tx.send(data.to_vec()).unwrap();
        conn.close();
    }
}

fn quick_policy(max_retries: Option<u32>) -> shardloop::client::reconnect::ReconnectPolicy {
    shardloop::client::reconnect::ReconnectPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        factor: 2.0,
        jitter: 0.1,
        max_retries,
        connect_timeout: Some(Duration::from_secs(5)),
    }
}

#[test]
fn reconnecting_client_gives_up_after_max_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let clients = client_only(1);
    let (done_tx, done_rx) = channel();
    clients
        .post_to(0, move |ctx| {
            let (tx, _rx) = channel();
            let r = ctx.connect_reconnecting(port, quick_policy(Some(3)), move || Hello {
                tx: tx.clone(),
            });
            // Check back once the retries (10+20+40 ms at most, jittered) are surely over.
            ctx.call_later(Duration::from_millis(500), move |_| {
                done_tx
                    .send((r.attempts(), r.gave_up(), r.is_connected()))
                    .unwrap();
            });
        })
        .unwrap();
    let (attempts, gave_up, connected) = done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(attempts, 4, "the first try and 3 retries");
    assert!(gave_up && !connected);
    clients.shutdown();
}

#[test]
fn reconnecting_client_connects_once_the_server_appears_and_after_it_drops() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let clients = client_only(1);
    let (tx, rx) = channel();
    clients
        .post_to(0, move |ctx| {
            let _r = ctx
                .connect_reconnecting(port, quick_policy(None), move || Hello { tx: tx.clone() });
        })
        .unwrap();
    // Nobody listens yet: a few attempts fail.
    std::thread::sleep(Duration::from_millis(100));
    let server = builder(1)
        .listen(port, |_| |_| Echo)
        .build()
        .unwrap()
        .start()
        .unwrap();
    // Connects, gets its echo, closes itself, and (as a reconnecting client
    // does) connects again: two echoes prove both.
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), b"hi");
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), b"hi");
    assert!(clients.stats().total().connect_failures >= 1);
    clients.shutdown();
    server.shutdown();
}

#[test]
fn a_client_stream_connect_given_up_closes_the_connection_it_makes() {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // EOF (Ok(0)) if the client closed it; an error if it was kept open.
        let _ = tx.send(s.read(&mut [0u8; 16]).map_err(|e| e.kind()));
    });
    let (h, _) = echo_server(1);
    let gave_up = on_shard(&h, move || async move {
        let c = shardloop::client::ClientStream::connect(Connect::tcp(addr));
        // Given up before the connection is made (the connect starts
        // after this task yields).
        shardloop::task::timeout(Duration::ZERO, c).await.is_err()
    });
    assert!(gave_up);
    let read = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(read, Ok(0), "the abandoned connection was left open");
}
