//! The HTTP/1.1 server through the testing kit (no sockets, manual clock):
//! any split of a pipeline, answers in order, the close after HTTP/1.0,
//! the header deadline.

use super::{Body, HttpServer, Limits, Request, Response, Router};
use crate::testing::FakeTransport;
use crate::Factory;
use std::time::Duration;

fn transport(limits: Limits) -> FakeTransport<super::HttpConnection> {
    let app = Router::new()
        .get("/", |_: &Request<Body>| Response::new(Body::from("root")))
        .post("/echo", |req: &Request<Body>| {
            Response::new(req.body().clone())
        });
    let make = HttpServer::new(app).limits(limits).factory();
    let mut factory = make(0);
    let proto = factory.build_protocol(crate::Addr::Unix(None));
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
            .find_map(|l| l.strip_prefix("content-length: "))
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
    assert_eq!(t.close_reason(), Some(crate::CloseReason::ReadTimeout));
    assert!(t.written().is_empty(), "no answer, as nginx");
}
