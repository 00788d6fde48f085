//! The gateway example (async tasks + ClientStream) in front of resp_kv,
//! driven by curl and wrk; a dead or silent backend gives 502/504, never a hang.
use crate::common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

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

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + seed) % 251) as u8).collect()
}

/// `SET key value` over RESP (multibulk: any bytes).
fn set_bulk(kv: std::net::SocketAddr, key: &str, value: &[u8]) {
    let mut s = common::connect(kv);
    let mut req = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    let mut b = [0u8; 5];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"+OK\r\n");
}

/// `GET key` over RESP: the value's bytes.
fn get_bulk(kv: std::net::SocketAddr, key: &str) -> Vec<u8> {
    let mut s = common::connect(kv);
    s.write_all(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes())
        .unwrap();
    let mut r = std::io::BufReader::new(s);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    let n: usize = line.trim_end()[1..].parse().unwrap();
    let mut v = vec![0u8; n + 2];
    r.read_exact(&mut v).unwrap();
    assert_eq!(&v[n..], b"\r\n");
    v.truncate(n);
    v
}

/// `GET /key/NAME` over HTTP/1.1: status and body.
fn http_get(addr: std::net::SocketAddr, key: &str) -> (String, Vec<u8>) {
    let mut s = common::connect(addr);
    s.write_all(
        format!("GET /key/{key} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let status = head.split(' ').nth(1).unwrap_or_default().to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    let body = all[end..].to_vec();
    assert_eq!(body.len(), length, "the body is as long as announced");
    (status, body)
}

#[test]
fn values_of_5_16_and_60_mib_pass_through_resp_kv_and_the_gateway_byte_exact() {
    let kv = common::start_example("resp_kv", &["--port", "0", "--shards", "2"]);
    let gw = gateway(kv.addr, "20000");
    for (k, mib) in [5usize, 16, 60].into_iter().enumerate() {
        let key = format!("big{mib}");
        let value = pattern(mib << 20, k);
        set_bulk(kv.addr, &key, &value);
        assert!(get_bulk(kv.addr, &key) == value, "{mib} MiB via resp_kv");
        let (status, body) = http_get(gw.addr, &key);
        assert_eq!(status, "200", "{mib} MiB via the gateway");
        assert!(body == value, "{mib} MiB via the gateway, byte for byte");
    }
}

#[test]
fn a_pipelining_client_that_never_reads_holds_the_gateway_to_a_bounded_memory() {
    let kv = common::start_example("resp_kv", &["--port", "0", "--shards", "1"]);
    set(kv.addr, "k", "v");
    let gw = gateway(kv.addr, "2000");
    let before = common::rss_kb(gw.child.id());
    let mut s = common::connect(gw.addr);
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let req = b"GET /key/k HTTP/1.1\r\nHost: t\r\n\r\n".repeat(256);
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    let mut sent = 0usize;
    while std::time::Instant::now() < until {
        match s.write(&req) {
            Ok(n) => sent += n,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let grown_kb = common::rss_kb(gw.child.id()).saturating_sub(before);
    println!("sent {sent} bytes without reading; gateway RSS grew {grown_kb} KiB");
    // The kernel's socket buffers take some; the gateway itself stops at
    // 64 queued requests and one read's worth of input.
    assert!(grown_kb < 16 * 1024, "RSS grew {grown_kb} KiB");
    // The connection still works once the client reads.
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
}
