//! Live advice: scrape a running server's `/metrics` twice, a window
//! apart, and recommend a shard count for the traffic it actually serves:
//! per-shard utilisation (busy / (busy + idle)) and its spread, imbalance
//! (max / mean), stalls, and the shard count that would bring the mean
//! utilisation to the target (utilisation scaling: the same work spread over
//! a different number of equal shards).

use crate::TuneError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// One scrape: `shard` → metric name → value (summed over other labels).
type Scrape = BTreeMap<usize, BTreeMap<String, f64>>;

/// Parses a Prometheus exposition (strictly: a malformed scrape is an
/// error, not a silent gap), keeping samples with a `shard` label.
pub fn parse_metrics(body: &str) -> Result<Scrape, TuneError> {
    let samples = shardloop::metrics::text::parse(body)
        .map_err(|e| TuneError::Config(format!("the server's /metrics: {e}")))?;
    let mut out = Scrape::new();
    for sample in samples {
        let Some(shard) = sample.label("shard").and_then(|s| s.parse::<usize>().ok()) else {
            continue;
        };
        *out.entry(shard)
            .or_default()
            .entry(sample.name)
            .or_default() += sample.value;
    }
    Ok(out)
}

/// GETs `http://addr/metrics` (a plain HTTP/1.1 request; no extra client).
pub fn scrape(url: &str) -> Result<String, TuneError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| TuneError::Config(format!("--metrics must be an http:// URL, got {url}")))?;
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (rest, "/metrics".to_string()),
    };
    let addr: SocketAddr = host
        .to_socket_addrs()
        .map_err(|e| TuneError::Config(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| TuneError::Config(format!("no address for {host}")))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| TuneError::Config(format!("{url}: not an HTTP response")))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or("");
        return Err(TuneError::Config(format!("{url}: {status}")));
    }
    Ok(body.to_string())
}

/// One shard's figures over the window.
#[derive(Debug, Clone, Serialize)]
pub struct ShardLoad {
    pub shard: usize,
    /// The utilisation the advice uses: `cpu_utilisation` when the server
    /// exports its shards' thread CPU time, else `busy_utilisation`.
    pub utilisation: f64,
    /// busy / (busy + idle) over the window (wall time: a preempted shard
    /// counts as busy).
    pub busy_utilisation: f64,
    /// The shard thread's CPU seconds per second over the window, if the
    /// server exports them (`shardloop_shard_cpu_seconds_total`).
    pub cpu_utilisation: Option<f64>,
    pub bytes_per_s: f64,
    pub accepts_per_s: f64,
    pub stalls: f64,
    pub connections_open: f64,
}

/// The advice and the figures it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub window_s: f64,
    pub target_utilisation: f64,
    pub shards: Vec<ShardLoad>,
    pub mean_utilisation: f64,
    pub max_utilisation: f64,
    /// max / mean utilisation (1.0: perfectly even).
    pub imbalance: f64,
    /// Which figure `utilisation` is: "thread CPU time" or "busy time".
    pub utilisation_source: String,
    pub stalls: f64,
    /// The shard count that brings mean utilisation to the target.
    pub recommended_shards: usize,
    pub reasons: Vec<String>,
}

/// Computes the advice from two scrapes `window` apart.
pub fn advise(
    before: &Scrape,
    after: &Scrape,
    window: Duration,
    target: f64,
    cores: usize,
) -> Advice {
    let delta = |shard: usize, name: &str| {
        let a = after
            .get(&shard)
            .and_then(|m| m.get(name))
            .copied()
            .unwrap_or(0.0);
        let b = before
            .get(&shard)
            .and_then(|m| m.get(name))
            .copied()
            .unwrap_or(0.0);
        (a - b).max(0.0)
    };
    let secs = window.as_secs_f64().max(1e-9);
    let shards: Vec<ShardLoad> = after
        .keys()
        .map(|&s| {
            let busy = delta(s, "shardloop_shard_busy_seconds_total");
            let idle = delta(s, "shardloop_shard_idle_seconds_total");
            let busy_utilisation = if busy + idle > 0.0 {
                busy / (busy + idle)
            } else {
                0.0
            };
            let exported = after
                .get(&s)
                .is_some_and(|m| m.contains_key("shardloop_shard_cpu_seconds_total"));
            let cpu_utilisation =
                exported.then(|| (delta(s, "shardloop_shard_cpu_seconds_total") / secs).min(1.0));
            ShardLoad {
                shard: s,
                // CPU time is the work itself; busy wall time also counts
                // time the shard was preempted or throttled.
                utilisation: cpu_utilisation.unwrap_or(busy_utilisation),
                busy_utilisation,
                cpu_utilisation,
                bytes_per_s: (delta(s, "shardloop_bytes_received_total")
                    + delta(s, "shardloop_bytes_sent_total"))
                    / secs,
                accepts_per_s: delta(s, "shardloop_connections_accepted_total") / secs,
                stalls: delta(s, "shardloop_stalls_total"),
                connections_open: after
                    .get(&s)
                    .and_then(|m| m.get("shardloop_connections_open"))
                    .copied()
                    .unwrap_or(0.0),
            }
        })
        .collect();
    let n = shards.len().max(1);
    let total: f64 = shards.iter().map(|s| s.utilisation).sum();
    let mean = total / n as f64;
    let max = shards.iter().map(|s| s.utilisation).fold(0.0, f64::max);
    let imbalance = if mean > 0.0 { max / mean } else { 1.0 };
    let stalls: f64 = shards.iter().map(|s| s.stalls).sum();
    // The work of `total` busy shard-seconds per second, at `target` each.
    // (Less a hair: 1.4 shard-seconds at a 0.7 target is 2 shards, not the
    // 3 that float rounding to 2.0000000001 would make it.)
    let mut recommended = (total / target - 1e-9).ceil().max(1.0) as usize;
    let cpu_based = shards.iter().all(|s| s.cpu_utilisation.is_some()) && !shards.is_empty();
    let source = if cpu_based {
        "thread CPU time"
    } else {
        "busy time"
    };
    let mut reasons = vec![format!(
        "{n} shards are {:.0} % utilised on average by {source} (max {:.0} %): {total:.2} shard-seconds of work per second; at the {:.0} % target that needs {recommended} shard(s)",
        mean * 100.0,
        max * 100.0,
        target * 100.0
    )];
    for s in &shards {
        let Some(cpu) = s.cpu_utilisation else {
            continue;
        };
        let (busy, hi) = (s.busy_utilisation, s.busy_utilisation.max(cpu));
        if hi > 0.05 && (busy - cpu).abs() > 0.2 * hi {
            reasons.push(if busy > cpu {
                format!(
                    "shard {}: busy {:.0} % of the time but {:.0} % of a core in CPU: it was preempted or throttled (a noisy neighbour, more threads than cores, or a CPU quota)",
                    s.shard, busy * 100.0, cpu * 100.0
                )
            } else {
                format!(
                    "shard {}: {:.0} % of a core in CPU but busy only {:.0} % of the time: its busy time misses work (a server from before busy time counted I/O callbacks)",
                    s.shard, cpu * 100.0, busy * 100.0
                )
            });
        }
    }
    if imbalance > 1.3 && max > target {
        reasons.push(format!(
            "load is uneven (max/mean {imbalance:.2}): the busiest shard is over target even where the mean is not; consider the least-connections policy before adding shards"
        ));
        recommended = recommended.max(n);
    }
    if stalls > 0.0 {
        reasons.push(format!(
            "{stalls:.0} stall(s) in the window: a blocking callback delays its whole shard; more shards only spread the damage (move the work to defer/worker threads)"
        ));
    }
    if recommended > cores {
        reasons.push(format!(
            "that is more than this machine's {cores} cores: the traffic needs a bigger machine or more instances"
        ));
    }
    Advice {
        window_s: secs,
        target_utilisation: target,
        shards,
        mean_utilisation: mean,
        max_utilisation: max,
        imbalance,
        utilisation_source: source.to_string(),
        stalls,
        recommended_shards: recommended,
        reasons,
    }
}

/// Scrapes `url`, waits `window`, scrapes again, and advises.
pub fn advise_live(
    url: &str,
    window: Duration,
    target: f64,
    cores: usize,
) -> Result<Advice, TuneError> {
    if !(target > 0.0 && target <= 1.0) {
        return Err(TuneError::Config(format!(
            "target utilisation must be in (0, 1], got {target}"
        )));
    }
    let before = parse_metrics(&scrape(url)?)?;
    if before.is_empty() {
        return Err(TuneError::Config(format!(
            "{url} has no shardloop shard metrics"
        )));
    }
    let start = Instant::now();
    std::thread::sleep(window);
    let after = parse_metrics(&scrape(url)?)?;
    Ok(advise(&before, &after, start.elapsed(), target, cores))
}

/// Refines `advice` with a saved profile: the shard count from the
/// profile's scaling shape (USL) instead of linear scaling and, given the
/// request `rate` the server handled in the window, the profile rescaled to
/// this machine (its capacity at the current count taken as rate ÷ mean
/// utilisation, a stand-in for the sustainable rate the profile holds).
pub fn with_profile(
    advice: &mut Advice,
    profile: &mut crate::profile::Profile,
    rate: Option<f64>,
) -> Result<(), TuneError> {
    let n = advice.shards.len().max(1);
    let u = advice.mean_utilisation;
    if let Some(rate) = rate.filter(|r| *r > 0.0) {
        if u <= 0.0 {
            return Err(TuneError::Config(
                "the shards were idle in the window: nothing to rescale the profile by".into(),
            ));
        }
        let factor = profile.calibrate("advise", &[(n, rate / u)])?;
        advice.reasons.push(format!(
            "{rate:.0} req/s at {:.0} % mean utilisation is about {:.0} req/s at full load on {n} shard(s): the profile's scale changes by {factor:.2}×",
            u * 100.0,
            rate / u
        ));
    }
    let Some(now) = profile.predict(n) else {
        advice.reasons.push(format!(
            "the profile predicts nothing at {n} shards (no sound fit, not measured): the linear estimate stands"
        ));
        return Ok(());
    };
    let load = now * u;
    let target = advice.target_utilisation;
    let limit = profile.counts().into_iter().max().unwrap_or(n).max(n);
    match (1..=limit).find(|&m| profile.predict(m).is_some_and(|c| c * target >= load)) {
        Some(m) => {
            if m != advice.recommended_shards {
                advice.reasons.push(format!(
                    "with the profile's scaling (not linear), {m} shard(s) carry this load at the {:.0} % target (linear said {})",
                    target * 100.0,
                    advice.recommended_shards
                ));
            }
            advice.recommended_shards = m;
        }
        None => advice.reasons.push(format!(
            "no shard count in the profile carries this load at the {:.0} % target: the server stops scaling first; more instances, not more shards",
            target * 100.0
        )),
    }
    Ok(())
}

impl Advice {
    /// A Markdown report (also fine as plain text).
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Shard-count advice\n\nWindow {:.1} s, target utilisation {:.0} %.\n\n**Recommended shards: {}**\n\n",
            self.window_s,
            self.target_utilisation * 100.0,
            self.recommended_shards
        );
        for r in &self.reasons {
            out.push_str(&format!("- {r}\n"));
        }
        out.push_str("\n| shard | utilisation | bytes/s | accepts/s | open connections | stalls |\n|---:|---:|---:|---:|---:|---:|\n");
        for s in &self.shards {
            out.push_str(&format!(
                "| {} | {:.1} % | {:.0} | {:.1} | {:.0} | {:.0} |\n",
                s.shard,
                s.utilisation * 100.0,
                s.bytes_per_s,
                s.accepts_per_s,
                s.connections_open,
                s.stalls
            ));
        }
        out.push_str(&format!(
            "\nMean {:.1} %, max {:.1} %, imbalance (max/mean) {:.2}.\n",
            self.mean_utilisation * 100.0,
            self.max_utilisation * 100.0,
            self.imbalance
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape_of(busy: &[f64], idle: &[f64]) -> Scrape {
        let mut text = String::new();
        for (i, (b, d)) in busy.iter().zip(idle).enumerate() {
            text.push_str(&format!(
                "shardloop_shard_busy_seconds_total{{shard=\"{i}\"}} {b}\n"
            ));
            text.push_str(&format!(
                "shardloop_shard_idle_seconds_total{{shard=\"{i}\"}} {d}\n"
            ));
        }
        parse_metrics(&text).unwrap()
    }

    #[test]
    fn utilisation_scaling_recommends_the_count_that_meets_the_target() {
        // Two shards, each 90 % busy over 10 s: 1.8 shard-seconds/s of work;
        // at 70 % that needs 3 shards.
        let before = scrape_of(&[0.0, 0.0], &[0.0, 0.0]);
        let after = scrape_of(&[9.0, 9.0], &[1.0, 1.0]);
        let a = advise(&before, &after, Duration::from_secs(10), 0.7, 8);
        assert!((a.mean_utilisation - 0.9).abs() < 1e-9);
        assert_eq!(a.recommended_shards, 3);
        // Mostly idle: one shard is plenty.
        let after = scrape_of(&[0.5, 0.3], &[9.5, 9.7]);
        assert_eq!(
            advise(&before, &after, Duration::from_secs(10), 0.7, 8).recommended_shards,
            1
        );
    }

    #[test]
    fn a_profile_bends_the_recommendation_and_a_rate_rescales_it() {
        use crate::profile::{Machine, Profile};
        use crate::usl::Usl;
        let mut profile = Profile {
            version: 1,
            machine: Machine::this(),
            unix_s: 0,
            workload: "echo".into(),
            p99_target_us: 2000,
            points: Vec::new(),
            // Strong contention: doubling shards gives far less than double.
            scaling: Some(Usl {
                lambda: 100_000.0,
                sigma: 0.3,
                kappa: 0.0,
            }),
            scale: 1.0,
            calibrations: Vec::new(),
        };
        // Two shards 90 % busy: linear scaling says 3 at 70 %.
        let before = scrape_of(&[0.0, 0.0], &[0.0, 0.0]);
        let after = scrape_of(&[9.0, 9.0], &[1.0, 1.0]);
        let mut a = advise(&before, &after, Duration::from_secs(10), 0.7, 64);
        assert_eq!(a.recommended_shards, 3);
        // X(2) = 153.8k; the load is 0.9 of it = 138.5k; at 70 % a count
        // needs X ≥ 197.8k: X(3) = 187.5k is short, X(4) = 210.5k does it.
        with_profile(&mut a, &mut profile, Some(120_000.0)).unwrap();
        assert_eq!(a.recommended_shards, 4, "{:?}", a.reasons);
        // 120k at 90 % is 133.3k at full load against 153.8k predicted.
        assert!((profile.scale - 133_333.3 / 153_846.15).abs() < 1e-3);
        assert_eq!(profile.calibrations[0].method, "advise");
    }

    #[test]
    fn thread_cpu_time_is_preferred_and_a_disagreement_is_explained() {
        let scrape = |busy: &[f64], idle: &[f64], cpu: &[f64]| {
            let mut text = String::new();
            for i in 0..busy.len() {
                text.push_str(&format!(
                    "shardloop_shard_busy_seconds_total{{shard=\"{i}\"}} {}\n\
                     shardloop_shard_idle_seconds_total{{shard=\"{i}\"}} {}\n\
                     shardloop_shard_cpu_seconds_total{{shard=\"{i}\"}} {}\n",
                    busy[i], idle[i], cpu[i]
                ));
            }
            parse_metrics(&text).unwrap()
        };
        let before = scrape(&[0.0, 0.0], &[0.0, 0.0], &[0.0, 0.0]);
        // Busy says 20 % and 40 % (a server whose busy time missed work),
        // CPU says 60 % and 60 %: 1.2 cores of work need 2 shards at 70 %.
        let after = scrape(&[2.0, 4.0], &[8.0, 6.0], &[6.0, 6.0]);
        let a = advise(&before, &after, Duration::from_secs(10), 0.7, 8);
        assert_eq!(a.utilisation_source, "thread CPU time");
        assert_eq!(a.recommended_shards, 2, "{:?}", a.reasons);
        assert!(
            a.reasons.iter().any(|r| r.contains("misses work")),
            "{:?}",
            a.reasons
        );
        // Preempted: busy 90 %, CPU 45 %.
        let after = scrape(&[9.0, 9.0], &[1.0, 1.0], &[4.5, 4.5]);
        let a = advise(&before, &after, Duration::from_secs(10), 0.7, 8);
        assert_eq!(a.recommended_shards, 2);
        assert!(
            a.reasons.iter().any(|r| r.contains("preempted")),
            "{:?}",
            a.reasons
        );
        // Near 0.3 cores in all: one shard.
        let after = scrape(&[1.5, 1.5], &[8.5, 8.5], &[1.5, 1.5]);
        assert_eq!(
            advise(&before, &after, Duration::from_secs(10), 0.7, 8).recommended_shards,
            1
        );
        // A server without the CPU figure: busy time, as before.
        let old = scrape_of(&[9.0, 9.0], &[1.0, 1.0]);
        let a = advise(
            &scrape_of(&[0.0, 0.0], &[0.0, 0.0]),
            &old,
            Duration::from_secs(10),
            0.7,
            8,
        );
        assert_eq!(a.utilisation_source, "busy time");
    }

    #[test]
    fn labels_other_than_shard_are_summed() {
        let s = parse_metrics(
            "x{shard=\"1\",kind=\"a\"} 2\nx{shard=\"1\",kind=\"b\"} 3\n# HELP y\nz 9\n",
        )
        .unwrap();
        assert_eq!(s[&1]["x"], 5.0);
        assert_eq!(s.len(), 1);
        assert!(
            parse_metrics("x{shard=\"1\" 2\n").is_err(),
            "malformed is an error"
        );
    }
}
