//! `shardloop-load run FILE.toml`: several scenarios in one run. Each
//! `[[scenario]]` table is one run's command line written as TOML — every
//! key is a `shardloop-load` flag (`rate = "2k"`, `connections = 8`,
//! `header = ["Accept: */*"]`, `slo = ["p99=5ms"]`), `target` the
//! positional target — plus `name`, `tags`, `start` (offset from the run's
//! start) and `abort_on_fail`. A `[defaults]` table gives keys every
//! scenario has unless it says otherwise. At the top: `threads`, `cores`,
//! `metrics` (the run's, shared by the scenarios) and `slo`, objectives
//! over selected scenarios (`p99{scenario=checkout}=5ms`,
//! `errors{kind=write}=0.1%`). Relative file paths (`body`, `payload`,
//! `tls_ca`) are relative to the scenarios file.

use crate::args::RunArgs;
use crate::config::build_config;
use anyhow::{bail, Context};
use clap::Parser;
use shardloop_loadgen::scenario::{Scenario, Selected};
use shardloop_loadgen::Setup;
use std::collections::BTreeMap;
use std::path::Path;

/// A parsed scenarios file.
pub(crate) struct ScenarioFile {
    pub(crate) setup: Setup,
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) slos: Vec<Selected>,
}

/// One scenario's flags, parsed as the command line parses them.
#[derive(Parser, Debug)]
#[command(name = "scenario", no_binary_name = true)]
struct ScenarioFlags {
    #[command(flatten)]
    run: RunArgs,
}

/// Keys of the run as a whole, not of a scenario.
const RUN_LEVEL: [&str; 10] = [
    "threads", "cores", "metrics", "segment", "segments", "start_at", "json", "hlog", "csv",
    "latency",
];
/// Keys whose value is a file path.
const PATHS: [&str; 6] = [
    "body",
    "payload",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "unix_socket",
];

/// A `var` spec with its data file's path made relative to `dir`.
fn var_spec(spec: &str, dir: &Path) -> String {
    let Some((name, rest)) = spec.split_once('=') else {
        return spec.to_string();
    };
    for kind in ["csv:", "json:"] {
        if let Some(tail) = rest.trim().strip_prefix(kind) {
            let (path, order) = match tail.rsplit_once(':') {
                Some((p, o)) if o == "random" || o == "order" => (p, format!(":{o}")),
                _ => (tail, String::new()),
            };
            if Path::new(path).is_relative() {
                return format!("{name}={kind}{}{order}", dir.join(path).display());
            }
        }
    }
    spec.to_string()
}

fn duration(v: &toml::Value, what: &str) -> anyhow::Result<std::time::Duration> {
    let s = v
        .as_str()
        .with_context(|| format!("{what}: expected a duration such as \"30s\""))?;
    humantime::parse_duration(s).with_context(|| format!("{what}: {s:?} is not a duration"))
}

/// A TOML value as one flag value.
fn flag_value(key: &str, v: &toml::Value, dir: &Path) -> anyhow::Result<String> {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        other => bail!("{key}: {other:?} is not a flag value (a string or a number)"),
    };
    Ok(if PATHS.contains(&key) && Path::new(&text).is_relative() {
        dir.join(text).display().to_string()
    } else if key == "var" {
        var_spec(&text, dir)
    } else {
        text
    })
}

/// One `[[scenario]]` table (with the defaults under it) as a scenario.
fn scenario(
    index: usize,
    table: &toml::Table,
    defaults: &toml::Table,
    dir: &Path,
) -> anyhow::Result<Scenario> {
    let mut merged = defaults.clone();
    for (k, v) in table {
        merged.insert(k.clone(), v.clone());
    }
    let name = match merged.remove("name") {
        Some(toml::Value::String(s)) => s,
        Some(v) => bail!("scenario {index}: name {v:?} is not a string"),
        None => format!("scenario{index}"),
    };
    let at = |e: anyhow::Error| e.context(format!("scenario {name}"));
    let target = match merged.remove("target") {
        Some(toml::Value::String(s)) => s,
        _ => {
            return Err(at(anyhow::anyhow!(
                "needs a target (target = \"HOST:PORT\" or a URL)"
            )))
        }
    };
    let mut tags = BTreeMap::new();
    if let Some(t) = merged.remove("tags") {
        let t = t
            .as_table()
            .ok_or_else(|| at(anyhow::anyhow!("tags: expected a table of strings")))?;
        for (k, v) in t {
            let v = v
                .as_str()
                .ok_or_else(|| at(anyhow::anyhow!("tag {k}: expected a string")))?;
            tags.insert(k.clone(), v.to_string());
        }
    }
    let start = match merged.remove("start") {
        Some(v) => duration(&v, "start").map_err(at)?,
        None => std::time::Duration::ZERO,
    };
    let abort_on_fail = match merged.remove("abort_on_fail") {
        Some(toml::Value::Boolean(b)) => b,
        Some(v) => {
            return Err(at(anyhow::anyhow!(
                "abort_on_fail: {v:?} is not true or false"
            )))
        }
        None => false,
    };
    let mut args = vec![target];
    for (key, v) in &merged {
        if RUN_LEVEL.contains(&key.as_str()) {
            return Err(at(anyhow::anyhow!(
                "{key} belongs to the whole run: put it at the top of the file (or on the command line)"
            )));
        }
        let flag = format!("--{}", key.replace('_', "-"));
        match v {
            toml::Value::Boolean(true) => args.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for item in items {
                    args.push(flag.clone());
                    args.push(flag_value(key, item, dir).map_err(at)?);
                }
            }
            v => {
                args.push(flag);
                args.push(flag_value(key, v, dir).map_err(at)?);
            }
        }
    }
    let flags = ScenarioFlags::try_parse_from(&args)
        .map_err(|e| at(anyhow::anyhow!("{}", e.to_string().trim())))?;
    let config = build_config(&flags.run).map_err(at)?;
    Ok(Scenario {
        name,
        tags,
        start,
        config,
        abort_on_fail,
    })
}

/// Reads a scenarios file.
pub(crate) fn parse(text: &str, dir: &Path) -> anyhow::Result<ScenarioFile> {
    let mut top: toml::Table = text.parse().context("not a valid TOML file")?;
    let threads = match top.remove("threads") {
        Some(v) => v
            .as_integer()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .context("threads: expected a positive number")?,
        None => 2,
    };
    let cores = match top.remove("cores") {
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_integer().and_then(|n| usize::try_from(n).ok()))
            .collect::<Option<Vec<_>>>()
            .context("cores: expected a list of CPU numbers")?,
        Some(_) => bail!("cores: expected a list of CPU numbers"),
        None => Vec::new(),
    };
    let metrics = match top.remove("metrics") {
        Some(v) => Some(
            v.as_str()
                .context("metrics: expected \"HOST:PORT\"")?
                .parse()
                .context("metrics: expected an address such as \"127.0.0.1:9200\"")?,
        ),
        None => None,
    };
    let slos = match top.remove("slo") {
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| {
                let s = v.as_str().context("slo: expected strings")?;
                s.parse::<Selected>().map_err(anyhow::Error::msg)
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        Some(_) => bail!("slo: expected a list such as [\"p99{{scenario=checkout}}=5ms\"]"),
        None => Vec::new(),
    };
    let defaults = match top.remove("defaults") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => bail!("defaults: expected a table"),
        None => toml::Table::new(),
    };
    let tables = match top.remove("scenario") {
        Some(toml::Value::Array(a)) => a,
        _ => bail!("no [[scenario]] table"),
    };
    if let Some(k) = top.keys().next() {
        bail!("unknown top-level key {k:?} (threads, cores, metrics, slo, defaults, scenario)");
    }
    let mut scenarios = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let t = t
            .as_table()
            .context("[[scenario]] entries must be tables")?;
        scenarios.push(scenario(i, t, &defaults, dir)?);
    }
    for s in &slos {
        let matches = |r: &Scenario| {
            s.selector.iter().all(|(k, v)| match k.as_str() {
                "scenario" => &r.name == v,
                tag => r.tags.get(tag) == Some(v),
            })
        };
        if !scenarios.iter().any(matches) {
            bail!("slo {}: selects no scenario", s.slo.text);
        }
    }
    Ok(ScenarioFile {
        setup: Setup {
            threads,
            cores,
            metrics,
        },
        scenarios,
        slos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_becomes_scenarios_with_defaults_tags_and_selected_objectives() {
        let text = r#"
            threads = 3
            slo = ["p99{kind=read}=5ms"]
            [defaults]
            duration = "3s"
            connections = 4
            [[scenario]]
            name = "browse"
            target = "http://127.0.0.1:8080/items"
            rate = "2k"
            tags = { kind = "read" }
            slo = ["p99=20ms"]
            abort_on_fail = true
            [[scenario]]
            name = "store"
            target = "127.0.0.1:6379"
            workload = "resp"
            command = ["SET k v", "GET k"]
            pipeline = 4
            start = "500ms"
            connections = 2
        "#;
        let f = parse(text, Path::new("/tmp")).unwrap();
        assert_eq!(f.setup.threads, 3);
        assert_eq!(f.scenarios.len(), 2);
        let (b, s) = (&f.scenarios[0], &f.scenarios[1]);
        assert_eq!((b.name.as_str(), b.abort_on_fail), ("browse", true));
        assert_eq!(b.tags["kind"], "read");
        assert_eq!(b.config.connections, 4, "from the defaults");
        assert_eq!(b.config.slos.len(), 1);
        assert!(
            matches!(b.config.mode, shardloop_loadgen::Mode::Open { rate, .. } if rate == 2000.0)
        );
        assert_eq!(b.config.workload.name(), "http");
        assert_eq!(s.config.connections, 2, "its own value wins");
        assert_eq!(s.start, std::time::Duration::from_millis(500));
        assert!(matches!(
            s.config.mode,
            shardloop_loadgen::Mode::Closed { pipeline: 4 }
        ));
        assert_eq!(s.config.duration, std::time::Duration::from_secs(3));
        assert_eq!(f.slos.len(), 1);
    }

    #[test]
    fn the_example_files_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for name in ["shop.toml", "guard.toml", "api_h2.toml"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let f = parse(&text, &dir).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(f.scenarios.len() >= 2, "{name}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("[[scenario]]\nrate = \"1k\"", "needs a target"),
            (
                "[[scenario]]\ntarget = \"127.0.0.1:1\"\nthreads = 2",
                "whole run",
            ),
            (
                "[[scenario]]\ntarget = \"127.0.0.1:1\"\nrat = \"1k\"",
                "--rat",
            ),
            (
                "[[scenario]]\ntarget = \"127.0.0.1:1\"\nstart = \"soon\"",
                "start",
            ),
            (
                "treads = 2\n[[scenario]]\ntarget = \"127.0.0.1:1\"",
                "unknown top-level key",
            ),
            ("threads = 2", "no [[scenario]]"),
            (
                "slo = [\"p99{scenario=nope}=1ms\"]\n[[scenario]]\ntarget = \"127.0.0.1:1\"",
                "selects no scenario",
            ),
        ] {
            let e = match parse(text, Path::new("/tmp")) {
                Ok(_) => panic!("{text:?} was accepted"),
                Err(e) => format!("{e:#}"),
            };
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
