//! Half-close (`shutdown_write`, `eof_received` keeping the connection
//! open) in the framework and through the proxy example, and resets passed
//! on as resets.

use crate::common::*;
use shardloop::testing::FakeTransport;
use shardloop::{CloseReason, Conn, Protocol};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;

/// Answers with three replies once the peer has finished sending, then closes.
struct ReplyAfterEof;
impl Protocol for ReplyAfterEof {
    type Message = ();
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        for i in 1..=3 {
            conn.write(format!("reply {i}\n").as_bytes());
        }
        conn.close();
    }
}

/// Sends a request, half-closes, reads replies until the peer's EOF.
struct Requester {
    got: Vec<u8>,
}
impl Protocol for Requester {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(b"request\n");
        conn.shutdown_write();
        conn.write(b"refused: after shutdown_write");
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, data: &[u8]) {
        self.got.extend_from_slice(data);
    }
}

#[test]
fn shutdown_write_flushes_then_fin_and_keeps_reading() {
    let mut t = FakeTransport::new(Requester { got: Vec::new() });
    assert_eq!(t.written(), b"request\n");
    assert!(t.fin_sent(), "FIN once the output is out");
    assert!(t.is_open(), "still reading");
    t.receive(b"answer");
    assert_eq!(t.protocol().unwrap().got, b"answer");
    t.peer_close();
    assert_eq!(t.close_reason(), Some(CloseReason::PeerClosed));
    assert!(!t.aborted());
    assert_eq!(
        t.written(),
        b"request\n",
        "the refused write never went out"
    );
}

#[test]
fn a_protocol_may_answer_after_the_peers_eof() {
    let mut t = FakeTransport::new(ReplyAfterEof);
    t.receive(b"question");
    t.peer_close();
    assert_eq!(t.written(), b"reply 1\nreply 2\nreply 3\n");
    assert_eq!(t.close_reason(), Some(CloseReason::PeerClosed));
}

fn backend(p: fn() -> BackendKind) -> (shardloop::Handle, std::net::SocketAddr) {
    started(builder(1).listen("127.0.0.1:0", move |_| move |_| p()))
}

/// The backends these tests put behind the proxy.
enum BackendKind {
    ReplyAfterEof,
    /// Sends a partial answer, then resets.
    ResetMidway,
}
impl Protocol for BackendKind {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        if let BackendKind::ResetMidway = self {
            conn.write(b"partial");
            conn.call_later(std::time::Duration::from_millis(50), |_, conn| conn.abort());
        }
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        match self {
            BackendKind::ReplyAfterEof => {
                for i in 1..=3 {
                    conn.write(format!("reply {i}\n").as_bytes());
                }
                conn.close();
            }
            BackendKind::ResetMidway => {}
        }
    }
}

fn proxy_to(addr: std::net::SocketAddr) -> shardloop_devtools::Spawned {
    let backend = addr.to_string();
    start_example(
        "proxy",
        &["--port", "0", "--shards", "1", "--backend", &backend],
    )
}

#[test]
fn a_half_close_passes_through_the_proxy_and_replies_come_back() {
    let (h, addr) = backend(|| BackendKind::ReplyAfterEof);
    // Directly, and through the proxy: the same three replies.
    for target in [addr, proxy_to(addr).addr] {
        let mut s = connect(target);
        s.write_all(b"request\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let (got, err) = read_to_end_lossy(&mut s);
        assert_eq!(err, None);
        assert_eq!(got, b"reply 1\nreply 2\nreply 3\n", "via {target}");
    }
    h.shutdown();
}

#[test]
fn a_backend_reset_reaches_the_client_as_a_reset() {
    let (h, addr) = backend(|| BackendKind::ResetMidway);
    let proxy = proxy_to(addr);
    let mut s = connect(proxy.addr);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e.kind()),
        }
    };
    assert_eq!(got, b"partial");
    assert_eq!(
        end,
        Some(ErrorKind::ConnectionReset),
        "a truncated stream must not look complete"
    );
    h.shutdown();
}

/// Answers once, then closes without waiting for the peer's FIN.
struct AnswerAndGo;
impl Protocol for AnswerAndGo {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, _: &[u8]) {
        conn.write(&[b'x'; 100_000]);
        conn.close_without_linger();
    }
}

#[test]
fn close_without_linger_delivers_everything_and_releases_before_the_peers_fin() {
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", |_| |_| AnswerAndGo));
    let mut c = connect(addr);
    c.write_all(b"request").unwrap();
    // The server lets go of the connection while ours is still open.
    wait_for("released without our FIN", || {
        let t = h.stats().total();
        t.connections_closed == 1 && t.connections_open == 0
    });
    let (got, err) = read_to_end_lossy(&mut c);
    assert_eq!(err, None, "a clean FIN, not a reset");
    assert_eq!(got.len(), 100_000);
    h.shutdown();
}
