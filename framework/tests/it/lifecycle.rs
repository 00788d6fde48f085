//! Connection lifecycle on real sockets: panics, stale ids, graceful close
//! of large output, write backpressure.

use crate::common::*;
use shardloop::{CloseReason, Conn, ConnId, Protocol, Settings};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Echoes, but panics on "boom".
struct Fragile;
impl Protocol for Fragile {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if data.starts_with(b"boom") {
            panic!("deliberate test panic");
        }
        conn.write(data);
    }
}

#[test]
fn panic_in_data_received_loses_only_that_connection() {
    init_tracing();
    let h = builder(1)
        .listen("127.0.0.1:0", |_| |_| Fragile)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.tcp_addr(0);
    let mut ok1 = connect(addr);
    let mut bad = connect(addr);
    let mut ok2 = connect(addr);
    for s in [&mut ok1, &mut ok2] {
        s.write_all(b"hi").unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
    }
    bad.write_all(b"boom").unwrap();
    let (rest, _) = read_to_end_lossy(&mut bad);
    assert!(rest.is_empty(), "the panicking connection is closed");
    wait_for("panic counted", || h.stats().total().callback_panics == 1);
    for s in [&mut ok1, &mut ok2] {
        s.write_all(b"still here").unwrap();
        let mut b = [0u8; 10];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"still here");
    }
    let mut late = connect(addr);
    late.write_all(b"new").unwrap();
    let mut b = [0u8; 3];
    late.read_exact(&mut b).unwrap();
    // Counters are published after the flush: the reply can come first.
    wait_for("3 open", || h.stats().total().connections_open == 3);
    h.shutdown();
}

/// Records its id; writes every message it receives.
struct Mailbox {
    ids: Arc<Mutex<Vec<ConnId>>>,
}
impl Protocol for Mailbox {
    type Message = Vec<u8>;
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        self.ids.lock().unwrap().push(conn.id());
        conn.write(b"+");
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {}
    fn message(&mut self, conn: &mut Conn<'_, Self>, msg: Vec<u8>) {
        conn.write(&msg);
    }
}

#[test]
fn message_to_stale_conn_id_is_dropped_not_delivered_to_slot_reuser() {
    init_tracing();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let ids2 = ids.clone();
    let h = builder(1)
        .listen("127.0.0.1:0", move |_| {
            let ids = ids2.clone();
            move |_| Mailbox { ids: ids.clone() }
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.tcp_addr(0);
    let mut a = connect(addr);
    a.read_exact(&mut [0u8; 1]).unwrap();
    let id_a = ids.lock().unwrap()[0];
    h.send(id_a, b"to-a".to_vec()).unwrap();
    let mut got = [0u8; 4];
    a.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to-a");
    drop(a);
    wait_for("a closed", || h.stats().total().connections_open == 0);

    let mut b = connect(addr);
    b.read_exact(&mut [0u8; 1]).unwrap();
    let id_b = ids.lock().unwrap()[1];
    assert_eq!(id_b.slot(), id_a.slot(), "slot reused");
    assert_ne!(id_b, id_a);
    // Stale first, then fresh: if the stale one were delivered, b would read it first.
    h.send(id_a, b"STALE".to_vec()).unwrap();
    h.send(id_b, b"fresh".to_vec()).unwrap();
    let mut got = [0u8; 5];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"fresh");
    wait_for("drop counted", || h.stats().total().messages_dropped == 1);
    // A message of the wrong type is dropped and counted as well.
    h.send(id_b, 42u32).unwrap();
    wait_for("wrong type counted", || {
        h.stats().total().messages_dropped == 2
    });
    h.shutdown();
}

const BIG: usize = 16 * 1024 * 1024;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Writes 16 MiB on connect, then closes at once.
struct Firehose {
    lost: Arc<Mutex<Option<CloseReason>>>,
}
impl Protocol for Firehose {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let data: Vec<u8> = (0..BIG).map(pattern).collect();
        for chunk in data.chunks(1 << 20) {
            conn.write(chunk);
        }
        conn.close();
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {}
    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        *self.lost.lock().unwrap() = Some(reason.clone());
    }
}

#[test]
fn close_after_16_mib_to_slow_reader_delivers_everything_before_fin() {
    init_tracing();
    let lost = Arc::new(Mutex::new(None));
    let lost2 = lost.clone();
    // It writes 16 MiB in one callback: raise the output cap to fit.
    let h = builder(1)
        .settings(Settings {
            max_output_buffer: 2 * BIG,
            ..Settings::default()
        })
        .listen("127.0.0.1:0", move |_| {
            let lost = lost2.clone();
            move |_| Firehose { lost: lost.clone() }
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut s = connect(h.tcp_addr(0));
    let mut got = Vec::with_capacity(BIG);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // A slow reader: the server's socket buffer fills again and again.
        std::thread::sleep(Duration::from_micros(300));
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), BIG, "every byte before FIN");
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "bytes in order"
    );
    wait_for("connection_lost", || lost.lock().unwrap().is_some());
    assert_eq!(lost.lock().unwrap().clone(), Some(CloseReason::Done));
    h.shutdown();
}

/// Produces 256 KiB every millisecond unless paused; records the peak backlog.
struct Producer {
    paused: bool,
    produced: usize,
    peak: Arc<AtomicUsize>,
    saw_pause: Arc<AtomicBool>,
    saw_resume: Arc<AtomicBool>,
}
const LIMIT: usize = 48 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;
impl Protocol for Producer {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.call_every(Duration::from_millis(1), |p: &mut Producer, conn| {
            p.peak.fetch_max(conn.buffered(), Ordering::Relaxed);
            if p.paused {
                return;
            }
            if p.produced >= LIMIT {
                conn.close();
                return;
            }
            conn.write(&vec![7u8; CHUNK]);
            p.produced += CHUNK;
        });
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {}
    fn pause_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        self.paused = true;
        self.saw_pause.store(true, Ordering::Relaxed);
    }
    fn resume_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        self.paused = false;
        self.saw_resume.store(true, Ordering::Relaxed);
    }
}

#[test]
fn peer_that_never_reads_drives_pause_producing_and_memory_stays_bounded() {
    init_tracing();
    let peak = Arc::new(AtomicUsize::new(0));
    let saw_pause = Arc::new(AtomicBool::new(false));
    let saw_resume = Arc::new(AtomicBool::new(false));
    let (p2, sp2, sr2) = (peak.clone(), saw_pause.clone(), saw_resume.clone());
    let high = 1024 * 1024;
    let h = builder(1)
        .settings(shardloop::Settings {
            low_water_mark: 256 * 1024,
            high_water_mark: high,
            ..shardloop::Settings::default()
        })
        .listen("127.0.0.1:0", move |_| {
            let (peak, saw_pause, saw_resume) = (p2.clone(), sp2.clone(), sr2.clone());
            move |_| Producer {
                paused: false,
                produced: 0,
                peak: peak.clone(),
                saw_pause: saw_pause.clone(),
                saw_resume: saw_resume.clone(),
            }
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut s = connect(h.tcp_addr(0));
    wait_for("pause_producing", || saw_pause.load(Ordering::Relaxed));
    // Let the producer's timer run a good while longer against a full socket.
    std::thread::sleep(Duration::from_millis(300));
    let peak_while_stuck = peak.load(Ordering::Relaxed);
    assert!(
        peak_while_stuck <= high + CHUNK,
        "output backlog {peak_while_stuck} exceeded high water + one chunk"
    );
    assert!(!saw_resume.load(Ordering::Relaxed));
    assert_eq!(h.stats().total().producer_pauses, 1);
    // Now read everything: production resumes and completes.
    let (all, err) = read_to_end_lossy(&mut s);
    assert_eq!(err, None);
    assert_eq!(all.len(), LIMIT);
    assert!(saw_resume.load(Ordering::Relaxed));
    assert!(peak.load(Ordering::Relaxed) <= high + CHUNK);
    h.shutdown();
}
