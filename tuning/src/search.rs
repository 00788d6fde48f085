//! Finding, for one server configuration, the highest open-loop rate whose
//! p99 stays under the target: a bounded bisection between zero and the
//! closed-loop saturation throughput.

use serde::{Deserialize, Serialize};

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Requested open-loop rate; `None` for the closed-loop saturation run.
    pub requested_rps: Option<f64>,
    /// Requests sent per second.
    pub achieved_rps: f64,
    /// Correct responses per second.
    pub ok_rps: f64,
    /// Median latency (corrected), µs.
    pub p50_us: u64,
    /// 99th percentile latency (corrected), µs.
    pub p99_us: u64,
    /// Failed requests.
    pub errors: u64,
    /// The load generator's own warnings for this run (CPU-bound, behind
    /// schedule): a point with any is not evidence of the server's capacity.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Runs measurements against one server configuration.
pub trait Probe {
    /// Error type of a failed measurement.
    type Error;
    /// Closed-loop run: the saturation throughput.
    fn saturate(&mut self) -> Result<Measurement, Self::Error>;
    /// Open-loop run at `rate` requests per second.
    fn at_rate(&mut self, rate: f64) -> Result<Measurement, Self::Error>;
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The closed-loop run.
    pub saturation: Measurement,
    /// Highest rate that met the target (None if even the lowest tried missed it).
    pub sustainable: Option<Measurement>,
    /// Every open-loop measurement, the search's and the fixed fractions'.
    pub points: Vec<Measurement>,
}

impl SearchResult {
    /// Highest rate that met the target (0 if none did).
    pub fn sustainable_rps(&self) -> f64 {
        self.sustainable
            .as_ref()
            .and_then(|m| m.requested_rps)
            .unwrap_or(0.0)
    }
}

/// Search parameters.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// p99 target in µs.
    pub p99_target_us: u64,
    /// Bisection steps (resolution: saturation / 2^steps).
    pub steps: u32,
    /// Extra measurements at these fractions of saturation (for the p99-vs-load curve).
    pub fractions: Vec<f64>,
}

impl SearchParams {
    /// Number of probe runs one search makes.
    pub fn runs(&self) -> u64 {
        1 + self.steps as u64 + self.fractions.len() as u64
    }
}

/// Does `m` meet the target: p99 under it, rate kept up, no errors?
pub fn passes(m: &Measurement, p99_target_us: u64) -> bool {
    let rate = m.requested_rps.unwrap_or(m.achieved_rps);
    m.p99_us <= p99_target_us && m.achieved_rps >= rate * 0.95 && m.errors == 0
}

/// Bisects between 0 and 1.05 × saturation. `on_run` is told of each run.
pub fn find_sustainable<P: Probe>(
    probe: &mut P,
    params: &SearchParams,
    mut on_run: impl FnMut(&str),
) -> Result<SearchResult, P::Error> {
    on_run("saturation (closed loop)");
    let saturation = probe.saturate()?;
    let sat = saturation.ok_rps.max(1.0);
    let (mut lo, mut hi) = (0.0f64, sat * 1.05);
    let mut sustainable: Option<Measurement> = None;
    let mut points = Vec::new();
    for _ in 0..params.steps {
        let rate = (lo + hi) / 2.0;
        on_run(&format!("{rate:.0} req/s"));
        let m = probe.at_rate(rate)?;
        if passes(&m, params.p99_target_us) {
            lo = rate;
            sustainable = Some(m.clone());
        } else {
            hi = rate;
        }
        points.push(m);
    }
    for &f in &params.fractions {
        let rate = sat * f;
        on_run(&format!("{:.0}% of saturation", f * 100.0));
        let m = probe.at_rate(rate)?;
        // A fraction run can also prove a higher sustainable rate.
        if passes(&m, params.p99_target_us)
            && sustainable
                .as_ref()
                .is_none_or(|s| s.requested_rps < m.requested_rps)
        {
            sustainable = Some(m.clone());
        }
        points.push(m);
    }
    points.sort_by(|a, b| {
        a.requested_rps
            .partial_cmp(&b.requested_rps)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(SearchResult {
        saturation,
        sustainable,
        points,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An M/M/1-like server: p99 = base / (1 − ρ); past capacity it falls behind.
    pub(crate) struct Model {
        pub(crate) capacity: f64,
        pub(crate) base_us: f64,
        pub(crate) runs: u32,
    }

    impl Probe for Model {
        type Error = std::convert::Infallible;
        fn saturate(&mut self) -> Result<Measurement, Self::Error> {
            self.runs += 1;
            Ok(Measurement {
                requested_rps: None,
                achieved_rps: self.capacity,
                ok_rps: self.capacity,
                p50_us: self.base_us as u64 * 10,
                p99_us: self.base_us as u64 * 50,
                errors: 0,
                warnings: Vec::new(),
            })
        }
        fn at_rate(&mut self, rate: f64) -> Result<Measurement, Self::Error> {
            self.runs += 1;
            let rho = rate / self.capacity;
            let (achieved, p99) = if rho < 1.0 {
                (rate, self.base_us / (1.0 - rho))
            } else {
                (self.capacity, 1e9)
            };
            Ok(Measurement {
                requested_rps: Some(rate),
                achieved_rps: achieved,
                ok_rps: achieved,
                p50_us: (p99 / 4.0) as u64,
                p99_us: p99 as u64,
                errors: 0,
                warnings: Vec::new(),
            })
        }
    }

    #[test]
    fn converges_on_the_model_answer_within_resolution() {
        let mut m = Model {
            capacity: 100_000.0,
            base_us: 200.0,
            runs: 0,
        };
        // p99 = 200/(1−ρ) ≤ 2000 µs  ⇔  ρ ≤ 0.9: the answer is 90 000 req/s.
        let params = SearchParams {
            p99_target_us: 2000,
            steps: 8,
            fractions: vec![0.25, 0.5],
        };
        let r = find_sustainable(&mut m, &params, |_| {}).unwrap();
        let s = r.sustainable.unwrap().requested_rps.unwrap();
        let resolution = 105_000.0 / 2f64.powi(8);
        assert!(
            s <= 90_000.0 && s >= 90_000.0 - 2.0 * resolution,
            "found {s}"
        );
        assert_eq!(
            m.runs as u64,
            params.runs(),
            "bounded: exactly the planned runs"
        );
        assert_eq!(r.points.len(), 10);
    }

    #[test]
    fn unreachable_target_yields_none() {
        let mut m = Model {
            capacity: 1000.0,
            base_us: 5000.0,
            runs: 0,
        };
        let params = SearchParams {
            p99_target_us: 1000,
            steps: 5,
            fractions: vec![],
        };
        let r = find_sustainable(&mut m, &params, |_| {}).unwrap();
        assert!(r.sustainable.is_none());
    }
}
