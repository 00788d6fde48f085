//! The http_hello example (`shardloop::http`) against hostile clients:
//! every number checked, bodies capped, slow requests cut off.

use crate::common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn http(args: &[&str]) -> shardloop_devtools::Spawned {
    let mut all = vec!["--port", "0", "--shards", "1", "--no-pin"];
    all.extend_from_slice(args);
    start_example("http_hello", &all)
}

/// Sends `req`, reads until the server closes; returns the whole answer.
fn exchange(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut s = connect(addr);
    let _ = s.write_all(req);
    let (got, _) = read_to_end_lossy(&mut s);
    String::from_utf8_lossy(&got).into_owned()
}

fn statuses(answer: &str) -> Vec<&str> {
    answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect()
}

#[test]
fn content_length_numbers_are_checked() {
    let srv = http(&[]);
    let cases: [(&str, &[&str]); 8] = [
        // head + CL = 2^64: used to spin the shard and exhaust memory.
        // Past 2^63 - 1 it is malformed, as nginx says (an off_t).
        ("18446744073709551559", &["400"]),
        // 2^64 - 1: used to answer the body as a second request.
        ("18446744073709551615", &["400"]),
        ("18446744073709551616", &["400"]),
        ("9223372036854775807", &["413"]),
        ("+5", &["400"]),
        ("-1", &["400"]),
        ("5 5", &["400"]),
        ("0x10", &["400"]),
    ];
    for (cl, expected) in cases {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\nGET / HTTP/1.1\r\n\r\n"
        );
        let answer = exchange(srv.addr, req.as_bytes());
        assert_eq!(
            statuses(&answer),
            expected,
            "Content-Length: {cl}\n{answer}"
        );
    }
}

#[test]
fn conflicting_content_lengths_are_rejected_and_equal_ones_accepted() {
    let srv = http(&[]);
    let answer = exchange(
        srv.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    );
    assert_eq!(statuses(&answer), ["400"], "{answer}");
    let answer = exchange(
        srv.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(statuses(&answer), ["200", "200"], "{answer}");
}

#[test]
fn bodies_stream_past_and_oversized_ones_get_413() {
    let srv = http(&["--max-body", "4194304"]);
    // 4 MiB body in pieces, then a second request: both answered, in order.
    let mut s = connect(srv.addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n")
        .unwrap();
    let piece = vec![b'b'; 64 * 1024];
    for _ in 0..64 {
        s.write_all(&piece).unwrap();
    }
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = read_to_end_lossy(&mut s);
    let answer = String::from_utf8_lossy(&got);
    assert_eq!(statuses(&answer), ["200", "200"], "{answer}");
    // One byte over the limit: 413 at once, before the body is sent.
    let answer = exchange(
        srv.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4194305\r\n\r\n",
    );
    assert_eq!(statuses(&answer), ["413"], "{answer}");
}

#[test]
fn a_slowloris_request_is_closed_at_the_request_timeout() {
    let srv = http(&["--request-timeout", "1"]);
    let mut s = connect(srv.addr);
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let started = Instant::now();
    let head = b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    // One byte every 250 ms: 45 bytes would take 11 s.
    for &b in head.iter() {
        if s.write_all(&[b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            _ => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the trickling request was never cut off");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn request_forms_and_host_as_rfc_9112_says() {
    let srv = http(&[]);
    let cases: [(&[u8], &[&str]); 5] = [
        (
            b"GET http://x/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            &["200"],
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            &["200"],
        ),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &["400"]),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", &["400"]),
        (b"GET / HTTP/1.0\r\n\r\n", &["200"]),
    ];
    for (req, expected) in cases {
        let answer = exchange(srv.addr, req);
        assert_eq!(
            statuses(&answer),
            expected,
            "{}\n{answer}",
            String::from_utf8_lossy(req)
        );
    }
    let many = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "A: b\r\n".repeat(101)
    );
    assert_eq!(statuses(&exchange(srv.addr, many.as_bytes())), ["431"]);
}
