//! Regression tests for the hardening issue: nothing lost on a graceful
//! close, nothing unbounded, every wait a peer can stall has a deadline,
//! timers do exactly what was asked, and a dying shard is noticed.

use crate::common::*;
use shardloop::testing::FakeTransport;
use shardloop::{CloseReason, Conn, Error, LeastConnections, Protocol, Settings, TimerHandle};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writes `n` bytes and closes on connect; writes again from `connection_lost`.
struct WriteCloseThenLateWrite {
    n: usize,
}
impl Protocol for WriteCloseThenLateWrite {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let data: Vec<u8> = (0..self.n).map(|i| (i % 251) as u8).collect();
        conn.write_owned(data);
        conn.close();
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    fn connection_lost(&mut self, conn: &mut Conn<'_, Self>, _: &CloseReason) {
        conn.write(b"too late");
    }
}

#[test]
fn a_write_from_connection_lost_is_refused_not_a_reset() {
    let mut t = FakeTransport::new(WriteCloseThenLateWrite { n: 100 });
    assert!(t.fin_sent() && !t.aborted());
    assert_eq!(t.written().len(), 100);
    assert_eq!(t.close_reason(), Some(CloseReason::Done));
    assert_eq!(t.shard().handle().stats().total().writes_refused, 1);
}

#[test]
fn eight_mib_then_a_late_write_reach_a_real_peer_whole_and_clean() {
    const N: usize = 8 * 1024 * 1024;
    let (h, addr) = started(
        builder(1)
            .settings(Settings {
                max_output_buffer: 16 * 1024 * 1024,
                ..Settings::default()
            })
            .listen("127.0.0.1:0", |_| |_| WriteCloseThenLateWrite { n: N }),
    );
    let mut s = connect(addr);
    let (got, err) = read_to_end_lossy(&mut s);
    assert_eq!(err, None, "a clean EOF, not a reset");
    assert_eq!(got.len(), N);
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    h.shutdown();
}

#[test]
fn a_close_whose_peer_never_reads_is_aborted_at_the_close_timeout() {
    let settings = Settings {
        close_timeout: Duration::from_secs(30),
        ..Settings::default()
    };
    let mut t = FakeTransport::with_settings(Echo, settings);
    t.set_socket_capacity(Some(0));
    t.receive(b"reply that never leaves");
    // The peer half-closes but never reads: the graceful close cannot finish.
    t.peer_close();
    t.advance(Duration::from_secs(29));
    assert!(t.is_open(), "still flushing");
    t.advance(Duration::from_secs(1));
    assert_eq!(t.close_reason(), Some(CloseReason::CloseTimeout));
    assert!(t.aborted());
}

struct ShortIdle;
impl Protocol for ShortIdle {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.set_idle_timeout(Some(Duration::from_secs(1)));
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn set_idle_timeout_can_shorten_the_server_default() {
    let settings = Settings {
        idle_timeout: Some(Duration::from_secs(60)),
        ..Settings::default()
    };
    let mut t = FakeTransport::with_settings(ShortIdle, settings);
    t.advance(Duration::from_millis(999));
    assert!(t.is_open());
    t.advance(Duration::from_millis(1));
    assert_eq!(t.close_reason(), Some(CloseReason::IdleTimeout));
}

/// Timer A and timer B are due in the same tick; A cancels B.
#[derive(Default)]
struct CancelInSameTick {
    b: Option<TimerHandle>,
    cancelled: Option<bool>,
    b_ran: bool,
}
impl Protocol for CancelInSameTick {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.call_later(Duration::from_millis(10), |p, conn| {
            let b = p.b.take().unwrap();
            p.cancelled = Some(conn.cancel_timer(b));
        });
        self.b = Some(conn.call_later(Duration::from_millis(10), |p, _| p.b_ran = true));
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn a_timer_cancelled_by_another_in_the_same_tick_never_runs() {
    let mut t = FakeTransport::new(CancelInSameTick::default());
    t.advance(Duration::from_millis(10));
    let p = t.protocol().unwrap();
    assert_eq!(p.cancelled, Some(true), "cancel reports success");
    assert!(!p.b_ran, "a cancelled timer never runs");
}

struct Forever;
impl Protocol for Forever {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.call_later(Duration::MAX, |_, conn| conn.write(b"never"));
        conn.call_every(Duration::MAX, |_, conn| conn.write(b"never"));
        conn.set_idle_timeout(Some(Duration::MAX));
        conn.set_read_timeout(Some(Duration::MAX));
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn duration_max_means_never_and_does_not_panic() {
    let mut t = FakeTransport::new(Forever);
    t.advance(Duration::from_secs(365 * 24 * 3600));
    assert!(t.is_open());
    assert!(t.written().is_empty());
}

/// Writes `reply` for every read, ignoring backpressure.
struct Amplifier {
    reply: usize,
}
impl Protocol for Amplifier {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, _: &[u8]) {
        conn.write(&vec![b'x'; self.reply]);
    }
}

fn small_output_settings() -> Settings {
    Settings {
        low_water_mark: 4 * 1024,
        high_water_mark: 16 * 1024,
        max_output_buffer: 64 * 1024,
        ..Settings::default()
    }
}

#[test]
fn output_over_high_water_stops_reading_until_the_peer_reads() {
    let mut t = FakeTransport::with_settings(Echo, small_output_settings());
    t.set_socket_capacity(Some(0));
    t.receive(&[1u8; 20 * 1024]);
    t.receive(&[2u8; 20 * 1024]);
    // The first read pushed output past high water: the second waits in the
    // socket, so the peer is slowed by flow control, not buffered for.
    assert_eq!(t.buffered(), 20 * 1024);
    assert!(t.is_open());
    t.set_socket_capacity(None);
    let mut got = t.take_written();
    got.extend(t.take_written());
    assert_eq!(got.len(), 40 * 1024, "everything echoed once the peer read");
    assert_eq!(&got[20 * 1024..], &[2u8; 20 * 1024][..]);
}

#[test]
fn a_reply_larger_than_the_cap_streams_to_a_peer_that_reads() {
    let mut t =
        FakeTransport::with_settings(Amplifier { reply: 70 * 1024 }, small_output_settings());
    t.set_socket_capacity(Some(0));
    t.receive(b"a");
    assert!(
        t.is_open(),
        "one iteration's output is accepted at any size"
    );
    t.set_socket_capacity(None);
    assert_eq!(t.take_written().len(), 70 * 1024);
    assert!(t.is_open());
}

/// Answers each read with `reply` bytes and writes a byte every 10 ms.
struct Ticker {
    reply: usize,
}
impl Protocol for Ticker {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.call_every(Duration::from_millis(10), |_, conn| conn.write(b"."));
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, _: &[u8]) {
        conn.write(&vec![b'x'; self.reply]);
    }
}

#[test]
fn a_write_while_the_peer_leaves_more_than_the_cap_unread_aborts_with_a_clear_reason() {
    let mut t = FakeTransport::with_settings(Ticker { reply: 40 * 1024 }, small_output_settings());
    t.set_socket_capacity(Some(0));
    t.receive(b"a");
    t.advance(Duration::from_millis(30));
    assert!(t.is_open(), "40 KiB unread is under the 64 KiB cap");
    let mut t = FakeTransport::with_settings(Ticker { reply: 70 * 1024 }, small_output_settings());
    t.set_socket_capacity(Some(0));
    t.receive(b"a");
    assert!(t.is_open(), "the reply itself is accepted");
    // The peer reads nothing: the next write finds 70 KiB unread.
    t.advance(Duration::from_millis(10));
    assert_eq!(t.close_reason(), Some(CloseReason::OutputOverflow));
    assert!(t.aborted());
}

/// Wants a line within 5 s of connecting.
struct WantsALine;
impl Protocol for WantsALine {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.set_read_timeout(Some(Duration::from_secs(5)));
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if data.contains(&b'\n') {
            conn.set_read_timeout(None);
            conn.write(b"ok\n");
        }
    }
}

#[test]
fn a_trickling_peer_is_closed_at_the_read_deadline_despite_activity() {
    let mut t = FakeTransport::with_settings(
        WantsALine,
        Settings {
            idle_timeout: Some(Duration::from_secs(2)),
            ..Settings::default()
        },
    );
    for _ in 0..4 {
        t.advance(Duration::from_secs(1));
        t.receive(b"x"); // resets the idle timer every second
    }
    assert!(t.is_open());
    t.advance(Duration::from_secs(1));
    assert_eq!(t.close_reason(), Some(CloseReason::ReadTimeout));
    assert!(t.fin_sent() && !t.aborted());
    // A peer that completes its request in time is not closed.
    let mut t = FakeTransport::new(WantsALine);
    t.advance(Duration::from_secs(4));
    t.receive(b"line\n");
    t.advance(Duration::from_secs(60));
    assert!(t.is_open());
    assert_eq!(t.written(), b"ok\n");
}

#[test]
fn concurrent_settings_updates_are_not_lost() {
    let (h, _) = echo_server(1);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    h.update_settings(|s| s.max_bus_messages_per_iteration += 1)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let base = Settings::default().max_bus_messages_per_iteration;
    assert_eq!(h.settings().max_bus_messages_per_iteration, base + 1000);
    h.shutdown();
}

#[test]
fn a_dead_shard_stops_the_server_and_run_reports_it() {
    init_tracing();
    let server = builder(2)
        .listen("127.0.0.1:0", |shard| {
            if shard == 1 {
                panic!("factory maker fails on shard 1");
            }
            |_| Echo
        })
        .stop_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    match server.run() {
        Err(Error::ShardDied { shard, message }) => {
            assert_eq!(shard, 1);
            assert!(message.contains("factory maker fails"), "{message}");
        }
        other => panic!("expected ShardDied, got {other:?}"),
    }
}

#[test]
fn with_keep_running_the_acceptor_routes_around_a_dead_shard() {
    init_tracing();
    let h = builder(2)
        .keep_running_on_shard_death(true)
        .listen("127.0.0.1:0", |shard| {
            if shard == 1 {
                panic!("factory maker fails on shard 1");
            }
            |_| Echo
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    wait_for("the death is reported", || !h.shard_deaths().is_empty());
    assert_eq!(h.stats().dead_shards, vec![1]);
    for _ in 0..6 {
        let mut s = connect(h.tcp_addr(0));
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
    }
    h.shutdown();
}

/// On connect, opens `n` outbound connections to `to` that close at once.
struct OutboundChurn {
    to: std::net::SocketAddr,
    n: usize,
}
impl Protocol for OutboundChurn {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        for _ in 0..self.n {
            conn.shard().connect(self.to, Closer);
        }
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}
struct Closer;
impl Protocol for Closer {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.close();
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn least_connections_ignores_outbound_closes() {
    init_tracing();
    let (backend, backend_addr) = echo_server(1);
    let h = builder(2)
        .balancing(LeastConnections)
        .listen("127.0.0.1:0", move |_| {
            move |_| OutboundChurn {
                to: backend_addr,
                n: 10,
            }
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    // The first client lands on shard 0, which then opens and closes 10
    // outbound connections: it still holds one accepted connection.
    let _first = connect(h.tcp_addr(0));
    wait_for("outbound churn done", || {
        h.stats().shards[0].outbound_closed == 10
    });
    let rest: Vec<TcpStream> = (0..3).map(|_| connect(h.tcp_addr(0))).collect();
    let inbound = |s: &shardloop::ServerStats, i: usize| {
        s.shards[i].connections_accepted - s.shards[i].outbound_connected
    };
    wait_for("all accepted", || {
        let s = h.stats();
        inbound(&s, 0) + inbound(&s, 1) == 4
    });
    let s = h.stats();
    // 1 + 1 on shard 0, 2 on shard 1 (not 4 on shard 0 as if it were empty).
    assert_eq!((inbound(&s, 0), inbound(&s, 1)), (2, 2));
    drop(rest);
    h.shutdown();
    backend.shutdown();
}

/// A framed client whose connect fails must hear about it.
struct FramedClient {
    failed: Arc<AtomicBool>,
}
impl shardloop::framing::FrameProtocol<shardloop::framing::LineDecoder> for FramedClient {
    type Message = ();
    fn frame_received(
        &mut self,
        _: &mut shardloop::framing::FramedConn<'_, '_, shardloop::framing::LineDecoder, Self>,
        _: &[u8],
    ) {
    }
    fn connect_failed(&mut self, _: &mut shardloop::ShardCtx, _: &std::io::Error) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_framed_client_learns_that_its_connect_failed() {
    let (h, _) = echo_server(1);
    // A port nobody listens on: bind, learn it, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failed = Arc::new(AtomicBool::new(false));
    let f = failed.clone();
    h.post_to(0, move |ctx| {
        let client = shardloop::framing::LineReceiver::new(
            shardloop::framing::LineDecoder::default(),
            FramedClient { failed: f },
        );
        ctx.connect(dead, client);
    })
    .unwrap();
    wait_for("connect_failed reached the framed protocol", || {
        failed.load(Ordering::Relaxed)
    });
    h.shutdown();
}

/// Holds the connection once per line received; a message ends one hold.
#[derive(Default)]
struct Forwarder {
    lines: Vec<Vec<u8>>,
}
impl Protocol for Forwarder {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.set_max_in_flight(Some(2));
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        for line in data.split_inclusive(|&b| b == b'\n') {
            self.lines.push(line.to_vec());
            conn.hold();
        }
    }
    fn message(&mut self, conn: &mut Conn<'_, Self>, _: ()) {
        conn.unhold();
    }
}

#[test]
fn reading_waits_while_the_declared_work_in_flight_is_at_its_limit() {
    let mut t = FakeTransport::new(Forwarder::default());
    for k in 0..5 {
        t.receive(format!("request {k}\n").as_bytes());
    }
    // Two in flight: the other three wait in the socket, unread.
    assert_eq!(t.protocol().unwrap().lines.len(), 2);
    t.message(());
    assert_eq!(
        t.protocol().unwrap().lines.len(),
        3,
        "one answer, one more read"
    );
    t.message(());
    t.message(());
    t.message(());
    assert_eq!(t.protocol().unwrap().lines.len(), 5, "nothing lost");
    assert!(t.is_open());
}
