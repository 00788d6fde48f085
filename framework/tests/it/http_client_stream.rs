//! `Client::send`: a response's body read as it arrives, over HTTP/1.1
//! (chunked, by length) and HTTP/2 (h2c): the head comes back before the
//! server has finished the body, pieces come one by one, a connection read
//! to the end goes back to the pool, one given up half-way is closed, and
//! `max_body` bounds a stream as it bounds a whole body.
use crate::common::{self, on_shard};

use shardloop::http::client::{Client, ClientError, ClientOptions};
use shardloop::http::{Body, HttpServer, Method, Reply, Request, Response, Router, Version};
use shardloop::ShardCtx;
use std::time::{Duration, Instant};

/// `/slow/{n}`: `n` pieces of 1,000 bytes, 40 ms apart, streamed (chunked
/// on HTTP/1.1); `/fixed`: 100,000 bytes with a length.
fn server() -> (shardloop::Handle, std::net::SocketAddr) {
    let app = Router::new()
        .get("/fixed", |_: &Request<Body>| {
            Response::new(Body::from(vec![b'f'; 100_000]))
        })
        .route_handler(
            Method::GET,
            "/slow/{n}",
            |req: Request<Body>, _: &mut ShardCtx| {
                let params = req.extensions().get::<shardloop::http::Params>().unwrap();
                let n: u8 = params.get("n").unwrap().parse().unwrap();
                Reply::stream(Response::new(()), move |mut body| async move {
                    for i in 0..n {
                        if body.send(vec![b'a' + i; 1000]).await.is_err() {
                            return;
                        }
                        shardloop::task::sleep(Duration::from_millis(40)).await;
                    }
                })
            },
        );
    common::started(common::builder(1).listen("127.0.0.1:0", HttpServer::new(app).factory()))
}

fn get(url: String) -> Request<Body> {
    Request::get(url).body(Body::empty()).unwrap()
}

#[test]
fn pieces_arrive_as_the_server_sends_them_and_the_connection_is_reused() {
    let (h, addr) = server();
    let (head_after, pieces, total_after, version, stats) = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions::default());
        let t = Instant::now();
        let mut resp = client
            .send(get(format!("http://{addr}/slow/5")))
            .await
            .unwrap();
        let head_after = t.elapsed();
        let mut pieces = Vec::new();
        while let Some(p) = resp.body_mut().next().await {
            let p = p.unwrap();
            pieces.push((p[0], p.len()));
        }
        let total_after = t.elapsed();
        // Read to its end: the connection is back in the pool, and reused.
        let fixed = client.get(&format!("http://{addr}/fixed")).await.unwrap();
        assert_eq!(fixed.body().len(), 100_000);
        (
            head_after,
            pieces,
            total_after,
            resp.version(),
            client.stats(),
        )
    });
    assert_eq!(version, Version::HTTP_11);
    // The head came before the body was done (5 pieces, 40 ms apart: at
    // least 160 ms), not with its end.
    assert!(total_after >= Duration::from_millis(160), "{total_after:?}");
    assert!(
        head_after * 2 < total_after,
        "{head_after:?} of {total_after:?}"
    );
    let bytes: Vec<u8> = pieces.iter().map(|p| p.0).collect();
    let mut seen = bytes.clone();
    seen.dedup();
    assert_eq!(seen, b"abcde", "in order: {pieces:?}");
    assert_eq!(pieces.iter().map(|p| p.1).sum::<usize>(), 5000);
    assert_eq!((stats.opened, stats.reused), (1, 1), "{stats:?}");
}

#[test]
fn a_body_given_up_half_way_closes_its_connection() {
    let (h, addr) = server();
    let stats = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions::default());
        let mut resp = client
            .send(get(format!("http://{addr}/slow/5")))
            .await
            .unwrap();
        let first = resp.body_mut().next().await.unwrap().unwrap();
        assert_eq!(first[0], b'a');
        drop(resp);
        // Not reusable (the rest of the body is on its way): a new one.
        let r = client.get(&format!("http://{addr}/fixed")).await.unwrap();
        assert_eq!(r.body().len(), 100_000);
        client.stats()
    });
    assert_eq!(
        (stats.opened, stats.reused, stats.closed),
        (2, 0, 1),
        "{stats:?}"
    );
}

#[test]
fn max_body_bounds_a_stream_and_h2c_streams_too() {
    let (h, addr) = server();
    let (too_large, h2_pieces, h2_version) = on_shard(&h, move || async move {
        let small = Client::new(ClientOptions {
            max_body: 2500,
            ..ClientOptions::default()
        });
        let mut resp = small
            .send(get(format!("http://{addr}/slow/5")))
            .await
            .unwrap();
        let mut too_large = None;
        while let Some(p) = resp.body_mut().next().await {
            if let Err(e) = p {
                too_large = Some(e);
                break;
            }
        }
        let h2 = Client::new(ClientOptions {
            http2_prior_knowledge: true,
            ..ClientOptions::default()
        });
        let mut resp = h2.send(get(format!("http://{addr}/slow/3"))).await.unwrap();
        let version = resp.version();
        let mut n = 0;
        while let Some(p) = resp.body_mut().next().await {
            n += p.unwrap().len();
        }
        (too_large, n, version)
    });
    assert!(
        matches!(too_large, Some(ClientError::TooLarge)),
        "{too_large:?}"
    );
    assert_eq!(h2_version, Version::HTTP_2);
    assert_eq!(h2_pieces, 3000);
}

/// `PUT /count` counts an upload's bytes as they arrive (any size);
/// `POST /echo` answers the body it read whole.
fn upload_server() -> (shardloop::Handle, std::net::SocketAddr) {
    use shardloop::http::BodyReader;
    let app = Router::new()
        .route_stream(
            Method::PUT,
            "/count",
            |_req: Request<Body>, body: BodyReader| async move {
                let mut total = 0;
                let mut sum = 0u64;
                while let Some(piece) = body.next().await {
                    let piece = piece.unwrap();
                    total += piece.len();
                    sum += piece.iter().map(|b| u64::from(*b)).sum::<u64>();
                }
                Response::new(Body::from(format!("{total} {sum}")))
            },
        )
        .post("/echo", |req: &Request<Body>| {
            Response::new(req.body().clone())
        });
    common::started(common::builder(1).listen("127.0.0.1:0", HttpServer::new(app).factory()))
}

/// 300 pieces of 64 KiB (about 20 MB), each filled with its index.
fn pieces() -> impl FnMut() -> std::future::Ready<Option<bytes::Bytes>> {
    let mut i = 0u32;
    move || {
        i += 1;
        let piece = (i <= 300).then(|| bytes::Bytes::from(vec![(i % 251) as u8; 64 << 10]));
        std::future::ready(piece)
    }
}

fn expected_upload() -> String {
    let sum: u64 = (1..=300u64).map(|i| (i % 251) * (64 << 10)).sum();
    format!("{} {sum}", 300 * (64 << 10))
}

#[test]
fn uploads_stream_chunked_on_http_1_1_and_within_windows_on_h2c() {
    let (h, addr) = upload_server();
    let (h1, h2, echoed, short) = on_shard(&h, move || async move {
        let url = format!("http://{addr}/count");
        let put = || Request::put(url.clone()).body(()).unwrap();
        let h1 = Client::new(ClientOptions::default());
        let r = h1.send_streaming(put(), pieces()).await.unwrap();
        let h1_count = r.into_body().collect().await.unwrap();
        // A stated length frames the body as is; the server reads it whole.
        let mut parts = ["hello ", "streamed ", "world"].into_iter();
        let req = Request::post(format!("http://{addr}/echo"))
            .header("content-length", "20")
            .body(())
            .unwrap();
        let r = h1
            .send_streaming(req, || {
                std::future::ready(parts.next().map(bytes::Bytes::from))
            })
            .await
            .unwrap();
        let echoed = r.into_body().collect().await.unwrap();
        // A body shorter than it said is refused before the request ends.
        let req = Request::post(format!("http://{addr}/echo"))
            .header("content-length", "50")
            .body(())
            .unwrap();
        let mut once = Some(bytes::Bytes::from_static(b"too short"));
        let short = h1
            .send_streaming(req, || std::future::ready(once.take()))
            .await
            .err();
        let h2 = Client::new(ClientOptions {
            http2_prior_knowledge: true,
            ..ClientOptions::default()
        });
        // HTTP/2 bodies are read up to `max_body` (1 MiB by default)
        // before the handler runs: 20 MB is refused with 413 before its end ...
        let r = h2.send_streaming(put(), pieces()).await.unwrap();
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.status(), 413);
        // ... and 768 KiB goes through, within the stream's windows (64 KiB
        // at first).
        let mut few = pieces();
        let mut n = 0;
        let r = h2
            .send_streaming(put(), move || {
                n += 1;
                let more = n <= 12;
                let piece = few();
                async move {
                    if more {
                        piece.await
                    } else {
                        None
                    }
                }
            })
            .await
            .unwrap();
        let h2_count = r.into_body().collect().await.unwrap();
        (h1_count, h2_count, echoed, short)
    });
    assert_eq!(String::from_utf8_lossy(&h1), expected_upload());
    let sum: u64 = (1..=12u64).map(|i| (i % 251) * (64 << 10)).sum();
    assert_eq!(
        String::from_utf8_lossy(&h2),
        format!("{} {sum}", 12 * (64 << 10))
    );
    assert_eq!(&echoed[..], b"hello streamed world");
    assert!(matches!(short, Some(ClientError::Protocol(_))), "{short:?}");
}

/// A server thread answering each connection's first request with
/// `answer`, one byte at a time (each its own segment), then closing if
/// `close`, else answering again on the same connection.
fn trickle_server(answer: &'static [u8], close: bool) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            s.set_nodelay(true).unwrap();
            std::thread::spawn(move || loop {
                let mut head = Vec::new();
                let mut b = [0u8];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                for byte in answer {
                    if s.write_all(&[*byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(300));
                }
                if close {
                    return;
                }
            });
        }
    });
    addr
}

#[test]
fn a_response_arriving_byte_by_byte_is_whole_and_one_cut_off_is_an_error() {
    let whole = trickle_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n7\r\n, world\r\n0\r\nT: 1\r\n\r\n",
        false,
    );
    let cut_chunked = trickle_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        true,
    );
    let cut_length = trickle_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", true);
    let (h, _) = common::echo_server(1);
    let (pieces, again, stats, chunked, length) = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions::default());
        let mut resp = client.send(get(format!("http://{whole}/"))).await.unwrap();
        let mut pieces = Vec::new();
        while let Some(p) = resp.body_mut().next().await {
            pieces.push(p.unwrap());
        }
        // Read to the end (trailers too): the connection serves the next.
        let again = client.get(&format!("http://{whole}/")).await.unwrap();
        let stats = client.stats();
        let chunked = client.get(&format!("http://{cut_chunked}/")).await.err();
        let length = client.get(&format!("http://{cut_length}/")).await.err();
        (pieces, again.into_body(), stats, chunked, length)
    });
    let joined: Vec<u8> = pieces.concat();
    assert_eq!(joined, b"hello, world");
    assert!(pieces.len() > 2, "pieces as they came: {}", pieces.len());
    assert_eq!(again.as_bytes(), b"hello, world");
    assert_eq!((stats.opened, stats.reused), (1, 1), "{stats:?}");
    for cut in [chunked, length] {
        assert!(
            matches!(cut, Some(ClientError::Protocol(why)) if why.contains("middle of the body")),
            "{cut:?}"
        );
    }
}
