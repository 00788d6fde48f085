//! Capacity profiles: what a sweep measured (per-shard capacity and how it
//! scales), saved so it can be carried to the production box and rescaled
//! there by a short `calibrate` run or by `advise`'s live utilisation,
//! instead of re-running the whole sweep on a machine that serves traffic.
//!
//! The rescaling assumes the *shape* of the scaling (the USL's σ and κ:
//! contention and coherency, properties of the server's design) carries
//! over and only the *scale* (per-core speed: clock, cache, kernel) changes.
//! Each calibration is recorded with its factor, so a factor far from 1 on
//! a similar machine is visible as a warning sign rather than absorbed.

use crate::report::TuneReport;
use crate::tune::TuneConfig;
use crate::usl::Usl;
use crate::TuneError;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// The machine a profile or a calibration was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Host name.
    pub hostname: String,
    /// CPU model (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        Machine {
            hostname: read("/proc/sys/kernel/hostname"),
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

/// One measured shard count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfilePoint {
    /// Shards.
    pub shards: usize,
    /// Highest rate that met the p99 target (median of the runs).
    pub sustainable_rps: f64,
    /// Closed-loop saturation throughput.
    pub saturation_rps: f64,
    /// Evidence of the server's scaling (disjoint cores, no load
    /// generator warning): only these enter the fit and the calibration.
    pub valid: bool,
}

/// A rescaling applied to the profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// How: "calibrate" (a short run) or "advise" (live utilisation).
    pub method: String,
    /// Where.
    pub machine: Machine,
    /// Unix time.
    pub unix_s: u64,
    /// (shards, measured sustainable req/s, what the profile predicted).
    pub observed: Vec<(usize, f64, f64)>,
    /// The factor applied (measured over predicted; the median of them).
    pub factor: f64,
}

/// A saved capacity profile (`--save-profile`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Format version.
    pub version: u32,
    /// Where it was measured.
    pub machine: Machine,
    /// Unix time of the sweep.
    pub unix_s: u64,
    /// The workload, as the load generator described it.
    pub workload: String,
    /// The p99 target the sustainable rates met, µs.
    pub p99_target_us: u64,
    /// What was measured.
    pub points: Vec<ProfilePoint>,
    /// The scaling fit, only when it was sound (≥ 3 valid counts, σ in [0, 1)).
    pub scaling: Option<Usl>,
    /// Multiplies every prediction: 1 as measured, changed by calibrations.
    pub scale: f64,
    /// Calibrations applied, oldest first.
    pub calibrations: Vec<Calibration>,
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Profile {
    /// The profile of a sweep (its first knob value only, as the fit).
    pub fn from_report(report: &TuneReport, cfg: &TuneConfig) -> Profile {
        let first = report.variants.first().and_then(|v| v.knob.clone());
        let points = report
            .variants
            .iter()
            .filter(|v| v.knob == first)
            .map(|v| ProfilePoint {
                shards: v.shards,
                sustainable_rps: v.sustainable_rps(),
                saturation_rps: v.search.saturation.ok_rps,
                valid: v.not_evidence().is_none(),
            })
            .collect();
        Profile {
            version: 1,
            machine: Machine::this(),
            unix_s: now_s(),
            workload: format!("{:?}", cfg.workload),
            p99_target_us: report.p99_target_us,
            points,
            // The report extrapolates only from a sound fit.
            scaling: (!report.extrapolation.is_empty())
                .then(|| report.usl.as_ref().map(|f| f.usl))
                .flatten(),
            scale: 1.0,
            calibrations: Vec::new(),
        }
    }

    /// Sustainable req/s predicted at `shards`: from the fit when there is
    /// one, else only at a count that was measured (never extrapolated).
    pub fn predict(&self, shards: usize) -> Option<f64> {
        let raw = match &self.scaling {
            Some(u) => Some(u.predict(shards as f64)),
            None => self
                .points
                .iter()
                .find(|p| p.shards == shards && p.valid)
                .map(|p| p.sustainable_rps),
        };
        raw.map(|r| r * self.scale).filter(|r| *r > 0.0)
    }

    /// The counts predictions are offered for.
    pub fn counts(&self) -> Vec<usize> {
        match &self.scaling {
            Some(_) => [1usize, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]
                .into_iter()
                .filter(|&n| n <= self.largest_count())
                .collect(),
            None => self
                .points
                .iter()
                .filter(|p| p.valid)
                .map(|p| p.shards)
                .collect(),
        }
    }

    /// The most shards a prediction is offered for: the fitted peak (1024
    /// when the fit has none), else the largest valid count measured.
    pub fn largest_count(&self) -> usize {
        match &self.scaling {
            Some(u) => u
                .peak()
                .map_or(1024, |p| p.ceil().clamp(1.0, 1024.0) as usize),
            None => self
                .points
                .iter()
                .filter(|p| p.valid)
                .map(|p| p.shards)
                .max()
                .unwrap_or(0),
        }
    }

    /// The fewest shards predicted to carry `rate` with `headroom` of the
    /// capacity left free.
    pub fn shards_for(&self, rate: f64, headroom: f64) -> Option<usize> {
        (1..=self.largest_count()).find(|&n| {
            self.predict(n)
                .is_some_and(|c| c * (1.0 - headroom) >= rate)
        })
    }

    /// Rescales by measured sustainable rates at some shard counts (the
    /// median of measured/predicted). Refused when no measured count has a
    /// prediction (the profile does not know those counts).
    pub fn calibrate(&mut self, method: &str, measured: &[(usize, f64)]) -> Result<f64, TuneError> {
        let mut observed = Vec::new();
        for &(n, rps) in measured {
            if let Some(pred) = self.predict(n) {
                if rps > 0.0 {
                    observed.push((n, rps, pred));
                }
            }
        }
        if observed.is_empty() {
            return Err(TuneError::Config(format!(
                "the profile predicts nothing at the measured shard count(s) {:?}: measure one it knows ({:?})",
                measured.iter().map(|m| m.0).collect::<Vec<_>>(),
                self.counts()
            )));
        }
        let mut ratios: Vec<f64> = observed.iter().map(|o| o.1 / o.2).collect();
        ratios.sort_by(f64::total_cmp);
        let factor = ratios[ratios.len() / 2];
        self.scale *= factor;
        self.calibrations.push(Calibration {
            method: method.to_string(),
            machine: Machine::this(),
            unix_s: now_s(),
            observed,
            factor,
        });
        Ok(factor)
    }

    /// Reads a profile.
    pub fn load(path: &Path) -> Result<Profile, TuneError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TuneError::Config(format!("cannot read {}: {e}", path.display())))?;
        let p: Profile = serde_json::from_str(&text).map_err(|e| {
            TuneError::Config(format!("{} is not a tuner profile: {e}", path.display()))
        })?;
        if p.version != 1 {
            return Err(TuneError::Config(format!(
                "{}: profile version {} (this tuner reads 1)",
                path.display(),
                p.version
            )));
        }
        Ok(p)
    }

    /// Writes the profile as JSON.
    pub fn save(&self, path: &Path) -> Result<(), TuneError> {
        let json = serde_json::to_string_pretty(self).expect("a profile serialises");
        std::fs::write(path, json)
            .map_err(|e| TuneError::Config(format!("cannot write {}: {e}", path.display())))
    }

    /// The predictions as Markdown, with what they rest on.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Profile from {} ({} CPUs, {}), workload {}, p99 ≤ {:.2} ms, scale {:.3}{}.",
            self.machine.hostname,
            self.machine.cpus,
            self.machine.cpu_model,
            self.workload,
            self.p99_target_us as f64 / 1000.0,
            self.scale,
            if self.calibrations.is_empty() {
                " (as measured)".to_string()
            } else {
                format!(" after {} calibration(s)", self.calibrations.len())
            }
        );
        match &self.scaling {
            Some(u) => {
                let _ = writeln!(
                    s,
                    "Scaling: USL λ = {:.0} req/s, σ = {:.4}, κ = {:.5}{}.",
                    u.lambda * self.scale,
                    u.sigma,
                    u.kappa,
                    u.peak()
                        .map(|p| format!(", peak at {p:.1} shards"))
                        .unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "No sound scaling fit: predictions only at the counts measured."
                );
            }
        }
        let _ = writeln!(s, "\n| shards | sustainable req/s |\n|---:|---:|");
        for n in self.counts() {
            if let Some(p) = self.predict(n) {
                let _ = writeln!(s, "| {n} | {p:.0} |");
            }
        }
        for c in &self.calibrations {
            if (c.factor - 1.0).abs() > 0.5 {
                let _ = writeln!(
                    s,
                    "\nNote: the {} calibration on {} changed the scale by {:.2}×: a machine this different may also scale differently; a sweep there is the better evidence.",
                    c.method, c.machine.hostname, c.factor
                );
            }
        }
        s
    }
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
