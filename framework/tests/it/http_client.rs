//! `http::client` against real servers on loopback: shardloop's own HTTP
//! server, and raw servers answering exactly what each case needs
//! (chunks, a close-delimited body, a keep-alive the server drops).
use crate::common::{self, on_shard};

use shardloop::client::PoolOptions;
use shardloop::http::client::{Client, ClientError, ClientOptions};
use shardloop::http::{Body, HttpServer, Request, Response, Router};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

fn app_server() -> (shardloop::Handle, SocketAddr) {
    let app = Router::new()
        .get("/hello", |_: &Request<Body>| {
            Response::new(Body::from("hello"))
        })
        .post("/echo", |req: &Request<Body>| {
            Response::new(req.body().clone())
        })
        .get("/big", |_: &Request<Body>| {
            Response::new(Body::from(vec![7u8; 300_000]))
        })
        .get_async("/slow", |_req| async {
            shardloop::task::sleep(Duration::from_millis(30)).await;
            Response::new(Body::from("slow"))
        });
    common::started(common::builder(2).listen("127.0.0.1:0", HttpServer::new(app).factory()))
}

#[test]
fn requests_reuse_one_pooled_connection() {
    let (h, addr) = app_server();
    let (bodies, stats) = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions::default());
        let mut bodies = Vec::new();
        for i in 0..20 {
            let r = client.get(&format!("http://{addr}/hello")).await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-length"], "5");
            bodies.push(String::from_utf8_lossy(r.body().as_bytes()).into_owned());
            let req = Request::post(format!("http://{addr}/echo"))
                .body(Body::from(format!("body {i}")))
                .unwrap();
            let r = client.request(req).await.unwrap();
            assert_eq!(r.body().as_bytes(), format!("body {i}").as_bytes());
        }
        let big = client.get(&format!("http://{addr}/big")).await.unwrap();
        assert_eq!(big.body().len(), 300_000);
        // The name resolves off the shard, then comes from its cache.
        let port = addr.port();
        let r = client
            .get(&format!("http://localhost:{port}/hello"))
            .await
            .unwrap();
        assert_eq!(r.body().as_bytes(), b"hello");
        (bodies, client.stats())
    });
    assert!(bodies.iter().all(|b| b == "hello"));
    // One connection for the IP origin, one for `localhost`.
    assert_eq!(stats.opened, 2, "{stats:?}");
    assert_eq!(stats.reused, 40, "{stats:?}");
    assert_eq!(stats.idle, 2, "{stats:?}");
}

#[test]
fn concurrent_requests_wait_for_the_per_origin_cap() {
    let (h, addr) = app_server();
    let (ok, stats, timed_out) = on_shard(&h, move || async move {
        let opts = ClientOptions {
            pool: PoolOptions {
                max_per_key: 2,
                ..PoolOptions::default()
            },
            ..ClientOptions::default()
        };
        let client = Client::new(opts);
        let url = format!("http://{addr}/slow");
        let all = (0..10).map(|_| {
            let (c, u) = (client.clone(), url.clone());
            async move { c.get(&u).await.map(|r| r.body().len()) }
        });
        let results = shardloop::task::join_all(all).await;
        let ok = results.iter().filter(|r| matches!(r, Ok(4))).count();
        let stats = client.stats();
        // A wait shorter than the requests: the third checkout gives up.
        let impatient = Client::new(ClientOptions {
            pool: PoolOptions {
                max_per_key: 1,
                wait_timeout: Duration::from_millis(5),
                ..PoolOptions::default()
            },
            ..ClientOptions::default()
        });
        let two = (0..2).map(|_| {
            let (c, u) = (impatient.clone(), url.clone());
            async move { c.get(&u).await }
        });
        let r = shardloop::task::join_all(two).await;
        let timed_out = r
            .iter()
            .filter(|r| matches!(r, Err(ClientError::Connect(_))))
            .count();
        (ok, stats, timed_out)
    });
    assert_eq!(ok, 10);
    assert_eq!(stats.opened, 2, "{stats:?}");
    assert!(stats.waited >= 8, "{stats:?}");
    assert_eq!(timed_out, 1);
}

/// A raw server: for each connection, reads one request head and writes
/// the next canned answer, then closes if `close` says so.
fn raw_server(answers: Vec<(&'static [u8], bool)>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        'conns: for s in l.incoming() {
            let mut s = s.unwrap();
            loop {
                let mut head = Vec::new();
                let mut b = [0u8];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).unwrap_or(0) == 0 {
                        continue 'conns;
                    }
                    head.push(b[0]);
                }
                let Some((answer, close)) = answers.next() else {
                    return;
                };
                s.write_all(answer).unwrap();
                if close {
                    continue 'conns;
                }
            }
        }
    });
    addr
}

#[test]
fn chunked_close_delimited_and_interim_responses_are_read_whole() {
    let addr = raw_server(vec![
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
            false,
        ),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", false),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the close", true),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n", true),
    ]);
    let (h, _) = common::echo_server(1);
    let out = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions {
            max_body: 1000,
            ..ClientOptions::default()
        });
        let url = format!("http://{addr}/");
        let a = client.get(&url).await.unwrap();
        let b = client.get(&url).await.unwrap();
        let c = client.get(&url).await.unwrap();
        let d = client.get(&url).await;
        (
            String::from_utf8_lossy(a.body().as_bytes()).into_owned(),
            (b.status().as_u16(), b.body().as_bytes().to_vec()),
            (c.version(), c.body().as_bytes().to_vec()),
            matches!(d, Err(ClientError::TooLarge)),
            client.stats(),
        )
    });
    assert_eq!(out.0, "hello world");
    assert_eq!(out.1, (404, b"nope".to_vec()));
    assert_eq!(out.2, (http::Version::HTTP_10, b"until the close".to_vec()));
    assert!(out.3, "a body over max_body is refused");
    // The first two shared a connection; the close-delimited one ended
    // its connection, so the fourth opened another.
    assert_eq!(out.4.opened, 2, "{:?}", out.4);
}

#[test]
fn a_keep_alive_the_server_dropped_is_retried_on_a_new_connection() {
    // Answers once with keep-alive, then closes that connection unasked.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, s) in l.incoming().take(2).enumerate() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = format!("answer {i}");
            let r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(r.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            // Dropped: the close the client finds on its next request.
        }
    });
    let (h, _) = common::echo_server(1);
    let (a, b, stats) = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions::default());
        let url = format!("http://{addr}/");
        let a = client.get(&url).await.unwrap();
        shardloop::task::sleep(Duration::from_millis(200)).await;
        let b = client.get(&url).await.unwrap();
        (a.into_body(), b.into_body(), client.stats())
    });
    assert_eq!(a.as_bytes(), b"answer 0");
    assert_eq!(b.as_bytes(), b"answer 1");
    assert_eq!(stats.opened, 2, "{stats:?}");
}

#[test]
fn connect_errors_and_timeouts_are_reported() {
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Accepts, reads, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let kept: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(5));
        drop(kept);
    });
    let (h, _) = common::echo_server(1);
    let (a, b, c) = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions {
            response_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        });
        let a = client
            .get(&format!("http://{refused}/"))
            .await
            .err()
            .unwrap();
        let b = client
            .get(&format!("http://{silent_addr}/"))
            .await
            .err()
            .unwrap();
        let c = client.get("ftp://example/").await.err().unwrap();
        (a.to_string(), b.to_string(), c.to_string())
    });
    assert!(
        a.contains("cannot connect") && a.contains(&refused.to_string()),
        "{a}"
    );
    assert!(b.contains("no complete response"), "{b}");
    assert!(c.contains("bad URL"), "{c}");
}

/// A connection that is always usable (the pool's own behaviour only).
struct Held;
impl shardloop::client::Poolable for Held {
    fn is_usable(&self) -> bool {
        true
    }
}

#[test]
fn a_checkout_dropped_while_connecting_gives_its_place_back() {
    use shardloop::client::Pool;
    let (h, _) = common::echo_server(1);
    let (first, second, stats) = on_shard(&h, || async {
        let pool: Pool<u8, Held> = Pool::new(PoolOptions {
            max_per_key: 1,
            wait_timeout: Duration::from_millis(200),
            ..PoolOptions::default()
        });
        // A connect that never finishes, abandoned after 20 ms.
        let never = shardloop::task::timeout(
            Duration::from_millis(20),
            pool.checkout(1, std::future::pending::<std::io::Result<Held>>),
        )
        .await;
        // The only place for key 1 is free again: this connects at once.
        let next = pool.checkout(1, || async { Ok(Held) }).await;
        (never.is_err(), next.is_ok(), pool.stats())
    });
    assert!(first, "the first checkout was abandoned");
    assert!(second, "the place was given back");
    assert_eq!(
        (stats.opened, stats.waited, stats.open),
        (1, 0, 1),
        "{stats:?}"
    );
}
