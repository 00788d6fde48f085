//! Drives the real `chat` example binary over loopback.
mod common;

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
