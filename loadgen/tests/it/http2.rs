//! HTTP/2 load (`--http2`, `-m` streams per connection): h2c with prior
//! knowledge and ALPN `h2` over TLS, against the framework's own HTTP
//! server in this process, which counts the streams it has open at once.

use crate::common::loadgen_bin;
use shardloop::endpoint::Listen;
use shardloop::http::{Body, HttpServer, Request, Response, Router};
use shardloop::tls::TlsServerConfig;
use shardloop::{Handle, Server};
use shardloop_devtools::pki::TestPki;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Requests being served now, and the most at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
    served: AtomicUsize,
}

fn server(gauge: Arc<Gauge>, tls_alpn: Option<&[&str]>) -> (Handle, u16) {
    let app = Router::new()
        .get("/", |_: &Request<Body>| Response::new(Body::from("hi")))
        .get_async("/slow", move |_req| {
            let g = gauge.clone();
            async move {
                let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
                g.most.fetch_max(n, Ordering::SeqCst);
                shardloop::task::sleep(Duration::from_millis(20)).await;
                g.now.fetch_sub(1, Ordering::SeqCst);
                g.served.fetch_add(1, Ordering::SeqCst);
                Response::new(Body::from("slow"))
            }
        });
    let mut listen = Listen::from("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap());
    if let Some(alpn) = tls_alpn {
        let dir =
            std::env::temp_dir().join(format!("sl-load-h2-{}-{}", std::process::id(), alpn.len()));
        let pki = TestPki::new().write(&dir).unwrap();
        let tls = TlsServerConfig::from_pem_files(&pki.cert, &pki.key)
            .unwrap()
            .alpn(alpn.iter().copied())
            .build()
            .unwrap();
        listen = listen.tls(tls);
    }
    let h = Server::builder()
        .shards(1)
        .pinning(shardloop::Pinning::Off)
        .listen(listen, HttpServer::new(app).factory())
        .build()
        .unwrap()
        .start()
        .unwrap();
    let shardloop::Addr::Tcp(addr) = h.local_addrs()[0].clone() else {
        panic!("a TCP listener")
    };
    let port = addr.port();
    (h, port)
}

fn run(args: &[&str]) -> (String, shardloop_loadgen::Report) {
    let json = std::env::temp_dir().join(format!(
        "sl-load-h2-{}-{}.json",
        std::process::id(),
        fastrand::u64(..)
    ));
    let out = Command::new(loadgen_bin())
        .args(args)
        .args(["-t", "1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
        .unwrap_or_else(|_| panic!("no report: {text}"));
    let _ = std::fs::remove_file(&json);
    (text, report)
}

#[test]
fn h2c_keeps_m_streams_in_flight_per_connection_and_no_more() {
    let gauge = Arc::new(Gauge::default());
    let (_h, port) = server(gauge.clone(), None);
    let url = format!("http://127.0.0.1:{port}/slow");
    let (text, r) = run(&[&url, "--http2", "-c", "2", "-m", "8", "-d", "1s"]);
    assert_eq!(r.workload, "http2", "{text}");
    assert!(text.contains("8 streams each"), "{text}");
    assert_eq!(r.errors.total(), 0, "{text}");
    assert!(r.responses_ok > 100, "{text}");
    // Two connections of eight streams each, every stream busy for 20 ms.
    assert_eq!(gauge.most.load(Ordering::SeqCst), 16, "{text}");
    assert_eq!(
        r.http_status.get(&200).copied(),
        Some(r.responses_ok),
        "{text}"
    );
}

#[test]
fn h2_open_loop_sends_the_plan() {
    let gauge = Arc::new(Gauge::default());
    let (_h, port) = server(gauge.clone(), None);
    let url = format!("http://127.0.0.1:{port}/slow");
    // 400 req/s of 20 ms requests: 8 in flight on average, over 2
    // connections allowed 16 streams each.
    let (text, r) = run(&[&url, "--h2", "-c", "2", "-m", "16", "-R", "400", "-d", "2s"]);
    assert_eq!(r.errors.total(), 0, "{text}");
    let planned = 800.0;
    let sent = (r.requests + r.unsent) as f64;
    assert!(
        (sent - planned).abs() <= planned * 0.02,
        "sent {sent}: {text}"
    );
    assert!(
        (r.responses_ok as f64 - planned).abs() <= planned * 0.02,
        "{text}"
    );
}

#[test]
fn h2_connections_are_recycled_after_their_share() {
    let gauge = Arc::new(Gauge::default());
    let (_h, port) = server(gauge, None);
    let url = format!("http://127.0.0.1:{port}/");
    let (text, r) = run(&[
        &url,
        "--http2",
        "-c",
        "2",
        "-m",
        "4",
        "-d",
        "1s",
        "--reconnect-every",
        "50",
    ]);
    assert_eq!(r.errors.total(), 0, "{text}");
    assert!(r.reconnects >= 2, "{text}");
    assert!(r.responses_ok >= 100, "{text}");
}

#[test]
fn h2_over_tls_by_alpn_and_a_clear_error_when_the_server_refuses_it() {
    let gauge = Arc::new(Gauge::default());
    let (_h, port) = server(gauge.clone(), Some(&["h2", "http/1.1"]));
    let url = format!("https://127.0.0.1:{port}/");
    let (text, r) = run(&[
        &url,
        "--http2",
        "--insecure",
        "-c",
        "2",
        "-m",
        "4",
        "-d",
        "1s",
    ]);
    assert!(r.tls, "{text}");
    assert_eq!(r.errors.total(), 0, "{text}");
    assert!(r.responses_ok > 100, "{text}");
    assert!(r.tls_handshake_us.is_some(), "{text}");

    // A server that knows ALPN but not h2 refuses the handshake (RFC 7301).
    let (_h1, port) = server(gauge.clone(), Some(&["http/1.1"]));
    let url = format!("https://127.0.0.1:{port}/");
    let (code, text) = crate::common::load([
        url.as_str(),
        "--http2",
        "--insecure",
        "-c",
        "1",
        "-d",
        "500ms",
    ]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("NoApplicationProtocol"), "{text}");

    // One that ignores ALPN chooses nothing: each connection is closed
    // and counted, and the reason said once.
    let (_h0, port) = server(gauge, Some(&[]));
    let url = format!("https://127.0.0.1:{port}/");
    let (text, r) = run(&[
        &url,
        "--http2",
        "--insecure",
        "-c",
        "1",
        "-d",
        "500ms",
        "--conn-rate",
        "20",
    ]);
    assert_eq!(r.responses_ok, 0, "{text}");
    assert!(r.errors.protocol > 0, "{text}");
    assert_eq!(text.matches("did not choose HTTP/2").count(), 1, "{text}");
}

#[test]
fn http2_is_refused_for_other_workloads() {
    let (code, text) = crate::common::load(["127.0.0.1:9", "--http2", "-d", "1s"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("HTTP/2 is for the http workload"), "{text}");
}
