//! The tuner's findings: table, recommendation, scalability fit, charts.

use crate::search::SearchResult;
use crate::server::Knob;
use crate::tune::TuneConfig;
use crate::usl::{self, Fit};
use crate::TuneError;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// Results for one configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantResult {
    /// Shard count.
    pub shards: usize,
    /// Secondary knob value, if swept.
    pub knob: Option<Knob>,
    /// Server and loadgen could not take each other's CPU: disjoint pinned
    /// cores, or separate machines.
    pub pinned: bool,
    /// Why not, if not.
    pub pinning_note: Option<String>,
    /// What the search measured (the run with the median sustainable rate).
    pub search: SearchResult,
    /// Each run's sustainable rate (`--repeats`), in run order.
    #[serde(default)]
    pub sustainable_runs: Vec<f64>,
}

impl VariantResult {
    /// Highest rate that met the target (0 if none did).
    pub fn sustainable_rps(&self) -> f64 {
        self.search.sustainable_rps()
    }

    /// The spread of the repeated runs' sustainable rates, (max − min) /
    /// median; `None` with fewer than two runs.
    pub fn spread(&self) -> Option<f64> {
        let mut v = self.sustainable_runs.clone();
        if v.len() < 2 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        (median > 0.0).then(|| (v[v.len() - 1] - v[0]) / median)
    }

    /// Why this point is no evidence of the server's scaling (server and
    /// load generator shared cores, or the load generator warned), if it
    /// is not.
    pub fn not_evidence(&self) -> Option<String> {
        if !self.pinned {
            return Some("server and load generator shared cores".into());
        }
        self.search.saturation.warnings.first().cloned()
    }

    /// "1 shard", "2 shards, read-buffer=4096".
    pub fn label(&self) -> String {
        let unit = if self.shards == 1 { "shard" } else { "shards" };
        match &self.knob {
            Some(k) => format!("{} {unit}, {k}", self.shards),
            None => format!("{} {unit}", self.shards),
        }
    }
}

/// The recommendation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recommendation {
    /// Shards to run with.
    pub shards: usize,
    /// Knob value of the recommended configuration, if swept.
    pub knob: Option<Knob>,
    /// Its sustainable rate at the p99 target.
    pub sustainable_rps: f64,
    /// Best sustainable rate of any configuration.
    pub best_rps: f64,
    /// Plan production load at most this (sustainable × (1 − headroom)).
    pub plan_rps: f64,
    /// The one-line summary.
    pub line: String,
}

/// Everything the tuner writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneReport {
    /// p99 target, µs.
    pub p99_target_us: u64,
    /// Per configuration.
    pub variants: Vec<VariantResult>,
    /// Scalability fit over shard counts (first knob value only).
    pub usl: Option<Fit>,
    /// Extrapolated sustainable rate at larger shard counts.
    pub extrapolation: Vec<(usize, f64)>,
    /// The recommendation, if any configuration met the target.
    pub recommendation: Option<Recommendation>,
    /// Cores seen on this machine.
    pub cores: usize,
    /// Loadgen threads and connections per run.
    pub loadgen: (usize, usize),
    /// Why the scalability fit is not used to extrapolate (empty: it is),
    /// and which points it left out.
    #[serde(default)]
    pub validity: Vec<String>,
}

/// Fits the USL to the points that are evidence of the server's scaling
/// (pinned apart from the load generator, and without the load generator's
/// warnings), and extrapolates only when the fit is sound: three or more
/// shard counts and 0 ≤ σ < 1. Otherwise says why instead of drawing a
/// curve that would mislead.
fn validated_fit(
    variants: &[VariantResult],
    knob: Option<&crate::server::Knob>,
) -> (Option<Fit>, Vec<(usize, f64)>, Vec<String>) {
    let mut validity = Vec::new();
    let mut points = Vec::new();
    for v in variants.iter().filter(|v| v.knob.as_ref() == knob) {
        if let Some(why) = v.not_evidence() {
            validity.push(format!("{} left out: {why}", v.label()));
            continue;
        }
        points.push((v.shards as f64, v.sustainable_rps()));
    }
    let mut counts: Vec<u64> = points.iter().map(|p| p.0 as u64).collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.len() < 3 {
        validity.push(format!(
            "no extrapolation: {} valid shard count(s); the fit needs at least 3 (κ cannot be estimated from fewer)",
            counts.len()
        ));
        return (usl::fit(&points), Vec::new(), validity);
    }
    let fit = usl::fit(&points);
    let sound = fit
        .as_ref()
        .is_some_and(|f| (0.0..1.0).contains(&f.usl.sigma));
    if !sound {
        validity.push(format!(
            "no extrapolation: the fit has σ = {:.3}, outside [0, 1) — throughput did not grow with shards, which points at a shared bottleneck (the load generator, a core, the network), not at the server's scaling",
            fit.as_ref().map_or(f64::NAN, |f| f.usl.sigma)
        ));
        return (fit, Vec::new(), validity);
    }
    let extrapolation = fit
        .as_ref()
        .map(|f| {
            [1usize, 2, 4, 8, 16, 32, 64]
                .iter()
                .map(|&n| (n, f.usl.predict(n as f64)))
                .collect()
        })
        .unwrap_or_default();
    (fit, extrapolation, validity)
}

impl TuneReport {
    /// Derives fit and recommendation from the measurements.
    pub fn build(cfg: &TuneConfig, variants: Vec<VariantResult>) -> TuneReport {
        let first_knob = variants.first().and_then(|v| v.knob.clone());
        let (fit, extrapolation, validity) = validated_fit(&variants, first_knob.as_ref());
        let mut recommendation =
            recommend(&variants, cfg.tolerance, cfg.headroom, cfg.p99_target_us);
        let mut validity = validity;
        for v in &variants {
            if let Some(sp) = v.spread().filter(|sp| *sp > 0.10) {
                validity.push(format!(
                    "{}: its {} runs spread {:.0}% (min to max over the median): the machine was noisy; lengthen the runs or repeat",
                    v.label(),
                    v.sustainable_runs.len(),
                    sp * 100.0
                ));
            }
        }
        if let Some(rec) = recommendation.as_mut() {
            let picked = variants
                .iter()
                .find(|v| v.shards == rec.shards && v.knob == rec.knob);
            if let Some(sp) = picked.and_then(|v| v.spread()) {
                let runs = picked.map_or(0, |v| v.sustainable_runs.len());
                let confidence = if sp <= 0.05 {
                    "high"
                } else if sp <= 0.10 {
                    "medium"
                } else {
                    "low"
                };
                rec.line.push_str(&format!(
                    " Confidence {confidence}: median of {runs} interleaved runs, spread {:.1}%.",
                    sp * 100.0
                ));
            }
        }
        TuneReport {
            p99_target_us: cfg.p99_target_us,
            variants,
            usl: fit,
            extrapolation,
            recommendation,
            cores: cfg.cores.len(),
            loadgen: (cfg.loadgen_threads, cfg.connections),
            validity,
        }
    }

    /// Markdown: table, fit, recommendation.
    pub fn markdown(&self) -> String {
        let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| configuration | pinned | saturation req/s | sustainable req/s (p99 ≤ {} ms) | runs (spread) | p99 there (ms) | p99 @25% | p99 @50% | p99 @75% | p99 @90% |",
            ms(self.p99_target_us)
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for v in &self.variants {
            let sat = v.search.saturation.ok_rps;
            let at = |f: f64| {
                v.search
                    .points
                    .iter()
                    .find(|p| p.requested_rps.is_some_and(|r| (r / sat - f).abs() < 1e-6))
                    .map(|p| ms(p.p99_us))
                    .unwrap_or_else(|| "–".into())
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
                v.label(),
                if v.pinned { "yes" } else { "no" },
                sat,
                v.sustainable_rps(),
                match v.spread() {
                    Some(sp) => format!("{} ({:.1}%)", v.sustainable_runs.len(), sp * 100.0),
                    None => v.sustainable_runs.len().max(1).to_string(),
                },
                v.search
                    .sustainable
                    .as_ref()
                    .map_or("–".to_string(), |m| ms(m.p99_us)),
                at(0.25),
                at(0.5),
                at(0.75),
                at(0.9)
            );
        }
        let notes: Vec<&String> = self
            .variants
            .iter()
            .filter_map(|v| v.pinning_note.as_ref())
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(s);
            for n in notes.iter().collect::<std::collections::BTreeSet<_>>() {
                let _ = writeln!(s, "- note: {n}");
            }
        }
        if let Some(f) = &self.usl {
            let _ = writeln!(
                s,
                "\nUniversal Scalability Law fit: λ = {:.0} req/s per shard, σ (contention) = {:.4}, κ (coherency) = {:.5}, R² = {:.3}",
                f.usl.lambda, f.usl.sigma, f.usl.kappa, f.r_squared
            );
            if let Some(n) = &f.note {
                let _ = writeln!(s, "({n})");
            }
            if self.variants.iter().any(|v| !v.pinned) {
                let _ = writeln!(
                    s,
                    "(some points ran with server and loadgen sharing cores: their throughput reflects the machine, not the server's scaling, so treat the extrapolation as a lower bound)"
                );
            }
            if f.usl.sigma > 1.0 {
                let _ = writeln!(
                    s,
                    "(σ > 1: throughput fell when shards were added, which points at a shared bottleneck — here most likely cores shared with the load generator)"
                );
            }
            if !self.extrapolation.is_empty() {
                let ex: Vec<String> = self
                    .extrapolation
                    .iter()
                    .map(|(n, x)| format!("{n}: {x:.0}"))
                    .collect();
                let _ = writeln!(
                    s,
                    "Extrapolated sustainable req/s by shard count — {}",
                    ex.join(", ")
                );
                if let Some(p) = f.usl.peak() {
                    let _ = writeln!(s, "Throughput peaks near {p:.0} shards.");
                }
            }
        }
        if !self.validity.is_empty() {
            let _ = writeln!(s, "\n### Validity\n");
            for v in &self.validity {
                let _ = writeln!(s, "- {v}");
            }
        }
        let _ = writeln!(s);
        match &self.recommendation {
            Some(r) => {
                let _ = writeln!(s, "**{}**", r.line);
            }
            None => {
                let _ = writeln!(
                    s,
                    "**No configuration met p99 ≤ {} ms at any rate tried.**",
                    ms(self.p99_target_us)
                );
            }
        }
        s
    }

    /// Writes report.md, report.json, throughput.svg, latency.svg and
    /// report.html (tables and charts in one page) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), TuneError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(self).map_err(|e| TuneError::Report(e.to_string()))?,
        )?;
        let (tp, lat) = (dir.join("throughput.svg"), dir.join("latency.svg"));
        crate::charts::throughput_chart(self, &tp)
            .map_err(|e| TuneError::Report(format!("throughput chart: {e}")))?;
        crate::charts::latency_chart(self, &lat)
            .map_err(|e| TuneError::Report(format!("latency chart: {e}")))?;
        let html = crate::charts::html(
            self,
            &std::fs::read_to_string(&tp)?,
            &std::fs::read_to_string(&lat)?,
        );
        std::fs::write(dir.join("report.html"), html)?;
        Ok(())
    }
}

/// The smallest shard count whose sustainable rate is within `tolerance` of
/// the best; production load planned with `headroom` to spare.
pub fn recommend(
    variants: &[VariantResult],
    tolerance: f64,
    headroom: f64,
    target_us: u64,
) -> Option<Recommendation> {
    let best = variants
        .iter()
        .map(|v| v.sustainable_rps())
        .fold(0.0, f64::max);
    if best <= 0.0 {
        return None;
    }
    let pick = variants
        .iter()
        .filter(|v| v.sustainable_rps() >= best * (1.0 - tolerance))
        .min_by_key(|v| v.shards)?;
    let sustainable = pick.sustainable_rps();
    let plan = sustainable * (1.0 - headroom);
    let line = format!(
        "Recommendation: {} — sustains {:.0} req/s at p99 ≤ {:.2} ms (best {:.0}, within {:.0}%); plan for at most {:.0} req/s ({:.0}% headroom).",
        pick.label(),
        sustainable,
        target_us as f64 / 1000.0,
        best,
        tolerance * 100.0,
        plan,
        headroom * 100.0
    );
    Some(Recommendation {
        shards: pick.shards,
        knob: pick.knob.clone(),
        sustainable_rps: sustainable,
        best_rps: best,
        plan_rps: plan,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Measurement, SearchResult};

    fn variant(shards: usize, sustainable: f64) -> VariantResult {
        let m = |r: Option<f64>| Measurement {
            requested_rps: r,
            achieved_rps: r.unwrap_or(sustainable * 1.2),
            ok_rps: r.unwrap_or(sustainable * 1.2),
            p50_us: 100,
            p99_us: 900,
            errors: 0,
            warnings: Vec::new(),
        };
        VariantResult {
            shards,
            knob: None,
            pinned: true,
            pinning_note: None,
            search: SearchResult {
                saturation: m(None),
                sustainable: (sustainable > 0.0).then(|| m(Some(sustainable))),
                points: vec![m(Some(sustainable))],
            },
            sustainable_runs: vec![sustainable],
        }
    }

    #[test]
    fn recommends_smallest_count_within_tolerance() {
        let v = vec![
            variant(1, 80_000.0),
            variant(2, 150_000.0),
            variant(4, 155_000.0),
        ];
        let r = recommend(&v, 0.05, 0.2, 2000).unwrap();
        assert_eq!(r.shards, 2);
        assert_eq!(r.best_rps, 155_000.0);
        assert!((r.plan_rps - 120_000.0).abs() < 1e-6);
        assert!(r.line.starts_with("Recommendation: 2 shards"));
        assert!(recommend(&[variant(1, 0.0)], 0.05, 0.2, 2000).is_none());
    }

    #[test]
    fn extrapolates_only_from_sound_fits_and_says_why_otherwise() {
        // Amdahl-like scaling over 4 counts: a sound fit, extrapolated.
        let good: Vec<VariantResult> = [
            (1, 100_000.0),
            (2, 190_000.0),
            (4, 340_000.0),
            (8, 560_000.0),
        ]
        .iter()
        .map(|&(n, x)| variant(n, x))
        .collect();
        let (fit, ex, why) = validated_fit(&good, None);
        assert!(fit.is_some() && !ex.is_empty(), "{why:?}");
        assert!(why.is_empty(), "{why:?}");

        // Two counts: no extrapolation, and the reason.
        let (_, ex, why) = validated_fit(&good[..2], None);
        assert!(ex.is_empty());
        assert!(why.iter().any(|w| w.contains("at least 3")), "{why:?}");

        // Throughput falling as shards are added (a shared bottleneck): σ ≥ 1.
        let falling: Vec<VariantResult> = [(1, 100_000.0), (2, 60_000.0), (3, 45_000.0)]
            .iter()
            .map(|&(n, x)| variant(n, x))
            .collect();
        let (_, ex, why) = validated_fit(&falling, None);
        assert!(ex.is_empty());
        assert!(why.iter().any(|w| w.contains("outside [0, 1)")), "{why:?}");

        // Unpinned points and CPU-bound load generator points are left out.
        let mut mixed = good.clone();
        mixed[1].pinned = false;
        mixed[2].search.saturation.warnings =
            vec!["loadgen thread sl0-shard0 used 99% of a core".into()];
        let (_, ex, why) = validated_fit(&mixed, None);
        assert!(ex.is_empty(), "2 valid counts left");
        assert!(why.iter().any(|w| w.contains("shared cores")), "{why:?}");
        assert!(why.iter().any(|w| w.contains("99% of a core")), "{why:?}");
    }

    #[test]
    fn the_spread_of_repeated_runs_sets_the_confidence() {
        let mut v = variant(2, 100_000.0);
        v.sustainable_runs = vec![96_000.0, 100_000.0, 103_000.0];
        assert!((v.spread().unwrap() - 0.07).abs() < 1e-9);
        v.sustainable_runs = vec![100_000.0];
        assert_eq!(v.spread(), None);
    }
}
