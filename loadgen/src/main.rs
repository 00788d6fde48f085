//! `shardloop-load`: the command-line load generator.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use shardloop::tls::TlsClientConfig;
use shardloop_loadgen::plan::{Arrivals, RatePlan};
use shardloop_loadgen::segment::Segment;
use shardloop_loadgen::slo::Slo;
use shardloop_loadgen::{
    hlog, spectrum, Config, Mode, Progress, ResponseFrame, TlsTarget, Workload,
};
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
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

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum WorkloadKind {
    Echo,
    Line,
    Http,
    Resp,
    Custom,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Target: HOST:PORT, or http://HOST:PORT/PATH (selects the http workload).
    #[arg(required = true)]
    target: Option<String>,
    /// Threads (each one a shardloop shard).
    #[arg(short, long, default_value_t = 2)]
    threads: usize,
    /// Connections to keep open, over all threads.
    #[arg(short, long, default_value_t = 10)]
    connections: usize,
    /// Measured duration (e.g. 10s, 1m).
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Open loop: total requests per second (wrk2's -R): a constant rate
    /// (`5000`, `10k`) for --duration, or stages ramping linearly from one
    /// rate to the next (`10k:30s,50k:60s`; the run lasts their sum).
    /// Without it the run is closed loop.
    #[arg(short = 'R', long, value_name = "RATE[:DURATION,...]")]
    rate: Option<String>,
    /// Open loop: how requests are spread: evenly (wrk2) or as a Poisson process.
    #[arg(long, value_enum, default_value = "uniform")]
    arrivals: ArrivalsArg,
    /// Requests in flight per connection (closed loop), or at most (open loop).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Time before measuring starts.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Open connections evenly over this time.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    ramp_up: Duration,
    /// Request timeout.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Connect timeout.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Workload (default: echo, or http for an http:// target).
    #[arg(short, long, value_enum)]
    workload: Option<WorkloadKind>,
    /// Message size in bytes (echo, line).
    #[arg(short, long, default_value_t = 64)]
    size: usize,
    /// HTTP header to add, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// RESP command, e.g. "SET k v" (repeatable; sent in turn). Default PING.
    #[arg(long = "command")]
    commands: Vec<String>,
    /// Custom workload: file whose bytes are one request.
    #[arg(long)]
    payload: Option<PathBuf>,
    /// Custom workload: responses end with this (escapes \r \n \t \\ allowed).
    #[arg(long)]
    response_delimiter: Option<String>,
    /// Custom workload: every response is this many bytes.
    #[arg(long)]
    response_length: Option<usize>,
    /// Print the detailed latency spectrum (wrk2 layout).
    #[arg(long)]
    latency: bool,
    /// Write the full report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an HdrHistogram interval log (V2 compressed).
    #[arg(long)]
    hlog: Option<PathBuf>,
    /// Interval of the interval log and the progress line.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Pin loadgen threads to these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Speak TLS to the target (implied by an https:// target).
    #[arg(long)]
    tls: bool,
    /// With TLS: trust the CAs in this PEM file (default: the system's).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// With TLS: accept any server certificate (self-signed test servers).
    #[arg(long, conflicts_with = "tls_ca")]
    insecure: bool,
    /// With TLS: the name to verify and send as SNI (default: the target's host).
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// With TLS: ALPN protocols to offer, comma-separated (default for
    /// https://: http/1.1).
    #[arg(long, value_delimiter = ',')]
    alpn: Vec<String>,
    /// New connections per second at most (all threads): paces
    /// `--reconnect-every` churn and the replacement of broken connections.
    #[arg(long, value_name = "R")]
    conn_rate: Option<f64>,
    /// Run segment INDEX/COUNT of a test split over several load generators
    /// (k6's execution segments): this instance opens its share of the
    /// connections and sends the same share of the rate.
    #[arg(long, value_name = "INDEX/COUNT", conflicts_with = "segments")]
    segment: Option<Segment>,
    /// Run one of COUNT segments, the index taken from JOB_COMPLETION_INDEX
    /// (a Kubernetes Indexed Job sets it).
    #[arg(long, value_name = "COUNT")]
    segments: Option<usize>,
    /// Start at this time (RFC 3339, e.g. 2026-11-24T10:00:00Z), so that
    /// segments on several machines start together.
    #[arg(long, value_name = "TIME")]
    start_at: Option<String>,
    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    method: String,
    /// HTTP request body, read from this file (sent with Content-Length).
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// A service-level objective checked at the end, repeatable:
    /// `p99=2ms`, `p99.9=10ms`, `mean=1ms`, `max=50ms`, `errors=0.1%`,
    /// `rps=10000`. Failures print FAIL lines and exit with code 99 (k6's).
    #[arg(long = "slo", value_name = "NAME=LIMIT", value_parser = parse_slo)]
    slos: Vec<Slo>,
    /// Close each connection after N responses and open a new one; 1 opens
    /// a connection (and with TLS, a handshake) per request. Connect time
    /// is reported on its own.
    #[arg(long, value_name = "N")]
    reconnect_every: Option<u64>,
}

#[derive(Args, Debug)]
struct MergeArgs {
    /// Inputs: .json reports and interval logs.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the detailed latency spectrum.
    #[arg(long)]
    latency: bool,
    /// Write the merged interval log here.
    #[arg(long)]
    hlog: Option<PathBuf>,
}

fn unescape(s: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            other => bail!(
                "unknown escape \\{} in {s:?}",
                other.map(String::from).unwrap_or_default()
            ),
        }
    }
    Ok(out)
}

fn resolve(hostport: &str) -> anyhow::Result<SocketAddr> {
    hostport
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {hostport:?} (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("{hostport:?} resolved to no address"))
}

fn build_config(a: &RunArgs) -> anyhow::Result<Config> {
    let target = a.target.as_deref().expect("clap requires the target");
    let (url, https) = match (
        target.strip_prefix("http://"),
        target.strip_prefix("https://"),
    ) {
        (Some(rest), _) => (Some(rest), false),
        (_, Some(rest)) => (Some(rest), true),
        _ => (None, false),
    };
    let (hostport, path, is_url) = match url {
        Some(rest) => {
            let (hp, path) = match rest.find('/') {
                Some(i) => (&rest[..i], rest[i..].to_string()),
                None => (rest, "/".to_string()),
            };
            let hp = if hp.contains(':') || hp.starts_with('[') && hp.contains("]:") {
                hp.to_string()
            } else {
                format!("{hp}:{}", if https { 443 } else { 80 })
            };
            (hp, path, true)
        }
        None if target.contains("://") => {
            bail!("unsupported URL scheme in {target:?} (http:// or https://)")
        }
        None => (target.to_string(), "/".to_string(), false),
    };
    let tls = if a.tls || https {
        Some(tls_target(a, &hostport, https)?)
    } else {
        if a.tls_ca.is_some() || a.insecure || a.sni.is_some() || !a.alpn.is_empty() {
            bail!("--tls-ca, --insecure, --sni and --alpn need --tls (or an https:// target)");
        }
        None
    };
    let addr = resolve(&hostport)?;
    let kind = a.workload.unwrap_or(if is_url {
        WorkloadKind::Http
    } else {
        WorkloadKind::Echo
    });
    let workload = match kind {
        WorkloadKind::Echo => Workload::Echo { size: a.size },
        WorkloadKind::Line => Workload::Line { size: a.size },
        WorkloadKind::Http => {
            let mut headers = Vec::new();
            for h in &a.headers {
                let (k, v) = h
                    .split_once(':')
                    .with_context(|| format!("header {h:?} is not \"Name: value\""))?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let body = match &a.body {
                Some(f) => std::fs::read(f)
                    .with_context(|| format!("cannot read the body file {}", f.display()))?,
                None => Vec::new(),
            };
            Workload::Http {
                path,
                host: hostport.clone(),
                headers,
                method: a.method.clone(),
                body,
            }
        }
        WorkloadKind::Resp => {
            let cmds = if a.commands.is_empty() {
                vec!["PING".to_string()]
            } else {
                a.commands.clone()
            };
            Workload::Resp {
                commands: cmds
                    .iter()
                    .map(|c| c.split_whitespace().map(String::from).collect())
                    .collect(),
            }
        }
        WorkloadKind::Custom => {
            let file = a
                .payload
                .as_ref()
                .context("the custom workload needs --payload FILE")?;
            let payload = std::fs::read(file)
                .with_context(|| format!("cannot read payload {}", file.display()))?;
            let response = match (&a.response_delimiter, a.response_length) {
                (Some(d), None) => ResponseFrame::Delimiter(unescape(d)?),
                (None, Some(n)) => ResponseFrame::Length(n),
                _ => bail!("the custom workload needs exactly one of --response-delimiter or --response-length"),
            };
            Workload::Custom { payload, response }
        }
    };
    let plan = a
        .rate
        .as_deref()
        .map(|r| RatePlan::parse(r, a.duration))
        .transpose()
        .map_err(|e| anyhow::anyhow!("-R: {e}"))?;
    let mode = match &plan {
        Some(p) => Mode::Open {
            rate: p.peak(),
            max_in_flight: a.pipeline,
        },
        None => Mode::Closed {
            pipeline: a.pipeline,
        },
    };
    let duration = plan.as_ref().map_or(a.duration, |p| p.duration());
    let segment = segment_of(a)?;
    let (connections, plan, mode) = match segment {
        None => (a.connections, plan, mode),
        Some(seg) => {
            let share = seg.rate_share(a.connections);
            let connections = seg.connections(a.connections);
            if connections == 0 {
                bail!(
                    "segment {seg} gets none of the {} connections: use more connections or fewer segments",
                    a.connections
                );
            }
            let mode = match mode {
                Mode::Open {
                    rate,
                    max_in_flight,
                } => Mode::Open {
                    rate: rate * share,
                    max_in_flight,
                },
                m => m,
            };
            (connections, plan.map(|p| p.scaled(share)), mode)
        }
    };
    Ok(Config {
        target: addr,
        threads: a.threads.min(connections),
        connections,
        mode,
        workload,
        duration,
        warmup: a.warmup,
        ramp_up: a.ramp_up,
        timeout: a.timeout,
        connect_timeout: a.connect_timeout,
        cores: a.cores.clone(),
        interval: a.interval,
        tls,
        reconnect_every: a.reconnect_every,
        slos: a.slos.clone(),
        plan,
        conn_rate: a.conn_rate,
        arrivals: match a.arrivals {
            ArrivalsArg::Uniform => Arrivals::Uniform,
            ArrivalsArg::Poisson => Arrivals::Poisson,
        },
    })
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ArrivalsArg {
    Uniform,
    Poisson,
}

/// `--segment i/N`, or `--segments N` with the index from JOB_COMPLETION_INDEX.
fn segment_of(a: &RunArgs) -> anyhow::Result<Option<Segment>> {
    if let Some(s) = a.segment {
        return Ok(Some(s));
    }
    let Some(count) = a.segments else {
        return Ok(None);
    };
    let index = std::env::var("JOB_COMPLETION_INDEX")
        .context("--segments needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job), or use --segment INDEX/COUNT")?;
    let index: usize = index
        .trim()
        .parse()
        .with_context(|| format!("JOB_COMPLETION_INDEX={index:?} is not an index"))?;
    Ok(Some(
        Segment::new(index, count).map_err(|e| anyhow::anyhow!(e))?,
    ))
}

/// Sleeps until `--start-at`; a time already past (by more than a second) is an error.
fn wait_for_start(a: &RunArgs) -> anyhow::Result<()> {
    let Some(at) = &a.start_at else {
        return Ok(());
    };
    let when = humantime::parse_rfc3339_weak(at).with_context(|| {
        format!("--start-at {at:?} is not an RFC 3339 time (2026-11-24T10:00:00Z)")
    })?;
    let now = std::time::SystemTime::now();
    match when.duration_since(now) {
        Ok(wait) => {
            if wait > Duration::from_secs(24 * 3600) {
                bail!("--start-at {at} is more than a day away");
            }
            eprintln!(
                "waiting {} for --start-at {at}",
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            );
            std::thread::sleep(wait);
            Ok(())
        }
        Err(e) if e.duration() <= Duration::from_secs(1) => Ok(()),
        Err(e) => bail!(
            "--start-at {at} was {} ago: the segments would not start together",
            humantime::format_duration(Duration::from_secs(e.duration().as_secs()))
        ),
    }
}

fn parse_slo(s: &str) -> Result<Slo, String> {
    s.parse()
}

/// The TLS settings `--tls`, `--tls-ca`, `--insecure`, `--sni`, `--alpn` ask for.
fn tls_target(a: &RunArgs, hostport: &str, https: bool) -> anyhow::Result<TlsTarget> {
    let host = match hostport.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => hostport,
    };
    let server_name = a.sni.clone().unwrap_or_else(|| host.to_string());
    let alpn = if a.alpn.is_empty() && https {
        vec!["http/1.1".to_string()]
    } else {
        a.alpn.clone()
    };
    let mut b = TlsClientConfig::builder().alpn(&alpn);
    b = match (&a.tls_ca, a.insecure) {
        (_, true) => b.insecure_skip_verify(),
        (Some(ca), false) => b.ca_file(ca)?,
        (None, false) => b.system_roots()?,
    };
    let config = b.build()?;
    // Checked now, so a bad name is an error before any connection.
    TlsClientConfig::check_server_name(&server_name)
        .with_context(|| format!("--sni / host {server_name:?}"))?;
    Ok(TlsTarget {
        config,
        server_name,
    })
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
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
