//! What each loadgen shard records: latency histograms and counts. One
//! `Recorder` per shard (a shard-local service), merged at the end.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency values are recorded in nanoseconds, 1 ns .. 1 h, 3 significant
/// digits (exact below 2 µs, within 0.1% above).
pub const HIGHEST_NS: u64 = 3_600_000_000_000;

/// New empty histogram with the loadgen's bounds (nanoseconds).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("static histogram bounds are valid")
}

/// A duration in whole nanoseconds for a histogram (at least 1, saturating).
pub(crate) fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Why a request did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The connection could not be established.
    Connect,
    /// The connection broke while reading (reset, closed by the server).
    Read,
    /// The connection broke while writing.
    Write,
    /// No response within the timeout.
    Timeout,
    /// A wrong or malformed response.
    Protocol,
    /// A well-formed error response (HTTP non-2xx, RESP error reply).
    Status,
}

/// Error counts by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Connections that could not be established.
    pub connect: u64,
    /// Requests lost to a broken connection (read side).
    pub read: u64,
    /// Requests lost to a broken connection (write side).
    pub write: u64,
    /// Requests that timed out.
    pub timeout: u64,
    /// Wrong or malformed responses.
    pub protocol: u64,
    /// Error responses (HTTP non-2xx, RESP errors).
    pub status: u64,
}

impl ErrorCounts {
    /// Adds one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind, n: u64) {
        match kind {
            ErrorKind::Connect => self.connect += n,
            ErrorKind::Read => self.read += n,
            ErrorKind::Write => self.write += n,
            ErrorKind::Timeout => self.timeout += n,
            ErrorKind::Protocol => self.protocol += n,
            ErrorKind::Status => self.status += n,
        }
    }

    /// Errors that concern requests (all but connect errors, which concern connections).
    pub fn request_errors(&self) -> u64 {
        self.read + self.write + self.timeout + self.protocol + self.status
    }

    /// Sum of all kinds.
    pub fn total(&self) -> u64 {
        self.connect + self.request_errors()
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, o: &ErrorCounts) {
        self.connect += o.connect;
        self.read += o.read;
        self.write += o.write;
        self.timeout += o.timeout;
        self.protocol += o.protocol;
        self.status += o.status;
    }
}

/// Counts and histograms of one shard over some span of time.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Requests sent (that count: sent after the warm-up).
    pub sent: u64,
    /// Requests answered correctly.
    pub ok: u64,
    /// Failures.
    pub errors: ErrorCounts,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Latency from the intended send time (equals service time in closed
    /// loop), ns.
    pub latency: Histogram<u64>,
    /// Service time: from the request's bytes reaching the kernel to the
    /// response, ns.
    pub service: Histogram<u64>,
    /// Queueing delay: from the intended send time (open loop: the
    /// schedule; closed loop: the write) to the bytes reaching the kernel, ns.
    pub send_lag: Histogram<u64>,
    /// Connections made (TCP connected and, with TLS, handshake done).
    pub connects: u64,
    /// Of those, TLS handshakes that resumed an earlier session.
    pub tls_resumed: u64,
    /// Open loop: requests due within the run but never sent.
    pub unsent: u64,
    /// HTTP responses by status code.
    pub http_status: std::collections::BTreeMap<u16, u64>,
    /// Time from starting a connection to its being usable (TCP connect
    /// plus TLS handshake), ns.
    pub connect_time: Histogram<u64>,
    /// The TCP part of it: until the socket connected, ns.
    pub tcp_connect: Histogram<u64>,
    /// The TLS part of it: the handshake, ns.
    pub tls_handshake: Histogram<u64>,
    /// Time to first byte: from the request's bytes reaching the kernel
    /// to the first byte of its response, ns (time to last byte is
    /// `service`).
    pub ttfb: Histogram<u64>,
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            sent: 0,
            ok: 0,
            errors: ErrorCounts::default(),
            bytes_in: 0,
            bytes_out: 0,
            latency: new_histogram(),
            service: new_histogram(),
            send_lag: new_histogram(),
            connects: 0,
            tls_resumed: 0,
            unsent: 0,
            http_status: Default::default(),
            connect_time: new_histogram(),
            tcp_connect: new_histogram(),
            tls_handshake: new_histogram(),
            ttfb: new_histogram(),
        }
    }
}

impl Sample {
    /// Adds another sample into this one.
    pub fn merge(&mut self, o: &Sample) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.errors.merge(&o.errors);
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        // Same bounds everywhere, so addition cannot fail.
        self.latency.add(&o.latency).expect("same histogram bounds");
        self.service.add(&o.service).expect("same histogram bounds");
        self.send_lag
            .add(&o.send_lag)
            .expect("same histogram bounds");
        self.connects += o.connects;
        self.tls_resumed += o.tls_resumed;
        self.unsent += o.unsent;
        for (code, n) in &o.http_status {
            *self.http_status.entry(*code).or_insert(0) += n;
        }
        for (mine, theirs) in [
            (&mut self.connect_time, &o.connect_time),
            (&mut self.tcp_connect, &o.tcp_connect),
            (&mut self.tls_handshake, &o.tls_handshake),
            (&mut self.ttfb, &o.ttfb),
        ] {
            mine.add(theirs).expect("same histogram bounds");
        }
    }

    pub(crate) fn record_latency(&mut self, latency_ns: u64, service_ns: u64) {
        self.latency.saturating_record(latency_ns.max(1));
        self.service.saturating_record(service_ns.max(1));
    }
}

/// A shard's recorders, one per scenario of the run (a shard-local service).
#[derive(Default)]
pub(crate) struct Recorders(Vec<Recorder>);

/// The shard's recorder of scenario `scenario`.
pub(crate) fn recorder(ctx: &mut shardloop::ShardCtx, scenario: usize) -> &Recorder {
    let all = &mut ctx.service::<Recorders>().0;
    if all.len() <= scenario {
        all.resize_with(scenario + 1, Recorder::default);
    }
    &all[scenario]
}

/// A shard's recorder: a running total and the current interval. A
/// handle: a clone records into the same books, for the tasks of the shard
/// (an HTTP/2 connection's streams) that have no `ShardCtx` to look it up.
#[derive(Default, Clone)]
pub(crate) struct Recorder(std::rc::Rc<std::cell::RefCell<Books>>);

#[derive(Default)]
pub(crate) struct Books {
    pub(crate) total: Sample,
    pub(crate) interval: Sample,
}

impl Recorder {
    pub(crate) fn with<F: FnMut(&mut Sample)>(&self, mut f: F) {
        let mut books = self.0.borrow_mut();
        f(&mut books.total);
        f(&mut books.interval);
    }

    pub(crate) fn take_interval(&self) -> Sample {
        std::mem::take(&mut self.0.borrow_mut().interval)
    }
}
