//! RFC 9112's rules on request heads, one case each, and any split.

use super::head::{parse, Framing, Head, Refusal};
use super::limits::Limits;
use bytes::Bytes;
use http::{Method, StatusCode, Version};

fn head(raw: &str) -> Result<Option<Head>, Refusal> {
    head_with(raw, &Limits::default())
}

fn head_with(raw: &str, limits: &Limits) -> Result<Option<Head>, Refusal> {
    let mut spans = Vec::new();
    match parse(raw.as_bytes(), limits, &mut spans)? {
        None => Ok(None),
        Some((parsed, len)) => {
            let bytes = Bytes::copy_from_slice(&raw.as_bytes()[..len]);
            parsed.into_head(&bytes, &spans).map(Some)
        }
    }
}

fn status(raw: &str) -> StatusCode {
    match head(raw) {
        Ok(Some(_)) => StatusCode::OK,
        Ok(None) => StatusCode::CONTINUE,
        Err(r) => r.status,
    }
}

#[test]
fn a_plain_request_and_its_parts() {
    let h = head("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Y: z\r\n\r\nrest")
        .unwrap()
        .unwrap();
    assert_eq!(h.parts.method, Method::GET);
    assert_eq!(h.parts.uri.path(), "/a");
    assert_eq!(h.parts.uri.query(), Some("b=1"));
    assert_eq!(h.parts.version, Version::HTTP_11);
    assert_eq!(h.parts.headers["x-y"], "z");
    assert_eq!(h.framing, Framing::Length(0));
    assert!(h.keep_alive && !h.expect_continue);
}

#[test]
fn incomplete_heads_wait_at_every_split() {
    let raw = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    for i in 0..raw.len() {
        assert!(head(&raw[..i]).unwrap().is_none(), "prefix {i}");
    }
    assert_eq!(head(raw).unwrap().unwrap().framing, Framing::Length(5));
}

#[test]
fn host_rules() {
    assert_eq!(
        status("GET / HTTP/1.1\r\n\r\n"),
        StatusCode::BAD_REQUEST,
        "missing"
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        StatusCode::BAD_REQUEST,
        "twice"
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost:\r\n\r\n"),
        StatusCode::OK,
        "empty is allowed"
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
        StatusCode::OK
    );
    assert_eq!(
        status("GET / HTTP/1.0\r\n\r\n"),
        StatusCode::OK,
        "1.0 may omit it"
    );
}

#[test]
fn target_forms() {
    assert_eq!(
        status("GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n"),
        StatusCode::OK
    );
    assert_eq!(
        status("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
        StatusCode::OK
    );
    assert_eq!(
        status("GET * HTTP/1.1\r\nHost: h\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"),
        StatusCode::OK
    );
    assert_eq!(
        status("CONNECT /p HTTP/1.1\r\nHost: h\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status("GET h:443 HTTP/1.1\r\nHost: h\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
    let h = head("GET http://[::1]:8/x HTTP/1.1\r\nHost: [::1]:8\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.parts.uri.host(), Some("[::1]"));
}

#[test]
fn framing_and_smuggling() {
    let te_cl =
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
    assert_eq!(status(te_cl), StatusCode::BAD_REQUEST, "TE + CL");
    let cl_cl = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
    assert_eq!(status(cl_cl), StatusCode::BAD_REQUEST, "CL + CL");
    let max = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 009223372036854775807\r\n\r\n";
    assert_eq!(
        head(max).unwrap().unwrap().framing,
        Framing::Length(i64::MAX as u64)
    );
    let same = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n";
    assert_eq!(head(same).unwrap().unwrap().framing, Framing::Length(3));
    for bad_cl in [
        "+3",
        "-1",
        "3 3",
        "0x3",
        "",
        "9223372036854775808",
        "18446744073709551616",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {bad_cl}\r\n\r\n");
        assert_eq!(status(&raw), StatusCode::BAD_REQUEST, "{bad_cl:?}");
    }
    let x = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n";
    assert_eq!(status(x), StatusCode::BAD_REQUEST, "xchunked");
    let not_last = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert_eq!(status(not_last), StatusCode::BAD_REQUEST);
    let twice = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(status(twice), StatusCode::BAD_REQUEST);
    let gzip = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(status(gzip), StatusCode::NOT_IMPLEMENTED);
    let old = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(status(old), StatusCode::BAD_REQUEST, "TE in 1.0");
    let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
    assert_eq!(head(chunked).unwrap().unwrap().framing, Framing::Chunked);
}

#[test]
fn malformed_syntax_is_400() {
    for raw in [
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", // obs-fold
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",    // NUL
        "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",         // bare CR
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",              // space before colon
        "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / FOO/1.1\r\nHost: h\r\n\r\n",
    ] {
        assert_eq!(status(raw), StatusCode::BAD_REQUEST, "{raw:?}");
    }
    assert_eq!(
        status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
        StatusCode::HTTP_VERSION_NOT_SUPPORTED
    );
}

#[test]
fn limits_at_the_edge_and_one_past() {
    let limits = Limits {
        max_request_line: 64,
        max_head: 128,
        max_headers: 3,
        ..Limits::default()
    };
    // A request line of n bytes, CRLF not counted.
    let line = |n: usize| format!("GET /{} HTTP/1.1\r\n", "a".repeat(n - 14));
    assert_eq!(line(64).len(), 64 + 2);
    let ok = format!("{}Host: h\r\n\r\n", line(64));
    assert!(head_with(&ok, &limits).unwrap().is_some());
    let long = format!("{}Host: h\r\n\r\n", line(65));
    assert_eq!(
        head_with(&long, &limits).unwrap_err().status,
        StatusCode::URI_TOO_LONG
    );
    // Too long even before the line ends.
    assert_eq!(
        head_with(&"GET /".repeat(20), &limits).unwrap_err().status,
        StatusCode::URI_TOO_LONG
    );
    let three = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert!(head_with(three, &limits).unwrap().is_some());
    let four = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        head_with(four, &limits).unwrap_err().status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let big = format!("GET / HTTP/1.1\r\nHost: h\r\nA: {}\r\n", "x".repeat(120));
    assert_eq!(
        head_with(&big, &limits).unwrap_err().status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "incomplete but already too large"
    );
}

#[test]
fn connection_and_expect() {
    let h = |raw: &str| head(raw).unwrap().unwrap();
    assert!(!h("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n").keep_alive);
    assert!(!h("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(h("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert!(
        h("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
            .expect_continue
    );
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\n\r\n"),
        StatusCode::EXPECTATION_FAILED
    );
}
