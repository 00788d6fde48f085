//! The result of a run: numbers, JSON, and text in wrk/wrk2's layout.

use crate::config::{Config, Mode};
use crate::recorder::{new_histogram, ErrorCounts, Sample};
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// Percentiles of one latency distribution, in microseconds (fractional:
/// histograms hold nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest.
    pub max: f64,
}

impl LatencySummary {
    /// Summarises a histogram of nanoseconds, in microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1e3;
        LatencySummary {
            count: h.len(),
            mean: h.mean() / 1e3,
            stdev: h.stdev() / 1e3,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            p99_99: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
        }
    }
}

fn unit_us() -> String {
    "us".to_string()
}

/// A histogram of microseconds (older reports and logs) in nanoseconds.
pub fn micros_to_nanos(h: &Histogram<u64>) -> Histogram<u64> {
    let mut out = new_histogram();
    for v in h.iter_recorded() {
        let ns = v.value_iterated_to().saturating_mul(1000).max(1);
        out.saturating_record_n(ns, v.count_at_value());
    }
    out
}

/// One interval of the run (for the interval log).
#[derive(Debug, Clone)]
pub struct Interval {
    /// Start, relative to when measuring began.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// Latency (corrected in open loop), µs.
    pub latency: Histogram<u64>,
    /// Service time, µs.
    pub service: Histogram<u64>,
    /// Requests sent in it.
    pub sent: u64,
    /// Correct responses.
    pub ok: u64,
    /// Failed requests and connections.
    pub errors: u64,
}

/// Connections a run replaced: after failures, and on purpose.
pub(crate) struct Churn {
    /// Connections established when measuring began.
    pub(crate) connected_at_start: usize,
    /// How long until every connection had connected or failed.
    pub(crate) connect_phase: Option<Duration>,
    pub(crate) replaced: u64,
    pub(crate) reconnects: u64,
}

/// A run stopped early because an objective failed (`abort_on_fail`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aborted {
    /// The objective and what was measured (its FAIL line).
    pub slo: String,
    /// Measured seconds of its scenario when it failed.
    pub after_s: f64,
    /// The scenario whose objective failed.
    pub scenario: String,
}

/// Everything a run measured. Serialises to the `--json` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The scenario this is (a scenarios file's run), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The scenario's tags.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// The run stopped early: which objective failed, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<Aborted>,
    /// Target address.
    pub target: String,
    /// Workload name.
    pub workload: String,
    /// "closed" or "open".
    pub mode: String,
    /// Loadgen threads.
    pub threads: usize,
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection (at most, in open loop).
    pub pipeline: usize,
    /// Requested total rate (open loop).
    pub requested_rate: Option<f64>,
    /// Measured seconds.
    pub duration_s: f64,
    /// Requests sent after warm-up.
    pub requests: u64,
    /// Correct responses.
    pub responses_ok: u64,
    /// Failures by kind.
    pub errors: ErrorCounts,
    /// Correct responses per second.
    pub throughput_rps: f64,
    /// Requests sent per second (compare with `requested_rate`).
    pub achieved_rate: f64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Latency from the intended send time (corrected; equals service time
    /// in closed loop), µs.
    pub latency_us: LatencySummary,
    /// Service time from the request's bytes reaching the kernel
    /// (uncorrected), µs.
    pub uncorrected_latency_us: LatencySummary,
    /// Queueing delay: from the intended send time (open loop: the
    /// schedule; closed loop: the write) to the bytes reaching the kernel, µs.
    pub send_lag_us: Option<LatencySummary>,
    /// CPU use of each loadgen thread, percent of one core.
    pub loadgen_cpu_percent: Vec<(String, f64)>,
    /// Connections replaced after a timeout or a broken connection.
    pub connections_replaced: u64,
    /// Connections established when measuring began.
    #[serde(default)]
    pub connected_at_start: usize,
    /// Seconds from the start until every connection had connected or
    /// failed (the connect phase); `None` if that never happened during the
    /// run. It is not part of `duration_s`.
    #[serde(default)]
    pub connect_phase_s: Option<f64>,
    /// The target was spoken to over TLS.
    #[serde(default)]
    pub tls: bool,
    /// Connections made while measuring (TCP connected and, with TLS,
    /// the handshake done).
    #[serde(default)]
    pub connects: u64,
    /// Of those, TLS handshakes that resumed a session (`--tls-resume`).
    #[serde(default)]
    pub tls_resumed: u64,
    /// Connections made per second.
    #[serde(default)]
    pub connects_per_s: f64,
    /// Connect time (TCP connect plus TLS handshake), µs.
    #[serde(default)]
    pub connect_us: Option<LatencySummary>,
    /// The TCP part of connect time, µs.
    #[serde(default)]
    pub tcp_connect_us: Option<LatencySummary>,
    /// The TLS handshake part of connect time, µs (TLS targets).
    #[serde(default)]
    pub tls_handshake_us: Option<LatencySummary>,
    /// Time to first byte: from the request's bytes reaching the kernel to
    /// the first byte of its response, µs.
    #[serde(default)]
    pub time_to_first_byte_us: Option<LatencySummary>,
    /// Time to last byte: to the response's last byte, µs (the
    /// uncorrected service time, named as the breakdown names it).
    #[serde(default)]
    pub time_to_last_byte_us: Option<LatencySummary>,
    /// The messages' sizes, when drawn from a distribution (`--sizes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_sizes: Option<crate::template::SizeSummary>,
    /// Connections closed on purpose by `--reconnect-every` and replaced.
    #[serde(default)]
    pub reconnects: u64,
    /// Open loop: requests whose intended send time fell inside the run but
    /// that were never sent (the connection was at its in-flight limit or
    /// gone), so no latency was recorded for them.
    #[serde(default)]
    pub unsent: u64,
    /// Requests sent but neither answered nor failed when the run ended
    /// (still in flight after the drain).
    #[serde(default)]
    pub unanswered: u64,
    /// HTTP responses by status code.
    #[serde(default)]
    pub http_status: std::collections::BTreeMap<u16, u64>,
    /// The objectives (`--slo`) and whether they held.
    #[serde(default)]
    pub slo: Vec<crate::slo::SloResult>,
    /// Things that make the numbers less trustworthy.
    pub warnings: Vec<String>,
    /// Wall-clock start of measuring, seconds since the epoch.
    pub start_time_s: f64,
    /// Unit of the histograms' values: "ns" (reports from before
    /// nanosecond recording hold "us" and are scaled when merged).
    #[serde(default = "unit_us")]
    pub histogram_unit: String,
    /// Corrected latency histogram, HdrHistogram V2 deflate, base64.
    pub histogram: String,
    /// Uncorrected histogram, same encoding.
    pub uncorrected_histogram: String,
    /// Interval histograms (for `--hlog`; not serialised).
    #[serde(skip)]
    pub intervals: Vec<Interval>,
}

/// Writes the runs' intervals as CSV, one row per interval per report
/// (`--csv`), in time order: the scenario (empty for a plain run), the
/// interval's start (seconds since the epoch, and since its run's
/// measuring began), its length, counts, rate and corrected latency
/// percentiles in microseconds.
pub fn write_csv<W: std::io::Write>(mut out: W, reports: &[&Report]) -> std::io::Result<()> {
    writeln!(
        out,
        "scenario,time_s,elapsed_s,length_s,requests,responses,errors,rps,p50_us,p90_us,p99_us,p99_9_us,max_us"
    )?;
    let mut rows: Vec<(f64, String)> = Vec::new();
    for r in reports {
        let scenario = r.scenario.as_deref().unwrap_or("");
        for iv in &r.intervals {
            let l = LatencySummary::of(&iv.latency);
            let (start, len) = (iv.start.as_secs_f64(), iv.length.as_secs_f64());
            let time = r.start_time_s + start;
            rows.push((
                time,
                format!(
                    "{scenario},{time:.3},{start:.3},{len:.3},{},{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1}",
                    iv.sent,
                    iv.ok,
                    iv.errors,
                    iv.ok as f64 / len.max(1e-9),
                    l.p50,
                    l.p90,
                    l.p99,
                    l.p99_9,
                    l.max
                ),
            ));
        }
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, row) in rows {
        writeln!(out, "{row}")?;
    }
    out.flush()
}

/// Encodes a histogram as base64 V2-deflate (the interval-log encoding).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serialising to memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Decodes [`encode_histogram`]'s output.
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("bad base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("bad histogram: {e:?}"))
}

impl Report {
    pub(crate) fn build(
        config: &Config,
        total: Sample,
        measured: Duration,
        cpu: Vec<(String, f64)>,
        intervals: Vec<Interval>,
        start: SystemTime,
        churn: Churn,
    ) -> Report {
        let Churn {
            replaced,
            reconnects,
            connected_at_start,
            connect_phase,
        } = churn;
        let secs = measured.as_secs_f64().max(1e-9);
        let (mode, pipeline, requested_rate) = match config.mode {
            Mode::Closed { pipeline } => ("closed", pipeline, None),
            Mode::Open {
                rate,
                max_in_flight,
            } => {
                // With stages: the plan's average over the run.
                let avg = config.plan.as_ref().map_or(rate, |p| {
                    p.cumulative(p.duration().as_secs_f64()) / p.duration().as_secs_f64()
                });
                ("open", max_in_flight, Some(avg))
            }
        };
        let mut r = Report {
            scenario: None,
            tags: Default::default(),
            aborted: None,
            target: config.target.to_string(),
            workload: if config.http2 {
                "http2".to_string()
            } else {
                config.workload.name().to_string()
            },
            mode: mode.to_string(),
            threads: config.threads,
            connections: config.connections,
            pipeline,
            requested_rate,
            duration_s: secs,
            requests: total.sent,
            responses_ok: total.ok,
            errors: total.errors.clone(),
            throughput_rps: total.ok as f64 / secs,
            achieved_rate: total.sent as f64 / secs,
            bytes_in: total.bytes_in,
            bytes_out: total.bytes_out,
            latency_us: LatencySummary::of(&total.latency),
            uncorrected_latency_us: LatencySummary::of(&total.service),
            send_lag_us: (!total.send_lag.is_empty()).then(|| LatencySummary::of(&total.send_lag)),
            loadgen_cpu_percent: cpu,
            connections_replaced: replaced,
            tls: config.tls.is_some(),
            connects: total.connects,
            tls_resumed: total.tls_resumed,
            connects_per_s: total.connects as f64 / secs,
            connect_us: (total.connects > 0).then(|| LatencySummary::of(&total.connect_time)),
            message_sizes: config.sizes.as_ref().map(|s| s.summary()),
            tcp_connect_us: (total.connects > 0).then(|| LatencySummary::of(&total.tcp_connect)),
            tls_handshake_us: (!total.tls_handshake.is_empty())
                .then(|| LatencySummary::of(&total.tls_handshake)),
            time_to_first_byte_us: (!total.ttfb.is_empty())
                .then(|| LatencySummary::of(&total.ttfb)),
            time_to_last_byte_us: (!total.service.is_empty())
                .then(|| LatencySummary::of(&total.service)),
            reconnects,
            connected_at_start,
            connect_phase_s: connect_phase.map(|d| d.as_secs_f64()),
            unsent: total.unsent,
            unanswered: total
                .sent
                .saturating_sub(total.ok + total.errors.request_errors()),
            http_status: total.http_status.clone(),
            slo: Vec::new(),
            warnings: Vec::new(),
            start_time_s: start
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            histogram_unit: "ns".to_string(),
            histogram: encode_histogram(&total.latency),
            uncorrected_histogram: encode_histogram(&total.service),
            intervals,
        };
        r.slo = config.slos.iter().map(|s| s.check(&r)).collect();
        r.warnings = r.assess(config);
        r
    }

    /// True when an objective (`--slo`) did not hold.
    pub fn slo_failed(&self) -> bool {
        self.slo.iter().any(|s| !s.pass)
    }

    /// Looks for signs that the load generator, not the server, limited the run.
    fn assess(&self, config: &Config) -> Vec<String> {
        let mut w = Vec::new();
        if self.connected_at_start < self.connections {
            let why = match (self.mode.as_str(), self.connect_phase_s) {
                ("closed", Some(_)) => "the others failed to connect: the load was lower than asked",
                ("closed", None) => {
                    "the others were still connecting after the connect timeout: the load was lower than asked"
                }
                _ => "the open-loop plan starts at once: raise --warmup to measure with every connection up",
            };
            w.push(format!(
                "only {} of {} connections were up when measuring began; {why}",
                self.connected_at_start, self.connections
            ));
        }
        for (name, pct) in &self.loadgen_cpu_percent {
            if *pct >= 90.0 {
                w.push(format!(
                    "loadgen thread {name} used {pct:.0}% of a core: the load generator may be the bottleneck (add threads, or give it more cores)"
                ));
            }
        }
        if let Some(rate) = self.requested_rate {
            if self.achieved_rate < rate * 0.95 {
                w.push(format!(
                    "achieved {:.0} req/s of the {:.0} requested ({:.0}%): the server or the loadgen could not keep up",
                    self.achieved_rate,
                    rate,
                    self.achieved_rate / rate * 100.0
                ));
            }
            // Lag matters relative to what is measured: a tenth of the
            // tightest latency objective, or else one send interval of a
            // connection (at least the 1 ms timer tick).
            let interval_us = self.connections as f64 / rate * 1e6;
            let threshold = config
                .slos
                .iter()
                .filter_map(|s| s.latency_limit_us())
                .map(|l| l / 10.0)
                .reduce(f64::min)
                .unwrap_or(interval_us)
                .max(1000.0);
            if let Some(lag) = &self.send_lag_us {
                if lag.p99 > threshold {
                    w.push(format!(
                        "sends fell behind schedule: p99 lag {} over the {} this run can tolerate (corrected latency includes it)",
                        fmt_us(lag.p99),
                        fmt_us(threshold)
                    ));
                }
            }
            if self.unsent > 0 {
                w.push(format!(
                    "{} requests were due but never sent (connections at their in-flight limit): add connections or pipeline",
                    self.unsent
                ));
            }
        }
        if self.unanswered > 0 {
            w.push(format!(
                "{} requests were still unanswered when the run ended",
                self.unanswered
            ));
        }
        if self.connections_replaced > 0 {
            w.push(format!(
                "{} connections broke or timed out and were replaced",
                self.connections_replaced
            ));
        }
        w
    }

    /// The corrected latency histogram, ns.
    /// Several reports' requests together (objectives over several
    /// scenarios): counts and rates summed, latency histograms merged, the
    /// longest duration; `None` for no report.
    pub fn combine(reports: &[&Report]) -> Option<Report> {
        let (first, rest) = reports.split_first()?;
        let mut r = (*first).clone();
        let mut latency = first.latency_histogram();
        for o in rest {
            r.requests += o.requests;
            r.responses_ok += o.responses_ok;
            r.errors.merge(&o.errors);
            r.throughput_rps += o.throughput_rps;
            r.achieved_rate += o.achieved_rate;
            r.bytes_in += o.bytes_in;
            r.bytes_out += o.bytes_out;
            r.connections += o.connections;
            r.duration_s = r.duration_s.max(o.duration_s);
            latency
                .add(o.latency_histogram())
                .expect("same histogram bounds");
        }
        r.latency_us = LatencySummary::of(&latency);
        r.histogram = encode_histogram(&latency);
        r.histogram_unit = "ns".into();
        r.scenario = None;
        r.tags.clear();
        r.intervals.clear();
        Some(r)
    }

    /// The corrected latency histogram, in nanoseconds.
    pub fn latency_histogram(&self) -> Histogram<u64> {
        self.in_nanos(decode_histogram(&self.histogram).unwrap_or_else(|_| new_histogram()))
    }

    fn in_nanos(&self, h: Histogram<u64>) -> Histogram<u64> {
        if self.histogram_unit == "us" {
            micros_to_nanos(&h)
        } else {
            h
        }
    }

    /// The uncorrected (service time) histogram.
    pub fn uncorrected_histogram(&self) -> Histogram<u64> {
        self.in_nanos(
            decode_histogram(&self.uncorrected_histogram).unwrap_or_else(|_| new_histogram()),
        )
    }
}

mod text;

pub use text::{fmt_us, spectrum};
