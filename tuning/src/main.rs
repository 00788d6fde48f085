//! `shardloop-tune`: sweep shard counts, recommend one.

use anyhow::{bail, Context};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use shardloop_loadgen::cli::WorkloadArgs;
use shardloop_tune::profile::Profile;
use shardloop_tune::{Knob, RemoteSpec, ServerSpec, TuneConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "shardloop-tune",
    version,
    about = "Finds the shard count that sustains the most load within a p99 target",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sweep: Args,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Recommend a shard count for a running server's real traffic, from its
    /// /metrics over a window.
    Advise(AdviseArgs),
    /// Rescale a saved profile (--save-profile) to this machine with a short
    /// sweep at the counts given (default: the profile's smallest), and
    /// predict the shards a rate needs here.
    Calibrate(Box<CalibrateArgs>),
    /// Show this machine's CPU topology (physical cores, SMT siblings, NUMA
    /// nodes, cgroup quota, network interrupt cores) and where to pin
    /// shards, the acceptor and the load generator.
    Topology(TopologyArgs),
}

#[derive(clap::Args, Debug)]
struct CalibrateArgs {
    /// The profile to rescale.
    #[arg(long)]
    profile: PathBuf,
    /// Say how many shards this request rate needs here.
    #[arg(long, value_name = "REQ/S")]
    rate: Option<f64>,
    /// The sweep's options; its --save-profile writes the rescaled profile.
    #[command(flatten)]
    sweep: Args,
}

fn run_calibrate(c: &CalibrateArgs) -> anyhow::Result<()> {
    let mut profile = Profile::load(&c.profile)?;
    let mut a = c.sweep.clone();
    if a.shards.is_none() {
        let smallest =
            profile.counts().into_iter().min().context(
                "the profile has no valid point and no fit: nothing to calibrate against",
            )?;
        a.shards = Some(smallest.to_string());
    }
    // The same objective as the profile, or the rates are not comparable.
    a.p99 = Duration::from_micros(profile.p99_target_us);
    let (cfg, report) = sweep(&a)?;
    if format!("{:?}", cfg.workload) != profile.workload {
        println!(
            "warning: the profile was measured with {}, this run uses {:?}: the factor compares different work",
            profile.workload, cfg.workload
        );
    }
    let measured: Vec<(usize, f64)> = report
        .variants
        .iter()
        .filter(|v| v.knob.is_none())
        .map(|v| (v.shards, v.sustainable_rps()))
        .collect();
    let factor = profile.calibrate("calibrate", &measured)?;
    println!("\nCalibration factor {factor:.3} (measured over predicted, median).\n");
    print!("{}", profile.markdown());
    if let Some(rate) = c.rate {
        match profile.shards_for(rate, a.headroom) {
            Some(n) => println!(
                "\n{rate:.0} req/s with {:.0} % headroom needs {n} shard(s) here.",
                a.headroom * 100.0
            ),
            None => println!(
                "\n{rate:.0} req/s with {:.0} % headroom is beyond what the profile predicts for any shard count here.",
                a.headroom * 100.0
            ),
        }
    }
    if let Some(out) = &a.save_profile {
        profile.save(out)?;
        println!("Profile: {}", out.display());
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
struct TopologyArgs {
    /// Physical cores to set aside for a load generator on this machine.
    #[arg(long, default_value_t = 0)]
    loadgen_cores: usize,
    /// Read /proc and /sys under this directory (for a captured tree).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Output: text/markdown or json.
    #[arg(long, default_value = "text")]
    format: String,
    /// Write the plan to this placement file (servers read it with
    /// `--placement FILE` or `ServerBuilder::placement`; so does `tune`).
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Point the network interrupts at the plan's interrupt CPUs (writes
    /// /proc/irq/N/smp_affinity_list; as root). Without it the commands
    /// are only printed.
    #[arg(long)]
    apply_irq: bool,
}

fn run_topology(a: &TopologyArgs) -> anyhow::Result<()> {
    let t = shardloop_tune::topology::Topology::read(&a.root).map_err(anyhow::Error::msg)?;
    let p = t.plan(a.loadgen_cores);
    let moves = t.irq_moves(&p);
    match a.format.as_str() {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"topology": t, "placement": p, "irq_moves": moves})
            )?
        ),
        "text" | "markdown" => {
            print!("{}", t.markdown(&p));
            if !moves.is_empty() {
                let verb = if a.apply_irq {
                    "Applying"
                } else {
                    "Would run (dry run; --apply-irq to apply, as root)"
                };
                println!("\n## Network interrupts\n\n{verb}:\n");
                for m in &moves {
                    println!("    {}", m.command());
                }
            }
        }
        f => bail!("--format {f:?}: text, markdown or json"),
    }
    if let Some(file) = &a.write {
        if a.root == Path::new("/") {
            // A plan for this machine must fit it; a captured tree's plan
            // is for the machine it came from.
            p.to_framework().check()?;
        }
        std::fs::write(file, p.file_text())
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!("Placement written to {}", file.display());
    }
    if a.apply_irq {
        shardloop_tune::topology::apply_irq_moves(&a.root, &moves).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
struct AdviseArgs {
    /// The server's metrics URL, e.g. http://127.0.0.1:9100/metrics.
    #[arg(long)]
    metrics: String,
    /// How long to observe.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Utilisation per shard to aim for (the rest is headroom).
    #[arg(long, default_value_t = 0.7)]
    target: f64,
    /// Output: text, markdown or json.
    #[arg(long, default_value = "text")]
    format: String,
    /// A saved profile (--save-profile): its scaling shape replaces linear
    /// scaling in the recommendation.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Requests per second the server handled in the window (from its own
    /// metrics): rescales the profile to this machine.
    #[arg(long, value_name = "REQ/S", requires = "profile")]
    rate: Option<f64>,
    /// Write the rescaled profile here.
    #[arg(long, value_name = "FILE", requires = "profile")]
    save_profile: Option<PathBuf>,
}

fn run_advise(a: &AdviseArgs) -> anyhow::Result<()> {
    if !["text", "markdown", "json"].contains(&a.format.as_str()) {
        bail!("--format must be text, markdown or json");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut profile = a.profile.as_deref().map(Profile::load).transpose()?;
    let mut advice = shardloop_tune::advise::advise_live(&a.metrics, a.window, a.target, cores)?;
    if let Some(p) = profile.as_mut() {
        shardloop_tune::advise::with_profile(&mut advice, p, a.rate)?;
        if let Some(out) = &a.save_profile {
            p.save(out)?;
        }
    }
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&advice)?),
        _ => print!("{}", advice.markdown()),
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
struct Args {
    /// Server command template ({shards} {port} {host} {cores} {read_buffer}
    /// {events} {policy} are substituted). Default: the built-in echo
    /// server. With --target it may start the server elsewhere, e.g.
    /// "ssh prod1 'myserver --shards {shards} --port {port}'".
    #[arg(long)]
    server_cmd: Option<String>,
    /// Load a server at HOST:PORT (usually another machine) instead of one
    /// on a free local port. Without --server-cmd, the server already
    /// running there is measured as it is (one --shards value).
    #[arg(long, value_name = "HOST:PORT")]
    target: Option<String>,
    /// With --target: stops the server after each configuration (same
    /// placeholders), e.g. "ssh prod1 pkill -INT -f myserver".
    #[arg(long, requires = "target", value_name = "CMD")]
    server_stop_cmd: Option<String>,
    /// With --target: the server machine's cores, for {cores} (the first N
    /// for N shards), e.g. 0-15 or 0,2,4.
    #[arg(long, requires = "target", value_name = "LIST")]
    server_cores: Option<String>,
    /// Shard counts: "1-4" or "1,2,4" (default 1..=cores, or 1..=the
    /// placement's shard CPUs).
    #[arg(long)]
    shards: Option<String>,
    /// A placement file (`topology --write`): N shards run on its first N
    /// shard CPUs and the load generator on its load-generator CPUs.
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    placement: Option<PathBuf>,
    /// p99 latency target.
    #[arg(long, default_value = "2ms", value_parser = humantime::parse_duration)]
    p99: Duration,
    /// Bisection steps per configuration.
    #[arg(long, default_value_t = 5)]
    steps: u32,
    /// Times each configuration is measured, in interleaved rounds; the
    /// median counts and the spread is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Fractions of saturation at which p99 is also measured.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75,0.9")]
    fractions: Vec<f64>,
    /// Measured time of each run.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    run_duration: Duration,
    /// Warm-up of each run.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Load connections.
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// Loadgen threads (default: half the cores, at least 1).
    #[arg(long)]
    loadgen_threads: Option<usize>,
    #[command(flatten)]
    workload: WorkloadArgs,
    /// HTTP workload: the request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// HTTP workload: the method.
    #[arg(short = 'X', long, default_value = "GET")]
    method: String,
    /// HTTP workload: the request body, from this file.
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// Also sweep a knob: read-buffer=4096,65536 | events=64,1024 | pin=on,off | policy=rr,lc
    /// | backend=epoll,io-uring.
    #[arg(long)]
    knob: Option<String>,
    /// Recommend the smallest count within this fraction of the best.
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    /// Fraction of the sustainable rate to keep free in production.
    #[arg(long, default_value_t = 0.2)]
    headroom: f64,
    /// Report directory.
    #[arg(long, default_value = "tune-report")]
    out: PathBuf,
    /// Save the measured capacity and scaling as a profile, for
    /// `calibrate` and `advise --profile` on the production box.
    #[arg(long, value_name = "FILE")]
    save_profile: Option<PathBuf>,
}

fn parse_shards(s: &str) -> anyhow::Result<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) = (
                a.trim()
                    .parse()
                    .with_context(|| format!("bad shard range {part:?}"))?,
                b.trim()
                    .parse()
                    .with_context(|| format!("bad shard range {part:?}"))?,
            );
            if a == 0 || b < a {
                bail!("bad shard range {part:?}");
            }
            v.extend(a..=b);
        } else {
            let n: usize = part
                .parse()
                .with_context(|| format!("bad shard count {part:?}"))?;
            if n == 0 {
                bail!("shard counts start at 1");
            }
            v.push(n);
        }
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main() {
        eprintln!(
            "error: {}",
            shardloop_loadgen::cli::one_line(e.chain().map(|c| c.to_string()))
        );
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Advise(a)) => return run_advise(a),
        Some(Command::Topology(a)) => return run_topology(a),
        Some(Command::Calibrate(c)) => return run_calibrate(c),
        None => {}
    }
    let a = cli.sweep;
    let (cfg, report) = sweep(&a)?;
    if let Some(path) = &a.save_profile {
        let profile = Profile::from_report(&report, &cfg);
        profile.save(path)?;
        println!("Profile: {}", path.display());
    }
    Ok(())
}

/// Runs the sweep `a` describes, writes and prints its report.
fn sweep(a: &Args) -> anyhow::Result<(TuneConfig, shardloop_tune::TuneReport)> {
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_else(|| {
            (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
        });
    let placement = match &a.placement {
        Some(file) => {
            let p = shardloop::Placement::load(file)?;
            p.check()?;
            Some(p)
        }
        None => None,
    };
    let shards = match (&a.shards, &placement) {
        (Some(s), _) => parse_shards(s)?,
        (None, Some(p)) => (1..=p.shards.len()).collect(),
        (None, None) => (1..=cores.len()).collect(),
    };
    if !(0.0..1.0).contains(&a.tolerance) || !(0.0..1.0).contains(&a.headroom) {
        bail!("--tolerance and --headroom must be in [0, 1)");
    }
    if a.fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0)) {
        bail!("--fractions must be in (0, 1]");
    }
    let knobs = match &a.knob {
        Some(k) => Knob::parse_list(k).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let server = match (&a.target, &a.server_cmd) {
        (Some(target), start) => ServerSpec::Remote(RemoteSpec {
            target: target.clone(),
            start: start.clone(),
            stop: a.server_stop_cmd.clone(),
            cores: match &a.server_cores {
                Some(c) => parse_shards(c).context("--server-cores")?,
                None => Vec::new(),
            },
        }),
        (None, Some(c)) => ServerSpec::Command(c.clone()),
        (None, None) => ServerSpec::BuiltinEcho,
    };
    let remote = matches!(&server, ServerSpec::Remote(r) if !r.is_local());
    let host = match &server {
        ServerSpec::Remote(r) => r.target.clone(),
        _ => "localhost".to_string(),
    };
    let workload = a
        .workload
        .build(false, &host, &a.path, &a.method, a.body.as_deref())?;
    // With the server elsewhere, this machine's cores are all the load generator's.
    let default_threads = if remote {
        cores.len()
    } else {
        (cores.len() / 2).max(1)
    };
    let cfg = TuneConfig {
        server,
        shards,
        knobs,
        p99_target_us: a.p99.as_micros() as u64,
        steps: a.steps,
        fractions: a.fractions.clone(),
        run_duration: a.run_duration,
        warmup: a.warmup,
        connections: a.connections,
        loadgen_threads: a.loadgen_threads.unwrap_or(default_threads),
        workload,
        tolerance: a.tolerance,
        headroom: a.headroom,
        cores: cores.clone(),
        repeats: a.repeats.max(1),
        placement,
    };
    let runs = cfg.variants().len() as u64 * cfg.search_params().runs() * cfg.repeats as u64;
    let per_run = a.run_duration + a.warmup;
    println!(
        "shardloop-tune: {} configurations × {} runs of {}, p99 target {}, {} cores, {} loadgen threads × {} connections (about {})",
        cfg.variants().len(),
        cfg.search_params().runs(),
        humantime::format_duration(per_run),
        humantime::format_duration(a.p99),
        cores.len(),
        cfg.loadgen_threads,
        cfg.connections,
        humantime::format_duration(Duration::from_secs(per_run.as_secs_f64().ceil() as u64 * runs)),
    );
    for (n, k) in cfg.variants() {
        if let Some(note) = cfg.pinning(n, k.as_ref()).note {
            println!("  {n} shards: {note}");
        }
    }
    let bar = ProgressBar::new(runs);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs, eta {eta}  {msg}")
            .expect("static template"),
    );
    let report = shardloop_tune::run(&cfg, |variant, what| {
        bar.set_message(format!("{variant}: {what}"));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    report.write(&a.out)?;
    println!();
    print!("{}", report.markdown());
    println!();
    println!(
        "Report: {}/report.md, report.json, throughput.svg, latency.svg",
        a.out.display()
    );
    match &report.recommendation {
        Some(r) => println!("{}", r.line),
        None => println!(
            "Recommendation: none — no configuration met p99 ≤ {} at any rate tried; relax --p99 or investigate the server.",
            humantime::format_duration(a.p99)
        ),
    }
    Ok((cfg, report))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
