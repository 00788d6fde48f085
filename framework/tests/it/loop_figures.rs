//! What the loop reports about itself, each figure against an independent
//! measurement: loop lag against timers' own clocks, slow-callback counts
//! by kind against callbacks that time themselves, stalls across phases,
//! events per wake against round trips counted by the client, task polls
//! against a future counting its own polls. Wide bounds, no thresholds a
//! busy machine can cross by accident.

use crate::busy_time::udp_echo_server;
use crate::common::*;
use shardloop::{Conn, LoopPhase, Protocol, Settings, ShardCtx, ShardStats};
use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

fn stats(h: &shardloop::Handle) -> ShardStats {
    // The counters publish at the end of each iteration: let one pass.
    std::thread::sleep(Duration::from_millis(30));
    h.stats().shards[0].clone()
}

fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// A timer every 5 ms, `left` more times, each noting how late it ran by
/// its own clock.
fn chain(ctx: &mut ShardCtx, left: usize, late: Arc<Mutex<Vec<Duration>>>) {
    let due = Instant::now() + Duration::from_millis(5);
    ctx.call_later(Duration::from_millis(5), move |ctx| {
        late.lock()
            .unwrap()
            .push(Instant::now().saturating_duration_since(due));
        if left > 1 {
            chain(ctx, left - 1, late);
        }
    });
}

#[test]
fn loop_lag_counts_timers_that_a_busy_loop_fires_late() {
    // A task that is always ready keeps the loop from ever sleeping on a
    // timer: the lag is measured when timers fire, not when the poll wakes.
    let (h, _) = echo_server(1);
    let stop = Arc::new(AtomicBool::new(false));
    let late = Arc::new(Mutex::new(Vec::new()));
    let before = stats(&h);
    const N: usize = 30;
    let (s2, l2) = (stop.clone(), late.clone());
    h.post_to(0, move |ctx| {
        ctx.spawn_local(async move {
            while !s2.load(Ordering::Relaxed) {
                spin(Duration::from_millis(8));
                shardloop::task::yield_now().await;
            }
        });
        chain(ctx, N, l2);
    })
    .unwrap();
    wait_for("the timers", || late.lock().unwrap().len() == N);
    stop.store(true, Ordering::Relaxed);
    let after = stats(&h);
    let measured: Duration = late.lock().unwrap().iter().sum();
    let count = after.loop_lag_count - before.loop_lag_count;
    let sum = Duration::from_nanos(after.loop_lag_sum_ns - before.loop_lag_sum_ns);
    let msg = format!("{count} batches, lag {sum:?}; the timers measured {measured:?}");
    println!("{msg}");
    assert!(count >= N as u64, "every firing is measured: {msg}");
    // A task that yields runs again in the next iteration, after I/O and
    // timers: at most one poll of it per iteration.
    let polls = after.task_polls - before.task_polls;
    let iterations = after.loop_iterations - before.loop_iterations;
    assert!(
        polls <= iterations + 2,
        "{polls} polls in {iterations} iterations"
    );
    assert!(
        measured >= Duration::from_millis(40),
        "the loop was busy: {msg}"
    );
    // The loop measures from the tick (at or after the timer's own due
    // time) to the timer phase (at or before the callback): never more
    // than the timers saw, and less by at most a tick each.
    let n = N as u32;
    assert!(sum <= measured + n * Duration::from_micros(500), "{msg}");
    assert!(sum + n * Duration::from_micros(1500) >= measured, "{msg}");
    h.shutdown();
}

const THRESHOLD: Duration = Duration::from_millis(150);
const SLOW: Duration = Duration::from_millis(400);

type Log = Arc<Mutex<Vec<(u8, Duration)>>>;

/// Sleeps as long as `job` says (uppercase: `slow`, lowercase: 1 ms) and
/// notes how long it took by its own clock.
fn timed(log: &Log, job: u8, slow: Duration) {
    let d = if job.is_ascii_uppercase() {
        slow
    } else {
        Duration::from_millis(1)
    };
    let t = Instant::now();
    std::thread::sleep(d);
    log.lock().unwrap().push((job, t.elapsed()));
}

/// One byte, one job, run in the phase its letter names: `r` in the read
/// callback, `t` in a timer, `a` in a task, `f` when the output flushed;
/// `s` answers from a timer of its connection, then runs twice in a shard
/// timer of the same tick. Every job answers "k".
struct Jobs {
    log: Log,
    slow: Duration,
    flush_job: Option<u8>,
}

impl Protocol for Jobs {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let slow = self.slow;
        for &job in data {
            let log = self.log.clone();
            match job.to_ascii_lowercase() {
                b'r' => {
                    timed(&log, job, slow);
                    conn.write(b"k");
                }
                b't' => {
                    conn.call_later(Duration::from_millis(1), move |_, c| {
                        timed(&log, job, slow);
                        c.write(b"k");
                    });
                }
                b'a' => conn.spawn(move |task| async move {
                    timed(&log, job, slow);
                    task.write(b"k");
                }),
                b's' => {
                    conn.call_later(Duration::from_millis(1), |_, c| c.write(b"k"));
                    conn.shard().call_later(Duration::from_millis(1), move |_| {
                        timed(&log, job, slow);
                        timed(&log, job, slow);
                    });
                }
                b'f' => {
                    self.flush_job = Some(job);
                    conn.write(b"k");
                    conn.notify_flushed();
                }
                _ => {}
            }
        }
    }
    fn output_flushed(&mut self, _: &mut Conn<'_, Self>) {
        if let Some(job) = self.flush_job.take() {
            timed(&self.log, job, self.slow);
        }
    }
}

fn jobs_server(
    settings: Settings,
    slow: Duration,
) -> (shardloop::Handle, std::net::SocketAddr, Log) {
    let log: Log = Arc::default();
    let l2 = log.clone();
    let (h, addr) = started(
        builder(1)
            .settings(settings)
            .listen("127.0.0.1:0", move |_| {
                let log = l2.clone();
                move |_| Jobs {
                    log: log.clone(),
                    slow,
                    flush_job: None,
                }
            }),
    );
    (h, addr, log)
}

#[test]
fn slow_callbacks_are_counted_by_kind_and_fast_ones_are_not() {
    let (h, addr, log) = jobs_server(
        Settings {
            slow_callback_threshold: THRESHOLD,
            stall_threshold: Duration::from_secs(30),
            ..Settings::default()
        },
        SLOW,
    );
    let mut s = connect(addr);
    let before = stats(&h);
    let mut k = [0u8; 1];
    for job in *b"rRtTaAfF" {
        s.write_all(&[job]).unwrap();
        s.read_exact(&mut k).unwrap();
        // The flush job runs after its "k" left: let it finish.
        wait_for("the job", || {
            log.lock().unwrap().iter().any(|(j, _)| *j == job)
        });
    }
    // Bus messages: closures sent from this thread.
    for slow in [false, true] {
        let (tx, rx) = mpsc::channel();
        let l = log.clone();
        h.post_to(0, move |_| {
            timed(&l, if slow { b'M' } else { b'm' }, SLOW);
            let _ = tx.send(());
        })
        .unwrap();
        rx.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    let after = stats(&h);
    let log = log.lock().unwrap().clone();
    println!("jobs by their own clocks: {log:?}");
    // The independent figure: how many jobs of each kind timed themselves
    // past the threshold (the slow ones, and only those).
    let over = |kind: u8| {
        log.iter()
            .filter(|(j, d)| j.to_ascii_lowercase() == kind && *d > THRESHOLD)
            .count() as u64
    };
    for (kind, counted) in [
        (b'r', after.slow_callbacks - before.slow_callbacks),
        (b't', after.slow_timers - before.slow_timers),
        (b'a', after.slow_tasks - before.slow_tasks),
        (b'f', after.slow_flushes - before.slow_flushes),
        (b'm', after.slow_messages - before.slow_messages),
    ] {
        assert_eq!(over(kind), 1, "one slow {} job: {log:?}", kind as char);
        assert_eq!(
            counted,
            over(kind),
            "slow {} phases counted: {before:?} → {after:?}",
            kind as char
        );
    }
    h.shutdown();
}

#[test]
fn a_stall_spread_over_two_phases_is_seen_and_names_the_running_connection() {
    // The read callback takes 300 ms and the task it starts 300 ms more:
    // neither phase alone passes the 400 ms threshold, the loop does.
    let (h, addr, log) = jobs_server(
        Settings {
            stall_threshold: Duration::from_millis(400),
            ..Settings::default()
        },
        Duration::from_millis(300),
    );
    let mut s = connect(addr);
    let mut k = [0u8; 2];
    s.write_all(b"RA").unwrap();
    s.read_exact(&mut k).unwrap();
    let reports = h.stalls();
    let times = log.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "one stall: {reports:?} ({times:?})");
    let r = &reports[0];
    assert_eq!(r.phase, LoopPhase::Tasks, "{r:?}");
    assert!(
        r.conn.as_deref().is_some_and(|c| c.starts_with("0:")),
        "the task's connection: {r:?}"
    );
    assert!(r.stuck_for >= Duration::from_millis(400), "{r:?}");

    // A shard timer blocks right after a timer of the connection ran:
    // the report names no connection (the one that ran has returned).
    s.write_all(b"S").unwrap();
    s.read_exact(&mut k[..1]).unwrap();
    let reports = h.stalls();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let r = &reports[1];
    assert_eq!(r.phase, LoopPhase::Timers, "{r:?}");
    assert_eq!(r.conn, None, "{r:?}");
    h.shutdown();
}

/// Round trips of one byte on one TCP connection, then on one UDP socket:
/// each wake serves one event, so events and wake-ups both equal the
/// round trips the client counted (a little more: accepts, the close).
#[test]
fn events_per_wake_match_the_round_trips_a_client_counts() {
    const N: u64 = 2000;
    let check = |what: &str, before: &ShardStats, after: &ShardStats| {
        let events = after.events - before.events;
        let wakeups = after.wakeups - before.wakeups;
        let msg = format!("{what}: {events} events in {wakeups} wake-ups for {N} round trips");
        println!("{msg}");
        assert!((N..=N + N / 5 + 10).contains(&events), "{msg}");
        assert!(wakeups >= N - N / 10 && wakeups <= events, "{msg}");
    };
    let (h, addr) = echo_server(1);
    let before = stats(&h);
    let mut s = connect(addr);
    let mut b = [0u8; 1];
    for _ in 0..N {
        s.write_all(b"x").unwrap();
        s.read_exact(&mut b).unwrap();
    }
    check("TCP ping-pong", &before, &stats(&h));
    h.shutdown();

    let h = udp_echo_server();
    let before = stats(&h);
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..N {
        c.send_to(b"x", h.udp_addr(0)).unwrap();
        c.recv_from(&mut b).unwrap();
    }
    check("UDP ping-pong", &before, &stats(&h));
    h.shutdown();
}

/// Counts the polls of the future it wraps.
struct CountPolls<F>(Pin<Box<F>>, Arc<AtomicU64>);
impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.as_mut().poll(cx)
    }
}

/// A task counting its own polls (woken by its timers and by itself):
/// the shard's task-poll counter agrees exactly.
#[test]
fn task_polls_match_the_polls_a_task_counts() {
    let (h, _) = echo_server(1);
    let before = stats(&h);
    let polls = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (p2, d2) = (polls.clone(), done.clone());
    h.post_to(0, move |ctx| {
        ctx.spawn_local(CountPolls(
            Box::pin(async move {
                for i in 0..50u32 {
                    if i % 2 == 0 {
                        shardloop::task::sleep(Duration::from_millis(1)).await;
                    } else {
                        shardloop::task::yield_now().await;
                    }
                }
                d2.store(true, Ordering::Relaxed);
            }),
            p2,
        ));
    })
    .unwrap();
    wait_for("the task", || done.load(Ordering::Relaxed));
    let after = stats(&h);
    let counted = polls.load(Ordering::Relaxed);
    assert!(counted >= 51, "{counted}");
    assert_eq!(
        after.task_polls - before.task_polls,
        counted,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.tasks_spawned - before.tasks_spawned, 1);
    h.shutdown();
}
