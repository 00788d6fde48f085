//! `shardloop::http` through real sockets: keep-alive, pipelining in
//! order (with handlers that answer later), bodies by length and chunked
//! (split byte by byte), HEAD, 100-continue, HTTP/1.0, the limits and the
//! smuggling cases answered as nginx answers them, timeouts, shedding, and
//! curl as a client.

use crate::common::*;
use shardloop::http::{Body, HttpServer, Limits, Params, Request, Response, Router};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn app() -> Router {
    Router::new()
        .get("/", |_: &Request<Body>| {
            Response::new(Body::from("Hello, World!"))
        })
        .get("/hello/{name}", |req: &Request<Body>| {
            let p = req.extensions().get::<Params>().unwrap();
            Response::new(Body::from(format!("hi {}", p.get("name").unwrap())))
        })
        .post("/echo", |req: &Request<Body>| {
            Response::new(Body::from(req.body().clone().into_bytes()))
        })
        .get_async("/later/{ms}", |req: Request<Body>| async move {
            let ms: u64 = req
                .extensions()
                .get::<Params>()
                .unwrap()
                .get("ms")
                .unwrap()
                .parse()
                .unwrap();
            shardloop::task::sleep(Duration::from_millis(ms)).await;
            Response::new(Body::from(format!("slept {ms}")))
        })
}

fn server(limits: Limits) -> (shardloop::Handle, SocketAddr) {
    started(builder(2).listen(
        "127.0.0.1:0",
        HttpServer::new(app()).limits(limits).factory(),
    ))
}

/// Reads one response (head and Content-Length body) from `s`.
fn response(s: &mut TcpStream) -> (u16, String, String) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "EOF inside a head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

fn closed(s: &mut TcpStream) -> bool {
    let (rest, _) = read_to_end_lossy(s);
    rest.is_empty()
}

#[test]
fn keep_alive_pipelining_in_order_with_late_answers() {
    let (h, addr) = server(Limits::default());
    let mut s = connect(addr);
    s.write_all(
        b"GET /later/50 HTTP/1.1\r\nHost: a\r\n\r\nGET /hello/x HTTP/1.1\r\nHost: a\r\n\r\nGET /later/1 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let bodies: Vec<String> = (0..4).map(|_| response(&mut s).2).collect();
    assert_eq!(bodies, ["slept 50", "hi x", "slept 1", "Hello, World!"]);
    // The connection stays open for more.
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s).0, 404);
    s.write_all(b"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (status, head, _) = response(&mut s);
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"), "{head}");
    h.shutdown();
}

#[test]
fn bodies_by_length_and_chunked_arrive_whole_at_any_split() {
    let (h, addr) = server(Limits::default());
    let requests: [&[u8]; 2] = [
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n",
    ];
    for req in requests {
        let mut s = connect(addr);
        s.set_nodelay(true).unwrap();
        for b in req {
            s.write_all(&[*b]).unwrap();
        }
        assert_eq!(response(&mut s).2, "hello world");
        // Both at once, pipelined.
        s.write_all(&[req, req].concat()).unwrap();
        assert_eq!(response(&mut s).2, "hello world");
        assert_eq!(response(&mut s).2, "hello world");
    }
    h.shutdown();
}

#[test]
fn head_continue_and_http_1_0() {
    let (h, addr) = server(Limits::default());
    let mut s = connect(addr);
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Length: 13\r\n") && text.ends_with("\r\n\r\n"),
        "{text}"
    );
    // 100-continue: the body follows the interim answer.
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    )
    .unwrap();
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"ok").unwrap();
    assert_eq!(response(&mut s).2, "ok");
    // HTTP/1.0: closed after the answer unless keep-alive is asked for.
    let mut old = connect(addr);
    old.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let (_, head, _) = response(&mut old);
    assert!(head.contains("Connection: keep-alive"), "{head}");
    old.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let (_, head, body) = response(&mut old);
    assert!(head.contains("Connection: close") && body == "Hello, World!");
    assert!(closed(&mut old));
    h.shutdown();
}

#[test]
fn limits_and_smuggling_are_answered_then_closed() {
    let limits = Limits {
        max_request_line: 100,
        max_head: 400,
        max_headers: 10,
        max_body: 16,
        ..Limits::default()
    };
    let (h, addr) = server(limits);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100)).into_bytes(), 414),
        (format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X: y\r\n".repeat(10)).into_bytes(), 431),
        (format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "y".repeat(400)).into_bytes(), 431),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n".to_vec(), 413),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n01234567890123456\r\n0\r\n\r\n".to_vec(), 413),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n".to_vec(), 400),
        ([b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;".as_slice(), &[b'x'; 2000], b"\r\n"].concat(), 400),
        ([b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".as_slice(), &b"T: v\r\n".repeat(2000)].concat(), 400),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec(), 505),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n".to_vec(), 400),
    ];
    for (req, want) in cases {
        let mut s = connect(addr);
        // A peer that sends what is left after the answer is not our
        // problem: the close lingers and drains it.
        let _ = s.write_all(&req);
        let (status, head, _) = response(&mut s);
        assert_eq!(
            status,
            want,
            "{:?}",
            String::from_utf8_lossy(&req[..req.len().min(80)])
        );
        assert!(head.contains("Connection: close"), "{head}");
        assert!(closed(&mut s));
    }
    // Exactly at the limits is served.
    let mut s = connect(addr);
    s.write_all(format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(85)).as_bytes())
        .unwrap();
    assert_eq!(response(&mut s).0, 404, "a 100-byte request line is read");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n0123456789abcdef")
        .unwrap();
    assert_eq!(response(&mut s).2, "0123456789abcdef");
    h.shutdown();
}

#[test]
fn a_slow_head_is_cut_off_and_an_idle_connection_closed() {
    let limits = Limits {
        header_timeout: Some(Duration::from_millis(300)),
        keep_alive: Some(Duration::from_millis(600)),
        ..Limits::default()
    };
    let (h, addr) = server(limits);
    let mut slow = connect(addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    assert!(closed(&mut slow), "no answer, closed");
    let mut idle = connect(addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut idle).0, 200);
    assert!(closed(&mut idle), "closed after the keep-alive timeout");
    h.shutdown();
}

#[test]
fn a_slow_handler_is_not_idleness() {
    let limits = Limits {
        keep_alive: Some(Duration::from_millis(100)),
        ..Limits::default()
    };
    let (h, addr) = server(limits);
    let mut s = connect(addr);
    s.write_all(b"GET /later/400 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s).2, "slept 400");
    h.shutdown();
}

#[test]
fn the_shed_hook_answers_503_with_retry_after() {
    let server = HttpServer::new(app())
        .shed(|req, _ctx| (req.uri().path() == "/").then(|| Duration::from_millis(1500)));
    let (h, addr) = started(builder(1).listen("127.0.0.1:0", server.factory()));
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /hello/y HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (status, head, _) = response(&mut s);
    assert_eq!(status, 503);
    assert!(head.contains("Retry-After: 2\r\n"), "{head}");
    assert_eq!(response(&mut s).2, "hi y", "the connection goes on");
    h.shutdown();
}

#[test]
fn curl_gets_posts_and_reuses_the_connection() {
    let (h, addr) = server(Limits::default());
    let url = format!("http://{addr}");
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-v",
            &format!("{url}/"),
            &format!("{url}/hello/curl"),
        ])
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "Hello, World!hi curl");
    assert!(
        stderr.contains("Re-using existing connection") || stderr.contains("Reusing existing"),
        "{stderr}"
    );
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--data-binary",
            "@-",
            "-H",
            "Transfer-Encoding: chunked",
            &format!("{url}/echo"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&b"z".repeat(5000))?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        out.stdout.len(),
        5000,
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.stats().total().callback_panics, 0);
    h.shutdown();
}

#[test]
fn handlers_see_the_client_and_a_trusted_proxy_header_names_it() {
    use shardloop::http::PeerAddr;
    let app = Router::new().get("/ip", |req: &Request<Body>| {
        let who = req.extensions().get::<PeerAddr>().unwrap();
        Response::new(Body::from(who.0.to_string()))
    });
    let listen = shardloop::endpoint::Listen::from("127.0.0.1:0").proxy_protocol(true);
    let (h, addr) =
        started(builder(1).listen(listen, HttpServer::new(app).peer_addr(true).factory()));
    let mut s = connect(addr);
    s.write_all(
        b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\r\nGET /ip HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut s).2, "203.0.113.7:56324");
    h.shutdown();
    let app = Router::new().get("/ip", |req: &Request<Body>| {
        let who = req.extensions().get::<PeerAddr>().unwrap();
        Response::new(Body::from(who.0.to_string()))
    });
    let (h, addr) = started(builder(1).listen(
        "127.0.0.1:0",
        HttpServer::new(app).peer_addr(true).factory(),
    ));
    let mut s = connect(addr);
    s.write_all(b"GET /ip HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(response(&mut s).2, s.local_addr().unwrap().to_string());
    h.shutdown();
}

/// A `tower` service, wrapped in tower's own middleware, as the handler
/// (feature `tower`).
#[test]
fn a_tower_service_with_tower_middleware_serves_requests() {
    use shardloop::http::{HeaderValue, TowerHandler};
    use tower::ServiceBuilder;
    let hello = tower::service_fn(|req: shardloop::http::Request<Body>| async move {
        if req.uri().path() == "/fail" {
            return Err("the database is down");
        }
        // A timer of shardloop's, inside a tower service.
        shardloop::task::sleep(Duration::from_millis(5)).await;
        Ok(Response::new(Body::from(format!(
            "tower saw {}",
            req.uri().path()
        ))))
    });
    let svc = ServiceBuilder::new()
        .concurrency_limit(2)
        .map_response(|mut r: Response<Body>| {
            r.headers_mut()
                .insert("x-layer", HeaderValue::from_static("map_response"));
            r
        })
        .service(hello);
    let http = HttpServer::new(TowerHandler::new(svc));
    let (_h, addr) = started(builder(1).listen("127.0.0.1:0", http.factory()));
    let mut s = connect(addr);
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\nGET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = read_to_end_lossy(&mut s);
    let text = String::from_utf8_lossy(&got);
    for path in ["/a", "/b", "/c"] {
        assert!(text.contains(&format!("tower saw {path}")), "{text}");
    }
    assert_eq!(
        text.matches("X-Layer: map_response\r\n").count(),
        3,
        "{text}"
    );
    // The service's error became a 500, without its text.
    assert!(
        text.contains("HTTP/1.1 500 Internal Server Error\r\n"),
        "{text}"
    );
    assert!(!text.contains("database"), "{text}");
}
