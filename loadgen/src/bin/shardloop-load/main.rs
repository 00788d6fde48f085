//! `shardloop-load`: the command-line load generator.

mod args;
mod config;
mod scenarios;

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
    /// Run the scenarios of a TOML file together (k6's scenarios): each
    /// `[[scenario]]` is one run's flags, with a name, tags, a start offset.
    Run(RunFileArgs),
}

#[derive(clap::Args, Debug)]
struct RunFileArgs {
    /// The scenarios file (see loadgen/examples/).
    file: std::path::PathBuf,
    /// Write every scenario's report, and the selected objectives, as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write each scenario's interval log: this path with "-NAME" before
    /// its extension.
    #[arg(long)]
    hlog: Option<std::path::PathBuf>,
    /// Print each scenario's detailed latency spectrum.
    #[arg(long)]
    latency: bool,
    /// Write one CSV row per interval per scenario.
    #[arg(long, value_name = "FILE")]
    csv: Option<std::path::PathBuf>,
}

fn progress_line(prefix: &str, p: &Progress<'_>) {
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
    let _ = write!(err, "\r\x1b[2K{prefix}{line}");
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
            progress_line("", p);
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
    if let Some(path) = &a.csv {
        write_csv_file(path, &[&report])?;
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

fn write_csv_file(
    path: &std::path::Path,
    reports: &[&shardloop_loadgen::Report],
) -> anyhow::Result<()> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    shardloop_loadgen::write_csv(std::io::BufWriter::new(f), reports)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `path` with `-name` before its extension.
fn with_name(path: &std::path::Path, name: &str) -> std::path::PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let file = match path.extension() {
        Some(ext) => format!("{stem}-{name}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{name}"),
    };
    path.with_file_name(file)
}

fn run_file(a: &RunFileArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let dir = a.file.parent().unwrap_or(std::path::Path::new("."));
    let f = scenarios::parse(&text, dir).with_context(|| a.file.display().to_string())?;
    let names: Vec<&str> = f.scenarios.iter().map(|s| s.name.as_str()).collect();
    println!(
        "Running {} scenarios on {} threads: {}",
        f.scenarios.len(),
        f.setup.threads,
        names.join(", ")
    );
    if let Some(addr) = f.setup.metrics {
        eprintln!("Live metrics on http://{addr}/metrics while the run lasts");
    }
    let tty = std::io::stderr().is_terminal();
    let reports = shardloop_loadgen::scenario::run_scenarios(&f.setup, &f.scenarios, |name, p| {
        if tty {
            progress_line(&format!("{name}: "), p);
        }
    })?;
    if tty {
        eprint!("\r\x1b[2K");
    }
    let mut failed = false;
    for r in &reports {
        let name = r.scenario.as_deref().unwrap_or("?");
        let tags: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("\n== scenario {name} {}", tags.join(" "));
        print!("{}", r.summary());
        if a.latency {
            println!();
            print!("{}", r.latency_report());
        }
        for s in &r.slo {
            println!("{s}");
        }
        failed |= r.slo_failed();
    }
    let selected: Vec<_> = f.slos.iter().filter_map(|s| s.check(&reports)).collect();
    if !selected.is_empty() {
        println!("\n== objectives over scenarios");
        for s in &selected {
            println!("{s}");
            failed |= !s.pass;
        }
    }
    let aborted = reports.iter().find_map(|r| r.aborted.clone());
    if let Some(ab) = &aborted {
        println!(
            "\nAborted after {:.1}s of scenario {}: {}",
            ab.after_s,
            ab.scenario,
            ab.slo.trim()
        );
        failed = true;
    }
    if let Some(path) = &a.json {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let doc = serde_json::json!({
            "scenarios": reports,
            "slo": selected,
            "aborted": aborted,
        });
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &doc)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &a.hlog {
        for r in &reports {
            let file = with_name(path, r.scenario.as_deref().unwrap_or("run"));
            let out = std::fs::File::create(&file)
                .with_context(|| format!("cannot create {}", file.display()))?;
            hlog::write_report_log(std::io::BufWriter::new(out), r)?;
        }
    }
    if let Some(path) = &a.csv {
        write_csv_file(path, &reports.iter().collect::<Vec<_>>())?;
    }
    if reports.iter().all(|r| r.responses_ok == 0) && aborted.is_none() {
        anyhow::bail!("no request succeeded in any scenario");
    }
    Ok(if failed {
        ExitCode::from(SLO_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

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
        Some(Command::Run(r)) => run_file(r),
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
