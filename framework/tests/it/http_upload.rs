//! Request bodies delivered in pieces (`Router::route_stream`): uploads
//! past `max_body` by length and chunked (curl and raw sockets), the
//! socket left unread while the handler is behind, a client that leaves
//! halfway, and the next pipelined request answered after the upload.
use crate::common;

use shardloop::http::{Body, BodyReader, HttpServer, Limits, Method, Request, Response, Router};
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Seen {
    /// What each upload's handler ended with.
    outcomes: Mutex<Vec<String>>,
}

fn server(seen: Arc<Seen>) -> (shardloop::Handle, SocketAddr) {
    let app = Router::new()
        .post("/small", |req: &Request<Body>| {
            Response::new(Body::from(format!("{} bytes", req.body().len())))
        })
        .route_stream(
            Method::PUT,
            "/upload",
            move |req: Request<Body>, body: BodyReader| {
                let seen = seen.clone();
                async move {
                    // `?slow` waits before reading anything.
                    if req.uri().query() == Some("slow") {
                        shardloop::task::sleep(Duration::from_millis(700)).await;
                    }
                    let (mut total, mut sum) = (0u64, 0u64);
                    let outcome = loop {
                        match body.next().await {
                            Some(Ok(piece)) => {
                                total += piece.len() as u64;
                                sum = piece.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
                            }
                            Some(Err(e)) => break format!("error: {e}"),
                            None => break format!("{total} bytes, sum {sum}"),
                        }
                    };
                    seen.outcomes.lock().unwrap().push(outcome.clone());
                    Response::new(Body::from(outcome))
                }
            },
        );
    let limits = Limits {
        max_body: 1024,
        ..Limits::default()
    };
    let http = HttpServer::new(app).limits(limits);
    common::started(common::builder(2).listen("127.0.0.1:0", http.factory()))
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn sum(d: &[u8]) -> u64 {
    d.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)))
}

#[test]
fn curl_uploads_past_max_body_by_length_and_chunked() {
    let (_h, addr) = server(Arc::default());
    let file = std::env::temp_dir().join(format!("shardloop-upload-{}", std::process::id()));
    let body = data(20 << 20);
    std::fs::write(&file, &body).unwrap();
    let want = format!("{} bytes, sum {}", body.len(), sum(&body));
    let url = format!("http://{addr}/upload");
    let f = file.to_str().unwrap();
    for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let out = Command::new("curl")
            .args(["-sS", "-T", f])
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{extra:?}");
    }
    // A route that reads bodies whole keeps max_body.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            &format!("@{f}"),
        ])
        .arg(format!("http://{addr}/small"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413");
    let _ = std::fs::remove_file(file);
}

#[test]
fn the_socket_is_left_unread_while_the_handler_is_behind() {
    let (_h, addr) = server(Arc::default());
    let body = data(64 << 20);
    let want = format!("{} bytes, sum {}", body.len(), sum(&body));
    let mut s = common::connect(addr);
    let head = format!(
        "PUT /upload?slow HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let mut ws = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for piece in body.chunks(64 << 10) {
            ws.write_all(piece).unwrap();
            w.fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
        // A pipelined request after the upload.
        ws.write_all(
            b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        )
        .unwrap();
    });
    std::thread::sleep(Duration::from_millis(400));
    // The handler reads nothing yet: what the kernel buffers and 256 KiB.
    let early = written.load(Ordering::SeqCst);
    assert!(
        early < (24 << 20),
        "{early} bytes taken while the handler slept"
    );
    writer.join().unwrap();
    let (got, _) = common::read_to_end_lossy(&mut s);
    let text = String::from_utf8_lossy(&got);
    let first = text.find(&want).unwrap_or_else(|| panic!("{text}"));
    let second = text.find("3 bytes").unwrap_or_else(|| panic!("{text}"));
    assert!(first < second, "{text}");
}

#[test]
fn a_client_that_leaves_halfway_is_seen_by_the_handler() {
    let seen = Arc::new(Seen::default());
    let (_h, addr) = server(seen.clone());
    let mut s = common::connect(addr);
    s.write_all(b"PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    common::wait_for("the handler learns the body ended early", || {
        !seen.outcomes.lock().unwrap().is_empty()
    });
    let outcomes = seen.outcomes.lock().unwrap().clone();
    assert_eq!(
        outcomes,
        ["error: the client left before the end of the body"]
    );
}
