//! HTTP/2 with real clients: curl (prior knowledge, and ALPN over TLS),
//! nghttp (streams at once), h2load, and a raw socket playing the rapid
//! reset attack. Prerequisites of the test suite (`.ci/run` installs
//! `curl` and `nghttp2-client`).
use crate::common;

use shardloop::endpoint::Listen;
use shardloop::http::{Body, HttpServer, Limits, Reply, Request, Response, Router};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

fn app() -> HttpServer {
    let app = Router::new()
        .get("/hello", |_: &Request<Body>| {
            Response::new(Body::from("hello"))
        })
        .post("/echo", |req: &Request<Body>| {
            Response::new(req.body().clone())
        })
        .get("/big", |_: &Request<Body>| {
            Response::new(Body::from(vec![b'x'; 300_000]))
        })
        .get_async("/slow", |_req| async {
            shardloop::task::sleep(Duration::from_millis(20)).await;
            Response::new(Body::from("slow"))
        })
        .route_handler(
            http::Method::GET,
            "/stream",
            |_req: Request<Body>, _: &mut shardloop::ShardCtx| {
                Reply::stream(Response::new(()), |mut body| async move {
                    for i in 0..100 {
                        let _ = body.send(format!("piece {i}\n")).await;
                    }
                })
            },
        );
    let limits = Limits {
        max_body: 10_000,
        ..Limits::default()
    };
    HttpServer::new(app).limits(limits).server_name("shardloop")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (apt-get install -y curl nghttp2-client)"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn curl(args: &[&str]) -> String {
    let o = run(Command::new("curl").arg("-sS").args(args));
    assert!(
        o.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    text(&o)
}

#[test]
fn h2c_prior_knowledge_with_curl_nghttp_and_h2load() {
    let (_h, addr) = common::started(common::builder(2).listen("127.0.0.1:0", app().factory()));
    let base = format!("http://{addr}");
    let pk = "--http2-prior-knowledge";
    let v = curl(&[
        pk,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &format!("{base}/hello"),
    ]);
    assert_eq!(v, "2");
    assert_eq!(curl(&[pk, &format!("{base}/hello")]), "hello");
    assert_eq!(
        curl(&[pk, "-d", "a body", &format!("{base}/echo")]),
        "a body"
    );
    assert_eq!(curl(&[pk, &format!("{base}/big")]).len(), 300_000);
    let streamed = curl(&[pk, &format!("{base}/stream")]);
    assert_eq!(streamed.lines().count(), 100);
    assert!(streamed.ends_with("piece 99\n"));
    // Past max_body: 413, on the stream.
    let big = "x".repeat(20_000);
    let code = curl(&[
        pk,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-d",
        &big,
        &format!("{base}/echo"),
    ]);
    assert_eq!(code, "413");
    // Several streams at once on one connection.
    let o = run(Command::new("nghttp").args([
        "-n",
        "-v",
        &format!("{base}/slow"),
        &format!("{base}/hello"),
        &format!("{base}/big"),
    ]));
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert_eq!(log.matches(":status: 200").count(), 3, "{log}");
    // The slow one does not hold the others back: it answers last.
    // nghttp prints each request's stream id on its HEADERS line, then
    // the fields a line each.
    let stream_of = |path: &str| {
        let mut current = String::new();
        for l in log.lines() {
            if let Some(rest) = l.split("send HEADERS frame").nth(1) {
                current = rest
                    .split("stream_id=")
                    .nth(1)
                    .unwrap()
                    .trim_end_matches('>')
                    .to_string();
            } else if l.trim() == format!(":path: {path}") {
                return current;
            }
        }
        panic!("no request for {path} in {log}");
    };
    let status_at = |path: &str| {
        log.find(&format!("recv (stream_id={}) :status", stream_of(path)))
            .unwrap()
    };
    assert!(status_at("/slow") > status_at("/hello"), "{log}");
    assert!(status_at("/slow") > status_at("/big"), "{log}");
    // h2load: 2,000 requests, 4 connections, 16 streams each.
    let o = run(Command::new("h2load").args([
        "-n",
        "2000",
        "-c",
        "4",
        "-m",
        "16",
        &format!("{base}/hello"),
    ]));
    let out = text(&o);
    assert!(out.contains("2000 succeeded, 0 failed"), "{out}");
    // HTTP/1.1 still works on the same listener.
    assert_eq!(curl(&["--http1.1", &format!("{base}/hello")]), "hello");
}

#[test]
fn alpn_h2_over_tls_and_http_1_1_beside_it() {
    let dir = std::env::temp_dir().join(format!("shardloop-h2-{}", std::process::id()));
    let pki = shardloop_devtools::pki::TestPki::new().write(&dir).unwrap();
    let tls = shardloop::tls::TlsServerConfig::from_pem_files(&pki.cert, &pki.key)
        .unwrap()
        .alpn(["h2", "http/1.1"])
        .build()
        .unwrap();
    let listen = Listen::from("127.0.0.1:0".parse::<SocketAddr>().unwrap()).tls(tls);
    let (_h, addr) = common::started(common::builder(2).listen(listen, app().factory()));
    let url = format!("https://localhost:{}/hello", addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let ca = pki.ca.to_str().unwrap();
    let common_args = ["--cacert", ca, "--resolve", &resolve];
    let mut args = common_args.to_vec();
    args.extend(["--http2", "-w", " %{http_version}", &url, &url]);
    assert_eq!(curl(&args), "hello 2hello 2");
    let mut args = common_args.to_vec();
    args.extend(["--http1.1", "-w", " %{http_version}", &url]);
    assert_eq!(curl(&args), "hello 1.1");
    let o = run(Command::new("h2load").args([
        "-n",
        "500",
        "-c",
        "2",
        "-m",
        "8",
        &format!("https://{addr}/hello"),
    ]));
    let out = text(&o);
    assert!(out.contains("500 succeeded, 0 failed"), "{out}");
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn rapid_reset_is_cut_off_with_goaway_and_others_are_served() {
    let (_h, addr) = common::started(common::builder(1).listen("127.0.0.1:0", app().factory()));
    let mut s = common::connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
                                       // GET /slow (HPACK: :method GET, :scheme http, :path literal,
                                       // :authority literal), each stream reset at once: the attack.
    let mut block = vec![0x82, 0x86, 0x44, 5];
    block.extend_from_slice(b"/slow");
    block.extend_from_slice(&[0x41, 1, b'x']);
    for i in 0..2000u32 {
        let id = 1 + 2 * i;
        out.extend(frame(0x1, 0x5, id, &block)); // HEADERS, END_STREAM|END_HEADERS
        out.extend(frame(0x3, 0, id, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    // The server may close before it read everything: writes may fail.
    let _ = s.write_all(&out);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    // Find a GOAWAY (type 7) and its error code.
    let mut at = 0;
    let mut goaway = None;
    while at + 9 <= got.len() {
        let len = (usize::from(got[at]) << 16)
            | (usize::from(got[at + 1]) << 8)
            | usize::from(got[at + 2]);
        if got[at + 3] == 0x7 && at + 9 + 8 <= got.len() {
            let code = &got[at + 9 + 4..at + 9 + 8];
            goaway = Some(u32::from_be_bytes(code.try_into().unwrap()));
        }
        at += 9 + len;
    }
    // ENHANCE_YOUR_CALM (0xb).
    assert_eq!(
        goaway,
        Some(0xb),
        "no GOAWAY ENHANCE_YOUR_CALM in {} bytes",
        got.len()
    );
    // Everyone else is still served.
    let v = curl(&["--http2-prior-knowledge", &format!("http://{addr}/hello")]);
    assert_eq!(v, "hello");
}

#[test]
fn an_h2c_preface_split_byte_by_byte_still_opens_http2() {
    let (_h, addr) = common::started(common::builder(1).listen("127.0.0.1:0", app().factory()));
    let mut s = common::connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    s.write_all(&frame(0x4, 0, 0, &[])).unwrap(); // SETTINGS
                                                  // The server's first frame is its SETTINGS (type 4, stream 0).
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[3], 0x4, "{head:?}");
    assert_eq!(head[5..9], [0, 0, 0, 0]);
}
