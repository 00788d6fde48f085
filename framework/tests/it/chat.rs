//! Drives the real `chat` example binary over loopback.
use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

#[test]
fn chat_lines_reach_every_client_on_every_shard_in_order() {
    let server = common::start_example("chat", &["--shards", "3", "--port", "0"]);
    let addr = server.addr;

    const CLIENTS: usize = 7; // over 3 shards: every shard has several
    const LINES: usize = 60;
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for i in 0..CLIENTS {
        let s = common::connect(addr);
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut welcome = String::new();
        r.read_line(&mut welcome).unwrap();
        assert!(welcome.starts_with("* welcome"), "{welcome:?}");
        let mut w: TcpStream = s;
        w.write_all(format!("/nick c{i}\n").as_bytes()).unwrap();
        readers.push(r);
        writers.push(w);
    }
    // Every client has read its welcome, so all are members everywhere.
    let senders: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(i, mut w)| {
            std::thread::spawn(move || {
                for j in 0..LINES {
                    w.write_all(format!("line {j} from c{i}\n").as_bytes())
                        .unwrap();
                }
                w
            })
        })
        .collect();
    let receivers: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(me, mut r)| {
            std::thread::spawn(move || {
                let mut next: HashMap<String, usize> = HashMap::new();
                let expected = (CLIENTS - 1) * LINES;
                for _ in 0..expected {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    let (who, rest) = line.trim_end().split_once(": ").expect("name: text");
                    assert_ne!(who, format!("c{me}"), "own line echoed back");
                    let j: usize = rest.split_whitespace().nth(1).unwrap().parse().unwrap();
                    let n = next.entry(who.to_string()).or_default();
                    assert_eq!(j, *n, "client {me}: lines from {who} out of order");
                    *n += 1;
                }
                assert_eq!(next.len(), CLIENTS - 1);
                assert!(next.values().all(|&n| n == LINES));
            })
        })
        .collect();
    let _writers: Vec<_> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    for t in receivers {
        t.join().unwrap();
    }
    drop(server);
}

fn welcomed(addr: std::net::SocketAddr) -> (BufReader<TcpStream>, TcpStream) {
    let s = common::connect(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut welcome = String::new();
    r.read_line(&mut welcome).unwrap();
    assert!(welcome.starts_with("* welcome"), "{welcome:?}");
    (r, s)
}

#[test]
fn an_overlong_line_in_one_read_is_never_relayed() {
    let server = common::start_example("chat", &["--shards", "2", "--port", "0"]);
    let (mut listener_r, _listener_w) = welcomed(server.addr);
    let (mut sender_r, mut sender_w) = welcomed(server.addr);
    for len in [5000usize, 60_000] {
        let mut line = vec![b'x'; len];
        line.push(b'\n');
        let _ = sender_w.write_all(&line);
        let mut reply = String::new();
        let _ = sender_r.read_line(&mut reply);
        assert_eq!(reply, "* line too long; bye\n");
        let (s_r, s_w) = welcomed(server.addr);
        sender_r = s_r;
        sender_w = s_w;
    }
    // A normal line still flows, and it is the first thing the listener sees.
    sender_w.write_all(b"/nick ok\nhello\n").unwrap();
    let mut got = String::new();
    listener_r.read_line(&mut got).unwrap();
    assert_eq!(got, "ok: hello\n");
}

#[test]
fn a_member_that_never_reads_is_dropped_and_the_rest_keep_chatting() {
    let server = common::start_example(
        "chat",
        &["--shards", "1", "--port", "0", "--max-backlog", "65536"],
    );
    let (_slow_r, slow_w) = welcomed(server.addr);
    let (mut reader_r, _reader_w) = welcomed(server.addr);
    let (_talker_r, mut talker_w) = welcomed(server.addr);
    let line = format!("{}\n", "y".repeat(1000));
    // Enough to fill the slow member's socket buffers and its backlog.
    for _ in 0..8000 {
        talker_w.write_all(line.as_bytes()).unwrap();
        let mut got = String::new();
        reader_r.read_line(&mut got).unwrap();
    }
    wait_for_closed(slow_w);
}

/// Waits until the server has closed (or reset) the connection.
fn wait_for_closed(mut s: TcpStream) {
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut tail = Vec::new();
    loop {
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 4096 {
                    tail.drain(..tail.len() - 4096);
                }
            }
        }
    }
    let tail = String::from_utf8_lossy(&tail);
    assert!(tail.ends_with("* you are not reading; bye\n"), "{tail:?}");
}
