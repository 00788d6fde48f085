//! Unix-domain listeners and clients, from endpoint descriptions.

use crate::common::*;
use shardloop::{Addr, Conn, Protocol, Server, ShardCtx};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

fn sock_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("shardloop-{}-{name}.sock", std::process::id()))
}

#[test]
fn unix_listener_round_trip_and_cleanup() {
    init_tracing();
    let path = sock_path("echo");
    // A stale socket file from a dead server is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let h = builder(2)
        .listen(format!("unix:{}", path.display()), |_| |_| Echo)
        .build()
        .unwrap()
        .start()
        .unwrap();
    assert_eq!(h.local_addrs()[0], Addr::Unix(Some(path.clone())));
    for i in 0..4u8 {
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(&[i; 1000]).unwrap();
        let mut back = [0u8; 1000];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, [i; 1000]);
    }
    wait_for("spread over shards", || {
        h.stats().shards.iter().all(|s| s.connections_accepted == 2)
    });
    h.shutdown();
    assert!(!path.exists(), "socket file removed on stop");
}

struct Probe {
    tx: Sender<Vec<u8>>,
}
impl Protocol for Probe {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(b"over unix");
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.tx.send(data.to_vec()).unwrap();
        conn.close();
    }
    fn connect_failed(&mut self, _s: &mut ShardCtx, e: &std::io::Error) {
        panic!("connect failed: {e}");
    }
}

#[test]
fn shard_connects_to_a_unix_server() {
    init_tracing();
    let path = sock_path("client");
    let server = builder(1)
        .listen(
            format!("unix:address={}:backlog=16", path.display()),
            |_| |_| Echo,
        )
        .build()
        .unwrap()
        .start()
        .unwrap();
    let clients = Server::builder()
        .shards(1)
        .pinning(shardloop::Pinning::Off)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let (tx, rx) = channel();
    let target = Addr::Unix(Some(path.clone()));
    clients
        .post_to(0, move |ctx| {
            ctx.connect(
                shardloop::endpoint::Connect::addr(target).timeout(Duration::from_secs(5)),
                Probe { tx },
            )
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        b"over unix"
    );
    clients.shutdown();
    server.shutdown();
}

#[test]
fn bad_endpoints_fail_build_naming_the_field() {
    let err = |desc: &str| {
        Server::builder()
            .listen(desc, |_| |_| Echo)
            .build()
            .err()
            .expect("build must fail")
            .to_string()
    };
    let e = err("tcp:port=http");
    assert!(e.contains("port") && e.contains("\"http\""), "{e}");
    let e = err("sctp:80");
    assert!(e.contains("type"), "{e}");
    let e = err("tcp:port=0:interface=127.0.0.1:backlog=zero");
    assert!(e.contains("backlog"), "{e}");
    // A live socket is not stolen.
    let path = sock_path("live");
    let _live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let e = err(&format!("unix:{}", path.display()));
    assert!(e.contains("cannot listen"), "{e}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn tcp_endpoint_on_loopback() {
    init_tracing();
    let h = builder(1)
        .listen("tcp:port=0:interface=127.0.0.1", |_| |_| Echo)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut s = connect(h.tcp_addr(0));
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    h.shutdown();
}
