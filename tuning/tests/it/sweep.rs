//! A short real sweep against the framework's echo example (through the
//! command template) produces a well-formed report.

use shardloop_loadgen::Workload;
use shardloop_tune::{ServerSpec, TuneConfig};
use std::time::Duration;

fn build_echo_example() -> std::path::PathBuf {
    shardloop_devtools::build("shardloop", shardloop_devtools::Target::Example("echo"))
}

#[test]
fn short_sweep_against_echo_example_writes_a_well_formed_report() {
    let echo = build_echo_example();
    let cfg = TuneConfig {
        server: ServerSpec::Command(format!(
            "{} --shards {{shards}} --port {{port}} --no-pin",
            echo.display()
        )),
        shards: vec![1, 2],
        knobs: vec![],
        // Generous: this checks the plumbing, not the machine.
        p99_target_us: 50_000,
        steps: 2,
        fractions: vec![0.5],
        run_duration: Duration::from_millis(400),
        warmup: Duration::from_millis(100),
        connections: 8,
        loadgen_threads: 1,
        workload: Workload::Echo { size: 64 },
        tolerance: 0.05,
        headroom: 0.2,
        cores: vec![0, 1],
        repeats: 2,
        placement: None,
    };
    let mut runs = 0;
    let report = shardloop_tune::run(&cfg, |_, _| runs += 1).unwrap();
    assert_eq!(
        runs,
        2 * 2 * 4,
        "2 rounds × 2 configurations × (saturation + 2 steps + 1 fraction)"
    );
    for v in &report.variants {
        assert_eq!(v.sustainable_runs.len(), 2, "both rounds recorded");
        assert!(v.sustainable_runs.contains(&v.sustainable_rps()) || v.sustainable_rps() == 0.0);
    }
    assert_eq!(report.variants.len(), 2);
    for v in &report.variants {
        assert!(v.search.saturation.ok_rps > 0.0, "{v:?}");
        assert_eq!(v.search.points.len(), 3);
    }
    let rec = report
        .recommendation
        .as_ref()
        .expect("a 50 ms target is met");
    assert!(rec.line.starts_with("Recommendation: "));
    // Two shard counts (and, on a 2-core box, points that share cores with
    // the load generator) are no basis for extrapolating: the report says so.
    assert!(report.extrapolation.is_empty());
    assert!(
        report
            .validity
            .iter()
            .any(|v| v.contains("no extrapolation")),
        "{:?}",
        report.validity
    );

    let dir = std::env::temp_dir().join(format!("sl-tune-{}", std::process::id()));
    report.write(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("| 1 shard |") && md.contains("| 2 shards |"),
        "{md}"
    );
    assert!(
        md.contains("### Validity") && md.contains("no extrapolation"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["variants"].as_array().unwrap().len(), 2);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<table>") && html.matches("<svg").count() == 2 && html.contains("Validity"),
        "the HTML report embeds the tables and both charts"
    );
    let latency = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert!(
        latency.contains("p99 target"),
        "the target is drawn and labelled"
    );
    for svg in ["throughput.svg", "latency.svg"] {
        let s = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert!(s.contains("<text"), "{svg} has labels");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_server_command_is_a_clear_error() {
    let cfg = TuneConfig {
        server: ServerSpec::Command("/nonexistent/server --port {port}".into()),
        shards: vec![1],
        knobs: vec![],
        p99_target_us: 2000,
        steps: 1,
        fractions: vec![],
        run_duration: Duration::from_millis(100),
        warmup: Duration::ZERO,
        connections: 2,
        loadgen_threads: 1,
        workload: Workload::Echo { size: 8 },
        tolerance: 0.05,
        headroom: 0.2,
        cores: vec![0],
        repeats: 1,
        placement: None,
    };
    let err = shardloop_tune::run(&cfg, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("exited") || err.contains("did not accept"),
        "{err}"
    );
}

#[test]
fn a_placement_decides_where_each_configuration_runs() {
    let cfg = TuneConfig {
        server: ServerSpec::BuiltinEcho,
        shards: vec![1, 2, 3],
        knobs: vec![],
        p99_target_us: 1_000,
        steps: 1,
        fractions: vec![],
        run_duration: Duration::from_millis(100),
        warmup: Duration::ZERO,
        connections: 1,
        loadgen_threads: 1,
        workload: Workload::Echo { size: 64 },
        tolerance: 0.05,
        headroom: 0.3,
        cores: vec![0, 1, 2, 3, 4, 5, 6, 7],
        repeats: 1,
        placement: Some("shards = [2, 4]\nloadgen = [7]\n".parse().unwrap()),
    };
    let two = cfg.pinning(2, None);
    assert_eq!(
        two.server.as_deref(),
        Some(&[2, 4][..]),
        "the plan's shard CPUs, in order"
    );
    assert_eq!(two.loadgen.as_deref(), Some(&[7][..]));
    assert!(two.disjoint);
    let three = cfg.pinning(3, None);
    assert_eq!(three.server, None, "more shards than the plan has CPUs");
    assert!(three.note.unwrap().contains("fewer than 3 shards"));
}
