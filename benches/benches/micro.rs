//! Criterion micro-benchmarks: `cargo bench -p shardloop-benches`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use shardloop::framing::{Decoder, LengthPrefixedDecoder, LineDecoder, PrefixWidth};
use shardloop::testing::FakeTransport;
use shardloop::timer_wheel::TimerWheel;
use shardloop::{Conn, Protocol, Server};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Deterministic pseudo-random deadlines within 10 minutes (in ms ticks).
fn deadlines(n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + x % 600_000
        })
        .collect()
}

/// A heap with lazy cancellation: the usual way to cancel in a binary heap.
struct HeapTimers {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    cancelled: HashSet<u64>,
    next: u64,
}

impl HeapTimers {
    fn new() -> Self {
        HeapTimers {
            heap: BinaryHeap::new(),
            cancelled: HashSet::new(),
            next: 0,
        }
    }
    fn insert(&mut self, d: u64) -> u64 {
        let id = self.next;
        self.next += 1;
        self.heap.push(Reverse((d, id)));
        id
    }
    fn cancel(&mut self, id: u64) {
        self.cancelled.insert(id);
    }
    fn advance(&mut self, now: u64, fired: &mut Vec<u64>) {
        while let Some(Reverse((d, id))) = self.heap.peek().copied() {
            if d > now {
                break;
            }
            self.heap.pop();
            if !self.cancelled.remove(&id) {
                fired.push(id);
            }
        }
    }
}

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers");
    for &n in &[1_000usize, 100_000, 1_000_000] {
        let ds = deadlines(n);
        // insert + cancel with n timers pending
        g.bench_function(BenchmarkId::new("wheel/insert_cancel", n), |b| {
            let mut w = TimerWheel::new(0);
            for &d in &ds {
                w.insert(d, ());
            }
            let mut i = 0;
            b.iter(|| {
                let id = w.insert(ds[i % n], ());
                i += 1;
                black_box(w.cancel(id));
            })
        });
        g.bench_function(BenchmarkId::new("heap/insert_cancel", n), |b| {
            let mut h = HeapTimers::new();
            for &d in &ds {
                h.insert(d);
            }
            let mut i = 0;
            b.iter(|| {
                let id = h.insert(ds[i % n]);
                i += 1;
                h.cancel(id);
            });
        });
        // reset: move an existing timer (an idle timeout being pushed back)
        g.bench_function(BenchmarkId::new("wheel/reset", n), |b| {
            let mut w = TimerWheel::new(0);
            let ids: Vec<_> = ds.iter().map(|&d| w.insert(d, ())).collect();
            let mut i = 0;
            b.iter(|| {
                black_box(w.reschedule(ids[i % n], ds[(i * 7 + 3) % n]));
                i += 1;
            })
        });
        g.bench_function(BenchmarkId::new("heap/reset", n), |b| {
            let mut h = HeapTimers::new();
            let mut ids: Vec<u64> = ds.iter().map(|&d| h.insert(d)).collect();
            let mut i = 0;
            b.iter(|| {
                let k = i % n;
                h.cancel(ids[k]);
                ids[k] = h.insert(ds[(i * 7 + 3) % n]);
                i += 1;
            })
        });
        // advance 1 ms at a time through a populated wheel (fresh each batch)
        g.bench_function(BenchmarkId::new("wheel/advance_1ms", n), |b| {
            b.iter_batched_ref(
                || {
                    let mut w = TimerWheel::new(0);
                    for &d in &ds {
                        w.insert(d, ());
                    }
                    (w, 0u64, Vec::new())
                },
                |(w, now, fired)| {
                    for _ in 0..100 {
                        *now += 1;
                        fired.clear();
                        w.advance(*now, fired);
                    }
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(BenchmarkId::new("heap/advance_1ms", n), |b| {
            b.iter_batched_ref(
                || {
                    let mut h = HeapTimers::new();
                    for &d in &ds {
                        h.insert(d);
                    }
                    (h, 0u64, Vec::new())
                },
                |(h, now, fired)| {
                    for _ in 0..100 {
                        *now += 1;
                        fired.clear();
                        h.advance(*now, fired);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// A listener-less server of two unpinned shards, for bus and task benches.
fn two_shards() -> shardloop::Handle {
    Server::builder()
        .shards(2)
        .pinning(shardloop::Pinning::Off)
        .workers(0, 1)
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn bus(c: &mut Criterion) {
    let mut g = c.benchmark_group("bus");
    const N: u64 = 10_000;
    g.throughput(Throughput::Elements(N));
    let h = two_shards();
    // one to one: shard 0 sends N closures to shard 1
    g.bench_function("shardloop/one_to_one", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let done = Arc::new(AtomicU64::new(0));
                let d = done.clone();
                let start = Instant::now();
                h.post_to(0, move |ctx| {
                    for _ in 0..N {
                        let d = d.clone();
                        ctx.post_to(1, move |_| {
                            d.fetch_add(1, Ordering::Relaxed);
                        })
                        .unwrap();
                    }
                })
                .unwrap();
                while done.load(Ordering::Relaxed) < N {
                    std::hint::spin_loop();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("std_mpsc/one_to_one", |b| {
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let worker = std::thread::spawn(move || {
            for f in rx {
                f();
            }
        });
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let done = Arc::new(AtomicU64::new(0));
                let start = Instant::now();
                for _ in 0..N {
                    let d = done.clone();
                    tx.send(Box::new(move || {
                        d.fetch_add(1, Ordering::Relaxed);
                    }))
                    .unwrap();
                }
                while done.load(Ordering::Relaxed) < N {
                    std::hint::spin_loop();
                }
                total += start.elapsed();
            }
            total
        });
        drop(tx);
        worker.join().unwrap();
    });
    // all to all: both shards send N to each other at once
    g.throughput(Throughput::Elements(2 * N));
    g.bench_function("shardloop/all_to_all", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let done = Arc::new(AtomicU64::new(0));
                let start = Instant::now();
                for from in 0..2 {
                    let d = done.clone();
                    h.post_to(from, move |ctx| {
                        for _ in 0..N {
                            let d = d.clone();
                            ctx.post_to(1 - from, move |_| {
                                d.fetch_add(1, Ordering::Relaxed);
                            })
                            .unwrap();
                        }
                    })
                    .unwrap();
                }
                while done.load(Ordering::Relaxed) < 2 * N {
                    std::hint::spin_loop();
                }
                total += start.elapsed();
            }
            total
        })
    });
    // round trip: a thread asks shard 1, which answers over a channel
    g.throughput(Throughput::Elements(1));
    g.bench_function("shardloop/round_trip", |b| {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        b.iter(|| {
            let tx = tx.clone();
            h.post_to(1, move |_| tx.send(()).unwrap()).unwrap();
            rx.recv().unwrap();
        })
    });
    g.bench_function("std_mpsc/round_trip", |b| {
        let (to_tx, to_rx) = mpsc::channel::<()>();
        let (back_tx, back_rx) = mpsc::channel::<()>();
        let echo = std::thread::spawn(move || {
            for () in to_rx {
                back_tx.send(()).unwrap();
            }
        });
        b.iter(|| {
            to_tx.send(()).unwrap();
            back_rx.recv().unwrap();
        });
        drop(to_tx);
        echo.join().unwrap();
    });
    g.finish();
    h.shutdown();
}

fn framing(c: &mut Criterion) {
    let mut g = c.benchmark_group("framing");
    for &(name, frame) in &[("small_16B", 16usize), ("large_64KiB", 64 * 1024)] {
        let count = (1 << 20) / frame;
        let mut lines = Vec::new();
        for _ in 0..count {
            lines.extend(std::iter::repeat_n(b'x', frame));
            lines.extend_from_slice(b"\r\n");
        }
        g.throughput(Throughput::Bytes(lines.len() as u64));
        g.bench_function(BenchmarkId::new("line", name), |b| {
            b.iter(|| {
                let d = LineDecoder::new(b"\r\n".to_vec(), 1 << 20);
                let mut buf = &lines[..];
                let mut n = 0;
                while let Some(f) = d.decode(buf).unwrap() {
                    n += f.end - f.start;
                    buf = &buf[f.consumed..];
                }
                black_box(n)
            })
        });
        let enc = LengthPrefixedDecoder::new(PrefixWidth::U32, 1 << 20);
        let mut framed = Vec::new();
        let payload = vec![7u8; frame];
        for _ in 0..count {
            enc.encode(&payload, &mut framed).unwrap();
        }
        g.throughput(Throughput::Bytes(framed.len() as u64));
        g.bench_function(BenchmarkId::new("length_prefixed_u32", name), |b| {
            b.iter(|| {
                let d = enc.clone();
                let mut buf = &framed[..];
                let mut n = 0;
                while let Some(f) = d.decode(buf).unwrap() {
                    n += f.end - f.start;
                    buf = &buf[f.consumed..];
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

struct Echo;
impl Protocol for Echo {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
}

fn write_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_path");
    for &size in &[64usize, 16 * 1024] {
        let msg = vec![1u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        // data_received → write (append to the output queue) → flush (writev)
        g.bench_function(BenchmarkId::new("append_flush", size), |b| {
            let mut t = FakeTransport::new(Echo);
            b.iter(|| {
                t.receive(&msg);
                black_box(t.take_written().len())
            })
        });
    }
    g.finish();
}

/// Polls `f` on this thread until ready (the bench thread is no shard).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::hint::spin_loop();
    }
}

fn tasks(c: &mut Criterion) {
    let mut g = c.benchmark_group("tasks");
    // Spawn a task that completes at its first poll, run it, drop it.
    const N: u64 = 1000;
    g.throughput(Throughput::Elements(N));
    g.bench_function("spawn_ready_task", |b| {
        let mut t = FakeTransport::new(Echo);
        b.iter(|| {
            for _ in 0..N {
                t.shard().spawn_local(async {});
            }
            t.advance(Duration::ZERO);
        })
    });
    // One task yielding N times: each is a same-shard wake and a poll.
    g.bench_function("same_shard_wake", |b| {
        let mut t = FakeTransport::new(Echo);
        b.iter(|| {
            t.shard().spawn_local(async {
                for _ in 0..N {
                    shardloop::task::yield_now().await;
                }
            });
            t.advance(Duration::ZERO);
        })
    });
    // A thread asks shard 1 and waits for the answer: call_on's promise
    // against today's closure + channel (bus/round_trip above).
    let h = two_shards();
    g.throughput(Throughput::Elements(1));
    g.bench_function("call_on_round_trip", |b| {
        b.iter(|| black_box(block_on(h.call_on(1, |ctx| ctx.index())).unwrap()))
    });
    // The same from a shard: shard 0 awaits shard 1, N times in a task.
    g.throughput(Throughput::Elements(N));
    g.bench_function("call_on_shard_to_shard", |b| {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        b.iter(|| {
            let tx = tx.clone();
            h.post_to(0, move |ctx| {
                let mut calls = Vec::new();
                for _ in 0..N {
                    calls.push(ctx.call_on(1, |ctx| ctx.index()));
                }
                ctx.spawn_local(async move {
                    for c in calls {
                        black_box(c.await.unwrap());
                    }
                    tx.send(()).unwrap();
                });
            })
            .unwrap();
            rx.recv().unwrap();
        })
    });
    g.finish();
    h.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    targets = timers, bus, framing, write_path, tasks
}
criterion_main!(benches);
