//! `shardloop-load run FILE.toml`: three scenarios together against the
//! framework's examples (HTTP GET at a constant rate, HTTP POST of
//! CSV-driven bodies on a ramp, RESP SET/GET closed loop), each counted against its own plan,
//! judged by its own objectives and by objectives over selected
//! scenarios; and an `abort_on_fail` objective that stops the whole run at
//! its first interval.

use crate::common::loadgen_bin;
use shardloop_devtools::{build, Spawned, Target};
use shardloop_loadgen::plan::RatePlan;
use std::process::Command;
use std::time::{Duration, Instant};

fn example(name: &'static str, extra: &[&str]) -> Spawned {
    let mut cmd = Command::new(build("shardloop", Target::Example(name)));
    cmd.args(["--shards", "1", "--port", "0"]).args(extra);
    Spawned::start(cmd).unwrap_or_else(|e| panic!("start {name}: {e}"))
}

/// Runs a scenarios file; exit code, output, the JSON and the CSV it wrote.
fn run_file(text: &str, tag: &str) -> (i32, String, serde_json::Value, String) {
    let dir = std::env::temp_dir().join(format!("sl-scenarios-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("body.json"),
        br#"{"sku": "{{item.sku}}", "qty": {{item.qty}}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("items.csv"), "sku,qty\nA-1,1\nB-22,10\n").unwrap();
    let file = dir.join("run.toml");
    std::fs::write(&file, text).unwrap();
    let json = dir.join("out.json");
    let csv = dir.join("out.csv");
    let out = Command::new(loadgen_bin())
        .args(["run", file.to_str().unwrap()])
        .args(["--json", json.to_str().unwrap()])
        .args(["--csv", csv.to_str().unwrap()])
        .output()
        .unwrap();
    let csv = std::fs::read_to_string(csv).unwrap_or_default();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_dir_all(dir);
    (out.status.code().unwrap_or(-1), text, doc, csv)
}

fn scenario<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["scenarios"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["scenario"] == name))
        .unwrap_or_else(|| panic!("no scenario {name} in {doc}"))
}

fn within(got: f64, want: f64, by: f64) -> bool {
    (got - want).abs() <= by * want
}

#[test]
fn three_scenarios_run_together_each_to_its_own_plan_and_objectives() {
    let http = example("http_hello", &["--no-pin"]);
    let kv = example("resp_kv", &[]);
    let text = format!(
        r#"
threads = 2
slo = ["errors{{kind=read}}=0%", "p99{{scenario=store}}=10s"]

[defaults]
duration = "3s"
timeout = "5s"

[[scenario]]
name = "browse"
target = "http://{http}/items"
rate = "2000"
connections = 8
tags = {{ kind = "read" }}
slo = ["p99=10s", "errors=0%"]

[[scenario]]
name = "checkout"
target = "http://{http}/orders"
method = "POST"
body = "body.json"
var = ["item=csv:items.csv"]
header = ["Content-Type: application/json"]
rate = "100:1s,600:2s"
connections = 4
tags = {{ kind = "write" }}

[[scenario]]
name = "store"
target = "{kv}"
workload = "resp"
command = ["SET k v", "GET k"]
pipeline = 4
connections = 2
slo = ["rps=1000000000"]
"#,
        http = http.addr,
        kv = kv.addr
    );
    let (code, out, doc, csv) = run_file(&text, "three");
    assert_eq!(
        code, 99,
        "store's impossible throughput objective fails: {out}"
    );
    // Each open-loop scenario sent what its own plan asks, within 2%.
    let browse = scenario(&doc, "browse");
    let sent = browse["requests"].as_f64().unwrap();
    assert!(within(sent, 6000.0, 0.02), "browse sent {sent}: {out}");
    assert_eq!(browse["tags"]["kind"], "read");
    let ramp = RatePlan::parse("100:1s,600:2s", Duration::from_secs(3)).unwrap();
    let want = ramp.cumulative(3.0);
    let checkout = scenario(&doc, "checkout");
    let sent = checkout["requests"].as_f64().unwrap();
    assert!(
        within(sent, want, 0.02),
        "checkout sent {sent}, its plan {want}: {out}"
    );
    assert_eq!(
        checkout["errors"]["status"], 0,
        "the POSTs were answered 2xx: {out}"
    );
    assert!(
        checkout["bytes_out"].as_u64().unwrap() > 22 * sent as u64,
        "bodies sent"
    );
    // The closed loop ran as fast as the server answered.
    let store = scenario(&doc, "store");
    assert_eq!(store["mode"], "closed");
    assert!(store["responses_ok"].as_u64().unwrap() > 100, "{out}");
    // Verdicts: per scenario, and over the selected ones.
    let verdicts = |s: &serde_json::Value| -> Vec<bool> {
        s["slo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["pass"].as_bool().unwrap())
            .collect()
    };
    assert_eq!(verdicts(browse), [true, true], "{out}");
    assert_eq!(verdicts(store), [false], "{out}");
    assert_eq!(
        verdicts(&doc),
        [true, true],
        "errors{{kind=read}}, p99{{scenario=store}}: {out}"
    );
    for line in [
        "== scenario browse kind=read",
        "== scenario checkout kind=write",
        "== scenario store",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(
        out.contains("SLO errors{kind=read}=0%") && out.contains("PASS"),
        "{out}"
    );
    assert!(doc["aborted"].is_null(), "{doc}");
    // The CSV: a row per interval (1 s) per scenario, in time order, whose
    // counts add up to each scenario's report.
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap_or("").starts_with("scenario,time_s,"),
        "{csv}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for name in ["browse", "checkout", "store"] {
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == name).collect();
        assert!((3..=4).contains(&mine.len()), "{name}: {csv}");
        let sent: u64 = mine.iter().map(|r| r[4].parse::<u64>().unwrap()).sum();
        assert_eq!(
            sent,
            scenario(&doc, name)["requests"].as_u64().unwrap(),
            "{name}: {csv}"
        );
    }
    let times: Vec<f64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order: {csv}");
}

#[test]
fn an_abort_on_fail_objective_stops_every_scenario_within_an_interval() {
    let http = example("http_hello", &["--no-pin"]);
    let text = format!(
        r#"
threads = 1

[defaults]
duration = "20s"
interval = "500ms"
connections = 2

[[scenario]]
name = "strict"
target = "http://{http}/"
rate = "200"
slo = ["p99=1us"]
abort_on_fail = true

[[scenario]]
name = "bystander"
target = "http://{http}/"
rate = "100"
"#,
        http = http.addr
    );
    let began = Instant::now();
    let (code, out, doc, _) = run_file(&text, "abort");
    let took = began.elapsed();
    assert_eq!(code, 99, "{out}");
    assert!(
        took < Duration::from_secs(10),
        "stopped early, not after 20 s: {took:?}\n{out}"
    );
    let aborted = &doc["aborted"];
    assert_eq!(aborted["scenario"], "strict", "{doc}");
    assert!(
        aborted["slo"].as_str().unwrap().contains("p99=1us"),
        "{doc}"
    );
    let after = aborted["after_s"].as_f64().unwrap();
    assert!(
        after <= 1.0 + 0.5,
        "at the first interval's check (± one interval): {after}"
    );
    // The bystander stopped with it, and says why.
    let bystander = scenario(&doc, "bystander");
    assert_eq!(bystander["aborted"]["scenario"], "strict");
    assert!(
        bystander["duration_s"].as_f64().unwrap() < 3.0,
        "{bystander}"
    );
    assert!(
        out.contains("Aborted after") && out.contains("scenario strict"),
        "{out}"
    );
}
