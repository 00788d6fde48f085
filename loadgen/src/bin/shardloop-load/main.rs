//! `shardloop-load`: the command-line load generator.

mod args;
mod config;

use anyhow::Context;
use args::{MergeArgs, RunArgs};
use clap::{Parser, Subcommand};
use config::{build_config, segment_of, wait_for_start};
use shardloop_loadgen::{hlog, spectrum, Mode, Progress};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "shardloop-load",
    version,
    about = "Load generator with HdrHistogram latency: closed loop (wrk) or constant-rate open loop (wrk2)",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Merge interval logs (.hlog) and JSON reports (.json) from several runs.
    Merge(MergeArgs),
}

fn progress_line(p: &Progress<'_>) {
    let secs = p.interval_len.as_secs_f64().max(1e-9);
    let line = if p.warming_up {
        format!("  warming up: {} connected", p.connected)
    } else {
        let p99 = if p.total.latency.is_empty() {
            0
        } else {
            p.total.latency.value_at_quantile(0.99)
        };
        format!(
            "  {:>5.1}s  {:>10.0} req/s  p99 so far {:>9}  errors {}",
            p.elapsed.as_secs_f64(),
            p.interval.ok as f64 / secs,
            shardloop_loadgen::fmt_us(p99 as f64 / 1e3),
            p.total.errors.total()
        )
    };
    let mut err = std::io::stderr();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

fn run_load(a: &RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = build_config(a)?;
    cfg.validate()?;
    if let Some(seg) = segment_of(a)? {
        println!(
            "Segment {seg}: {} of {} connections, {:.1}% of the rate",
            cfg.connections,
            a.connections,
            seg.rate_share(a.connections) * 100.0
        );
    }
    wait_for_start(a)?;
    if let Some(addr) = cfg.metrics {
        eprintln!("Live metrics on http://{addr}/metrics while the run lasts");
    }
    let tty = std::io::stderr().is_terminal();
    let mode = match cfg.mode {
        Mode::Closed { .. } => "closed loop".to_string(),
        Mode::Open { rate, .. } => match &cfg.plan {
            Some(p) if p.stages().len() > 1 => format!(
                "open loop, {} stages up to {rate} req/s, {:?} arrivals",
                p.stages().len(),
                cfg.arrivals
            ),
            _ => format!("open loop at {rate} req/s, {:?} arrivals", cfg.arrivals),
        },
    };
    println!(
        "Running {} test @ {} ({}, {})",
        humantime::format_duration(cfg.duration),
        cfg.target,
        cfg.workload.name(),
        mode
    );
    let report = shardloop_loadgen::run(&cfg, |p| {
        if tty {
            progress_line(p);
        }
    })?;
    if tty {
        eprint!("\r\x1b[2K");
    }
    print!("{}", report.summary());
    if a.latency {
        println!();
        print!("{}", report.latency_report());
    }
    if let Some(path) = &a.json {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &report)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &a.hlog {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        hlog::write_report_log(std::io::BufWriter::new(f), &report)?;
    }
    for r in &report.slo {
        println!("{r}");
    }
    if report.responses_ok == 0 {
        anyhow::bail!(
            "no request succeeded ({} requests, {} errors)",
            report.requests,
            report.errors.total()
        );
    }
    if report.slo_failed() {
        return Ok(ExitCode::from(SLO_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// The exit code when an objective failed (k6's threshold code).
const SLO_FAILED: u8 = 99;

fn run_merge(a: &MergeArgs) -> anyhow::Result<()> {
    let m = hlog::merge_files(&a.files)?;
    println!("Merged {} inputs", m.inputs);
    if m.requests > 0 {
        println!(
            "  {} requests, {} ok, {} errors; {:.2} requests/sec together",
            m.requests,
            m.responses_ok,
            m.errors.total(),
            m.throughput_rps
        );
    }
    let l = shardloop_loadgen::LatencySummary::of(&m.latency);
    println!(
        "  Latency p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  ({} samples)",
        shardloop_loadgen::fmt_us(l.p50),
        shardloop_loadgen::fmt_us(l.p90),
        shardloop_loadgen::fmt_us(l.p99),
        shardloop_loadgen::fmt_us(l.p99_9),
        shardloop_loadgen::fmt_us(l.p99_99),
        shardloop_loadgen::fmt_us(l.max),
        l.count
    );
    if a.latency {
        println!();
        print!("{}", spectrum(&m.latency, "Recorded Latency"));
        if !m.uncorrected.is_empty() {
            println!();
            print!("{}", spectrum(&m.uncorrected, "Uncorrected Latency"));
        }
    }
    if let Some(path) = &a.hlog {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let start = m
            .intervals
            .first()
            .map(|i| std::time::UNIX_EPOCH + Duration::from_secs_f64(i.start_s))
            .unwrap_or_else(std::time::SystemTime::now);
        hlog::write_log(
            std::io::BufWriter::new(f),
            &format!("merged by shardloop-load from {} inputs", m.inputs),
            start,
            &m.intervals,
        )?;
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Merge(m)) => run_merge(m).map(|()| ExitCode::SUCCESS),
        None => run_load(&cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, every cause on it.
            eprintln!(
                "error: {}",
                shardloop_loadgen::cli::one_line(e.chain().map(|c| c.to_string()))
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
