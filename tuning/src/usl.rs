//! The Universal Scalability Law, X(N) = λN / (1 + σ(N−1) + κN(N−1)), and a
//! least-squares fit of it to measured (shards, throughput) points.
//!
//! σ (contention) models serialisation, κ (coherency) the cost of keeping
//! shared state consistent, which makes throughput fall past a peak.

use serde::{Deserialize, Serialize};

/// Fitted coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usl {
    /// Throughput of one unit without contention.
    pub lambda: f64,
    /// Contention coefficient.
    pub sigma: f64,
    /// Coherency coefficient.
    pub kappa: f64,
}

impl Usl {
    /// Predicted throughput with `n` shards.
    pub fn predict(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }

    /// Shard count of peak throughput, if κ > 0 (otherwise it only flattens).
    pub fn peak(&self) -> Option<f64> {
        (self.kappa > 0.0).then(|| ((1.0 - self.sigma).max(0.0) / self.kappa).sqrt())
    }
}

/// A fit and how good it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// Coefficients.
    pub usl: Usl,
    /// Coefficient of determination on the measured points.
    pub r_squared: f64,
    /// Caveats (too few points for κ, and the like).
    pub note: Option<String>,
}

/// σ, κ ≥ 0 minimising Σ(σa + κb − y)² (two-variable non-negative least squares).
fn nnls2(a: &[f64], b: &[f64], y: &[f64], allow_kappa: bool) -> (f64, f64) {
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(x, y)| x * y).sum::<f64>();
    let (aa, bb, ab, ay, by) = (dot(a, a), dot(b, b), dot(a, b), dot(a, y), dot(b, y));
    let residual = |s: f64, k: f64| -> f64 {
        a.iter()
            .zip(b)
            .zip(y)
            .map(|((a, b), y)| (s * a + k * b - y).powi(2))
            .sum()
    };
    let mut candidates = vec![(0.0, 0.0)];
    if aa > 0.0 {
        candidates.push(((ay / aa).max(0.0), 0.0));
    }
    if allow_kappa {
        if bb > 0.0 {
            candidates.push((0.0, (by / bb).max(0.0)));
        }
        let det = aa * bb - ab * ab;
        if det.abs() > 1e-12 {
            let s = (ay * bb - by * ab) / det;
            let k = (by * aa - ay * ab) / det;
            if s >= 0.0 && k >= 0.0 {
                candidates.push((s, k));
            }
        }
    }
    candidates
        .into_iter()
        .min_by(|p, q| residual(p.0, p.1).total_cmp(&residual(q.0, q.1)))
        .expect("at least one candidate")
}

/// Fits the USL to `(shards, throughput)` points. Needs two distinct shard
/// counts; κ needs three.
pub fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(n, x)| *n >= 1.0 && *x > 0.0 && x.is_finite())
        .collect();
    let mut distinct: Vec<f64> = pts.iter().map(|p| p.0).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 2 {
        return None;
    }
    let allow_kappa = distinct.len() >= 3;
    let a: Vec<f64> = pts.iter().map(|(n, _)| n - 1.0).collect();
    let b: Vec<f64> = pts.iter().map(|(n, _)| n * (n - 1.0)).collect();
    let sse = |usl: &Usl| -> f64 { pts.iter().map(|(n, x)| (x - usl.predict(*n)).powi(2)).sum() };
    let coeffs = |lambda: f64| -> Usl {
        // For a given λ the model is linear in σ and κ: Nλ/X − 1 = σ(N−1) + κN(N−1).
        let y: Vec<f64> = pts.iter().map(|(n, x)| n * lambda / x - 1.0).collect();
        let (sigma, kappa) = nnls2(&a, &b, &y, allow_kappa);
        Usl {
            lambda,
            sigma,
            kappa,
        }
    };
    // λ is at least the best per-shard throughput seen; search above it.
    let lo0 = pts.iter().map(|(n, x)| x / n).fold(0.0, f64::max);
    let (mut lo, mut hi) = (lo0, lo0 * 3.0);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..200 {
        let m1 = hi - g * (hi - lo);
        let m2 = lo + g * (hi - lo);
        if sse(&coeffs(m1)) <= sse(&coeffs(m2)) {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    let best = [coeffs(lo0), coeffs((lo + hi) / 2.0)]
        .into_iter()
        .min_by(|p, q| sse(p).total_cmp(&sse(q)))
        .expect("two candidates");
    let mean = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
    let tss: f64 = pts.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let r_squared = if tss > 0.0 {
        1.0 - sse(&best) / tss
    } else {
        1.0
    };
    Some(Fit {
        usl: best,
        r_squared,
        note: (!allow_kappa).then(|| {
            format!(
                "only {} shard counts measured: κ (coherency) needs three, so it is taken as 0 and extrapolation is optimistic",
                distinct.len()
            )
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_coefficients_from_exact_data() {
        let truth = Usl {
            lambda: 50_000.0,
            sigma: 0.05,
            kappa: 0.002,
        };
        let pts: Vec<(f64, f64)> = (1..=16)
            .map(|n| (n as f64, truth.predict(n as f64)))
            .collect();
        let f = fit(&pts).unwrap();
        assert!(
            (f.usl.lambda - truth.lambda).abs() / truth.lambda < 0.01,
            "{f:?}"
        );
        assert!((f.usl.sigma - truth.sigma).abs() < 0.005, "{f:?}");
        assert!((f.usl.kappa - truth.kappa).abs() < 0.0005, "{f:?}");
        assert!(f.r_squared > 0.999);
        assert!(f.note.is_none());
        let peak = f.usl.peak().unwrap();
        assert!((peak - truth.peak().unwrap()).abs() < 1.5, "peak {peak}");
    }

    #[test]
    fn recovers_coefficients_from_noisy_sparse_data() {
        let truth = Usl {
            lambda: 120_000.0,
            sigma: 0.1,
            kappa: 0.0,
        };
        // ±2% deterministic noise on 1, 2, 4, 8 shards.
        let noise = [1.02, 0.98, 1.01, 0.99];
        let pts: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0]
            .iter()
            .zip(noise)
            .map(|(&n, e)| (n, truth.predict(n) * e))
            .collect();
        let f = fit(&pts).unwrap();
        assert!((f.usl.sigma - 0.1).abs() < 0.03, "{f:?}");
        assert!(f.usl.kappa < 0.003, "{f:?}");
        assert!(f.r_squared > 0.98);
    }

    #[test]
    fn two_points_fit_sigma_only_and_say_so() {
        let truth = Usl {
            lambda: 100.0,
            sigma: 0.2,
            kappa: 0.0,
        };
        let f = fit(&[(1.0, truth.predict(1.0)), (2.0, truth.predict(2.0))]).unwrap();
        assert!((f.usl.sigma - 0.2).abs() < 0.01, "{f:?}");
        assert_eq!(f.usl.kappa, 0.0);
        assert!(f.note.unwrap().contains("κ"));
        assert!(fit(&[(1.0, 5.0)]).is_none());
        assert!(fit(&[]).is_none());
    }
}
