//! The sweep: for each configuration, start the server, probe it with the
//! load generator, record what the search finds.

use crate::report::{TuneReport, VariantResult};
use crate::search::{find_sustainable, Measurement, Probe, SearchParams};
use crate::server::{self, Knob, ServerSpec};
use crate::TuneError;
use shardloop_loadgen::{Config as LoadConfig, Mode, Workload};
use std::time::Duration;

/// What to sweep and how.
#[derive(Debug, Clone)]
pub struct TuneConfig {
    /// Server to tune.
    pub server: ServerSpec,
    /// Shard counts to try.
    pub shards: Vec<usize>,
    /// Secondary knob values (each combined with each shard count).
    pub knobs: Vec<Knob>,
    /// p99 target, µs.
    pub p99_target_us: u64,
    /// Bisection steps per configuration.
    pub steps: u32,
    /// Fractions of saturation measured for the latency curve.
    pub fractions: Vec<f64>,
    /// Measured time per run.
    pub run_duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Load connections.
    pub connections: usize,
    /// Loadgen threads.
    pub loadgen_threads: usize,
    /// Workload.
    pub workload: Workload,
    /// Recommend the smallest count within this fraction of the best sustainable rate.
    pub tolerance: f64,
    /// Fraction of the sustainable rate to keep free in production.
    pub headroom: f64,
    /// Cores available to pin to.
    pub cores: Vec<usize>,
    /// Times each configuration is measured, in interleaved rounds (the
    /// configurations alternate order round by round); the median counts.
    pub repeats: usize,
    /// A placement file's plan: N shards run on its first N shard CPUs,
    /// the load generator on its load-generator CPUs (instead of `cores`).
    pub placement: Option<shardloop::Placement>,
}

impl TuneConfig {
    /// The search parameters derived from this config.
    pub fn search_params(&self) -> SearchParams {
        SearchParams {
            p99_target_us: self.p99_target_us,
            steps: self.steps,
            fractions: self.fractions.clone(),
        }
    }

    /// Every (shards, knob) configuration the sweep runs.
    pub fn variants(&self) -> Vec<(usize, Option<Knob>)> {
        let mut v = Vec::new();
        for &n in &self.shards {
            if self.knobs.is_empty() {
                v.push((n, None));
            } else {
                for k in &self.knobs {
                    v.push((n, Some(k.clone())));
                }
            }
        }
        v
    }

    /// Disjoint core sets for server and loadgen, if the machine has enough.
    pub fn pinning(&self, shards: usize, knob: Option<&Knob>) -> Pinning {
        let want_pin = !matches!(knob, Some(Knob::Pin(false)));
        let need = shards + self.loadgen_threads;
        if let ServerSpec::Remote(r) = &self.server {
            if !r.is_local() {
                // Another machine: every core here is the load generator's.
                let n = self.loadgen_threads.min(self.cores.len());
                return Pinning {
                    server: None,
                    loadgen: Some(self.cores[..n].to_vec()),
                    disjoint: true,
                    note: Some(format!(
                        "server at {} on another machine (its placement is the server command's); the load generator has this machine's cores",
                        r.target
                    )),
                };
            }
        }
        if let (Some(p), true) = (&self.placement, want_pin) {
            return self.planned(p, shards);
        }
        if !want_pin {
            Pinning {
                server: None,
                loadgen: None,
                disjoint: false,
                note: Some("pinning off (knob)".into()),
            }
        } else if self.cores.len() >= need {
            Pinning {
                server: Some(self.cores[..shards].to_vec()),
                loadgen: Some(self.cores[shards..need].to_vec()),
                disjoint: true,
                note: None,
            }
        } else {
            Pinning {
                server: None,
                loadgen: None,
                disjoint: false,
                note: Some(format!(
                    "cannot pin disjointly: {shards} shards + {} loadgen threads > {} cores; server and loadgen share cores, so throughput is understated",
                    self.loadgen_threads,
                    self.cores.len()
                )),
            }
        }
    }
}

impl TuneConfig {
    /// Where a placement file puts `shards` shards and the load generator.
    fn planned(&self, p: &shardloop::Placement, shards: usize) -> Pinning {
        if shards > p.shards.len() {
            return Pinning {
                server: None,
                loadgen: None,
                disjoint: false,
                note: Some(format!(
                    "the placement has {} shard CPUs, fewer than {shards} shards: unpinned",
                    p.shards.len()
                )),
            };
        }
        let loadgen = (!p.loadgen.is_empty()).then(|| p.loadgen.clone());
        Pinning {
            server: Some(p.shards[..shards].to_vec()),
            disjoint: loadgen.is_some(),
            note: loadgen.is_none().then(|| {
                "the placement keeps no CPU for the load generator: it runs unpinned".to_string()
            }),
            loadgen,
        }
    }
}

/// Where server and loadgen run for one configuration.
#[derive(Debug, Clone)]
pub struct Pinning {
    /// Server cores (None: unpinned).
    pub server: Option<Vec<usize>>,
    /// Loadgen cores (None: unpinned).
    pub loadgen: Option<Vec<usize>>,
    /// Server and load generator cannot take each other's CPU (disjoint
    /// pinned cores, or separate machines).
    pub disjoint: bool,
    /// Why it is not pinned, if it is not.
    pub note: Option<String>,
}

/// Probes a server with the load generator.
pub struct LoadProbe {
    base: LoadConfig,
    /// The median latency the saturation run measured, µs: open-loop runs
    /// get enough connections for it.
    latency_us: u64,
}

/// Connections an open-loop run at `rate` needs so that requests are never
/// held back by a connection still waiting for its previous answer: by
/// Little's law, rate × latency requests are in flight (one per
/// connection); the latency is the median measured at saturation (an upper
/// bound below it), doubled for headroom, and the count capped at what one
/// load generator sensibly opens.
pub fn connections_for(rate: f64, latency_us: u64, at_least: usize) -> usize {
    let in_flight = rate * latency_us as f64 / 1e6;
    let needed = (2.0 * in_flight).ceil();
    (needed.min(4096.0) as usize).max(at_least)
}

impl LoadProbe {
    fn measure(&mut self, mode: Mode) -> Result<Measurement, TuneError> {
        let mut cfg = self.base.clone();
        let requested = match mode {
            Mode::Open { rate, .. } => Some(rate),
            Mode::Closed { .. } => None,
        };
        if let Mode::Open { rate, .. } = mode {
            cfg.connections = connections_for(rate, self.latency_us, cfg.connections);
        }
        cfg.mode = mode;
        let r = shardloop_loadgen::run(&cfg, |_| {})?;
        if requested.is_none() {
            self.latency_us = r.latency_us.p50.round() as u64;
        }
        Ok(Measurement {
            requested_rps: requested,
            achieved_rps: r.achieved_rate,
            ok_rps: r.throughput_rps,
            // Whole µs are plenty for choosing a shard count.
            p50_us: r.latency_us.p50.round() as u64,
            p99_us: r.latency_us.p99.round() as u64,
            errors: r.errors.total(),
            warnings: r.warnings.clone(),
        })
    }
}

impl Probe for LoadProbe {
    type Error = TuneError;
    fn saturate(&mut self) -> Result<Measurement, TuneError> {
        self.measure(Mode::Closed { pipeline: 1 })
    }
    fn at_rate(&mut self, rate: f64) -> Result<Measurement, TuneError> {
        self.measure(Mode::Open {
            rate,
            max_in_flight: 1,
        })
    }
}

/// Runs the sweep. `on_run(variant label, run label)` is called before each run.
pub fn run(cfg: &TuneConfig, mut on_run: impl FnMut(&str, &str)) -> Result<TuneReport, TuneError> {
    if cfg.shards.is_empty() || cfg.shards.contains(&0) {
        return Err(TuneError::Config("shard counts must be at least 1".into()));
    }
    if let ServerSpec::Remote(r) = &cfg.server {
        if r.start.is_none() && (cfg.shards.len() > 1 || !cfg.knobs.is_empty()) {
            return Err(TuneError::Config(format!(
                "without a server command the tuner cannot change the server at {}: give the one shard count it runs (--shards N) and no knob, or a --server-cmd",
                r.target
            )));
        }
    }
    if !matches!(cfg.workload, Workload::Echo { .. })
        && matches!(cfg.server, ServerSpec::BuiltinEcho)
    {
        return Err(TuneError::Config(
            "the built-in server speaks echo: give --server-cmd (or --target) for another workload"
                .into(),
        ));
    }
    let params = cfg.search_params();
    let variants = cfg.variants();
    let repeats = cfg.repeats.max(1);
    // Round by round, alternating the order, so a slow drift of the
    // machine (thermal, a neighbour) spreads over every configuration.
    let mut runs: Vec<Vec<(crate::search::SearchResult, bool, Option<String>)>> =
        vec![Vec::new(); variants.len()];
    for round in 0..repeats {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..variants.len()).collect()
        } else {
            (0..variants.len()).rev().collect()
        };
        for i in order {
            let (shards, knob) = &variants[i];
            let pin = cfg.pinning(*shards, knob.as_ref());
            let label = match knob {
                Some(k) => format!("{shards} shards, {k}"),
                None => format!("{shards} shards"),
            };
            let label = if repeats > 1 {
                format!("{label} (run {} of {repeats})", round + 1)
            } else {
                label
            };
            let running =
                server::start(&cfg.server, *shards, pin.server.as_deref(), knob.as_ref())?;
            let mut base = LoadConfig::new(running.addr());
            base.threads = cfg.loadgen_threads;
            base.connections = cfg.connections.max(cfg.loadgen_threads);
            base.duration = cfg.run_duration;
            base.warmup = cfg.warmup;
            base.workload = cfg.workload.clone();
            base.cores = pin.loadgen.clone().unwrap_or_default();
            let mut probe = LoadProbe {
                base,
                latency_us: 0,
            };
            let search = find_sustainable(&mut probe, &params, |what| on_run(&label, what))?;
            drop(running);
            runs[i].push((search, pin.disjoint, pin.note));
        }
    }
    let mut results = Vec::new();
    for ((shards, knob), mut rs) in variants.into_iter().zip(runs) {
        let sustainable_runs: Vec<f64> = rs.iter().map(|r| r.0.sustainable_rps()).collect();
        // The run with the median sustainable rate stands for the configuration.
        rs.sort_by(|a, b| a.0.sustainable_rps().total_cmp(&b.0.sustainable_rps()));
        let (search, pinned, pinning_note) = rs.swap_remove(rs.len() / 2);
        results.push(VariantResult {
            shards,
            knob,
            pinned,
            pinning_note,
            search,
            sustainable_runs,
        });
    }
    Ok(TuneReport::build(cfg, results))
}

#[cfg(test)]
mod tests {
    use super::connections_for;

    #[test]
    fn littles_law_sizes_open_loop_connections() {
        // 100k req/s at 2 ms each: 200 in flight, 400 connections.
        assert_eq!(connections_for(100_000.0, 2_000, 64), 400);
        // A fast server keeps the configured floor.
        assert_eq!(connections_for(300_000.0, 30, 64), 64);
        // Absurd products are capped.
        assert_eq!(connections_for(1e9, 1_000_000, 64), 4096);
    }
}
