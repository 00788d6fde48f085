//! The gateway example (async tasks + ClientStream) in front of resp_kv,
//! driven by curl and wrk; a dead or silent backend gives 502/504, never a hang.
use crate::common;

use std::io::{Read, Write};
use std::process::Command;

fn curl(url: &str) -> (String, String) {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl is needed by this test (apt-get install -y curl)");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
}

fn set(kv: std::net::SocketAddr, key: &str, value: &str) {
    let mut s = common::connect(kv);
    s.write_all(format!("SET {key} {value}\r\n").as_bytes())
        .unwrap();
    let mut b = [0u8; 5];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"+OK\r\n");
}

fn gateway(backend: std::net::SocketAddr, timeout_ms: &str) -> shardloop_devtools::Spawned {
    let backend = backend.to_string();
    common::start_example(
        "gateway",
        &[
            "--port",
            "0",
            "--shards",
            "2",
            "--backend",
            &backend,
            "--backend-timeout-ms",
            timeout_ms,
        ],
    )
}

#[test]
fn gateway_answers_from_the_backend_and_survives_its_death() {
    let kv = common::start_example("resp_kv", &["--port", "0", "--shards", "2"]);
    set(kv.addr, "greeting", "hello");
    let gw = gateway(kv.addr, "2000");
    let base = format!("http://{}", gw.addr);
    assert_eq!(
        curl(&format!("{base}/key/greeting")),
        ("hello".into(), "200".into())
    );
    assert_eq!(curl(&format!("{base}/key/missing")).1, "404");
    assert_eq!(curl(&format!("{base}/elsewhere")).1, "404");
    // Under load: every answer a 200.
    let o = Command::new("wrk")
        .args(["-t1", "-c16", "-d1s", &format!("{base}/key/greeting")])
        .output()
        .expect("wrk is needed by this test (apt-get install -y wrk)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("Non-2xx"), "{out}");
    assert!(!out.contains("Socket errors"), "{out}");
    // Kill the backend: answers become 502 (refused) or 504, promptly.
    drop(kv);
    for _ in 0..3 {
        let code = curl(&format!("{base}/key/greeting")).1;
        assert!(code == "502" || code == "504", "got {code}");
    }
}

#[test]
fn a_silent_backend_gives_504_within_the_timeout() {
    // Accepts, reads, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let gw = gateway(addr, "300");
    let started = std::time::Instant::now();
    let (_, code) = curl(&format!("http://{}/key/anything", gw.addr));
    assert_eq!(code, "504");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn pipelined_requests_are_answered_in_order_then_half_close() {
    let kv = common::start_example("resp_kv", &["--port", "0", "--shards", "2"]);
    for i in 0..20 {
        set(kv.addr, &format!("k{i}"), &format!("v{i}"));
    }
    let gw = gateway(kv.addr, "2000");
    let mut s = common::connect(gw.addr);
    let mut req = String::new();
    for i in 0..20 {
        req.push_str(&format!("GET /key/k{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    s.write_all(req.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, err) = common::read_to_end_lossy(&mut s);
    assert_eq!(err, None);
    let text = String::from_utf8_lossy(&got);
    let bodies: Vec<&str> = text
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|r| r.rsplit("\r\n\r\n").next().unwrap())
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    assert_eq!(bodies, want);
}
