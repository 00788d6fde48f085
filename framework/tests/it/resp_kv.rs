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

#[test]
fn a_frozen_shard_does_not_hold_up_ping_on_the_other_one() {
    let kv = start_example(
        "resp_kv",
        &["--port", "0", "--shards", "2", "--enable-debug-command"],
    );
    // A client backlogged on one shard: thousands of GETs pipelined, never read.
    let mut backlog = connect(kv.addr);
    let mut req = Vec::new();
    for i in 0..20_000 {
        let k = format!("k{i}");
        req.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n{k}\r\n", k.len()).as_bytes());
    }
    backlog
        .set_write_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let _ = backlog.write_all(&req);
    // Freeze one shard for 2 s.
    let mut sleeper = connect(kv.addr);
    sleeper.write_all(b"DEBUG SLEEP 2\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    // Connections spread over both shards: those on the healthy one answer
    // PING while the other sleeps (before the sleeper's +OK).
    let mut answered_during_sleep = 0;
    sleeper.set_nonblocking(true).unwrap();
    for _ in 0..4 {
        let mut c = connect(kv.addr);
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        c.write_all(b"PING\r\n").unwrap();
        let mut b = [0u8; 7];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"+PONG\r\n");
        // Answered while the sleeper has no reply yet: its shard still sleeps.
        let mut p = [0u8; 1];
        if matches!(sleeper.peek(&mut p), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            answered_during_sleep += 1;
        }
    }
    assert!(
        answered_during_sleep >= 1,
        "no PING answered while one shard slept"
    );
    sleeper.set_nonblocking(false).unwrap();
    let mut ok = [0u8; 5];
    sleeper.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    // The backlogged client gets every reply once it reads.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    backlog
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = backlog.write_all(&[]);
    while got < 20_000 * 5 {
        let n = backlog.read(&mut buf).unwrap();
        assert!(n > 0);
        got += n;
    }
    assert_eq!(got, 20_000 * 5, "20,000 nil replies ($-1\\r\\n)");
}

#[test]
fn a_64_mib_value_goes_to_a_reader_whole_and_costs_a_non_reader_no_copy() {
    let kv = start_example("resp_kv", &["--port", "0", "--shards", "1"]);
    let n = 64 << 20;
    let value: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
    let mut s = connect(kv.addr);
    let mut req = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${n}\r\n").into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    let mut ok = [0u8; 5];
    s.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    drop(req);
    // A client that asks for it ten times and reads nothing.
    let before = rss_kb(kv.pid());
    let mut lazy = connect(kv.addr);
    lazy.write_all(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(10))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let grown = rss_kb(kv.pid()).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "a client that reads nothing cost {grown} KiB"
    );
    // A reader gets it whole.
    s.write_all(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n").unwrap();
    let head = format!("${n}\r\n");
    let mut got = vec![0u8; head.len() + n + 2];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got[..head.len()], head.as_bytes());
    assert!(got[head.len()..head.len() + n] == value[..], "every byte");
    assert_eq!(&got[head.len() + n..], b"\r\n");
}
