//! The result of a run: numbers, JSON, and text in wrk/wrk2's layout.

use crate::config::{Config, Mode};
use crate::recorder::{new_histogram, ErrorCounts, Sample};
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
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
}

/// Connections a run replaced: after failures, and on purpose.
pub(crate) struct Churn {
    pub(crate) replaced: u64,
    pub(crate) reconnects: u64,
}

/// Everything a run measured. Serialises to the `--json` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
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
    /// The target was spoken to over TLS.
    #[serde(default)]
    pub tls: bool,
    /// Connections made while measuring (TCP connected and, with TLS,
    /// the handshake done).
    #[serde(default)]
    pub connects: u64,
    /// Connections made per second.
    #[serde(default)]
    pub connects_per_s: f64,
    /// Connect time (TCP connect plus TLS handshake), µs.
    #[serde(default)]
    pub connect_us: Option<LatencySummary>,
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
            target: config.target.to_string(),
            workload: config.workload.name().to_string(),
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
            connects_per_s: total.connects as f64 / secs,
            connect_us: (total.connects > 0).then(|| LatencySummary::of(&total.connect_time)),
            reconnects,
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

    /// wrk-style summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "  {} threads and {} connections, {} loop, pipeline {}, {} workload",
            self.threads, self.connections, self.mode, self.pipeline, self.workload
        );
        let label = if self.mode == "open" {
            "Latency (corrected)"
        } else {
            "Latency"
        };
        let _ = writeln!(
            s,
            "  {label:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
        );
        let row = |s: &mut String, name: &str, l: &LatencySummary| {
            let _ = writeln!(
                s,
                "  {name:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                fmt_us(l.p50),
                fmt_us(l.p90),
                fmt_us(l.p99),
                fmt_us(l.p99_9),
                fmt_us(l.p99_99),
                fmt_us(l.max),
                fmt_us(l.mean)
            );
        };
        row(&mut s, "", l);
        if self.mode == "open" {
            let _ = writeln!(s, "  Latency (uncorrected)");
            row(&mut s, "", &self.uncorrected_latency_us);
        }
        if let Some(lag) = &self.send_lag_us {
            let what = if self.mode == "open" {
                "schedule"
            } else {
                "write"
            };
            let _ = writeln!(s, "  Queueing ({what} to kernel)");
            row(&mut s, "", lag);
        }
        if let Some(c) = self
            .connect_us
            .as_ref()
            .filter(|_| self.tls || self.reconnects > 0)
        {
            let what = if self.tls {
                "TCP + TLS handshake"
            } else {
                "TCP connect"
            };
            let _ = writeln!(s, "  Connect ({what})");
            row(&mut s, "", c);
            let _ = writeln!(
                s,
                "  {} connections made ({:.0}/s), {} by --reconnect-every",
                self.connects, self.connects_per_s, self.reconnects
            );
        }
        let _ = writeln!(
            s,
            "  {} requests in {:.2}s, {} read, {} written",
            self.requests,
            self.duration_s,
            fmt_bytes(self.bytes_in as f64),
            fmt_bytes(self.bytes_out as f64)
        );
        if !self.http_status.is_empty() {
            let codes: Vec<String> = self
                .http_status
                .iter()
                .map(|(c, n)| format!("{c} × {n}"))
                .collect();
            let _ = writeln!(s, "  HTTP status: {}", codes.join(", "));
        }
        let e = &self.errors;
        if e.total() > 0 {
            let _ = writeln!(
                s,
                "  Errors: connect {}, read {}, write {}, timeout {}, protocol {}, status {}",
                e.connect, e.read, e.write, e.timeout, e.protocol, e.status
            );
        }
        let _ = writeln!(s, "Requests/sec: {:>12.2}", self.throughput_rps);
        if let Some(rate) = self.requested_rate {
            let _ = writeln!(
                s,
                "Sent/sec:     {:>12.2}  (requested {:.2}, {:.1}%)",
                self.achieved_rate,
                rate,
                self.achieved_rate / rate * 100.0
            );
        }
        let _ = writeln!(
            s,
            "Transfer/sec: {:>12}",
            fmt_bytes(self.bytes_in as f64 / self.duration_s)
        );
        if !self.loadgen_cpu_percent.is_empty() {
            let cpus: Vec<String> = self
                .loadgen_cpu_percent
                .iter()
                .map(|(_, p)| format!("{p:.0}%"))
                .collect();
            let _ = writeln!(s, "Loadgen CPU:  {} (per thread)", cpus.join(" "));
        }
        for w in &self.warnings {
            let _ = writeln!(s, "WARNING: {w}");
        }
        s
    }

    /// The `--latency` output: wrk2's distribution and spectrum, for the
    /// corrected and (in open loop) uncorrected histograms.
    pub fn latency_report(&self) -> String {
        let mut s = spectrum(&self.latency_histogram(), "Recorded Latency");
        if self.mode == "open" {
            s.push('\n');
            s.push_str(&spectrum(
                &self.uncorrected_histogram(),
                "Uncorrected Latency (measured without taking delayed starts into account)",
            ));
        }
        s
    }
}

/// wrk2's `--latency` block for a histogram of nanoseconds (values printed in ms).
pub fn spectrum(h: &Histogram<u64>, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "  Latency Distribution (HdrHistogram - {title})");
    for q in [0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 0.99999, 1.0] {
        let v = if h.is_empty() {
            0
        } else {
            h.value_at_quantile(q)
        };
        let _ = writeln!(s, " {:7.3}% {:>8}", q * 100.0, fmt_us(v as f64 / 1e3));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "  Detailed Percentile spectrum:");
    let _ = writeln!(
        s,
        "{:>12} {:>12} {:>12} {:>12}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(1) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{:12.3} {:12.6} {:12} {:12.2}",
                    v.value_iterated_to() as f64 / 1e6,
                    q,
                    total,
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(
                    s,
                    "{:12.3} {:12.6} {:12}",
                    v.value_iterated_to() as f64 / 1e6,
                    q,
                    total
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1e6,
        h.stdev() / 1e6
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1e6,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    let _ = writeln!(
        s,
        "----------------------------------------------------------"
    );
    s
}

/// Microseconds in wrk's style: 812.00us, 1.23ms, 2.50s.
pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.2}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_encoding_round_trips() {
        let mut h = new_histogram();
        for v in [1u64, 50, 50, 1200, 99_000] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.max(), h.max());
        assert!(decode_histogram("not base64!").is_err());
    }

    #[test]
    fn spectrum_has_wrk2_layout() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 10_000).unwrap();
        }
        let s = spectrum(&h, "Recorded Latency");
        assert!(s.contains("  Latency Distribution (HdrHistogram - Recorded Latency)"));
        assert!(s.contains(" 50.000%"));
        assert!(s.contains("100.000%"));
        assert!(s.contains("       Value   Percentile   TotalCount 1/(1-Percentile)"));
        assert!(
            s.contains("#[Max     =       10.002, Total count    =         1000]"),
            "{s}"
        );
        let last_row = s
            .lines()
            .rfind(|l| l.trim_start().starts_with(char::is_numeric))
            .unwrap();
        assert!(last_row.contains("1.000000"), "{last_row}");
    }

    #[test]
    fn summaries_keep_sub_microsecond_precision() {
        let mut h = new_histogram();
        for ns in [1_500u64, 1_500, 2_250, 47_123] {
            h.record(ns).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.p50, 1.5, "exact below 2 µs, in µs");
        assert!((s.max - 47.123).abs() < 0.05, "{}", s.max);
        assert_eq!(s.count, 4);
    }

    #[test]
    fn units() {
        assert_eq!(fmt_us(812.0), "812.00us");
        assert_eq!(fmt_us(1234.0), "1.23ms");
        assert_eq!(fmt_us(2_500_000.0), "2.50s");
        assert_eq!(fmt_bytes(2048.0), "2.00KB");
    }
}
