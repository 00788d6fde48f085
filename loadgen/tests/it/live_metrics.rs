//! `--metrics ADDR`: live Prometheus metrics while a run lasts, scraped
//! with curl from outside, with the server's conventions.

use shardloop_devtools::prom::parse_exposition;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl is needed by this test (apt-get install -y curl)");
    (o.status.success() && !o.stdout.is_empty()).then(|| String::from_utf8(o.stdout).unwrap())
}

#[test]
fn a_run_serves_its_counts_and_latency_while_it_lasts() {
    let server = common::echo_example();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut run = Command::new(common::loadgen_bin())
        .args([
            "-c",
            "4",
            "-t",
            "1",
            "-d",
            "8s",
            "-R",
            "2000",
            "--metrics",
            &metrics.to_string(),
            &server.addr.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Two scrapes a second apart, once requests are being counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(body) = scrape(metrics) {
            let m = parse_exposition(&body);
            if m.get("shardload_responses_total").copied().unwrap_or(0.0) > 0.0 {
                break m;
            }
        }
        assert!(Instant::now() < deadline, "no live counts within 10 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(1500));
    let second = parse_exposition(&scrape(metrics).expect("still serving"));
    let _ = run.wait();
    let grew = |k: &str| second[k] > first[k];
    assert!(grew("shardload_requests_total"));
    assert!(grew("shardload_responses_total"));
    assert!(grew("shardload_latency_seconds_count"));
    assert_eq!(second["shardload_target_rate"], 2000.0);
    assert_eq!(second["shardload_measuring"], 1.0);
    assert_eq!(second["shardload_errors_total{kind=\"timeout\"}"], 0.0);
    assert_eq!(
        second["shardload_latency_seconds_bucket{le=\"+Inf\"}"],
        second["shardload_latency_seconds_count"]
    );
    // The load generator's own loops, in the server's families.
    assert!(second.contains_key("shardloop_shard_busy_seconds_total{shard=\"0\"}"));
}
