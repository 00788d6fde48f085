//! The output cap bounds what a peer leaves unread, not the size of an
//! answer to a peer that reads: a 64 MiB reply streams whole with the
//! default 4 MiB cap; a framed server answering a pipelining client that
//! never reads stops at the high-water mark and holds a bounded amount,
//! then sends everything once the client reads; a server that keeps
//! pushing to a peer that never reads is still aborted.

use crate::common::*;
use shardloop::framing::{FrameProtocol, FramedConn, LineDecoder, LineReceiver};
use shardloop::{CloseReason, Conn, Protocol, Settings};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i + seed) % 251) as u8).collect()
}

/// Writes `n` bytes in one callback on connect, then closes.
struct OneReply {
    n: usize,
    lost: Arc<Mutex<Option<CloseReason>>>,
}
impl Protocol for OneReply {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.write(&pattern(self.n, 0));
        conn.close();
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    fn connection_lost(&mut self, _: &mut Conn<'_, Self>, reason: &CloseReason) {
        *self.lost.lock().unwrap() = Some(reason.clone());
    }
}

#[test]
fn a_64_mib_reply_reaches_a_reading_client_whole_under_the_default_cap() {
    let n = 64 * MIB;
    assert!(n > Settings::default().max_output_buffer);
    let lost = Arc::new(Mutex::new(None));
    let l2 = lost.clone();
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", move |_| {
        let lost = l2.clone();
        move |_| OneReply {
            n,
            lost: lost.clone(),
        }
    }));
    let mut s = connect(addr);
    let (got, err) = read_to_end_lossy(&mut s);
    assert_eq!(err, None, "no reset");
    assert_eq!(got.len(), n);
    assert!(got == pattern(n, 0), "every byte, in order");
    wait_for("connection_lost", || lost.lock().unwrap().is_some());
    assert_eq!(*lost.lock().unwrap(), Some(CloseReason::Done));
    assert_eq!(h.stats().total().output_overflows, 0);
    h.shutdown();
}

/// Answers each line with `size` bytes; records the most it ever queued.
struct BigLines {
    size: usize,
    count: usize,
    most_queued: Arc<Mutex<usize>>,
}
impl FrameProtocol<LineDecoder> for BigLines {
    type Message = ();
    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, _: &[u8]) {
        conn.write(&pattern(self.size, self.count));
        self.count += 1;
        let mut most = self.most_queued.lock().unwrap();
        *most = (*most).max(conn.buffered());
    }
}

#[test]
fn a_pipelining_client_that_never_reads_costs_a_bounded_amount_then_gets_everything() {
    let (lines, size) = (48, MIB);
    let settings = Settings::default();
    let most_queued = Arc::new(Mutex::new(0));
    let m2 = most_queued.clone();
    let (h, addr) = started(builder(1).settings(settings.clone()).listen(
        "127.0.0.1:0",
        move |_| {
            let m = m2.clone();
            move |_| {
                let p = BigLines {
                    size,
                    count: 0,
                    most_queued: m.clone(),
                };
                LineReceiver::new(LineDecoder::default(), p)
            }
        },
    ));
    let mut s = connect(addr);
    // 48 requests of 1 MiB replies, sent at once; nothing read for a while.
    s.write_all(&b"get\r\n".repeat(lines)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // One reply past the high-water mark at most is queued, whatever the
    // kernel's socket buffers took.
    let most = *most_queued.lock().unwrap();
    let bound = settings.high_water_mark + size;
    assert!(
        most <= bound,
        "queued {most} bytes for a client that reads nothing (bound {bound})"
    );
    assert!(most >= size, "a reply waits in the queue");
    let mut got = vec![0u8; lines * size];
    s.read_exact(&mut got).unwrap();
    for (k, reply) in got.chunks(size).enumerate() {
        assert!(reply == pattern(size, k).as_slice(), "reply {k} intact");
    }
    assert_eq!(h.stats().total().output_overflows, 0);
    h.shutdown();
}

/// Pushes 256 KiB every 10 ms whatever the peer does.
struct Pusher;
impl Protocol for Pusher {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.call_every(Duration::from_millis(10), |_, conn| {
            conn.write(&[7u8; 256 * 1024]);
        });
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn a_peer_that_never_reads_what_is_pushed_is_aborted_at_the_cap() {
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", |_| |_| Pusher));
    let s = connect(addr);
    wait_for("the overflow abort", || {
        h.stats().total().output_overflows == 1
    });
    drop(s);
    h.shutdown();
}
