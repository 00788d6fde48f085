//! `Conn::notify_flushed` / `Protocol::output_flushed`: told when written
//! bytes leave the connection's queue for the kernel, with progress while a
//! slow peer holds them back.

use crate::common::*;
use shardloop::framing::{FrameProtocol, FramedConn, LineDecoder, LineReceiver};
use shardloop::testing::FakeTransport;
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
        .pinning(shardloop::Pinning::Off)
        .outbound_socket_options(options)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let (tx, rx) = channel();
    handle
        .post_to(0, move |ctx| ctx.connect(addr, Writer { total, tx }))
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
    let mut first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // While the kernel moves bytes into the peer's receive buffer a little
    // more may leave; then nothing, as long as the peer does not read.
    while let Ok(more) = rx.recv_timeout(Duration::from_millis(300)) {
        assert!(more >= first);
        first = more;
    }
    assert!(
        first > 0 && first < total,
        "the kernel took part of it, the rest waits: {first}"
    );
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

/// Replies to each line and reports, at each `output_flushed`, how many
/// reply bytes have left.
#[derive(Default)]
struct LineReplies {
    written: usize,
    reports: Vec<usize>,
}

impl FrameProtocol<LineDecoder> for LineReplies {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        let reply = format!("{}\r\n", line.len().to_string().repeat(100));
        conn.write(reply.as_bytes());
        self.written += reply.len();
        conn.notify_flushed();
    }
    fn output_flushed(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>) {
        let left = self.written - conn.buffered();
        self.reports.push(left);
    }
}

#[test]
fn a_framed_protocol_is_told_too_with_the_fake_transport() {
    let mut t = FakeTransport::new(LineReceiver::new(
        LineDecoder::default(),
        LineReplies::default(),
    ));
    // The socket takes 150 bytes, so the 102-byte replies leave in steps.
    t.set_socket_capacity(Some(150));
    t.receive(b"a\r\nbb\r\n");
    let reports = |t: &mut FakeTransport<LineReceiver<LineReplies>>| {
        t.protocol().unwrap().inner().reports.clone()
    };
    assert_eq!(reports(&mut t), vec![150], "one flush, part of the output");
    assert_eq!(t.take_written().len(), 150);
    assert_eq!(
        reports(&mut t),
        vec![150, 204],
        "the rest left when the peer read"
    );
    assert_eq!(t.buffered(), 0);
    // Spent once the queue is empty: a write without asking says nothing.
    t.set_socket_capacity(None);
    assert_eq!(reports(&mut t).len(), 2);
}

/// Two large writes in one callback; reports how much had left each time.
#[derive(Default)]
struct TwoLarge {
    written: usize,
    reports: Vec<usize>,
}

impl Protocol for TwoLarge {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, _data: &[u8]) {
        for _ in 0..2 {
            conn.write(&[1u8; 100_000]);
            self.written += 100_000;
        }
        conn.notify_flushed();
    }
    fn output_flushed(&mut self, conn: &mut Conn<'_, Self>) {
        self.reports.push(self.written - conn.buffered());
    }
}

#[test]
fn bytes_a_large_write_handed_over_directly_are_reported_at_the_flush() {
    // The first write goes straight to the socket whole; the second only in
    // part, so the flush itself hands nothing over: the watcher must still
    // hear that 150,000 bytes left (a request that left can be answered
    // before the socket is writable again).
    let mut t = FakeTransport::new(TwoLarge::default());
    t.set_socket_capacity(Some(150_000));
    t.receive(b"go");
    assert_eq!(t.protocol().unwrap().reports, vec![150_000]);
    assert_eq!(t.take_written().len(), 150_000);
    assert_eq!(t.protocol().unwrap().reports, vec![150_000, 200_000]);
}
