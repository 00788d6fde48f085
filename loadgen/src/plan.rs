//! The open-loop plan: a total request rate over time (constant, or stages
//! ramping linearly from one rate to the next: `-R 10k:30s,50k:60s`) and
//! how arrivals fall in it (evenly spaced, or a Poisson process). Every
//! request's intended send time comes from the plan, so the
//! coordinated-omission correction stays exact under ramps and bursts.
//!
//! The plan is the cumulative count Λ(t) = ∫ rate. A connection that owns
//! 1/C of the load sends its k-th request at Λ⁻¹(C·uₖ): uₖ = k + i/C for
//! even arrivals (connection i of C, staggered), uₖ₊₁ = uₖ + Exp(1) for
//! Poisson arrivals (C independent connections sum to a Poisson process of
//! the planned rate).

use std::time::Duration;

/// One stage: the rate reached at its end, and how long it lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Requests per second at the end of the stage (all connections).
    pub rate: f64,
    /// Its length.
    pub duration: Duration,
}

/// How requests are spread in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arrivals {
    /// Evenly spaced (wrk2).
    #[default]
    Uniform,
    /// Exponential gaps: a Poisson process of the planned rate.
    Poisson,
}

/// A rate over time. The first stage holds its rate; each later one ramps
/// linearly from the previous stage's rate to its own.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePlan {
    stages: Vec<Stage>,
}

impl RatePlan {
    /// One constant rate for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        RatePlan {
            stages: vec![Stage { rate, duration }],
        }
    }

    /// Stages in order; every rate finite and not negative, every stage
    /// longer than zero, and some rate above zero.
    pub fn new(stages: Vec<Stage>) -> Result<Self, String> {
        if stages.is_empty() {
            return Err("a rate plan needs at least one stage".into());
        }
        for s in &stages {
            if !(s.rate.is_finite() && s.rate >= 0.0) {
                return Err(format!(
                    "rate {} is not a number of requests per second",
                    s.rate
                ));
            }
            if s.duration.is_zero() {
                return Err("every stage needs a positive duration".into());
            }
        }
        if stages.iter().all(|s| s.rate == 0.0) {
            return Err("a rate plan needs some rate above zero".into());
        }
        Ok(RatePlan { stages })
    }

    /// Parses `RATE` or `RATE:DURATION,RATE:DURATION,…` (rates take `k`
    /// and `m` suffixes: `10k:30s,50k:1m`). A plain rate lasts
    /// `default_duration`.
    pub fn parse(s: &str, default_duration: Duration) -> Result<Self, String> {
        let rate = |v: &str| -> Result<f64, String> {
            let v = v.trim();
            let (num, mul) = match v.strip_suffix(['k', 'K']) {
                Some(n) => (n, 1e3),
                None => match v.strip_suffix(['m', 'M']) {
                    Some(n) => (n, 1e6),
                    None => (v, 1.0),
                },
            };
            num.trim()
                .parse::<f64>()
                .map(|r| r * mul)
                .map_err(|_| format!("{v:?} is not a rate (5000, 10k, 1.5m)"))
        };
        if !s.contains(':') {
            return RatePlan::new(vec![Stage {
                rate: rate(s)?,
                duration: default_duration,
            }]);
        }
        let stages = s
            .split(',')
            .map(|part| {
                let (r, d) = part
                    .split_once(':')
                    .ok_or_else(|| format!("stage {part:?} is not RATE:DURATION"))?;
                let duration = humantime::parse_duration(d.trim())
                    .map_err(|e| format!("stage {part:?}: {d:?} is not a duration: {e}"))?;
                Ok(Stage {
                    rate: rate(r)?,
                    duration,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        RatePlan::new(stages)
    }

    /// The same plan at `factor` times the rate (one segment's share).
    pub fn scaled(&self, factor: f64) -> RatePlan {
        RatePlan {
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    rate: s.rate * factor,
                    duration: s.duration,
                })
                .collect(),
        }
    }

    /// Prepends `lead` seconds at the first stage's rate (the warm-up).
    pub(crate) fn with_lead(&self, lead: Duration) -> RatePlan {
        if lead.is_zero() {
            return self.clone();
        }
        let mut stages = vec![Stage {
            rate: self.stages[0].rate,
            duration: lead,
        }];
        stages.extend(self.stages.iter().cloned());
        RatePlan { stages }
    }

    /// The plan's length.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The highest rate anywhere in the plan.
    pub fn peak(&self) -> f64 {
        self.stages.iter().map(|s| s.rate).fold(0.0, f64::max)
    }

    /// The stages.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Each stage as (start s, length s, rate at start, rate at end).
    fn segments(&self) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        let mut start = 0.0;
        let mut prev = self.stages[0].rate;
        self.stages.iter().map(move |s| {
            let len = s.duration.as_secs_f64();
            let seg = (start, len, prev, s.rate);
            start += len;
            prev = s.rate;
            seg
        })
    }

    /// The rate at `t` seconds.
    pub fn rate_at(&self, t: f64) -> f64 {
        for (start, len, r0, r1) in self.segments() {
            if t < start + len {
                return r0 + (r1 - r0) * ((t - start).max(0.0) / len);
            }
        }
        self.stages.last().map_or(0.0, |s| s.rate)
    }

    /// Requests planned in the first `t` seconds (Λ(t)).
    pub fn cumulative(&self, t: f64) -> f64 {
        let mut total = 0.0;
        for (start, len, r0, r1) in self.segments() {
            let x = (t - start).clamp(0.0, len);
            total += r0 * x + (r1 - r0) * x * x / (2.0 * len);
            if t < start + len {
                break;
            }
        }
        total
    }

    /// The time (seconds) at which Λ reaches `count`; `None` past the plan.
    pub fn time_of(&self, count: f64) -> Option<f64> {
        let mut before = 0.0;
        for (start, len, r0, r1) in self.segments() {
            let area = (r0 + r1) / 2.0 * len;
            if count <= before + area {
                let need = count - before;
                // Solve r0·x + (r1−r0)/(2·len)·x² = need for x in [0, len].
                let a = (r1 - r0) / (2.0 * len);
                let x = if a.abs() < 1e-12 {
                    if r0 > 0.0 {
                        need / r0
                    } else {
                        0.0
                    }
                } else {
                    let disc = (r0 * r0 + 4.0 * a * need).max(0.0);
                    (-r0 + disc.sqrt()) / (2.0 * a)
                };
                return Some(start + x.clamp(0.0, len));
            }
            before += area;
        }
        None
    }
}

/// One connection's place in the plan.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// Connections sharing the plan.
    conns: f64,
    /// This connection's position, in its own share of requests.
    u: f64,
    arrivals: Arrivals,
    rng: fastrand::Rng,
}

impl Schedule {
    /// Connection `index` of `conns`.
    pub(crate) fn new(index: usize, conns: usize, arrivals: Arrivals, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ (index as u64).wrapping_mul(0x9E37_79B9));
        let u = match arrivals {
            Arrivals::Uniform => index as f64 / conns as f64,
            Arrivals::Poisson => exp1(&mut rng),
        };
        Schedule {
            conns: conns as f64,
            u,
            arrivals,
            rng,
        }
    }

    /// The intended time (seconds into the plan) of this connection's next
    /// request, and moves past it; `None` once the plan is over.
    pub(crate) fn next(&mut self, plan: &RatePlan) -> Option<f64> {
        let t = plan.time_of(self.u * self.conns)?;
        self.u += match self.arrivals {
            Arrivals::Uniform => 1.0,
            Arrivals::Poisson => exp1(&mut self.rng),
        };
        Some(t)
    }

    /// Requests still planned for this connection from `from` seconds on
    /// (expected, for Poisson).
    pub(crate) fn remaining_after(&self, plan: &RatePlan, from: f64) -> u64 {
        let total = plan.cumulative(plan.duration().as_secs_f64()) / self.conns;
        let start = self.u.max(plan.cumulative(from) / self.conns);
        (total - start).max(0.0).ceil() as u64
    }
}

/// An exponential variate with mean 1.
fn exp1(rng: &mut fastrand::Rng) -> f64 {
    // 1 − f64() is in (0, 1]: the logarithm is finite.
    -(1.0 - rng.f64()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn stages_parse_and_bad_ones_say_why() {
        let p = RatePlan::parse("10k:30s,50k:1m", secs(5)).unwrap();
        assert_eq!(p.duration(), secs(90));
        assert_eq!(p.stages()[1].rate, 50_000.0);
        assert_eq!(
            RatePlan::parse("2500", secs(7)).unwrap().duration(),
            secs(7)
        );
        assert_eq!(
            RatePlan::parse("1.5m", secs(1)).unwrap().peak(),
            1_500_000.0
        );
        for bad in [
            "",
            "x",
            "10k:",
            "10k:0s",
            "-5",
            "0:10s",
            "10k:10s,fast:1s",
            "NaN",
        ] {
            assert!(RatePlan::parse(bad, secs(1)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_cumulative_count_follows_the_ramps() {
        // 1000/s for 10 s, then up to 3000/s over 10 s.
        let p = RatePlan::parse("1000:10s,3000:10s", secs(1)).unwrap();
        assert_eq!(p.cumulative(10.0), 10_000.0);
        // The ramp adds (1000 + 3000) / 2 × 10 = 20,000.
        assert!((p.cumulative(20.0) - 30_000.0).abs() < 1e-6);
        assert!((p.rate_at(15.0) - 2000.0).abs() < 1e-9);
        for count in [0.0, 1.0, 9_999.5, 10_000.0, 17_500.0, 29_999.0] {
            let t = p.time_of(count).unwrap();
            assert!((p.cumulative(t) - count).abs() < 1e-6, "{count} at {t}");
        }
        assert_eq!(p.time_of(30_001.0), None);
    }

    #[test]
    fn uniform_connections_together_send_exactly_the_plan() {
        let p = RatePlan::parse("1000:2s,5000:2s", secs(1)).unwrap();
        let mut all: Vec<f64> = Vec::new();
        for i in 0..7 {
            let mut s = Schedule::new(i, 7, Arrivals::Uniform, 1);
            all.extend(std::iter::from_fn(|| s.next(&p)));
        }
        all.sort_by(f64::total_cmp);
        // Λ(4 s) = 2000 + 6000 = 8000 requests, one per unit of Λ.
        assert!((7999..=8001).contains(&all.len()), "{}", all.len());
        assert!(all.iter().all(|t| (0.0..=4.0).contains(t)));
        let first_stage = all.iter().filter(|t| **t < 2.0).count();
        assert!((1999..=2001).contains(&first_stage), "{first_stage}");
    }

    #[test]
    fn poisson_arrivals_have_the_planned_count_and_exponential_gaps() {
        let p = RatePlan::constant(10_000.0, secs(10));
        let mut s = Schedule::new(0, 1, Arrivals::Poisson, 42);
        let times: Vec<f64> = std::iter::from_fn(|| s.next(&p)).collect();
        let n = times.len() as f64;
        // 100,000 expected; a Poisson count's sd is √100,000 ≈ 316.
        assert!((n - 100_000.0).abs() < 2_000.0, "{n}");
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // Exponential: mean 100 µs and coefficient of variation 1 (uniform would be 0).
        assert!((mean - 1e-4).abs() < 5e-6, "{mean}");
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.05,
            "cv {}",
            var.sqrt() / mean
        );
    }
}
