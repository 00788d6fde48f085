//! Timers on real connections: call_later, cancellation, repeating timers,
//! idle timeouts.

use crate::common::*;
use shardloop::{CloseReason, Conn, Protocol};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// On connect: a repeating timer writes "R" on its third tick and cancels
/// itself; "A" after 50 ms; a "B" timer is cancelled at once; "E" and close
/// after 200 ms. The client must read exactly "RAE".
struct Scheduled {
    ticks: u32,
}
impl Protocol for Scheduled {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.call_every(Duration::from_millis(10), |p: &mut Scheduled, conn| {
            p.ticks += 1;
            if p.ticks == 3 {
                conn.write(b"R");
            }
        });
        conn.call_later(Duration::from_millis(50), |_p, conn| conn.write(b"A"));
        let b = conn.call_later(Duration::from_millis(60), |_p, conn| conn.write(b"B"));
        assert!(conn.cancel_timer(b));
        assert!(!conn.cancel_timer(b), "second cancel is a no-op");
        conn.call_later(Duration::from_millis(200), |p, conn| {
            assert!(p.ticks >= 15, "repeating timer kept ticking: {}", p.ticks);
            conn.write(b"E");
            conn.close();
        });
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {}
}

#[test]
fn call_later_fires_once_and_cancelled_never() {
    init_tracing();
    let h = builder(1)
        .listen("127.0.0.1:0", |_| |_| Scheduled { ticks: 0 })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut s = connect(h.tcp_addr(0));
    let (got, err) = read_to_end_lossy(&mut s);
    assert_eq!(err, None);
    assert_eq!(String::from_utf8(got).unwrap(), "RAE");
    assert_eq!(h.stats().total().callback_panics, 0);
    h.shutdown();
}

#[test]
fn repeating_timer_cancelled_from_its_own_callback_stops() {
    struct SelfCancel {
        n: u32,
        handle: Option<shardloop::TimerHandle>,
    }
    impl Protocol for SelfCancel {
        type Message = ();
        fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
            self.handle = Some(conn.call_every(
                Duration::from_millis(5),
                |p: &mut SelfCancel, conn| {
                    p.n += 1;
                    conn.write(b"t");
                    if p.n == 4 {
                        let h = p.handle.take().unwrap();
                        assert!(conn.cancel_timer(h));
                    }
                },
            ));
            conn.call_later(Duration::from_millis(150), |_, conn| conn.close());
        }
        fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {}
    }
    init_tracing();
    let h = builder(1)
        .listen("127.0.0.1:0", |_| |_| SelfCancel { n: 0, handle: None })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut s = connect(h.tcp_addr(0));
    let (got, _) = read_to_end_lossy(&mut s);
    assert_eq!(got, b"tttt");
    h.shutdown();
}

#[test]
fn shard_timers_and_submitted_tasks_run_on_the_shard() {
    let (h, _) = echo_server(2);
    let (tx, rx) = std::sync::mpsc::channel();
    for shard in 0..2 {
        let tx = tx.clone();
        h.post_to(shard, move |ctx| {
            let idx = ctx.index();
            let cancelled = ctx.call_later(Duration::from_millis(5), |_| {
                panic!("cancelled timer fired")
            });
            assert!(ctx.cancel_timer(cancelled));
            ctx.call_later(Duration::from_millis(20), move |ctx| {
                tx.send((idx, ctx.index())).unwrap();
            });
        })
        .unwrap();
    }
    let mut got: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec![(0, 0), (1, 1)]);
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    assert_eq!(h.stats().total().callback_panics, 0);
    h.shutdown();
}

struct Recorder {
    lost: Arc<Mutex<Vec<CloseReason>>>,
}
impl Protocol for Recorder {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.lost.lock().unwrap().push(reason.clone());
    }
}

#[test]
fn idle_timeout_closes_idle_connection_not_busy_one() {
    init_tracing();
    let lost = Arc::new(Mutex::new(Vec::new()));
    let l2 = lost.clone();
    let h = builder(1)
        .settings(shardloop::Settings {
            idle_timeout: Some(Duration::from_millis(200)),
            ..shardloop::Settings::default()
        })
        .listen("127.0.0.1:0", move |_| {
            let lost = l2.clone();
            move |_| Recorder { lost: lost.clone() }
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = h.tcp_addr(0);
    let mut idle = connect(addr);
    let mut busy = connect(addr);
    // The busy client talks every 40 ms for well over the timeout.
    let talker = std::thread::spawn(move || {
        for i in 0..25u8 {
            busy.write_all(&[i]).unwrap();
            let mut b = [0u8; 1];
            busy.read_exact(&mut b).unwrap();
            assert_eq!(b[0], i);
            std::thread::sleep(Duration::from_millis(40));
        }
        busy
    });
    let (got, err) = read_to_end_lossy(&mut idle);
    assert!(got.is_empty());
    assert_eq!(err, None, "idle connection closed with FIN");
    let mut busy = talker.join().unwrap();
    // Still open: one more round trip works.
    busy.write_all(b"z").unwrap();
    let mut b = [0u8; 1];
    busy.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"z");
    assert_eq!(lost.lock().unwrap().as_slice(), &[CloseReason::IdleTimeout]);
    assert_eq!(h.stats().total().idle_timeouts, 1);
    h.shutdown();
}

#[test]
fn fine_tick_timers_fire_in_order_and_never_early() {
    init_tracing();
    let h = builder(1)
        .loop_options(tick(Duration::from_micros(50)))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    h.post_to(0, move |ctx| {
        // Deadlines a few hundred microseconds apart, set out of order.
        for (i, us) in [700u64, 300, 500, 100, 900].into_iter().enumerate() {
            let tx = tx.clone();
            let set = std::time::Instant::now();
            ctx.call_later(Duration::from_micros(us), move |_| {
                tx.send((us, i, set.elapsed())).unwrap();
            });
        }
    })
    .unwrap();
    let fired: Vec<_> = (0..5)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    let order: Vec<u64> = fired.iter().map(|f| f.0).collect();
    assert_eq!(order, vec![100, 300, 500, 700, 900]);
    for (us, _, elapsed) in fired {
        assert!(
            elapsed >= Duration::from_micros(us),
            "{us}µs timer fired after {elapsed:?}"
        );
    }
    assert!(builder(1)
        .loop_options(tick(Duration::from_nanos(500)))
        .build()
        .is_err());
    h.shutdown();
}

fn tick(d: Duration) -> shardloop::LoopOptions {
    let mut o = shardloop::LoopOptions::default();
    o.timer_tick = d;
    o
}
