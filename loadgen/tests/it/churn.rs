//! Connection churn: `--reconnect-every N` opens a new connection after N
//! responses, `--conn-rate R` paces new connections, and connect time is
//! reported as its own histogram.

use crate::common::{echo_example, loadgen_bin};
use std::process::Command;

#[test]
fn reconnect_every_and_conn_rate_pace_the_churn() {
    let server = echo_example();
    let json = std::env::temp_dir().join(format!("sl-churn-{}.json", std::process::id()));
    let run = |extra: &[&str]| {
        let out = Command::new(loadgen_bin())
            .arg(server.addr.to_string())
            .args(["-t", "1", "-c", "8", "-d", "2s", "--reconnect-every", "1"])
            .args(extra)
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: shardloop_loadgen::Report =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (r, text)
    };
    let (free, text) = run(&[]);
    assert!(free.connects_per_s > 400.0, "unpaced churn: {text}");
    assert!(text.contains("Connect (TCP connect)"), "{text}");
    let (paced, text) = run(&["--conn-rate", "200"]);
    assert!(
        (150.0..=230.0).contains(&paced.connects_per_s),
        "paced at 200/s: {text}"
    );
    assert_eq!(paced.errors.total(), 0, "{text}");
    // One request per connection: responses follow connections.
    assert!(paced.responses_ok.abs_diff(paced.connects) <= 8, "{text}");
    let _ = std::fs::remove_file(&json);
}
