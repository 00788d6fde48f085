//! The shard-local executor: connection tasks, timers, cancellation on
//! close, panics, cross-shard calls, cross-thread wake-ups, deferred work.

use crate::common::*;
use shardloop::task::{join_all, promise, sleep, timeout, Elapsed, PromiseError};
use shardloop::testing::FakeTransport;
use shardloop::{CloseReason, Conn, DeferError, Protocol};
use std::cell::Cell;
use std::future::Future;
use std::io::{Read, Write};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Sets its flag when dropped: shows a task's future was dropped.
struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// On connect: a task that waits 1 s, then writes how many bytes arrived.
struct Waiter {
    received: usize,
    dropped: Rc<Cell<bool>>,
}
impl Protocol for Waiter {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let flag = DropFlag(self.dropped.clone());
        conn.spawn(move |task| async move {
            let _flag = flag;
            sleep(Duration::from_secs(1)).await;
            let n = task.with(|p, _| p.received).await;
            task.write(format!("{n}\n").as_bytes());
        });
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, data: &[u8]) {
        self.received += data.len();
    }
}

fn waiter() -> (FakeTransport<Waiter>, Rc<Cell<bool>>) {
    let dropped = Rc::new(Cell::new(false));
    let p = Waiter {
        received: 0,
        dropped: dropped.clone(),
    };
    (FakeTransport::new(p), dropped)
}

#[test]
fn a_connection_task_sleeps_on_the_shard_clock_and_reads_protocol_state() {
    let (mut t, dropped) = waiter();
    t.receive(b"abc");
    t.advance(Duration::from_millis(999));
    assert!(t.written().is_empty());
    t.receive(b"de");
    t.advance(Duration::from_millis(1));
    assert_eq!(t.written(), b"5\n");
    assert!(dropped.get(), "a finished task is dropped");
}

#[test]
fn closing_the_connection_drops_its_task() {
    let (mut t, dropped) = waiter();
    t.peer_close();
    assert_eq!(t.close_reason(), Some(CloseReason::PeerClosed));
    assert!(dropped.get(), "the task died with its connection");
    t.advance(Duration::from_secs(5));
    assert!(t.written().is_empty(), "and never ran again");
    assert_eq!(t.shard().task_count(), 0);
}

/// Answers "timeout" or "done" depending on whether a 1 s job beats the limit.
struct Limited {
    limit: Duration,
}
impl Protocol for Limited {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let limit = self.limit;
        conn.spawn(move |task| async move {
            match timeout(limit, sleep(Duration::from_secs(1))).await {
                Ok(()) => task.write(b"done"),
                Err(Elapsed) => task.write(b"timeout"),
            }
        });
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn timeout_gives_up_at_its_limit() {
    let mut t = FakeTransport::new(Limited {
        limit: Duration::from_millis(100),
    });
    t.advance(Duration::from_millis(100));
    assert_eq!(t.written(), b"timeout");
    let mut t = FakeTransport::new(Limited {
        limit: Duration::from_secs(2),
    });
    t.advance(Duration::from_secs(1));
    assert_eq!(t.written(), b"done");
}

struct Panicky;
impl Protocol for Panicky {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.spawn(|_| async {
            sleep(Duration::from_millis(10)).await;
            panic!("task failure");
        });
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn a_panic_in_a_connection_task_aborts_only_that_connection() {
    let mut t = FakeTransport::new(Panicky);
    t.advance(Duration::from_millis(10));
    assert_eq!(t.close_reason(), Some(CloseReason::CallbackPanic));
    assert!(t.aborted());
}

/// On each read, asks every shard its index and answers with the sum.
struct AskAll;
impl Protocol for AskAll {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, _: &[u8]) {
        let answers = conn.shard().call_on_all(|ctx| ctx.index());
        conn.spawn(move |task| async move {
            let all = join_all(answers).await;
            let sum: usize = all.into_iter().map(|r| r.unwrap()).sum();
            task.write(format!("{sum}\n").as_bytes());
        });
    }
}

#[test]
fn call_on_all_gathers_every_shards_answer() {
    let (h, addr) = started(builder(4).listen("127.0.0.1:0", |_| |_| AskAll));
    let mut s = connect(addr);
    for _ in 0..3 {
        s.write_all(b"?").unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"6\n", "0 + 1 + 2 + 3");
    }
    h.shutdown();
}

/// On a read, a plain thread resolves a promise 20 ms later; the task
/// awaiting it writes the value (a wake-up from another thread).
struct FromThread;
impl Protocol for FromThread {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let (p, r) = promise::<Vec<u8>>();
        let echo = data.to_vec();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            r.resolve(echo);
        });
        conn.spawn(move |task| async move {
            shardloop::task::yield_now().await; // a same-shard wake-up first
            task.write(&p.await.unwrap());
        });
    }
}

#[test]
fn a_task_is_woken_from_another_thread() {
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", |_| |_| FromThread));
    let mut s = connect(addr);
    s.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    h.shutdown();
}

/// Defers work to the pool: a result, and a panic as an error.
struct Deferring;
impl Protocol for Deferring {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let fail = data.starts_with(b"boom");
        let result = conn.shard().defer(move || {
            if fail {
                panic!("worker failure");
            }
            6 * 7
        });
        conn.spawn(move |task| async move {
            let text = match result.await {
                Ok(Ok(v)) => format!("{v}\n"),
                Ok(Err(DeferError::Panicked(m))) => format!("panicked: {m}\n"),
                other => format!("{other:?}\n"),
            };
            task.write(text.as_bytes());
        });
    }
}

#[test]
fn defer_returns_results_and_panics_through_a_promise() {
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", |_| |_| Deferring));
    let mut s = connect(addr);
    s.write_all(b"x").unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert_eq!(line, "42\n");
    s.write_all(b"boom").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert_eq!(line, "panicked: worker failure\n");
    h.shutdown();
}

/// Polls `f` on this thread until it is ready (a test's tiny executor).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let limit = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(std::time::Instant::now() < limit, "promise never resolved");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn call_on_a_stopped_or_missing_shard_fails_instead_of_hanging() {
    let (h, _) = echo_server(2);
    assert_eq!(block_on(h.call_on(1, |ctx| ctx.index())), Ok(1));
    assert_eq!(
        block_on(h.call_on(7, |ctx| ctx.index())),
        Err(PromiseError::Dropped)
    );
    assert_eq!(
        block_on(h.call_on(0, |_| -> u8 { panic!("in the closure") })),
        Err(PromiseError::Dropped)
    );
    h.shutdown();
    assert_eq!(
        block_on(h.call_on(0, |ctx| ctx.index())),
        Err(PromiseError::Dropped)
    );
}

#[test]
fn a_task_that_never_stops_yielding_does_not_starve_io() {
    let (h, addr) = echo_server(1);
    h.post_to(0, |ctx| {
        ctx.spawn_local(async {
            loop {
                shardloop::task::yield_now().await;
            }
        });
    })
    .unwrap();
    let mut s = connect(addr);
    for _ in 0..50 {
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
    }
    let polls = h.stats().total().task_polls;
    assert!(polls > 50, "the spinning task kept running ({polls} polls)");
    h.shutdown();
}

#[test]
fn a_panicking_shard_task_is_counted_and_the_shard_lives_on() {
    let (h, addr) = echo_server(1);
    h.post_to(0, |ctx| {
        ctx.spawn_local(async {
            sleep(Duration::from_millis(5)).await;
            panic!("shard task failure");
        });
    })
    .unwrap();
    wait_for("the panic is counted", || {
        h.stats().total().callback_panics == 1
    });
    let mut s = connect(addr);
    s.write_all(b"alive?").unwrap();
    let mut b = [0u8; 6];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"alive?");
    h.shutdown();
}

/// Typed request/reply to a connection on any shard: the message carries a
/// resolver, the sender awaits the promise.
struct Counter {
    seen: u64,
}
impl Protocol for Counter {
    type Message = shardloop::task::Resolver<u64>;
    fn data_received(&mut self, _: &mut Conn<'_, Self>, data: &[u8]) {
        self.seen += data.len() as u64;
    }
    fn message(&mut self, _: &mut Conn<'_, Self>, reply: shardloop::task::Resolver<u64>) {
        reply.resolve(self.seen);
    }
}

#[test]
fn request_reply_to_a_connection_and_to_a_gone_one() {
    let (h, addr) = started(builder(2).listen("127.0.0.1:0", |_| |_| Counter { seen: 0 }));
    let mut s = connect(addr);
    s.write_all(b"12345").unwrap();
    wait_for("bytes counted", || h.stats().total().bytes_in == 5);
    // The only connection: slot 0, generation 0 on the shard that took it.
    let stats = h.stats();
    let shard = (0..2)
        .find(|&i| stats.shards[i].connections_open == 1)
        .unwrap();
    let id = shardloop::ConnId::new(shard as u16, 0, 0);
    let (p, r) = promise::<u64>();
    h.send(id, r).unwrap();
    assert_eq!(block_on(p), Ok(5));
    // A gone connection: the message is dropped with its resolver.
    let (p, r) = promise::<u64>();
    h.send(shardloop::ConnId::new(shard as u16, 0, 99), r)
        .unwrap();
    assert_eq!(block_on(p), Err(PromiseError::Dropped));
    h.shutdown();
}

#[test]
fn a_timed_out_call_on_leaks_nothing() {
    struct Asker;
    impl Protocol for Asker {
        type Message = ();
        fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
            let slow = conn.shard().call_on(1, |_| {
                std::thread::sleep(Duration::from_millis(200));
                1u8
            });
            conn.spawn(move |task| async move {
                match timeout(Duration::from_millis(20), slow).await {
                    Ok(_) => task.write(b"answer\n"),
                    Err(Elapsed) => task.write(b"gave up\n"),
                }
            });
        }
        fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    }
    let (h, addr) = started(
        builder(2)
            .balancing(PinToShard0)
            .listen("127.0.0.1:0", |_| |_| Asker),
    );
    let mut s = connect(addr);
    let mut b = [0u8; 8];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"gave up\n");
    // The late answer finds its promise gone; no task is left behind.
    std::thread::sleep(Duration::from_millis(300));
    let left = block_on(h.call_on(0, |ctx| ctx.task_count())).unwrap();
    assert_eq!(left, 0);
    h.shutdown();
}

struct PinToShard0;
impl shardloop::BalancingPolicy for PinToShard0 {
    fn pick(&mut self, _: &[shardloop::ShardLoad]) -> usize {
        0
    }
}
