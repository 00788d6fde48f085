//! Several scenarios in one run (k6's scenarios, Gatling's injection
//! profiles): each its own target, workload, connections, loop and rate
//! plan, start offset and duration, tags and objectives, all on the same
//! load-generator threads and the same clock. Each scenario gets its own
//! report (with its name and tags); objectives can also select scenarios
//! by name or tag (`p99{scenario=checkout}=5ms`, `p99{kind=write}=5ms`),
//! checked on their requests together; a scenario with `abort_on_fail`
//! stops the whole run at its first failing objective.

use crate::engine::{drive, prepare, start_loadgen, Run, Setup};
use crate::report::Report;
use crate::slo::{Slo, SloResult};
use crate::{Config, LoadError, Progress};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One scenario of a run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name: the `scenario` label of its figures.
    pub name: String,
    /// Labels to select it by in objectives (`p99{kind=write}=5ms`).
    pub tags: BTreeMap<String, String>,
    /// When it starts, after the run's start.
    pub start: Duration,
    /// What it does. Its `threads`, `cores` and `metrics` are the run's
    /// ([`Setup`]), not its own.
    pub config: Config,
    /// Stop the whole run at the first failing objective of this scenario
    /// (checked every interval while measuring).
    pub abort_on_fail: bool,
}

/// An objective over the scenarios a selector picks (`{scenario=NAME}` or
/// `{TAG=VALUE}`, several joined by commas, all must match).
///
/// ```
/// use shardloop_loadgen::scenario::Selected;
/// let s: Selected = "p99{scenario=checkout,tier=gold}=5ms".parse().unwrap();
/// assert_eq!(s.selector.len(), 2);
/// assert_eq!(s.slo.limit, 5000.0); // µs
/// assert!("p99=5ms".parse::<Selected>().is_err(), "a selector is required");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// `(key, value)` pairs: `scenario` matches the name, others tags.
    pub selector: Vec<(String, String)>,
    /// The objective.
    pub slo: Slo,
}

impl std::str::FromStr for Selected {
    type Err = String;

    /// `p99{scenario=checkout}=5ms`, `errors{kind=write,tier=gold}=0.1%`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (Some(open), Some(close)) = (s.find('{'), s.find('}')) else {
            return Err(format!(
                "{s:?}: expected NAME{{KEY=VALUE,...}}=LIMIT, e.g. p99{{scenario=checkout}}=5ms"
            ));
        };
        if close < open {
            return Err(format!("{s:?}: '}}' before '{{'"));
        }
        let mut selector = Vec::new();
        for pair in s[open + 1..close]
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{s:?}: {pair:?} is not KEY=VALUE"))?;
            selector.push((k.trim().to_string(), v.trim().to_string()));
        }
        if selector.is_empty() {
            return Err(format!("{s:?}: an empty selector selects nothing"));
        }
        let plain = format!("{}{}", &s[..open], &s[close + 1..]);
        let mut slo: Slo = plain.parse()?;
        slo.text = s.to_string();
        Ok(Selected { selector, slo })
    }
}

impl Selected {
    fn picks(&self, r: &Report) -> bool {
        self.selector.iter().all(|(k, v)| match k.as_str() {
            "scenario" => r.scenario.as_deref() == Some(v.as_str()),
            tag => r.tags.get(tag) == Some(v),
        })
    }

    /// Checks the objective on the requests of every report it selects,
    /// together; `None` if it selects none.
    pub fn check(&self, reports: &[Report]) -> Option<SloResult> {
        let picked: Vec<&Report> = reports.iter().filter(|r| self.picks(r)).collect();
        let together = Report::combine(&picked)?;
        Some(self.slo.check(&together))
    }
}

/// Scenarios one run may have.
pub const MAX_SCENARIOS: usize = 64;

/// Checks a name is usable as a label value and a file-name part.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Runs `scenarios` together on `setup`'s threads and returns their
/// reports, in order (each with its name and tags; all marked
/// [`aborted`](Report::aborted) if an `abort_on_fail` objective stopped the
/// run). `observer` is called after each interval of each scenario, with
/// its name.
///
/// ```no_run
/// use shardloop_loadgen::scenario::{run_scenarios, Scenario};
/// use shardloop_loadgen::{Config, Mode, Setup};
/// use std::time::Duration;
/// let mut reads = Config::new("127.0.0.1:8080".parse().unwrap());
/// reads.mode = Mode::Open { rate: 2000.0, max_in_flight: 1 };
/// let writes = Config::new("127.0.0.1:6379".parse().unwrap());
/// let scenarios = [
///     Scenario { name: "reads".into(), tags: Default::default(), start: Duration::ZERO, config: reads, abort_on_fail: false },
///     Scenario { name: "writes".into(), tags: Default::default(), start: Duration::from_secs(5), config: writes, abort_on_fail: false },
/// ];
/// let setup = Setup { threads: 2, ..Setup::default() };
/// for r in run_scenarios(&setup, &scenarios, |_, _| {})? {
///     println!("{}: {:.0} req/s", r.scenario.unwrap_or_default(), r.throughput_rps);
/// }
/// # Ok::<(), shardloop_loadgen::LoadError>(())
/// ```
pub fn run_scenarios(
    setup: &Setup,
    scenarios: &[Scenario],
    observer: impl Fn(&str, &Progress<'_>) + Sync,
) -> Result<Vec<Report>, LoadError> {
    if scenarios.is_empty() {
        return Err(LoadError::Config("no scenario to run".into()));
    }
    if scenarios.len() > MAX_SCENARIOS {
        return Err(LoadError::Config(format!(
            "{} scenarios: at most {MAX_SCENARIOS} (each has a driver thread and its own figures)",
            scenarios.len()
        )));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut configs = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        if !valid_name(&s.name) {
            return Err(LoadError::Config(format!(
                "scenario name {:?}: 1 to 64 letters, digits, '_', '-' or '.'",
                s.name
            )));
        }
        if !names.insert(s.name.as_str()) {
            return Err(LoadError::Config(format!(
                "two scenarios are called {:?}",
                s.name
            )));
        }
        let mut c = s.config.clone();
        // The run's threads; a scenario may have fewer connections than
        // threads (its connections go to the first shards).
        c.threads = setup.threads.min(c.connections).max(1);
        c.cores = setup.cores.clone();
        c.metrics = setup.metrics;
        c.validate()
            .map_err(|e| LoadError::Config(format!("scenario {}: {e}", s.name)))?;
        c.threads = setup.threads;
        configs.push(c);
    }
    let labels: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    let (handle, lives) = start_loadgen(setup, &configs, &labels)?;
    let origin = Instant::now();
    let shared: Vec<_> = configs
        .iter()
        .zip(scenarios)
        .enumerate()
        .map(|(i, (c, s))| prepare(c, i, origin + s.start))
        .collect();
    let observer = &observer;
    let results: Vec<Result<Report, LoadError>> = std::thread::scope(|scope| {
        let running: Vec<_> = scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (config, shared_i, live) = (&configs[i], &shared[i], lives[i].as_deref());
                let (all, handle) = (&shared, &handle);
                scope.spawn(move || {
                    let mut tell = |p: &Progress<'_>| observer(&s.name, p);
                    let run = Run {
                        shared: shared_i,
                        all,
                        abort_on_fail: s.abort_on_fail,
                        handle,
                        live,
                    };
                    drive(config, run, &mut tell)
                })
            })
            .collect();
        running
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|_| {
                    Err(LoadError::Config("a scenario's driver panicked".into()))
                })
            })
            .collect()
    });
    handle.stop_within(Duration::from_millis(500));
    handle.wait();
    let mut reports = Vec::with_capacity(results.len());
    for (r, s) in results.into_iter().zip(scenarios) {
        let mut r = r.map_err(|e| match e {
            LoadError::Connect { addr, reason } => LoadError::Connect {
                addr,
                reason: format!("scenario {}: {reason}", s.name),
            },
            other => other,
        })?;
        r.scenario = Some(s.name.clone());
        r.tags = s.tags.clone();
        if let Some(a) = &mut r.aborted {
            a.scenario = s.name.clone();
        }
        reports.push(r);
    }
    // Every report says the run stopped early, and why.
    if let Some(a) = reports.iter().find_map(|r| r.aborted.clone()) {
        for r in &mut reports {
            r.aborted.get_or_insert_with(|| a.clone());
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::Sample;
    use crate::report::Churn;
    use std::time::SystemTime;

    fn report(name: &str, tag: &str, ok: u64, latency_ms: u64) -> Report {
        let mut s = Sample {
            sent: ok,
            ok,
            ..Sample::default()
        };
        for _ in 0..ok {
            s.record_latency(latency_ms * 1_000_000, latency_ms * 1_000_000);
        }
        let churn = Churn {
            connected_at_start: 1,
            connect_phase: None,
            replaced: 0,
            reconnects: 0,
        };
        let config = Config::new("127.0.0.1:1".parse().unwrap());
        let mut r = Report::build(
            &config,
            s,
            Duration::from_secs(1),
            Vec::new(),
            Vec::new(),
            SystemTime::now(),
            churn,
        );
        r.scenario = Some(name.into());
        r.tags.insert("kind".into(), tag.into());
        r
    }

    #[test]
    fn selectors_pick_scenarios_by_name_or_tag_and_judge_them_together() {
        let reports = [
            report("a", "read", 900, 1),
            report("b", "read", 100, 50),
            report("c", "write", 10, 500),
        ];
        let sel = |s: &str| s.parse::<Selected>().unwrap();
        // Reads together: 1,000 answers, a tenth of them at 50 ms.
        let reads = sel("p99{kind=read}=10ms").check(&reports).unwrap();
        assert!(
            !reads.pass && (reads.observed - 50_000.0).abs() < 100.0,
            "{reads:?}"
        );
        let p50 = sel("p50{kind=read}=10ms").check(&reports).unwrap();
        assert!(p50.pass, "{p50:?}");
        let rps = sel("rps{kind=read}=999").check(&reports).unwrap();
        assert!(rps.pass && rps.observed == 1000.0, "{rps:?}");
        let one = sel("max{scenario=c,kind=write}=1s")
            .check(&reports)
            .unwrap();
        assert!(one.pass, "{one:?}");
        assert!(sel("p99{scenario=nope}=1ms").check(&reports).is_none());
        for bad in [
            "p99=1ms",
            "p99{}=1ms",
            "p99{kind}=1ms",
            "p99}kind=read{=1ms",
            "p99{kind=read}",
        ] {
            assert!(bad.parse::<Selected>().is_err(), "{bad}");
        }
    }
}
