//! Streamed response bodies (`Reply::stream`) over real sockets: chunked
//! on the wire and read back by curl and the library's client, answers
//! after a stream kept in order, HTTP/1.0 and HEAD, a client that does not
//! read pausing the producer, and a client that leaves.
use crate::common;

use shardloop::http::chunked::ChunkedDecoder;
use shardloop::http::{Body, HttpServer, Method, Reply, Request, Response, Router};
use shardloop::ShardCtx;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Piece `i` of a streamed body: `len` bytes that name their place.
fn piece(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| b'a' + ((i as usize + j) % 26) as u8)
        .collect()
}

struct Figures {
    sent: AtomicU64,
}

fn server(figures: Arc<Figures>) -> (shardloop::Handle, SocketAddr) {
    let f = figures.clone();
    let app = Router::new()
        .get("/hello", |_: &Request<Body>| {
            Response::new(Body::from("hello"))
        })
        .route_handler(
            Method::GET,
            "/stream/{n}/{len}",
            move |req: Request<Body>, _: &mut ShardCtx| {
                let params = req.extensions().get::<shardloop::http::Params>().unwrap();
                let n: u64 = params.get("n").unwrap().parse().unwrap();
                let len: usize = params.get("len").unwrap().parse().unwrap();
                let f = f.clone();
                Reply::stream(Response::new(()), move |mut body| async move {
                    for i in 0..n {
                        if body.send(piece(i, len)).await.is_err() {
                            return; // the client left
                        }
                        f.sent.fetch_add(1, Ordering::SeqCst);
                        if i % 16 == 0 {
                            shardloop::task::yield_now().await;
                        }
                    }
                })
            },
        );
    let _ = &figures;
    common::started(common::builder(2).listen("127.0.0.1:0", HttpServer::new(app).factory()))
}

fn figures() -> Arc<Figures> {
    Arc::new(Figures {
        sent: AtomicU64::new(0),
    })
}

fn expected(n: u64, len: usize) -> Vec<u8> {
    (0..n).flat_map(|i| piece(i, len)).collect()
}

#[test]
fn curl_reads_a_chunked_stream_and_the_next_answer_follows_it() {
    let (_h, addr) = server(figures());
    let out = Command::new("curl")
        .args([
            "-sS",
            "--raw",
            "-D",
            "-",
            &format!("http://{addr}/stream/100/1000"),
        ])
        .output()
        .expect("curl (apt-get install -y curl)");
    assert!(out.status.success());
    let raw = out.stdout;
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    // The raw body decodes, by the library's decoder, to every piece.
    let mut body = Vec::new();
    let mut dec = ChunkedDecoder::new(1024, 1024);
    dec.decode(&raw[head_end..], |d| body.extend_from_slice(d))
        .unwrap();
    assert!(dec.is_done());
    assert_eq!(body, expected(100, 1000));
    // Pipelined behind a stream: answered after its last chunk.
    let mut s = common::connect(addr);
    s.write_all(b"GET /stream/50/333 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = common::read_to_end_lossy(&mut s);
    let text = String::from_utf8_lossy(&got);
    let last_chunk = text.find("\r\n0\r\n\r\n").expect("the stream's end");
    let hello = text.rfind("hello").unwrap();
    assert!(hello > last_chunk, "{text}");
    assert!(
        text.ends_with("Content-Length: 5\r\nConnection: close\r\n\r\nhello"),
        "{text}"
    );
}

#[test]
fn http_10_and_head_get_what_they_can_read() {
    let (_h, addr) = server(figures());
    let mut s = common::connect(addr);
    s.write_all(b"GET /stream/10/100 HTTP/1.0\r\n\r\n").unwrap();
    let (got, err) = common::read_to_end_lossy(&mut s);
    assert_eq!(err, None);
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..end]);
    assert!(
        !head.contains("chunked") && head.contains("Connection: close"),
        "{head}"
    );
    assert_eq!(&got[end..], expected(10, 100));
    let mut s = common::connect(addr);
    s.write_all(b"HEAD /stream/10/100 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = common::read_to_end_lossy(&mut s);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Transfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK"),
        "{text}"
    );
    assert!(text.ends_with("hello"), "{text}");
}

#[test]
fn a_client_that_does_not_read_pauses_the_producer_then_gets_every_byte() {
    let f = figures();
    let (_h, addr) = server(f.clone());
    // 64 MiB in 64 KiB pieces; the client reads nothing for a while.
    let mut s = common::connect(addr);
    s.write_all(b"GET /stream/1024/65536 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let sent = f.sent.load(Ordering::SeqCst);
    // What the kernel buffers plus the high-water mark, not the body.
    assert!(
        sent < 256,
        "the producer ran ahead: {sent} pieces of 64 KiB sent"
    );
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (got, err) = common::read_to_end_lossy(&mut s);
    assert_eq!(err, None);
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut body = Vec::new();
    let mut dec = ChunkedDecoder::new(1024, 1024);
    dec.decode(&got[end..], |d| body.extend_from_slice(d))
        .unwrap();
    assert!(dec.is_done());
    assert_eq!(body.len(), 64 << 20);
    assert!(body == expected(1024, 65536), "the body differs");
}

#[test]
fn a_client_that_leaves_stops_the_producer() {
    let f = figures();
    let (_h, addr) = server(f.clone());
    let mut s = common::connect(addr);
    s.write_all(b"GET /stream/100000/65536 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    let _ = s.read(&mut first).unwrap();
    drop(s);
    // The producer is a task of the connection: it ends with it (or sees
    // `StreamClosed` from a send in flight).
    let mut last = u64::MAX;
    common::wait_for("the producer stops", || {
        std::thread::sleep(Duration::from_millis(200));
        let now = f.sent.load(Ordering::SeqCst);
        std::mem::replace(&mut last, now) == now
    });
    assert!(last < 100_000, "{last} pieces sent");
}

#[test]
fn the_library_client_reads_a_stream() {
    let (h, addr) = server(figures());
    let (tx, rx) = std::sync::mpsc::channel();
    h.post_to(0, move |ctx| {
        ctx.spawn_local(async move {
            let client = shardloop::http::client::Client::new(Default::default());
            let r = client.get(&format!("http://{addr}/stream/200/777")).await;
            let _ = tx.send(
                r.map(|r| r.into_body().into_bytes().to_vec())
                    .map_err(|e| e.to_string()),
            );
        });
    })
    .unwrap();
    let body = rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!(body, expected(200, 777));
}
