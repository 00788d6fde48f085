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

    /// Appends the load generator's families to `out` (one run, no
    /// scenario label).
    #[cfg(test)]
    pub(crate) fn render(self: &std::sync::Arc<Self>, out: &mut String) {
        render_all(&[(String::new(), self.clone())], out);
    }
}

/// One series of a family: its labels (besides `scenario`) and value.
type Series = Vec<(Vec<(&'static str, String)>, f64)>;

/// Appends the load generator's families to `out`, each scenario's
/// samples under its `scenario` label (none for an unnamed one).
pub(crate) fn render_all(scenarios: &[(String, std::sync::Arc<Live>)], out: &mut String) {
    let guards: Vec<_> = scenarios
        .iter()
        .map(|(name, live)| {
            (
                name.as_str(),
                live.state.lock().unwrap_or_else(|e| e.into_inner()),
            )
        })
        .collect();
    let views: Vec<(&str, &LiveState)> = guards.iter().map(|(n, g)| (*n, &**g)).collect();
    let one = |v: f64| -> Series { vec![(Vec::new(), v)] };
    let mut fam = |name: &str, kind: &str, help: &str, series: &dyn Fn(&LiveState) -> Series| {
        let all: Vec<(&str, Series)> = views.iter().map(|(n, st)| (*n, series(st))).collect();
        if all.iter().all(|(_, s)| s.is_empty()) {
            return;
        }
        family(out, name, kind, help);
        for (scenario, series) in all {
            for (labels, v) in series {
                let mut l: Vec<(&str, &str)> = Vec::new();
                if !scenario.is_empty() {
                    l.push(("scenario", scenario));
                }
                l.extend(labels.iter().map(|(k, v)| (*k, v.as_str())));
                sample(out, name, &l, v);
            }
        }
    };
    fam(
        "shardload_requests_total",
        "counter",
        "Requests sent while measuring.",
        &|st| one(st.total.sent as f64),
    );
    fam(
        "shardload_responses_total",
        "counter",
        "Correct responses.",
        &|st| one(st.total.ok as f64),
    );
    fam(
        "shardload_errors_total",
        "counter",
        "Failed requests (connect: failed connections) by kind.",
        &|st| {
            let e = &st.total.errors;
            [
                ("connect", e.connect),
                ("read", e.read),
                ("write", e.write),
                ("timeout", e.timeout),
                ("protocol", e.protocol),
                ("status", e.status),
            ]
            .into_iter()
            .map(|(kind, n)| (vec![("kind", kind.to_string())], n as f64))
            .collect()
        },
    );
    fam(
        "shardload_unsent_total",
        "counter",
        "Open loop: requests due that were never sent (counted at the end).",
        &|st| one(st.total.unsent as f64),
    );
    fam(
        "shardload_bytes_sent_total",
        "counter",
        "Request bytes sent.",
        &|st| one(st.total.bytes_out as f64),
    );
    fam(
        "shardload_bytes_received_total",
        "counter",
        "Response bytes received.",
        &|st| one(st.total.bytes_in as f64),
    );
    fam(
        "shardload_connections_made_total",
        "counter",
        "Connections established (TCP, and TLS handshake when used).",
        &|st| one(st.total.connects as f64),
    );
    fam(
        "shardload_http_responses_total",
        "counter",
        "HTTP responses by status code.",
        &|st| {
            st.total
                .http_status
                .iter()
                .map(|(code, n)| (vec![("code", code.to_string())], *n as f64))
                .collect()
        },
    );
    fam(
        "shardload_connections_open",
        "gauge",
        "Load connections open now.",
        &|st| one(st.connections as f64),
    );
    fam(
        "shardload_measuring",
        "gauge",
        "1 while measuring, 0 during warm-up.",
        &|st| one(f64::from(u8::from(st.measuring))),
    );
    fam(
        "shardload_elapsed_seconds",
        "gauge",
        "Time since measuring began.",
        &|st| one(st.elapsed_s),
    );
    fam(
        "shardload_target_rate",
        "gauge",
        "Open loop: requests per second the plan asks for now.",
        &|st| st.target_rate.map_or_else(Vec::new, one),
    );
    type Of = fn(&LiveState) -> &Histogram<u64>;
    let histograms: [(&str, &str, Of); 6] = [
        (
            "shardload_latency_seconds",
            "Latency from the intended send time (corrected for coordinated omission in open loop).",
            |st| &st.total.latency,
        ),
        (
            "shardload_service_time_seconds",
            "From the request's bytes reaching the kernel to its response (uncorrected).",
            |st| &st.total.service,
        ),
        (
            "shardload_queueing_seconds",
            "From the intended send time to the request's bytes reaching the kernel.",
            |st| &st.total.send_lag,
        ),
        (
            "shardload_time_to_first_byte_seconds",
            "From the request's bytes reaching the kernel to the first byte of its response (to the last byte: shardload_service_time_seconds).",
            |st| &st.total.ttfb,
        ),
        (
            "shardload_tcp_connect_seconds",
            "TCP connect of each connection made.",
            |st| &st.total.tcp_connect,
        ),
        (
            "shardload_tls_handshake_seconds",
            "TLS handshake of each connection made (TLS targets).",
            |st| &st.total.tls_handshake,
        ),
    ];
    for (name, help, of) in histograms {
        family(out, name, "histogram", help);
        for (scenario, st) in &views {
            histogram(out, name, scenario, of(st));
        }
    }
}

/// A histogram of nanoseconds as a Prometheus histogram of seconds (one
/// scenario's samples).
fn histogram(out: &mut String, name: &str, scenario: &str, h: &Histogram<u64>) {
    fn with<'a>(
        scenario: &'a str,
        extra: Option<(&'static str, &'a str)>,
    ) -> Vec<(&'a str, &'a str)> {
        let mut l = Vec::new();
        if !scenario.is_empty() {
            l.push(("scenario", scenario));
        }
        l.extend(extra);
        l
    }
    for le in BUCKETS {
        let ns = (le * 1e9) as u64;
        let n = if h.is_empty() {
            0
        } else {
            h.count_between(0, ns)
        };
        let le = le.to_string();
        sample(
            out,
            &format!("{name}_bucket"),
            &with(scenario, Some(("le", &le))),
            n as f64,
        );
    }
    let count = h.len();
    sample(
        out,
        &format!("{name}_bucket"),
        &with(scenario, Some(("le", "+Inf"))),
        count as f64,
    );
    let sum = if count == 0 {
        0.0
    } else {
        h.mean() * count as f64 / 1e9
    };
    sample(out, &format!("{name}_sum"), &with(scenario, None), sum);
    sample(
        out,
        &format!("{name}_count"),
        &with(scenario, None),
        count as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let live = std::sync::Arc::new(Live::default());
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
