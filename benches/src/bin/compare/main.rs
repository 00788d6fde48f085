//! Side-by-side comparison of shardloop against peers, measured in one run.
//!
//! Starts shardloop's examples and the peer servers on 127.0.0.1 (pinned to
//! one core), drives each with `shardloop-load` pinned to another core under
//! identical settings, alternating servers round by round (A/B/A/B), and
//! prints throughput and p99 with the ratio shardloop/peer (median of the
//! rounds, min–max). Then measures memory per idle connection (RSS delta
//! over idle connections). Every process it starts is stopped by PID.
//!
//! With `--tls`, the TLS scenarios instead: TLS echo against plaintext echo
//! (what the layer costs), and HTTPS keep-alive and a TLS handshake per
//! request against nginx (see `tls.rs`).
//!
//! ```text
//! cargo run --release -p shardloop-benches --bin compare -- --rounds 3 --duration 3s
//! cargo run --release -p shardloop-benches --bin compare -- --tls --idle-connections 0
//! ```

mod catalog;
mod memory;
mod tls;
mod udp;

use catalog::{
    def, scenarios, servers, tls_scenarios, tls_servers, udp_servers, Kind, Scenario, ServerDef,
    NGINX,
};

use anyhow::{bail, Context};
use clap::Parser;
use shardloop_devtools::pki::PkiFiles;
use shardloop_devtools::{build, profile_dir, Spawned, Target};
use shardloop_loadgen::{Config, Mode, TlsTarget, Workload};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "shardloop vs peers, side by side")]
struct Args {
    /// Rounds per scenario (servers alternate within each round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured time per run.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Warm-up per run. Off by default: the server's CPU time is read around
    /// the whole run, so every request served must be counted; servers are
    /// warm from earlier rounds anyway.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Idle connections for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// Only the first echo scenario and HTTP (a quick look).
    #[arg(long)]
    quick: bool,
    /// Also run the echo and http_hello examples of another build of this
    /// repository (its `target/release` directory) as "shardloop (baseline)":
    /// before/after figures side by side in one run.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Only scenarios whose name contains this text (e.g. "4096 B, 64 conns, pipeline 16").
    #[arg(long)]
    only: Option<String>,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run the TLS scenarios (needs nginx) instead of the plaintext ones.
    #[arg(long)]
    tls: bool,
    /// Run the UDP echo comparison instead (datagrams per server CPU-second).
    #[arg(long)]
    udp: bool,
}

/// A server under test; stopped with SIGINT (graceful), then SIGKILL, when dropped.
type Running = Spawned;

pub(crate) fn start(
    dir: &Path,
    def: &ServerDef,
    extra: &[String],
    pki: Option<&PkiFiles>,
) -> anyhow::Result<Running> {
    if def.program == NGINX {
        let pki = if def.tls {
            Some(pki.context("a TLS server needs the PKI")?)
        } else {
            None
        };
        return tls::start_nginx(pki);
    }
    let mut extra = extra.to_vec();
    if def.tls {
        extra.extend(tls::example_args(
            pki.context("a TLS server needs the PKI")?,
        ));
    }
    let extra = &extra;
    let program = dir.join(&def.program);
    let mut cmd = if def.self_pinned {
        Command::new(&program)
    } else {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(&program);
        c
    };
    cmd.args(&def.args)
        .args(extra)
        .args(["--port", "0"])
        .env("RUST_LOG", "error")
        .stderr(Stdio::null());
    let mut srv = Spawned::start(cmd).with_context(|| format!("start {}", program.display()))?;
    srv.graceful_stop = Some(Duration::from_secs(2));
    Ok(srv)
}

/// The resp_kv backend of the gateway scenario (on the servers' core), with
/// the key the load asks for.
fn start_backend(dir: &Path) -> anyhow::Result<Running> {
    let def = def(
        "resp_kv",
        Kind::Gateway,
        "examples/resp_kv",
        &["--shards", "1", "--cores", "0"],
    );
    let kv = start(dir, &def, &[], None)?;
    let mut s = TcpStream::connect(kv.addr)?;
    std::io::Write::write_all(&mut s, b"SET greeting hello\r\n")?;
    let mut ok = [0u8; 5];
    std::io::Read::read_exact(&mut s, &mut ok)?;
    anyhow::ensure!(&ok == b"+OK\r\n", "resp_kv did not store the key");
    Ok(kv)
}

/// One run: throughput (req/s), p99 (µs), and requests per second of the
/// server's own CPU time (its per-core efficiency, valid even when the load
/// generator is the bottleneck).
fn measure(
    srv: &Running,
    s: &Scenario,
    a: &Args,
    tls: Option<TlsTarget>,
) -> anyhow::Result<(f64, u64, f64)> {
    let addr = srv.addr;
    let pid = srv.child.id();
    let mut cfg = Config::new(addr);
    cfg.threads = 1;
    cfg.connections = s.connections;
    cfg.mode = Mode::Closed {
        pipeline: s.pipeline,
    };
    cfg.workload = match s.kind {
        Kind::Echo => Workload::Echo { size: s.size },
        Kind::Http => Workload::Http {
            path: "/".into(),
            host: addr.to_string(),
            headers: if s.reconnect_every == Some(1) {
                // The server closes after answering, as wrk -H "Connection: close" asks.
                vec![("Connection".into(), "close".into())]
            } else {
                vec![]
            },
            method: "GET".into(),
            body: Vec::new(),
        },
        Kind::Big => Workload::Http {
            path: "/1mib".into(),
            host: addr.to_string(),
            headers: vec![],
            method: "GET".into(),
            body: Vec::new(),
        },
        Kind::Json => Workload::Http {
            path: "/json".into(),
            host: addr.to_string(),
            headers: vec![],
            method: "GET".into(),
            body: Vec::new(),
        },
        Kind::Gateway => Workload::Http {
            path: "/key/greeting".into(),
            host: addr.to_string(),
            headers: vec![],
            method: "GET".into(),
            body: Vec::new(),
        },
        Kind::WebSocket => Workload::WebSocket {
            path: "/ws".into(),
            host: addr.to_string(),
            size: s.size,
        },
        Kind::Udp => bail!("UDP is measured by udp::measure"),
    };
    cfg.duration = a.duration;
    cfg.warmup = a.warmup;
    cfg.cores = vec![1];
    cfg.tls = tls;
    cfg.reconnect_every = s.reconnect_every;
    let before = shardloop_loadgen::process_cpu_ticks(pid)?;
    let r = shardloop_loadgen::run(&cfg, |_| {})?;
    let cpu_s = (shardloop_loadgen::process_cpu_ticks(pid)? - before) as f64 / 100.0;
    if r.errors.total() > 0 {
        bail!("{} errors against {addr}: {:?}", r.errors.total(), r.errors);
    }
    let per_cpu_s = if cpu_s > 0.0 {
        r.responses_ok as f64 / cpu_s
    } else {
        f64::NAN
    };
    Ok((r.throughput_rps, r.latency_us.p99.round() as u64, per_cpu_s))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Builds the servers under test; returns the directory they are in.
fn build_all() -> PathBuf {
    for example in ["echo", "http_hello", "gateway", "resp_kv", "udp_echo"] {
        build("shardloop", Target::Example(example));
    }
    for bin in [
        "peer_mio",
        "peer_tokio",
        "peer_hyper",
        "peer_tungstenite",
        "peer_gateway_tokio",
        "peer_udp",
    ] {
        build("shardloop-benches", Target::Bin(bin));
    }
    profile_dir()
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        bail!("needs 2 cores: one for the server, one for the load generator");
    }
    rlimit::increase_nofile_limit((a.idle_connections as u64 + 4096).max(8192))?;
    let dir = build_all();
    let mut defs = servers();
    if let Some(base) = &a.baseline {
        let base = std::fs::canonicalize(base).with_context(|| format!("{}", base.display()))?;
        for (kind, example) in [(Kind::Echo, "echo"), (Kind::Http, "http_hello")] {
            let at = defs.iter().position(|d| d.kind == kind).unwrap_or(0) + 1;
            let program = base.join("examples").join(example).display().to_string();
            let mut d = def(
                "shardloop (baseline)",
                kind,
                &program,
                &["--shards", "1", "--cores", "0"],
            );
            d.self_pinned = true;
            defs.insert(at, d);
        }
    }
    if a.udp {
        return run_udp(&dir, &a);
    }
    let mut table = String::new();
    table.push_str("| scenario | server | req/s (median, min–max) | p99 (median) | throughput: shardloop / this | req per server CPU-second (median) | per core: shardloop / this (median, min–max) |\n");
    table.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    println!("Each run: {} measured after {} warm-up; {} rounds; server on core 0, loadgen (1 thread) on core 1.\n", humantime::format_duration(a.duration), humantime::format_duration(a.warmup), a.rounds);
    let pki = if a.tls { Some(tls::pki()?) } else { None };
    let target = pki.as_ref().map(tls::target).transpose()?;
    if a.tls {
        defs = tls_servers();
    }
    let all = if a.tls {
        tls_scenarios()
    } else {
        scenarios(a.quick)
    };
    let chosen = all
        .into_iter()
        .filter(|s| a.only.as_ref().is_none_or(|o| s.name.contains(o.as_str())));
    for s in chosen {
        let mine: Vec<&ServerDef> = defs
            .iter()
            .filter(|d| d.kind == s.kind && d.tls_group == a.tls)
            .collect();
        let backend = if s.kind == Kind::Gateway {
            Some(start_backend(&dir)?)
        } else {
            None
        };
        let extra: Vec<String> = backend
            .as_ref()
            .map(|b| vec!["--backend".into(), b.addr.to_string()])
            .unwrap_or_default();
        let running: Vec<Running> = mine
            .iter()
            .map(|d| start(&dir, d, &extra, pki.as_ref()))
            .collect::<anyhow::Result<_>>()?;
        let mut tput: Vec<Vec<f64>> = vec![Vec::new(); mine.len()];
        let mut p99: Vec<Vec<f64>> = vec![Vec::new(); mine.len()];
        let mut eff: Vec<Vec<f64>> = vec![Vec::new(); mine.len()];
        for round in 0..a.rounds {
            // Alternate the order each round so no server always goes first.
            let order: Vec<usize> = if round % 2 == 0 {
                (0..mine.len()).collect()
            } else {
                (0..mine.len()).rev().collect()
            };
            for i in order {
                let tls = target.clone().filter(|_| mine[i].tls);
                let (t, p, e) = measure(&running[i], &s, &a, tls)
                    .with_context(|| format!("{} / {}", s.name, mine[i].name))?;
                tput[i].push(t);
                p99[i].push(p as f64);
                eff[i].push(e);
            }
        }
        drop(running);
        for i in 0..mine.len() {
            let ratios: Vec<f64> = tput[0].iter().zip(&tput[i]).map(|(a, b)| a / b).collect();
            let (lo, hi) = tput[i]
                .iter()
                .fold((f64::MAX, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
            let (rlo, rhi) = ratios
                .iter()
                .fold((f64::MAX, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
            let _ = (rlo, rhi);
            let ratio = if i == 0 {
                "—".to_string()
            } else {
                format!("{:.2}", median(&mut ratios.clone()))
            };
            let eff_ratios: Vec<f64> = eff[0].iter().zip(&eff[i]).map(|(a, b)| a / b).collect();
            let (elo, ehi) = eff_ratios
                .iter()
                .fold((f64::MAX, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
            let eff_ratio = if i == 0 {
                "—".to_string()
            } else {
                format!(
                    "{:.2} ({:.2}–{:.2})",
                    median(&mut eff_ratios.clone()),
                    elo,
                    ehi
                )
            };
            let row = format!(
                "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.0} µs | {} | {:.0} | {} |\n",
                s.name,
                mine[i].name,
                median(&mut tput[i].clone()),
                lo,
                hi,
                median(&mut p99[i].clone()),
                ratio,
                median(&mut eff[i].clone()),
                eff_ratio
            );
            print!("{row}");
            table.push_str(&row);
        }
    }
    if a.idle_connections > 0 && !a.tls {
        table.push_str(&format!(
            "\n| server (echo), {} connections | RSS per idle connection | after one 64 B echo each | held after all closed |\n|---|---:|---:|---:|\n",
            a.idle_connections
        ));
        for d in defs.iter().filter(|d| d.kind == Kind::Echo) {
            let m = memory::memory_per_connection(&dir, d, a.idle_connections)?;
            let row = format!(
                "| {} | {:.0} B | {:.0} B | {:.1} MB |\n",
                d.name,
                m.idle,
                m.after_echo,
                m.after_close / 1e6
            );
            print!("{row}");
            table.push_str(&row);
        }
    }
    println!("\n{table}");
    if let Some(p) = &a.out {
        std::fs::write(p, &table).with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}

/// The UDP rows: each server measured in turn, rounds alternating order.
fn run_udp(dir: &Path, a: &Args) -> anyhow::Result<()> {
    let defs = udp_servers();
    let running: Vec<Running> = defs
        .iter()
        .map(|d| start(dir, d, &[], None))
        .collect::<anyhow::Result<_>>()?;
    let mut rate: Vec<Vec<f64>> = vec![Vec::new(); defs.len()];
    let mut eff: Vec<Vec<f64>> = vec![Vec::new(); defs.len()];
    for round in 0..a.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..defs.len()).collect()
        } else {
            (0..defs.len()).rev().collect()
        };
        for i in order {
            let (addr, pid, d) = (running[i].addr, running[i].child.id(), a.duration);
            let (r, e) = std::thread::spawn(move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
                udp::measure(addr, pid, d)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the UDP client panicked"))??;
            rate[i].push(r);
            eff[i].push(e);
        }
    }
    let mut table = String::from("| scenario | server | datagrams/s (median) | datagrams per server CPU-second (median) | per core: shardloop / this |\n|---|---|---:|---:|---:|\n");
    for i in 0..defs.len() {
        let ratio = if i == 0 {
            "—".to_string()
        } else {
            let r: Vec<f64> = eff[0].iter().zip(&eff[i]).map(|(a, b)| a / b).collect();
            format!("{:.2}", median(&mut r.clone()))
        };
        table.push_str(&format!(
            "| UDP echo 64 B, 32 sockets × 8 in flight | {} | {:.0} | {:.0} | {} |\n",
            defs[i].name,
            median(&mut rate[i].clone()),
            median(&mut eff[i].clone()),
            ratio
        ));
    }
    println!("{table}");
    if let Some(p) = &a.out {
        std::fs::write(p, &table).with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}
