//! Service-level objectives checked at the end of a run (k6's thresholds):
//! `--slo p99=2ms --slo errors=0.1% --slo rps=10000`. Each is printed as a
//! PASS/FAIL line; the binary exits with 99 when any fails.

use crate::report::Report;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What an objective bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SloMetric {
    /// A latency quantile (0.99 for `p99`), corrected latency, at most the limit (µs).
    Quantile(f64),
    /// Mean latency at most the limit (µs).
    Mean,
    /// Largest latency at most the limit (µs).
    Max,
    /// Failed requests and connections over requests sent, at most the limit (a fraction).
    ErrorRate,
    /// Correct responses per second, at least the limit.
    Throughput,
}

/// One objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// As given on the command line.
    pub text: String,
    /// What it bounds.
    pub metric: SloMetric,
    /// The bound: µs for latencies, a fraction for errors, req/s for throughput.
    pub limit: f64,
}

/// An objective's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// The objective.
    pub slo: Slo,
    /// What the run measured, in the limit's unit.
    pub observed: f64,
    /// Whether it held.
    pub pass: bool,
}

impl FromStr for Slo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected NAME=LIMIT, e.g. p99=2ms or errors=0.1%"))?;
        let latency = |v: &str| -> Result<f64, String> {
            let d = humantime::parse_duration(v.trim())
                .map_err(|e| format!("{s:?}: {v:?} is not a duration (2ms, 500us): {e}"))?;
            Ok(d.as_nanos() as f64 / 1000.0)
        };
        let (metric, limit) = match name.trim() {
            "mean" => (SloMetric::Mean, latency(value)?),
            "max" => (SloMetric::Max, latency(value)?),
            "errors" => {
                let v = value.trim();
                let frac = match v.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                    None => v.parse::<f64>(),
                }
                .map_err(|_| format!("{s:?}: {v:?} is not a rate (0.1% or 0.001)"))?;
                if !(0.0..=1.0).contains(&frac) {
                    return Err(format!("{s:?}: an error rate is between 0% and 100%"));
                }
                (SloMetric::ErrorRate, frac)
            }
            "rps" | "throughput" => {
                let v = value.trim().trim_end_matches("/s");
                let r = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| format!("{s:?}: {v:?} is not a rate in requests per second"))?;
                (SloMetric::Throughput, r)
            }
            p if p.starts_with('p') => {
                let q = p[1..]
                    .parse::<f64>()
                    .ok()
                    .filter(|q| *q > 0.0 && *q < 100.0)
                    .ok_or_else(|| format!("{s:?}: {p:?} is not a percentile (p50, p99, p99.9)"))?;
                (SloMetric::Quantile(q / 100.0), latency(value)?)
            }
            other => {
                return Err(format!(
                    "{s:?}: unknown objective {other:?} (pNN, mean, max, errors, rps)"
                ))
            }
        };
        Ok(Slo {
            text: s.to_string(),
            metric,
            limit,
        })
    }
}

impl Slo {
    /// Checks the objective against a report.
    pub fn check(&self, r: &Report) -> SloResult {
        let h = r.latency_histogram();
        let observed = match self.metric {
            // The histogram holds ns; objectives are in µs.
            SloMetric::Quantile(_) if h.is_empty() => 0.0,
            SloMetric::Quantile(q) => h.value_at_quantile(q) as f64 / 1e3,
            SloMetric::Mean => r.latency_us.mean,
            SloMetric::Max => r.latency_us.max,
            SloMetric::ErrorRate => {
                let attempts = r.requests + r.errors.connect;
                if attempts == 0 {
                    1.0
                } else {
                    r.errors.total() as f64 / attempts as f64
                }
            }
            SloMetric::Throughput => r.throughput_rps,
        };
        // No sample is no evidence: a latency objective over nothing fails.
        let measured = r.responses_ok > 0;
        let pass = match self.metric {
            SloMetric::Throughput => observed >= self.limit,
            SloMetric::ErrorRate => observed <= self.limit,
            _ => measured && observed <= self.limit,
        };
        SloResult {
            slo: self.clone(),
            observed,
            pass,
        }
    }

    /// The latency bound in µs, if this objective is one.
    pub fn latency_limit_us(&self) -> Option<f64> {
        matches!(
            self.metric,
            SloMetric::Quantile(_) | SloMetric::Mean | SloMetric::Max
        )
        .then_some(self.limit)
    }
}

impl fmt::Display for SloResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.pass { "PASS" } else { "FAIL" };
        let (obs, lim) = match self.slo.metric {
            SloMetric::ErrorRate => (
                format!("{:.4}%", self.observed * 100.0),
                format!("{:.4}%", self.slo.limit * 100.0),
            ),
            SloMetric::Throughput => (
                format!("{:.0} req/s", self.observed),
                format!(">= {:.0} req/s", self.slo.limit),
            ),
            _ => (
                crate::report::fmt_us(self.observed),
                format!("<= {}", crate::report::fmt_us(self.slo.limit)),
            ),
        };
        write!(
            f,
            "  SLO {:<16} {verdict}  observed {obs}, limit {lim}",
            self.slo.text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_and_bad_ones_say_why() {
        let s: Slo = "p99=2ms".parse().unwrap();
        assert_eq!(
            (s.metric.clone(), s.limit),
            (SloMetric::Quantile(0.99), 2000.0)
        );
        let s: Slo = "p99.9=500us".parse().unwrap();
        assert!(matches!(s.metric, SloMetric::Quantile(q) if (q - 0.999).abs() < 1e-12));
        assert_eq!(s.limit, 500.0);
        assert_eq!("errors=0.1%".parse::<Slo>().unwrap().limit, 0.001);
        assert_eq!("errors=0.02".parse::<Slo>().unwrap().limit, 0.02);
        assert_eq!(
            "rps=10000".parse::<Slo>().unwrap().metric,
            SloMetric::Throughput
        );
        assert_eq!("mean=1ms".parse::<Slo>().unwrap().metric, SloMetric::Mean);
        for bad in [
            "p99",
            "p100=1ms",
            "p0=1ms",
            "p99=fast",
            "errors=150%",
            "errors=x",
            "rps=-1",
            "speed=1",
        ] {
            assert!(bad.parse::<Slo>().is_err(), "{bad}");
        }
    }
}
