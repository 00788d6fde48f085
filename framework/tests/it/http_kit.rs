//! `shardloop::http` through the testing kit (no sockets, manual clock):
//! any split of a pipeline, answers in order, the close after HTTP/1.0,
//! the header deadline.

use shardloop::http::{
    Body, Handler, HttpConnection, HttpServer, Limits, Method, Params, Reply, Request, Response,
    Router, StatusCode,
};
use shardloop::testing::FakeTransport;
use shardloop::{Factory, ShardCtx};
use std::time::Duration;

fn transport(limits: Limits) -> FakeTransport<HttpConnection> {
    let app = Router::new()
        .get("/", |_: &Request<Body>| Response::new(Body::from("root")))
        .post("/echo", |req: &Request<Body>| {
            Response::new(req.body().clone())
        });
    let make = HttpServer::new(app).limits(limits).factory();
    let mut factory = make(0);
    let proto = factory.build_protocol(shardloop::Addr::Unix(None));
    FakeTransport::new(proto)
}

/// The bodies of the complete responses in `wire`, in order.
fn bodies(wire: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(wire).into_owned();
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = &rest[..end];
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().unwrap());
        out.push(rest[end + 4..end + 4 + len].to_string());
        rest = &rest[end + 4 + len..];
    }
    out
}

#[test]
fn a_pipeline_split_anywhere_is_answered_in_order() {
    let pipeline: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxyGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for cut in 0..pipeline.len() {
        let mut t = transport(Limits::default());
        t.receive(&pipeline[..cut]);
        t.receive(&pipeline[cut..]);
        assert_eq!(
            bodies(&t.written()),
            ["root", "abc", "xy", "root"],
            "cut at {cut}"
        );
        assert!(t.is_open());
    }
    // And byte by byte.
    let mut t = transport(Limits::default());
    for b in pipeline {
        t.receive(&[*b]);
    }
    assert_eq!(bodies(&t.written()), ["root", "abc", "xy", "root"]);
}

#[test]
fn http_1_0_closes_after_its_answer_and_nothing_after_is_read() {
    let mut t = transport(Limits::default());
    t.receive(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(bodies(&t.written()), ["root"]);
    assert!(t.fin_sent());
}

#[test]
fn a_head_that_never_ends_is_cut_off_at_the_header_timeout() {
    let limits = Limits {
        header_timeout: Some(Duration::from_secs(5)),
        ..Limits::default()
    };
    let mut t = transport(limits);
    t.receive(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ");
    t.advance(Duration::from_secs(4));
    assert!(t.is_open());
    t.receive(b"still");
    t.advance(Duration::from_secs(2));
    assert!(!t.is_open(), "trickling does not move the deadline");
    assert_eq!(t.close_reason(), Some(shardloop::CloseReason::ReadTimeout));
    assert!(t.written().is_empty(), "no answer, as nginx");
}

// The router, with a shard context from the testing kit.

struct Idle;
impl shardloop::Protocol for Idle {
    type Message = ();
    fn data_received(&mut self, _: &mut shardloop::Conn<'_, Self>, _: &[u8]) {}
}

fn status(r: &Router, method: Method, path: &str) -> (StatusCode, String) {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().unwrap();
    // A shard context from the testing kit.
    let mut t = FakeTransport::new(Idle);
    match r.call(req, t.shard()) {
        Reply::Now(resp) => (
            resp.status(),
            String::from_utf8_lossy(resp.body().as_bytes()).into_owned(),
        ),
        Reply::Later(_) => (StatusCode::ACCEPTED, String::new()),
        Reply::Upgrade(_) => (StatusCode::SWITCHING_PROTOCOLS, String::new()),
        _ => (StatusCode::OK, "streamed".into()),
    }
}

#[test]
fn routes_by_method_and_path_with_params_405_and_404() {
    let r = Router::new()
        .get("/", |_| Response::new(Body::from("root")))
        .get("/users/{id}/posts/{post}", |req| {
            let p = req.extensions().get::<Params>().unwrap();
            Response::new(Body::from(format!(
                "{}:{}",
                p.get("id").unwrap(),
                p.get("post").unwrap()
            )))
        })
        .post_async("/slow", |_| async { Response::new(Body::empty()) });
    assert_eq!(
        status(&r, Method::GET, "/"),
        (StatusCode::OK, "root".into())
    );
    assert_eq!(status(&r, Method::HEAD, "/").0, StatusCode::OK);
    assert_eq!(
        status(&r, Method::GET, "/users/7/posts/42?x=1"),
        (StatusCode::OK, "7:42".into())
    );
    assert_eq!(status(&r, Method::GET, "/users/7").0, StatusCode::NOT_FOUND);
    assert_eq!(
        status(&r, Method::DELETE, "/").0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(status(&r, Method::POST, "/slow").0, StatusCode::ACCEPTED);
    let with_fallback =
        Router::new().fallback(|_, _: &mut ShardCtx| Reply::Now(Response::new(Body::from("any"))));
    assert_eq!(
        status(&with_fallback, Method::PUT, "/x"),
        (StatusCode::OK, "any".into())
    );
}

#[test]
fn a_body_that_stops_halfway_is_cut_off_at_the_body_timeout() {
    let limits = Limits {
        body_timeout: Some(Duration::from_secs(5)),
        ..Limits::default()
    };
    let mut t = transport(limits);
    t.receive(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    t.advance(Duration::from_secs(4));
    t.receive(b"de");
    assert!(t.is_open(), "within the deadline");
    t.advance(Duration::from_secs(2));
    assert!(!t.is_open(), "the body's bytes do not move the deadline");
    assert_eq!(t.close_reason(), Some(shardloop::CloseReason::ReadTimeout));
    assert!(
        t.written().is_empty(),
        "no answer to a request never complete"
    );
}

#[test]
fn a_route_streams_its_body_only_if_it_is_the_route_that_answers() {
    let r = Router::new()
        .post("/x", |req: &Request<Body>| {
            Response::new(req.body().clone())
        })
        .route_stream(Method::POST, "/x", |_req, _body| async {
            Response::new(Body::from("never: the route above answers"))
        })
        .route_stream(Method::PUT, "/up/{name}", |_req, _body| async {
            Response::new(Body::empty())
        });
    let head = |method: Method, path: &str| {
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = path.parse().unwrap();
        req.into_parts().0
    };
    assert!(!r.streams_body(&head(Method::POST, "/x")));
    assert!(r.streams_body(&head(Method::PUT, "/up/a")));
    assert!(!r.streams_body(&head(Method::POST, "/up/a")));
    assert!(!r.streams_body(&head(Method::PUT, "/elsewhere")));
}
