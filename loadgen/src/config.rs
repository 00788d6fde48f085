//! What a load run does: target, concurrency, loop mode, workload.

use std::net::SocketAddr;
use std::time::Duration;

/// Largest request or response a workload may use (a response larger
/// than this is also what the client treats as a broken stream).
pub const MAX_MESSAGE: usize = crate::codec::MAX_RESPONSE;
/// Longest time between two sends of one open-loop connection (one day).
const MAX_SEND_PERIOD_S: f64 = 86_400.0;

/// How requests are issued.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Each connection keeps `pipeline` requests in flight and sends the next
    /// as soon as a response arrives (wrk's model). Latency is service time.
    Closed {
        /// Requests in flight per connection.
        pipeline: usize,
    },
    /// `rate` requests per second in total, on a fixed schedule spread over
    /// the connections (wrk2's model). Latency is measured from each
    /// request's *intended* send time, so a server stall is charged to every
    /// request it delayed (coordinated-omission correction); the uncorrected
    /// service time is recorded beside it.
    Open {
        /// Requests per second, all connections together.
        rate: f64,
        /// Requests in flight per connection at most (1 = wrk2).
        max_in_flight: usize,
    },
}

impl Mode {
    /// Requests a connection may have in flight: the pipeline depth, or
    /// the open loop's limit.
    pub fn max_in_flight(&self) -> usize {
        match *self {
            Mode::Closed { pipeline } => pipeline,
            Mode::Open { max_in_flight, .. } => max_in_flight,
        }
    }
}

/// How a custom workload's responses are framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseFrame {
    /// A response ends with these bytes.
    Delimiter(Vec<u8>),
    /// Every response is exactly this long.
    Length(usize),
}

/// What is sent and what counts as a correct answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// `size`-byte messages; the response must be the same bytes.
    Echo {
        /// Message size in bytes.
        size: usize,
    },
    /// Newline-terminated lines of `size` bytes (newline included); the
    /// response must be the same line. With `text`, each line is that
    /// template rendered instead, and any one-line reply is a success.
    Line {
        /// Line length in bytes, newline included.
        size: usize,
        /// The line to send (without its newline), a template: `{{NAME}}`
        /// is a variable (`Config::vars`); a newline a value brings is
        /// sent as a space. `None`: `size` bytes of a checked pattern.
        text: Option<String>,
    },
    /// HTTP/1.1 with keep-alive; responses framed by Content-Length or
    /// chunked encoding; a non-2xx status counts as an error, and every
    /// status is counted (`Report::http_status`).
    Http {
        /// Request path.
        path: String,
        /// Host header value.
        host: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Method (`GET` unless given).
        method: String,
        /// Request body (sent with its Content-Length when not empty).
        body: Vec<u8>,
    },
    /// Redis protocol: the commands are sent in turn (e.g. `PING`,
    /// `SET k v`, `GET k`); an error reply counts as an error.
    Resp {
        /// Commands, each a list of arguments.
        commands: Vec<Vec<String>>,
    },
    /// WebSocket: each connection opens with the handshake (`GET path`,
    /// answered 101), then sends `size`-byte binary messages (masked, as
    /// a client must); the answer must be the same bytes in one frame
    /// (an echo endpoint). Server pings and pongs are skipped.
    WebSocket {
        /// Request path of the handshake.
        path: String,
        /// Host header value.
        host: String,
        /// Message size in bytes.
        size: usize,
    },
    /// A fixed payload; responses framed by a delimiter or a fixed length.
    Custom {
        /// Bytes sent per request.
        payload: Vec<u8>,
        /// How responses end.
        response: ResponseFrame,
    },
}

impl Workload {
    /// Short name used in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Echo { .. } => "echo",
            Workload::Line { .. } => "line",
            Workload::Http { .. } => "http",
            Workload::Resp { .. } => "resp",
            Workload::WebSocket { .. } => "websocket",
            Workload::Custom { .. } => "custom",
        }
    }
}

/// A complete run description.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server address: TCP (127.0.0.1 or ::1 for tests and benchmarks
    /// here) or a Unix-domain socket's path.
    pub target: shardloop::Addr,
    /// Loadgen threads; each is a shardloop shard.
    pub threads: usize,
    /// Connections, spread over the threads.
    pub connections: usize,
    /// Closed or open loop.
    pub mode: Mode,
    /// What to send.
    pub workload: Workload,
    /// Measured time, after warm-up.
    pub duration: Duration,
    /// Time before measuring starts (results discarded).
    pub warmup: Duration,
    /// Connections are opened evenly over this time. Measuring starts after
    /// both the warm-up and the ramp-up.
    pub ramp_up: Duration,
    /// A request without response after this long is a timeout error; its
    /// connection is replaced.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Pin loadgen threads to these cores (none: not pinned).
    pub cores: Vec<usize>,
    /// Length of one interval in the interval log and progress reports.
    pub interval: Duration,
    /// Speak TLS to the target (None: plaintext).
    pub tls: Option<TlsTarget>,
    /// Close each connection after this many responses and open a new one
    /// (1: a new connection, and a new TLS handshake, per request).
    pub reconnect_every: Option<u64>,
    /// Objectives checked at the end (`Report::slo`).
    pub slos: Vec<crate::slo::Slo>,
    /// Open loop: the rate over time (stages); `None` holds `Mode::Open`'s
    /// rate for `duration`. Its length must equal `duration`.
    pub plan: Option<crate::plan::RatePlan>,
    /// Open loop: evenly spaced or Poisson arrivals.
    pub arrivals: crate::plan::Arrivals,
    /// New connections per second at most (all threads), for replacements
    /// and `reconnect_every` churn.
    pub conn_rate: Option<f64>,
    /// Serve live `/metrics` (Prometheus) here while the run lasts.
    pub metrics: Option<SocketAddr>,
    /// Closed loop: each connection waits this long after an answer before
    /// its next request (a user's think time).
    pub think: Duration,
    /// Echo, line and WebSocket: each message's size drawn from this
    /// distribution instead of the workload's fixed size.
    pub sizes: Option<std::sync::Arc<crate::template::Sizes>>,
    /// Variables the workload's templates draw from (`{{name}}` in an HTTP
    /// method, path, header value or body, or a RESP argument).
    pub vars: std::sync::Arc<crate::template::Vars>,
    /// HTTP workload: speak HTTP/2 (prior knowledge on plaintext, ALPN
    /// `h2` with TLS), each request a stream; the in-flight limit
    /// (`Mode`'s pipeline or `max_in_flight`) is the streams in flight
    /// per connection, h2load's `-m`.
    pub http2: bool,
}

/// How to reach a TLS target.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// CAs, ALPN, verification.
    pub config: shardloop::tls::TlsClientConfig,
    /// The name to verify the certificate against and send as SNI.
    pub server_name: String,
}

impl Config {
    /// A closed-loop echo run against a Unix-domain socket, with
    /// wrk-like defaults.
    pub fn unix(path: impl Into<std::path::PathBuf>) -> Self {
        Config {
            target: shardloop::Addr::Unix(Some(path.into())),
            ..Config::new(SocketAddr::from(([127, 0, 0, 1], 0)))
        }
    }

    /// A closed-loop echo run with wrk-like defaults.
    pub fn new(target: SocketAddr) -> Self {
        Config {
            target: target.into(),
            threads: 1,
            connections: 10,
            mode: Mode::Closed { pipeline: 1 },
            workload: Workload::Echo { size: 64 },
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            ramp_up: Duration::ZERO,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            cores: Vec::new(),
            interval: Duration::from_secs(1),
            metrics: None,
            tls: None,
            reconnect_every: None,
            slos: Vec::new(),
            plan: None,
            arrivals: crate::plan::Arrivals::Uniform,
            conn_rate: None,
            vars: Default::default(),
            think: Duration::ZERO,
            sizes: None,
            http2: false,
        }
    }

    /// Checks the values against each other.
    /// Checks the settings: every number is in a range the run can honour
    /// (no panic or abort later for an absurd value).
    pub fn validate(&self) -> Result<(), crate::LoadError> {
        let bad = |m: String| Err(crate::LoadError::Config(m));
        if self.threads == 0 {
            return bad("threads must be at least 1".into());
        }
        if self.connections < self.threads {
            return bad(format!(
                "connections ({}) must be at least threads ({}): each thread needs a connection",
                self.connections, self.threads
            ));
        }
        // Each thread is a shard: more than a few per core only adds
        // scheduling noise (and start-up time) to the measurement.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max_threads = (4 * cores).max(8);
        if self.threads > max_threads {
            return bad(format!(
                "threads ({}) must be at most {max_threads} on this machine ({cores} cores): \
                 each thread is an event loop; use connections for concurrency",
                self.threads
            ));
        }
        if self.duration.is_zero() {
            return bad("duration must be positive".into());
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("timeouts must be positive".into());
        }
        if let Some(p) = &self.plan {
            if !matches!(self.mode, Mode::Open { .. }) {
                return bad("rate stages need the open loop (-R)".into());
            }
            if p.duration() != self.duration {
                return bad(format!(
                    "the rate stages last {:?} but the duration is {:?}",
                    p.duration(),
                    self.duration
                ));
            }
        }
        if let Some(r) = self.conn_rate {
            if !(r.is_finite() && r > 0.0 && r <= 1e7) {
                return bad(format!(
                    "conn-rate {r} must be a positive number of connections per second"
                ));
            }
        }
        if !self.think.is_zero() && !matches!(self.mode, Mode::Closed { .. }) {
            return bad(
                "think time is for the closed loop (the open loop's rate sets the pace)".into(),
            );
        }
        if self.think > Duration::from_secs(3600) {
            return bad("think time must be at most an hour".into());
        }
        if self.reconnect_every == Some(0) {
            return bad("reconnect-every must be at least 1 (responses per connection)".into());
        }
        if self.interval < Duration::from_millis(10) {
            return bad("interval must be at least 10ms".into());
        }
        match self.mode {
            Mode::Closed { pipeline: 0 } => return bad("pipeline must be at least 1".into()),
            Mode::Open {
                rate,
                max_in_flight,
            } => {
                if !(rate.is_finite() && rate > 0.0) {
                    return bad(format!("rate must be a positive number, got {rate}"));
                }
                // Each connection sends every `connections / rate` seconds.
                let period = self.connections as f64 / rate;
                if period > MAX_SEND_PERIOD_S {
                    return bad(format!(
                        "rate {rate} req/s is too low for {} connections: each would send once every {period:.3e} s",
                        self.connections
                    ));
                }
                if max_in_flight == 0 {
                    return bad("pipeline (max in flight) must be at least 1".into());
                }
            }
            _ => {}
        }
        if let Err(e) = crate::codec::Codec::check(&self.workload, &self.vars) {
            return bad(e);
        }
        if self.http2 {
            if !matches!(self.workload, Workload::Http { .. }) {
                return bad(format!(
                    "HTTP/2 is for the http workload, not {}",
                    self.workload.name()
                ));
            }
            let codec = crate::codec::Codec::with_vars(&self.workload, self.vars.clone());
            if let Err(e) =
                codec.and_then(|c| crate::codec::H2Requests::new(&c, self.tls.is_some()).map(drop))
            {
                return bad(format!("the request cannot go out as HTTP/2: {e}"));
            }
        }
        if let Some(sizes) = &self.sizes {
            if !matches!(
                self.workload,
                Workload::Echo { .. } | Workload::Line { .. } | Workload::WebSocket { .. }
            ) {
                return bad("--sizes is for the echo, line and websocket workloads".into());
            }
            if sizes.max() > MAX_MESSAGE {
                return bad(format!(
                    "--sizes: messages of up to {} bytes; at most {MAX_MESSAGE}",
                    sizes.max()
                ));
            }
            if matches!(self.workload, Workload::Line { text: Some(_), .. }) {
                return bad("--sizes is for pattern lines, not a --line template".into());
            }
            if matches!(self.workload, Workload::Line { .. }) && sizes.min() < 2 {
                return bad("--sizes: a line is at least 2 bytes (one and the newline)".into());
            }
        }
        let too_big = |what: &str, n: usize| {
            bad(format!(
                "{what} ({n} bytes) must be at most {MAX_MESSAGE} bytes"
            ))
        };
        match &self.workload {
            Workload::Echo { size } if *size == 0 => bad("echo size must be at least 1".into()),
            Workload::Echo { size }
            | Workload::Line {
                size, text: None, ..
            } if *size > MAX_MESSAGE => too_big("message size", *size),
            Workload::Line { text: Some(t), .. } if t.len() > MAX_MESSAGE => {
                too_big("line", t.len())
            }
            Workload::Custom {
                response: ResponseFrame::Length(n),
                ..
            } if *n > MAX_MESSAGE => too_big("response length", *n),
            Workload::Line {
                size, text: None, ..
            } if *size < 2 => bad("line size must be at least 2 (one byte and the newline)".into()),
            Workload::Resp { commands }
                if commands.is_empty() || commands.iter().any(|c| c.is_empty()) =>
            {
                bad("resp needs at least one non-empty command".into())
            }
            Workload::Http { method, .. }
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) =>
            {
                bad(format!(
                    "HTTP method {method:?} must be uppercase letters (GET, POST, …)"
                ))
            }
            Workload::Http { body, .. } if body.len() > MAX_MESSAGE => {
                too_big("HTTP body", body.len())
            }
            Workload::Custom { payload, .. } if payload.is_empty() => {
                bad("custom payload file is empty".into())
            }
            Workload::Custom {
                response: ResponseFrame::Delimiter(d),
                ..
            } if d.is_empty() => bad("response delimiter must not be empty".into()),
            Workload::Custom {
                response: ResponseFrame::Length(0),
                ..
            } => bad("response length must be at least 1".into()),
            _ => Ok(()),
        }
    }
}
