//! Skew: 2 shards, 64 long-lived connections of which 8 ask for 50× more
//! work per request than the rest, at a constant total rate (open loop,
//! `shardloop-load` in process). Which connections are heavy is decided by
//! their order of arrival, so the placement policies see what they would
//! see in production: nothing about a connection's future load when it
//! arrives. In the "skewed" layout the heavy ones are arrivals 0, 2, 4, …
//! (a connection-count policy puts them all on shard 0); in "balanced"
//! they are arrivals 0..8 (four on each shard): the reference run. In
//! `reuse_port` mode the kernel places connections by a hash of their
//! addresses: which shard gets the heavy ones varies from run to run.
//!
//! For each scenario: each shard's busy fraction over the measured
//! window, the imbalance (max / mean), throughput, p50 and p99 (from each
//! request's intended send time), and connections moved. Scenarios
//! alternate within a round; medians over the rounds.
//!
//! ```text
//! cargo run --release -p shardloop-benches --bin skew -- --rounds 3
//! ```

use anyhow::{bail, Context};
use clap::Parser;
use shardloop::{Conn, LeastConnections, LoadAware, Migrate, Pinning, Protocol, Rebalance, Server};
use shardloop_loadgen::{Config, Mode, Workload};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "per-shard load, p99 and throughput with 8 heavy connections of 64")]
struct Args {
    /// Requests per second, all connections together.
    #[arg(short = 'R', long, default_value_t = 6400.0)]
    rate: f64,
    /// Connections.
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// Heavy connections among them.
    #[arg(long, default_value_t = 8)]
    heavy: usize,
    /// Work per request of a light connection, in microseconds.
    #[arg(long, default_value_t = 20)]
    light_us: u64,
    /// How many times more a heavy connection's request costs.
    #[arg(long, default_value_t = 50)]
    factor: u64,
    /// Connections open evenly over this time (load appears as they come).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    ramp_up: Duration,
    /// Time after the ramp before measuring (the rebalancer acts here).
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Measured time.
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Rounds (each runs every scenario once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Scenarios to run (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// What a scenario sets up.
#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    load_aware: bool,
    rebalance: bool,
    balanced_layout: bool,
    /// Each shard on its own `SO_REUSEPORT` socket: the kernel places.
    reuse_port: bool,
}

const SCENARIOS: [Scenario; 7] = [
    Scenario {
        name: "connection-count",
        load_aware: false,
        rebalance: false,
        balanced_layout: false,
        reuse_port: false,
    },
    Scenario {
        name: "load-aware",
        load_aware: true,
        rebalance: false,
        balanced_layout: false,
        reuse_port: false,
    },
    Scenario {
        name: "load-aware+migration",
        load_aware: true,
        rebalance: true,
        balanced_layout: false,
        reuse_port: false,
    },
    Scenario {
        name: "connection-count+migration",
        load_aware: false,
        rebalance: true,
        balanced_layout: false,
        reuse_port: false,
    },
    Scenario {
        name: "balanced (reference)",
        load_aware: false,
        rebalance: false,
        balanced_layout: true,
        reuse_port: false,
    },
    Scenario {
        name: "reuse-port (kernel)",
        load_aware: false,
        rebalance: false,
        balanced_layout: false,
        reuse_port: true,
    },
    Scenario {
        name: "reuse-port+migration",
        load_aware: false,
        rebalance: true,
        balanced_layout: false,
        reuse_port: true,
    },
];

/// Answers each line after `cost` of work on the shard.
struct Worker {
    cost: Duration,
    buf: Vec<u8>,
    movable: bool,
}

impl Protocol for Worker {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.set_migratable(self.movable);
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let until = Instant::now() + self.cost;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            conn.write(&self.buf[..=end]);
            self.buf.drain(..=end);
        }
    }
}

impl Migrate for Worker {
    type Packed = Self;
    fn pack(self, _: &mut Conn<'_, Self>) -> Self {
        self
    }
    fn unpack(p: Self, _: &mut Conn<'_, Self>) -> Self {
        p
    }
}

/// One scenario's figures.
#[derive(Debug, Clone, Default)]
struct Figures {
    busy: Vec<f64>,
    imbalance: f64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    moved: u64,
}

fn run(a: &Args, s: Scenario) -> anyhow::Result<Figures> {
    let arrivals = Arc::new(AtomicUsize::new(0));
    let (heavy, light, factor) = (a.heavy, a.light_us, a.factor);
    let policy: Box<dyn FnOnce(shardloop::ServerBuilder) -> shardloop::ServerBuilder> =
        if s.load_aware {
            Box::new(|b| b.balancing(LoadAware::default()))
        } else {
            Box::new(|b| b.balancing(LeastConnections))
        };
    let mut b = policy(
        Server::builder()
            .shards(2)
            .pinning(Pinning::Cores(vec![0, 1])),
    );
    if s.rebalance {
        b = b.rebalance(Rebalance::default());
    }
    let movable = s.rebalance;
    let mut listen = shardloop::endpoint::Listen::from("127.0.0.1:0");
    if s.reuse_port {
        listen = listen.socket_options(shardloop::SocketOptions {
            reuse_port: Some(true),
            ..Default::default()
        });
    }
    let handle = b
        .listen(listen, move |_| {
            let arrivals = arrivals.clone();
            move |_| {
                let k = arrivals.fetch_add(1, Ordering::Relaxed);
                let is_heavy = if s.balanced_layout {
                    k < heavy
                } else {
                    k.is_multiple_of(2) && k < 2 * heavy
                };
                let us = if is_heavy { light * factor } else { light };
                Worker {
                    cost: Duration::from_micros(us),
                    buf: Vec::new(),
                    movable,
                }
            }
        })
        .build()?
        .start()?;
    let addr = handle.tcp_addr(0);
    let mut cfg = Config::new(addr);
    cfg.threads = 1;
    cfg.connections = a.connections;
    cfg.mode = Mode::Open {
        rate: a.rate,
        max_in_flight: 8,
    };
    cfg.workload = Workload::Line {
        size: 32,
        text: None,
    };
    cfg.ramp_up = a.ramp_up;
    cfg.warmup = a.ramp_up + a.warmup;
    cfg.duration = a.duration;
    cfg.cores = vec![1];
    let load = std::thread::spawn(move || shardloop_loadgen::run(&cfg, |_| {}));
    std::thread::sleep(a.ramp_up + a.warmup);
    let before = handle.stats();
    std::thread::sleep(a.duration);
    let after = handle.stats();
    let report = load
        .join()
        .map_err(|_| anyhow::anyhow!("load generator panicked"))?
        .context("load generator")?;
    handle.shutdown();
    if report.errors.total() > 0 {
        bail!(
            "{}: {} errors: {:?}",
            s.name,
            report.errors.total(),
            report.errors
        );
    }
    let busy: Vec<f64> = (0..2)
        .map(|i| {
            let b = after.shards[i].busy_ns - before.shards[i].busy_ns;
            let idle = after.shards[i].idle_ns - before.shards[i].idle_ns;
            b as f64 / (b + idle).max(1) as f64
        })
        .collect();
    let mean = busy.iter().sum::<f64>() / busy.len() as f64;
    let max = busy.iter().cloned().fold(0.0, f64::max);
    Ok(Figures {
        imbalance: if mean > 0.0 { max / mean } else { f64::NAN },
        busy,
        rps: report.throughput_rps,
        p50_us: report.latency_us.p50,
        p99_us: report.latency_us.p99,
        moved: after.total().migrated_in,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.heavy * 2 > a.connections {
        bail!("--heavy must be at most half of --connections");
    }
    let chosen: Vec<Scenario> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| a.only.is_empty() || a.only.iter().any(|o| s.name.starts_with(o.as_str())))
        .collect();
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); chosen.len()];
    for round in 0..a.rounds {
        for (i, s) in chosen.iter().enumerate() {
            let f = run(&a, *s)?;
            eprintln!(
                "round {round} {:<28} busy {:.2}/{:.2} imbalance {:.2} {:.0} req/s p50 {:.0} us p99 {:.0} us moved {}",
                s.name, f.busy[0], f.busy[1], f.imbalance, f.rps, f.p50_us, f.p99_us, f.moved
            );
            results[i].push(f);
        }
    }
    println!(
        "{} connections ({} heavy, {}x {} us), {} req/s, medians of {} rounds",
        a.connections, a.heavy, a.factor, a.light_us, a.rate, a.rounds
    );
    println!(
        "{:<28} {:>7} {:>7} {:>9} {:>9} {:>8} {:>8} {:>6}",
        "scenario", "busy0", "busy1", "imbalance", "req/s", "p50 us", "p99 us", "moved"
    );
    for (s, r) in chosen.iter().zip(&results) {
        let m = |f: fn(&Figures) -> f64| median(r.iter().map(f).collect());
        println!(
            "{:<28} {:>7.2} {:>7.2} {:>9.2} {:>9.0} {:>8.0} {:>8.0} {:>6.0}",
            s.name,
            m(|f| f.busy[0]),
            m(|f| f.busy[1]),
            m(|f| f.imbalance),
            m(|f| f.rps),
            m(|f| f.p50_us),
            m(|f| f.p99_us),
            m(|f| f.moved as f64),
        );
    }
    Ok(())
}
