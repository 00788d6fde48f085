//! `Conn::notify_flushed` / `Protocol::output_flushed`: told when written
//! bytes leave the connection's queue for the kernel, with progress while a
//! slow peer holds them back.
mod common;

use common::*;
use shardloop::{Conn, Protocol, Server, SocketOptions};
use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

/// Writes `total` bytes in one go and reports how much had left at each
/// `output_flushed`.
struct Writer {
    total: usize,
    tx: Sender<usize>,
}

impl Protocol for Writer {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        // Several writes, so the large path and the queued path both run.
        let chunk = vec![7u8; 100_000];
        let mut left = self.total;
        while left > 0 {
            let n = left.min(chunk.len());
            conn.write(&chunk[..n]);
            left -= n;
        }
        conn.notify_flushed();
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {}
    fn output_flushed(&mut self, conn: &mut Conn<'_, Self>) {
        let _ = self.tx.send(self.total - conn.buffered());
    }
}

fn client(
    total: usize,
) -> (
    shardloop::Handle,
    TcpListener,
    std::sync::mpsc::Receiver<usize>,
) {
    init_tracing();
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.set_recv_buffer_size(64 * 1024).unwrap();
    listener
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    listener.listen(8).unwrap();
    let listener: TcpListener = listener.into();
    let addr = listener.local_addr().unwrap();
    // Small socket buffers, so a peer that does not read holds most back.
    let options = SocketOptions {
        send_buffer: Some(64 * 1024),
        ..SocketOptions::default()
    };
    let handle = Server::builder()
        .shards(1)
        .pin(false)
        .outbound_socket_options(options)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let (tx, rx) = channel();
    handle
        .submit_to(0, move |ctx| ctx.connect_tcp(addr, Writer { total, tx }))
        .unwrap();
    (handle, listener, rx)
}

#[test]
fn a_small_write_is_reported_once_when_it_leaves() {
    let (handle, listener, rx) = client(100);
    let (mut peer, _) = listener.accept().unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 100);
    // The request is spent once the queue is empty: no second report.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    let mut got = [0u8; 100];
    peer.read_exact(&mut got).unwrap();
    assert!(got.iter().all(|&b| b == 7));
    handle.shutdown();
}

#[test]
fn progress_is_reported_while_a_peer_that_does_not_read_holds_output_back() {
    // More than the socket buffers hold, less than the output cap.
    let total = 3_000_000;
    let (handle, listener, rx) = client(total);
    let (mut peer, _) = listener.accept().unwrap();
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        first > 0 && first < total,
        "the kernel took part of it, the rest waits: {first}"
    );
    // Nothing more leaves while the peer does not read.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    let reader = std::thread::spawn(move || {
        let mut sink = vec![0u8; 1 << 16];
        let mut n = 0;
        while n < total {
            n += peer.read(&mut sink).unwrap();
        }
        n
    });
    let mut last = first;
    while last < total {
        let gone = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            gone >= last,
            "progress never goes back: {gone} after {last}"
        );
        last = gone;
    }
    assert_eq!(reader.join().unwrap(), total);
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    handle.shutdown();
}
