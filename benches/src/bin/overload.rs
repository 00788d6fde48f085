//! Overload: one shard serving `GET /work` (each request costs `--work-us`
//! of computation) is offered twice what it can serve, open loop, with and
//! without shedding (`HttpServer::shed` with a per-shard token bucket at
//! `--shed-at` of the measured capacity, answering 503 + `Retry-After`).
//!
//! Steps: the capacity (closed loop); the p99 at 70 % of it (the
//! reference); then 2× the capacity without shedding and with it. Latency
//! is from each request's intended send time and counts admitted (2xx)
//! answers only; 503s are counted apart.
//!
//! ```text
//! cargo run --release -p shardloop-benches --bin overload
//! ```

use anyhow::Context;
use clap::Parser;
use shardloop::http::{Body, HttpServer, Request, Response, Router};
use shardloop::limit::{RateLimit, RateLimiter};
use shardloop::{Pinning, Server};
use shardloop_loadgen::{Config, Mode, Workload};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "p99 of admitted requests at 2x capacity, with and without shedding")]
struct Args {
    /// Work per request, in microseconds.
    #[arg(long, default_value_t = 50)]
    work_us: u64,
    /// Connections.
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// Measured time of each step.
    #[arg(short, long, default_value = "8s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time before measuring.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Shedding admits this fraction of the measured capacity.
    #[arg(long, default_value_t = 0.7)]
    shed_at: f64,
    /// Rounds (each measures every step again); medians are printed.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// One step's figures.
struct Step {
    offered: f64,
    ok_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    shed: u64,
    timeouts: u64,
}

fn server(work: Duration, shed_rate: Option<u32>) -> anyhow::Result<shardloop::Handle> {
    let app = Router::new().get("/work", move |_: &Request<Body>| {
        let until = Instant::now() + work;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        Response::new(Body::from("done"))
    });
    let mut http = HttpServer::new(app);
    if let Some(rate) = shed_rate {
        http = http.shed(move |_req, ctx| {
            let now = ctx.now();
            let bucket = ctx.service::<Option<RateLimiter>>().get_or_insert_with(|| {
                RateLimiter::new(RateLimit::per_second(rate).burst(rate / 20), now)
            });
            (!bucket.try_acquire(now)).then(|| bucket.wait_time(now))
        });
    }
    Ok(Server::builder()
        .shards(1)
        .pinning(Pinning::Cores(vec![0]))
        .listen("127.0.0.1:0", http.factory())
        .build()?
        .start()?)
}

fn load(a: &Args, h: &shardloop::Handle, rate: Option<f64>) -> anyhow::Result<Step> {
    let addr = h.tcp_addr(0);
    let mut cfg = Config::new(addr);
    cfg.threads = 1;
    cfg.cores = vec![1];
    cfg.connections = a.connections;
    cfg.mode = match rate {
        Some(rate) => Mode::Open {
            rate,
            max_in_flight: 64,
        },
        None => Mode::Closed { pipeline: 8 },
    };
    cfg.workload = Workload::Http {
        path: "/work".into(),
        host: addr.to_string(),
        headers: vec![],
        method: "GET".into(),
        body: Vec::new(),
    };
    cfg.warmup = a.warmup;
    cfg.duration = a.duration;
    let r = shardloop_loadgen::run(&cfg, |_| {}).context("load generator")?;
    Ok(Step {
        offered: rate.unwrap_or(f64::NAN),
        ok_per_s: r.responses_ok as f64 / r.duration_s.max(1e-9),
        p50_us: r.latency_us.p50,
        p99_us: r.latency_us.p99,
        shed: r.http_status.get(&503).copied().unwrap_or(0),
        timeouts: r.errors.timeout,
    })
}

/// One round: the capacity, then the three steps.
fn round(a: &Args) -> anyhow::Result<(f64, [Step; 3])> {
    let work = Duration::from_micros(a.work_us);
    let h = server(work, None)?;
    let capacity = load(a, &h, None)?.ok_per_s;
    let reference = load(a, &h, Some(capacity * 0.7))?;
    let unshed = load(a, &h, Some(capacity * 2.0))?;
    h.shutdown();
    let shed_rate = (capacity * a.shed_at).round() as u32;
    let h = server(work, Some(shed_rate))?;
    let shed = load(a, &h, Some(capacity * 2.0))?;
    h.shutdown();
    Ok((capacity, [reference, unshed, shed]))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let rounds: Vec<(f64, [Step; 3])> = (0..a.rounds.max(1))
        .map(|_| round(&a))
        .collect::<anyhow::Result<_>>()?;
    let capacity = median(rounds.iter().map(|r| r.0).collect());
    println!(
        "one shard, {} us of work per request: capacity {capacity:.0} req/s (closed loop); medians of {} rounds",
        a.work_us,
        rounds.len()
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "step", "offered", "2xx/s", "p50 us", "p99 us", "503", "timeouts"
    );
    let names = [
        "70% of capacity",
        "2x capacity, no shedding",
        &format!("2x capacity, shedding at {:.0}%", a.shed_at * 100.0),
    ];
    for (k, name) in names.iter().enumerate() {
        let m = |f: fn(&Step) -> f64| median(rounds.iter().map(|r| f(&r.1[k])).collect());
        println!(
            "{name:<34} {:>9.0} {:>9.0} {:>9.0} {:>10.0} {:>9.0} {:>9.0}",
            m(|s| s.offered),
            m(|s| s.ok_per_s),
            m(|s| s.p50_us),
            m(|s| s.p99_us),
            m(|s| s.shed as f64),
            m(|s| s.timeouts as f64)
        );
    }
    let ratio = median(
        rounds
            .iter()
            .map(|r| r.1[2].p99_us / r.1[0].p99_us)
            .collect(),
    );
    println!("admitted p99 with shedding / p99 at 70% (median of the rounds' ratios): {ratio:.2}");
    Ok(())
}
