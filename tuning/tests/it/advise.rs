//! `shardloop-tune advise` against a running echo example with `--metrics`,
//! under load from the load generator.

use shardloop_devtools::{build, Spawned, Target};
use shardloop_loadgen::Config;
use std::process::Command;
use std::time::Duration;

#[test]
fn advise_reads_a_live_server_under_load() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = Command::new(build("shardloop", Target::Example("echo")));
    cmd.args([
        "--shards",
        "2",
        "--port",
        "0",
        "--no-pin",
        "--metrics",
        &port.to_string(),
    ]);
    let echo = Spawned::start(cmd).unwrap();
    let target = echo.addr;
    let load = std::thread::spawn(move || {
        let mut c = Config::new(target);
        c.threads = 1;
        c.connections = 8;
        c.duration = Duration::from_secs(4);
        shardloop_loadgen::run(&c, |_| {}).unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("http://{port}/metrics");
    let advice = shardloop_tune::advise::advise_live(&url, Duration::from_secs(2), 0.7, 8).unwrap();
    let report = load.join().unwrap();
    assert!(report.responses_ok > 0);
    assert_eq!(advice.shards.len(), 2);
    for s in &advice.shards {
        assert!((0.0..=1.0).contains(&s.utilisation), "{s:?}");
    }
    assert!(
        advice.mean_utilisation > 0.0,
        "the shards did work under load"
    );
    let open: f64 = advice.shards.iter().map(|s| s.connections_open).sum();
    assert!(open >= 8.0, "the 8 load connections are open: {open}");
    let bytes: f64 = advice.shards.iter().map(|s| s.bytes_per_s).sum();
    assert!(bytes > 0.0);
    assert!(advice.recommended_shards >= 1);
    assert!(advice.markdown().contains("Recommended shards"));

    // The binary, as JSON.
    let bin = build("shardloop-tune", Target::Bin("shardloop-tune"));
    let out = Command::new(bin)
        .args([
            "advise",
            "--metrics",
            &url,
            "--window",
            "300ms",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["shards"].as_array().unwrap().len(), 2);
    assert!(v["recommended_shards"].as_u64().unwrap() >= 1);
}
