//! `http::client` speaking HTTP/2: chosen by ALPN over TLS (one
//! connection carrying concurrent requests), HTTP/1.1 when the server
//! offers only that, h2c with prior knowledge, the body limit, and the
//! connection let go after the pool's idle timeout. The server is
//! shardloop's own, which serves HTTP/2 and HTTP/1.1 on one listener.
use crate::common::{self, on_shard};

use shardloop::client::PoolOptions;
use shardloop::endpoint::Listen;
use shardloop::http::client::{Client, ClientError, ClientOptions};
use shardloop::http::{Body, HttpServer, Request, Response, Router, Version};
use shardloop::tls::{TlsClientConfig, TlsServerConfig};
use std::net::SocketAddr;
use std::time::Duration;

fn app() -> HttpServer {
    let app = Router::new()
        // The version the server saw, so the test knows what was spoken.
        .get("/version", |req: &Request<Body>| {
            Response::new(Body::from(format!("{:?}", req.version())))
        })
        .post("/echo", |req: &Request<Body>| {
            Response::new(req.body().clone())
        })
        .get("/big", |_: &Request<Body>| {
            Response::new(Body::from(vec![7u8; 300_000]))
        })
        .get_async("/slow", |_req| async {
            shardloop::task::sleep(Duration::from_millis(50)).await;
            Response::new(Body::from("slow"))
        });
    HttpServer::new(app)
}

/// A TLS server offering `alpn`, and a client configuration trusting it.
fn tls_server(alpn: &[&str]) -> (shardloop::Handle, SocketAddr, TlsClientConfig) {
    let dir = std::env::temp_dir().join(format!(
        "shardloop-h2c-{}-{}",
        std::process::id(),
        alpn.len()
    ));
    let pki = shardloop_devtools::pki::TestPki::new().write(&dir).unwrap();
    let tls = TlsServerConfig::from_pem_files(&pki.cert, &pki.key)
        .unwrap()
        .alpn(alpn.iter().copied())
        .build()
        .unwrap();
    let listen = Listen::from("127.0.0.1:0".parse::<SocketAddr>().unwrap()).tls(tls);
    let (h, addr) = common::started(common::builder(2).listen(listen, app().factory()));
    let client_tls = TlsClientConfig::builder()
        .ca_file(&pki.ca)
        .unwrap()
        .build()
        .unwrap();
    (h, addr, client_tls)
}

#[test]
fn alpn_h2_carries_concurrent_requests_on_one_connection() {
    let (h, addr, tls) = tls_server(&["h2", "http/1.1"]);
    let base = format!("https://localhost:{}", addr.port());
    let (first, results, stats) = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions {
            tls: Some(tls),
            ..ClientOptions::default()
        });
        let first = client.get(&format!("{base}/version")).await.unwrap();
        // 40 requests at once, some with bodies larger than the initial
        // flow-control window (64 KiB), share the one connection.
        let calls = (0..40).map(|i| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let r = match i % 4 {
                    0 => client.get(&format!("{base}/slow")).await,
                    1 => client.get(&format!("{base}/big")).await,
                    2 => {
                        let body = vec![i as u8; 100_000 + i];
                        let req = Request::post(format!("{base}/echo"))
                            .body(Body::from(body.clone()))
                            .unwrap();
                        let r = client.request(req).await;
                        r.inspect(|r| assert_eq!(r.body().as_bytes(), &body[..]))
                    }
                    _ => client.get(&format!("{base}/version")).await,
                };
                let r = r.unwrap();
                (i, r.status(), r.version(), r.body().len())
            }
        });
        let results = shardloop::task::join_all(calls).await;
        (first, results, client.stats())
    });
    assert_eq!(first.version(), Version::HTTP_2);
    assert_eq!(first.body().as_bytes(), b"HTTP/2.0");
    for (i, status, version, len) in results {
        assert_eq!(status, 200, "request {i}");
        assert_eq!(version, Version::HTTP_2, "request {i}");
        let want = match i % 4 {
            0 => 4,
            1 => 300_000,
            2 => 100_000 + i,
            _ => 8,
        };
        assert_eq!(len, want, "request {i}");
    }
    // One connection, taken out of the pool to be shared.
    assert_eq!(stats.opened, 1, "{stats:?}");
    assert_eq!(stats.detached, 1, "{stats:?}");
    assert_eq!(stats.open, 0, "{stats:?}");
}

#[test]
fn a_server_offering_only_http_1_1_gets_pooled_http_1_1() {
    let (h, addr, tls) = tls_server(&["http/1.1"]);
    let url = format!("https://localhost:{}/version", addr.port());
    let (versions, stats) = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions {
            tls: Some(tls),
            ..ClientOptions::default()
        });
        let mut versions = Vec::new();
        for _ in 0..5 {
            let r = client.get(&url).await.unwrap();
            versions.push((r.version(), r.body().as_bytes().to_vec()));
        }
        (versions, client.stats())
    });
    for (v, body) in versions {
        assert_eq!(v, Version::HTTP_11);
        assert_eq!(body, b"HTTP/1.1");
    }
    assert_eq!((stats.opened, stats.reused, stats.detached), (1, 4, 0));
}

#[test]
fn http2_off_keeps_http_1_1_even_when_the_server_offers_h2() {
    let (h, addr, tls) = tls_server(&["h2", "http/1.1"]);
    let url = format!("https://localhost:{}/version", addr.port());
    let body = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions {
            tls: Some(tls),
            http2: false,
            ..ClientOptions::default()
        });
        let r = client.get(&url).await.unwrap();
        r.body().as_bytes().to_vec()
    });
    assert_eq!(body, b"HTTP/1.1");
}

#[test]
fn prior_knowledge_h2c_limits_and_idle_expiry() {
    let (h, addr) = common::started(common::builder(1).listen("127.0.0.1:0", app().factory()));
    let base = format!("http://{addr}");
    let (version, too_large, after, stats) = on_shard(&h, move || async move {
        let client = Client::new(ClientOptions {
            http2_prior_knowledge: true,
            max_body: 100_000,
            pool: PoolOptions {
                idle_timeout: Some(Duration::from_millis(100)),
                ..PoolOptions::default()
            },
            ..ClientOptions::default()
        });
        let r = client.get(&format!("{base}/version")).await.unwrap();
        let version = (r.version(), r.body().as_bytes().to_vec());
        let too_large = client.get(&format!("{base}/big")).await;
        // The connection survives a stream reset for size.
        let after = client.get(&format!("{base}/version")).await.unwrap();
        let mid = client.stats();
        assert_eq!(mid.detached, 1, "{mid:?}");
        // Idle past the pool's timeout: let go, a new one is opened.
        shardloop::task::sleep(Duration::from_millis(250)).await;
        client.get(&format!("{base}/version")).await.unwrap();
        (version, too_large, after.version(), client.stats())
    });
    assert_eq!(version, (Version::HTTP_2, b"HTTP/2.0".to_vec()));
    assert!(
        matches!(too_large, Err(ClientError::TooLarge)),
        "{too_large:?}"
    );
    assert_eq!(after, Version::HTTP_2);
    assert_eq!(stats.detached, 2, "{stats:?}");
}

/// A protocol of the caller's own that speaks HTTP/2 on its connection
/// (`Http2Connection` over its `ConnTask`): 30 requests in flight at once,
/// bodies past the flow-control window both ways, every answer its own.
struct OwnConn {
    base: String,
    done: std::sync::mpsc::Sender<Vec<Answer>>,
}

/// A status and body, or why there was none.
type Answer = Result<(u16, Vec<u8>), String>;

impl shardloop::Protocol for OwnConn {
    type Message = ();
    fn connection_made(&mut self, conn: &mut shardloop::Conn<'_, Self>) {
        let (base, done) = (self.base.clone(), self.done.clone());
        conn.spawn_stream(move |task| async move {
            use shardloop::http::client::Http2Connection;
            let h2 = Http2Connection::handshake(task.clone(), ClientOptions::default())
                .await
                .expect("handshake");
            let calls = (0..30).map(|i| {
                let (h2, base) = (h2.clone(), base.clone());
                async move {
                    let req = match i % 3 {
                        0 => Request::get(format!("{base}/slow")).body(Body::empty()),
                        1 => Request::get(format!("{base}/big")).body(Body::empty()),
                        _ => Request::post(format!("{base}/echo"))
                            .body(Body::from(vec![i as u8; 70_000 + i])),
                    }
                    .unwrap();
                    let resp = h2.send(req).await.map_err(|e| e.to_string())?;
                    let status = resp.status().as_u16();
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok((status, body.to_vec()))
                }
            });
            let results = shardloop::task::join_all(calls).await;
            let _ = done.send(results);
            task.close();
        });
    }
    fn data_received(&mut self, _: &mut shardloop::Conn<'_, Self>, _: &[u8]) {
        unreachable!("the task reads the connection")
    }
}

#[test]
fn http2_on_a_connection_of_ones_own() {
    let (h, addr) = common::started(common::builder(1).listen("127.0.0.1:0", app().factory()));
    let (tx, rx) = std::sync::mpsc::channel();
    let base = format!("http://{addr}");
    h.post_to(0, move |ctx| {
        let protocol = OwnConn { base, done: tx };
        ctx.connect(shardloop::endpoint::Connect::addr(addr.into()), protocol);
    })
    .unwrap();
    let results = rx.recv_timeout(Duration::from_secs(20)).expect("answered");
    assert_eq!(results.len(), 30);
    for (i, r) in results.into_iter().enumerate() {
        let (status, body) = r.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, 200, "request {i}");
        match i % 3 {
            0 => assert_eq!(body, b"slow"),
            1 => assert_eq!(body, vec![7u8; 300_000]),
            _ => assert_eq!(body, vec![i as u8; 70_000 + i], "request {i}"),
        }
    }
}
