//! The resp_kv example under hostile and half-closing clients.

use crate::common::*;
use std::io::{Read, Write};
use std::net::Shutdown;

#[test]
fn pipelined_sets_then_shut_wr_get_every_reply_across_shards() {
    let kv = start_example("resp_kv", &["--port", "0", "--shards", "2", "--cores", "0"]);
    let mut s = connect(kv.addr);
    let mut req = Vec::new();
    for i in 0..1000 {
        let (k, v) = (format!("key:{i}"), format!("value {i}"));
        req.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .as_bytes(),
        );
    }
    s.write_all(&req).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (got, err) = read_to_end_lossy(&mut s);
    assert_eq!(err, None);
    assert_eq!(
        got,
        b"+OK\r\n".repeat(1000),
        "every reply, then a clean close"
    );
}

#[test]
fn an_unterminated_header_line_is_rejected_at_the_cap() {
    let kv = start_example("resp_kv", &["--port", "0", "--shards", "1"]);
    let mut s = connect(kv.addr);
    // A multibulk count that never ends: 1 MiB of digits.
    let mut sent = 0usize;
    let chunk = vec![b'1'; 16 * 1024];
    let _ = s.write_all(b"*");
    while sent < 1 << 20 {
        if s.write_all(&chunk).is_err() {
            break; // the server answered and closed: writes fail
        }
        sent += chunk.len();
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"-ERR Protocol error: too big inline request\r\n"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
}
