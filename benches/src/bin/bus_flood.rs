//! The bus under flood: every shard calls every other shard (a closure
//! that answers with a closure back) in bursts every millisecond, while one shard is slowed by a callback that
//! blocks, for `--duration`. Prints, every second, the process's RSS, the
//! calls answered and refused so far and each inbox's depth: with a
//! bounded inbox the RSS stays flat and the refusals are counted; the run
//! ending at all shows there is no deadlock.
//!
//! ```text
//! cargo run --release -p shardloop-benches --bin bus_flood -- --shards 4 --duration 30s
//! ```

use anyhow::Context;
use clap::Parser;
use shardloop::{LoopOptions, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "every shard calls every other at full rate; RSS and refusals over time")]
struct Args {
    /// Shards.
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// How long to flood.
    #[arg(short, long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Each inbox's capacity.
    #[arg(long, default_value_t = LoopOptions::default().inbox_capacity)]
    inbox_capacity: usize,
    /// Calls each shard starts towards each other shard per millisecond.
    #[arg(long, default_value_t = 256)]
    burst: usize,
    /// The last shard blocks this long every 10 ms (a slow shard).
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    block: Duration,
}

#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn count(&self, sent: shardloop::Result<()>) {
        match sent {
            Ok(()) => {}
            Err(shardloop::Error::Overloaded { .. }) => {
                self.refused.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Relaxed);
            }
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.shards >= 2, "--shards must be at least 2");
    let mut options = LoopOptions::default();
    options.inbox_capacity = args.inbox_capacity;
    let h = Server::builder()
        .shards(args.shards)
        .pinning(shardloop::Pinning::Off)
        .loop_options(options)
        .build()
        .context("building the server")?
        .start()?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let block = args.block;
    h.post_to(args.shards - 1, move |ctx| {
        ctx.call_every(Duration::from_millis(10), move |_| {
            std::thread::sleep(block)
        });
    })?;
    let (shards, burst) = (args.shards, args.burst);
    for shard in 0..shards {
        let (tally, stop) = (tally.clone(), stop.clone());
        h.post_to(shard, move |ctx| {
            ctx.call_every(Duration::from_millis(1), move |ctx| {
                if stop.load(Relaxed) {
                    return;
                }
                for _ in 0..burst {
                    for to in (0..shards).filter(|&to| to != shard) {
                        // A call and its answer, both over the bus: the
                        // answer is a request back, refused too when the
                        // caller's own inbox is full.
                        let t = tally.clone();
                        let call = ctx.post_to(to, move |ctx| {
                            let t2 = t.clone();
                            let answer = ctx.post_to(shard, move |_| {
                                t2.answered.fetch_add(1, Relaxed);
                            });
                            t.count(answer);
                        });
                        tally.count(call);
                    }
                }
            });
        })?;
    }
    println!(
        "| s | RSS KiB | answered | refused | failed | inbox depth by shard | rejected by shard |"
    );
    println!("|---:|---:|---:|---:|---:|---|---|");
    let start = Instant::now();
    let mut second = 0;
    while start.elapsed() < args.duration {
        second += 1;
        std::thread::sleep(
            (start + Duration::from_secs(second)).saturating_duration_since(Instant::now()),
        );
        let stats = h.stats();
        println!(
            "| {second} | {} | {} | {} | {} | {:?} | {:?} |",
            rss_kib(),
            tally.answered.load(Relaxed),
            tally.refused.load(Relaxed),
            tally.failed.load(Relaxed),
            stats
                .shards
                .iter()
                .map(|s| s.inbox_depth)
                .collect::<Vec<_>>(),
            stats
                .shards
                .iter()
                .map(|s| s.bus_rejected)
                .collect::<Vec<_>>(),
        );
    }
    stop.store(true, Relaxed);
    h.stop();
    h.wait();
    println!(
        "stopped cleanly after {:.1} s: {} answered, {} refused, {} failed",
        start.elapsed().as_secs_f64(),
        tally.answered.load(Relaxed),
        tally.refused.load(Relaxed),
        tally.failed.load(Relaxed)
    );
    Ok(())
}
