//! The command line: `RunArgs` (a load run, wrk-style flags) and `MergeArgs`.

use clap::{Args, ValueEnum};
use shardloop_loadgen::cli::WorkloadArgs;
use shardloop_loadgen::segment::Segment;
use shardloop_loadgen::slo::Slo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Target: HOST:PORT, http://HOST:PORT/PATH (selects the http workload),
    /// ws://HOST:PORT/PATH (the websocket workload), or unix:PATH (a
    /// Unix-domain socket); https:// and wss:// use TLS.
    #[arg(required = true)]
    pub(crate) target: Option<String>,
    /// Threads (each one a shardloop shard).
    #[arg(short, long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Connect to this Unix-domain socket instead of the URL's host and
    /// port (the URL still gives the path and the Host header), as curl's
    /// --unix-socket.
    #[arg(long, value_name = "PATH")]
    pub(crate) unix_socket: Option<PathBuf>,
    /// Connections to keep open, over all threads.
    #[arg(short, long, default_value_t = 10)]
    pub(crate) connections: usize,
    /// Measured duration (e.g. 10s, 1m).
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Open loop: total requests per second (wrk2's -R): a constant rate
    /// (`5000`, `10k`) for --duration, or stages ramping linearly from one
    /// rate to the next (`10k:30s,50k:60s`; the run lasts their sum).
    /// Without it the run is closed loop.
    #[arg(short = 'R', long, value_name = "RATE[:DURATION,...]")]
    pub(crate) rate: Option<String>,
    /// Open loop: how requests are spread: evenly (wrk2) or as a Poisson process.
    #[arg(long, value_enum, default_value = "uniform")]
    pub(crate) arrivals: ArrivalsArg,
    /// Requests in flight per connection (closed loop), or at most (open
    /// loop): pipelined on HTTP/1.1, concurrent streams on HTTP/2 (h2load's
    /// -m).
    #[arg(
        short = 'm',
        long,
        visible_alias = "max-concurrent-streams",
        default_value_t = 1
    )]
    pub(crate) pipeline: usize,
    /// Speak HTTP/2 (the http workload): with prior knowledge on http://,
    /// by ALPN h2 on https://. Each request is a stream; -m sets how many
    /// each connection has in flight.
    #[arg(long, visible_alias = "h2")]
    pub(crate) http2: bool,
    /// Closed loop: each connection waits this long after an answer before
    /// its next request (think time, e.g. 100ms).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) think: Duration,
    /// Time before measuring starts.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) warmup: Duration,
    /// Open connections evenly over this time.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) ramp_up: Duration,
    /// Request timeout.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// Connect timeout.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) connect_timeout: Duration,
    #[command(flatten)]
    pub(crate) workload: WorkloadArgs,
    /// Print the detailed latency spectrum (wrk2 layout).
    #[arg(long)]
    pub(crate) latency: bool,
    /// Write the full report as JSON.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write an HdrHistogram interval log (V2 compressed).
    #[arg(long)]
    pub(crate) hlog: Option<PathBuf>,
    /// Write one CSV row per interval: counts, rate, latency percentiles.
    #[arg(long, value_name = "FILE")]
    pub(crate) csv: Option<PathBuf>,
    /// Interval of the interval log and the progress line.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) interval: Duration,
    /// Pin loadgen threads to these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) cores: Vec<usize>,
    /// Speak TLS to the target (implied by an https:// target).
    #[arg(long)]
    pub(crate) tls: bool,
    /// With TLS: trust the CAs in this PEM file (default: the system's).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// With TLS: accept any server certificate (self-signed test servers).
    #[arg(long, conflicts_with = "tls_ca")]
    pub(crate) insecure: bool,
    /// With TLS: the name to verify and send as SNI (default: the target's host).
    #[arg(long, value_name = "NAME")]
    pub(crate) sni: Option<String>,
    /// With TLS: present this client certificate chain (PEM, leaf first)
    /// when the server asks for one (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// With TLS: the client certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// With TLS: resume earlier sessions on new connections (TLS 1.3
    /// tickets), as browsers do; without it every handshake is a full one
    /// (`openssl s_time -new`, h2load).
    #[arg(long)]
    pub(crate) tls_resume: bool,
    /// With TLS: ALPN protocols to offer, comma-separated (default for
    /// https://: http/1.1).
    #[arg(long, value_delimiter = ',')]
    pub(crate) alpn: Vec<String>,
    /// New connections per second at most (all threads): paces
    /// `--reconnect-every` churn and the replacement of broken connections.
    #[arg(long, value_name = "R")]
    pub(crate) conn_rate: Option<f64>,
    /// Run segment INDEX/COUNT of a test split over several load generators
    /// (k6's execution segments): this instance opens its share of the
    /// connections and sends the same share of the rate.
    #[arg(long, value_name = "INDEX/COUNT", conflicts_with = "segments")]
    pub(crate) segment: Option<Segment>,
    /// Run one of COUNT segments, the index taken from JOB_COMPLETION_INDEX
    /// (a Kubernetes Indexed Job sets it).
    #[arg(long, value_name = "COUNT")]
    pub(crate) segments: Option<usize>,
    /// Start at this time (RFC 3339, e.g. 2026-11-24T10:00:00Z), so that
    /// segments on several machines start together.
    #[arg(long, value_name = "TIME")]
    pub(crate) start_at: Option<String>,
    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub(crate) method: String,
    /// HTTP request body, read from this file (sent with Content-Length).
    #[arg(long, value_name = "FILE")]
    pub(crate) body: Option<PathBuf>,
    /// Echo, line and WebSocket: draw each message's size from LO..HI
    /// (uniform), LO..HI:zipf:S or LO..HI:gaussian:MEAN:SD bytes instead
    /// of --size; every reply is still checked byte for byte.
    #[arg(long, value_name = "SPEC")]
    pub(crate) sizes: Option<String>,
    /// A variable for request templates, repeatable: `{{NAME}}` in the
    /// URL path, method, a header value, the body or a RESP argument is
    /// replaced per request. SPEC: `seq[:START]`, `int:LO..HI` (uniform),
    /// `int:LO..HI:zipf:S`, `int:LO..HI:gaussian:MEAN:SD`, `str:LEN`,
    /// `csv:FILE[:random]`, `json:FILE[:random]` (`{{NAME.column}}`).
    #[arg(long = "var", value_name = "NAME=SPEC")]
    pub(crate) vars: Vec<String>,
    /// A service-level objective checked at the end, repeatable:
    /// `p99=2ms`, `p99.9=10ms`, `mean=1ms`, `max=50ms`, `errors=0.1%`,
    /// `rps=10000`. Failures print FAIL lines and exit with code 99 (k6's).
    #[arg(long = "slo", value_name = "NAME=LIMIT", value_parser = parse_slo)]
    pub(crate) slos: Vec<Slo>,
    /// Close each connection after N responses and open a new one; 1 opens
    /// a connection (and with TLS, a handshake) per request. Connect time
    /// is reported on its own.
    #[arg(long, value_name = "N")]
    pub(crate) reconnect_every: Option<u64>,
    /// Serve live Prometheus metrics of the run at http://ADDR/metrics
    /// (the load generator's counts and latency histograms, and its own
    /// loops' load).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<SocketAddr>,
}

#[derive(Args, Debug)]
pub(crate) struct MergeArgs {
    /// Inputs: .json reports and interval logs.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Print the detailed latency spectrum.
    #[arg(long)]
    pub(crate) latency: bool,
    /// Write the merged interval log here.
    #[arg(long)]
    pub(crate) hlog: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ArrivalsArg {
    Uniform,
    Poisson,
}

pub(crate) fn parse_slo(s: &str) -> Result<Slo, String> {
    s.parse()
}
