//! The report as text: wrk's summary layout, wrk2's percentile spectrum,
//! and the units both use.

use super::{LatencySummary, Report};
use hdrhistogram::Histogram;
use std::fmt::Write as _;

impl Report {
    /// wrk-style summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let l = &self.latency_us;
        let depth = if self.workload == "http2" {
            format!("{} streams each", self.pipeline)
        } else {
            format!("pipeline {}", self.pipeline)
        };
        let _ = writeln!(
            s,
            "  {} threads and {} connections, {} loop, {depth}, {} workload",
            self.threads, self.connections, self.mode, self.workload
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
            let resumed = if self.tls {
                format!(", {} TLS sessions resumed", self.tls_resumed)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "  {} connections made ({:.0}/s), {} by --reconnect-every{resumed}",
                self.connects, self.connects_per_s, self.reconnects
            );
        }
        // Where the time goes: connect (TCP, TLS), then each request's
        // first and last byte.
        let breakdown = [
            (
                "TCP connect",
                self.tcp_connect_us
                    .as_ref()
                    .filter(|_| self.tls || self.reconnects > 0),
            ),
            ("TLS handshake", self.tls_handshake_us.as_ref()),
            ("Time to first byte", self.time_to_first_byte_us.as_ref()),
            ("Time to last byte", self.time_to_last_byte_us.as_ref()),
        ];
        if breakdown.iter().any(|(_, l)| l.is_some()) {
            let _ = writeln!(s, "  Breakdown");
            for (name, l) in breakdown {
                if let Some(l) = l {
                    row(&mut s, name, l);
                }
            }
        }
        if let Some(m) = &self.message_sizes {
            let _ = writeln!(
                s,
                "  Message sizes ({}): p50 {} p90 {} p99 {} max {} bytes, mean {:.0}",
                m.spec, m.p50, m.p90, m.p99, m.max, m.mean
            );
        }
        let phase = self
            .connect_phase_s
            .map_or("never all".to_string(), |p| format!("all within {p:.2}s"));
        let _ = writeln!(
            s,
            "  Connections: {} of {} up when measuring began ({phase}; not in the measured time)",
            self.connected_at_start, self.connections
        );
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
    use crate::recorder::new_histogram;
    use crate::report::{decode_histogram, encode_histogram};

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
