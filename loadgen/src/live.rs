//! Live `/metrics` of a run (`--metrics ADDR`): the load generator's own
//! counts and latency histograms in the Prometheus text format, appended to
//! the framework's per-shard families of the load generator's own loops
//! (so a dashboard sees a saturated client next to the server it drives).
//!
//! Same conventions as the server's: text format 0.0.4, counters ending in
//! `_total`, seconds, histograms with cumulative `le` buckets (so several
//! segments' scrapes add up, which quantiles would not). Updated once per
//! reporting interval by the engine.

use crate::recorder::Sample;
use hdrhistogram::Histogram;
use shardloop::metrics::text::{family, sample};
use std::sync::Mutex;

/// Bucket bounds of the latency histograms, seconds.
const BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// What the engine publishes after each interval.
#[derive(Default)]
pub(crate) struct LiveState {
    /// Everything measured so far.
    pub(crate) total: Sample,
    /// False during warm-up / ramp-up.
    pub(crate) measuring: bool,
    /// Connections open now.
    pub(crate) connections: usize,
    /// Open loop: the rate the plan asks for now.
    pub(crate) target_rate: Option<f64>,
    /// Time since measuring began, seconds.
    pub(crate) elapsed_s: f64,
}

/// The shared snapshot a scrape renders.
#[derive(Default)]
pub(crate) struct Live {
    state: Mutex<LiveState>,
}

impl Live {
    /// Publishes a new snapshot (`total` is cloned: scrapes never wait on
    /// the merge).
    pub(crate) fn publish(&self, update: LiveState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = update;
    }

    /// Appends the load generator's families to `out`.
    pub(crate) fn render(&self, out: &mut String) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let t = &st.total;
        counter(
            out,
            "shardload_requests_total",
            "Requests sent while measuring.",
            t.sent,
        );
        counter(out, "shardload_responses_total", "Correct responses.", t.ok);
        family(
            out,
            "shardload_errors_total",
            "counter",
            "Failed requests (connect: failed connections) by kind.",
        );
        let e = &t.errors;
        for (kind, n) in [
            ("connect", e.connect),
            ("read", e.read),
            ("write", e.write),
            ("timeout", e.timeout),
            ("protocol", e.protocol),
            ("status", e.status),
        ] {
            sample(out, "shardload_errors_total", &[("kind", kind)], n as f64);
        }
        counter(
            out,
            "shardload_unsent_total",
            "Open loop: requests due that were never sent (counted at the end).",
            t.unsent,
        );
        counter(
            out,
            "shardload_bytes_sent_total",
            "Request bytes sent.",
            t.bytes_out,
        );
        counter(
            out,
            "shardload_bytes_received_total",
            "Response bytes received.",
            t.bytes_in,
        );
        counter(
            out,
            "shardload_connections_made_total",
            "Connections established (TCP, and TLS handshake when used).",
            t.connects,
        );
        if !t.http_status.is_empty() {
            family(
                out,
                "shardload_http_responses_total",
                "counter",
                "HTTP responses by status code.",
            );
            for (code, n) in &t.http_status {
                sample(
                    out,
                    "shardload_http_responses_total",
                    &[("code", &code.to_string())],
                    *n as f64,
                );
            }
        }
        gauge(
            out,
            "shardload_connections_open",
            "Load connections open now.",
            st.connections as f64,
        );
        gauge(
            out,
            "shardload_measuring",
            "1 while measuring, 0 during warm-up.",
            f64::from(u8::from(st.measuring)),
        );
        gauge(
            out,
            "shardload_elapsed_seconds",
            "Time since measuring began.",
            st.elapsed_s,
        );
        if let Some(rate) = st.target_rate {
            gauge(
                out,
                "shardload_target_rate",
                "Open loop: requests per second the plan asks for now.",
                rate,
            );
        }
        histogram(
            out,
            "shardload_latency_seconds",
            "Latency from the intended send time (corrected for coordinated omission in open loop).",
            &t.latency,
        );
        histogram(
            out,
            "shardload_service_time_seconds",
            "From the request's bytes reaching the kernel to its response (uncorrected).",
            &t.service,
        );
        histogram(
            out,
            "shardload_queueing_seconds",
            "From the intended send time to the request's bytes reaching the kernel.",
            &t.send_lag,
        );
    }
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    family(out, name, "counter", help);
    sample(out, name, &[], v as f64);
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    family(out, name, "gauge", help);
    sample(out, name, &[], v);
}

/// A histogram of nanoseconds as a Prometheus histogram of seconds.
fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram<u64>) {
    family(out, name, "histogram", help);
    for le in BUCKETS {
        let ns = (le * 1e9) as u64;
        let n = if h.is_empty() {
            0
        } else {
            h.count_between(0, ns)
        };
        sample(
            out,
            &format!("{name}_bucket"),
            &[("le", &le.to_string())],
            n as f64,
        );
    }
    let count = h.len();
    sample(
        out,
        &format!("{name}_bucket"),
        &[("le", "+Inf")],
        count as f64,
    );
    let sum = if count == 0 {
        0.0
    } else {
        h.mean() * count as f64 / 1e9
    };
    sample(out, &format!("{name}_sum"), &[], sum);
    sample(out, &format!("{name}_count"), &[], count as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let live = Live::default();
        let mut total = Sample::default();
        for ns in [30_000u64, 80_000, 2_000_000, 20_000_000_000] {
            total.latency.record(ns).unwrap();
        }
        total.sent = 4;
        total.ok = 4;
        live.publish(LiveState {
            total,
            measuring: true,
            connections: 3,
            target_rate: Some(1000.0),
            elapsed_s: 1.5,
        });
        let mut out = String::new();
        live.render(&mut out);
        let m = shardloop_devtools::prom::parse_exposition(&out);
        let b = |le: &str| m[&format!("shardload_latency_seconds_bucket{{le=\"{le}\"}}")];
        assert_eq!(b("0.00005"), 1.0);
        assert_eq!(b("0.0001"), 2.0);
        assert_eq!(b("0.0025"), 3.0);
        assert_eq!(b("10"), 3.0, "20 s is past the last bound");
        assert_eq!(b("+Inf"), 4.0);
        assert_eq!(m["shardload_latency_seconds_count"], 4.0);
        let sum = m["shardload_latency_seconds_sum"];
        assert!((sum - 20.00211).abs() < 0.05, "{sum}");
        assert_eq!(m["shardload_requests_total"], 4.0);
        assert_eq!(m["shardload_target_rate"], 1000.0);
        assert_eq!(m["shardload_connections_open"], 3.0);
        assert_eq!(m["shardload_errors_total{kind=\"timeout\"}"], 0.0);
    }
}
