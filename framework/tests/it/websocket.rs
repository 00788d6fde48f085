//! WebSocket with real clients: Python's `websockets` (plain and TLS), a
//! headless Chromium running the chat page, and raw sockets for what a
//! hostile client does. Prerequisites of the test suite (`.ci/run`
//! installs `python3-websockets` and `chromium`).
use crate::common;

use shardloop::http::ws::{frame, Message, WebSocket, WsConn, WsOptions};
use shardloop::http::{HttpServer, Router};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/it/scripts/{name}"))
}

/// A Python that has the `websockets` package (Debian's, if the default
/// Python lacks it).
fn python() -> &'static str {
    for p in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(p)
            .args(["-c", "import websockets"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return p;
        }
    }
    panic!("no python3 with the websockets package: apt-get install -y python3-websockets");
}

fn run_python(args: &[&str]) {
    let out = Command::new(python())
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chat example's web address (the last in its banner).
fn web_addr(chat: &shardloop_devtools::Spawned) -> SocketAddr {
    chat.banner
        .split_whitespace()
        .rev()
        .find_map(shardloop_devtools::parse_addr)
        .expect("a web address in the banner")
}

#[test]
fn python_websockets_clients_talk_in_the_chat_room_and_hear_line_clients() {
    let chat = common::start_example("chat", &["--shards", "2", "--port", "0", "--web-port", "0"]);
    let web = web_addr(&chat);
    // A line client in the same room hears the browsers' lines.
    let line = common::connect(chat.addr);
    let mut lines = BufReader::new(line.try_clone().unwrap());
    let mut welcome = String::new();
    lines.read_line(&mut welcome).unwrap();
    assert!(welcome.starts_with("* welcome"), "{welcome:?}");
    run_python(&[
        script("ws_client.py").to_str().unwrap(),
        "chat",
        &format!("ws://{web}/ws"),
    ]);
    let mut heard = String::new();
    lines.read_line(&mut heard).unwrap();
    assert_eq!(heard, "alice: hello from alice\n");
    heard.clear();
    lines.read_line(&mut heard).unwrap();
    assert_eq!(heard, "bob: héllo from bob ✓\n");
}

#[test]
fn wss_through_the_tls_listener() {
    let dir = std::env::temp_dir().join(format!("shardloop-wss-{}", std::process::id()));
    let pki = shardloop_devtools::pki::TestPki::new().write(&dir).unwrap();
    let chat = common::start_example(
        "chat",
        &[
            "--shards",
            "2",
            "--port",
            "0",
            "--web-port",
            "0",
            "--tls-cert",
            pki.cert.to_str().unwrap(),
            "--tls-key",
            pki.key.to_str().unwrap(),
        ],
    );
    let web = web_addr(&chat);
    run_python(&[
        script("ws_client.py").to_str().unwrap(),
        "chat",
        &format!("wss://{web}/ws"),
        pki.ca.to_str().unwrap(),
    ]);
}

#[test]
fn two_chromium_pages_exchange_messages_over_the_chat() {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("no chromium: apt-get install -y chromium");
    let chat = common::start_example("chat", &["--shards", "2", "--port", "0", "--web-port", "0"]);
    let web = web_addr(&chat);
    let page = |me: &str, other: &str| {
        format!(
            "http://{web}/?nick={me}&say=hello-from-{me}&expect=hello-from-{other}=got hello-from-{other}"
        )
    };
    run_python(&[
        script("browser_pages.py").to_str().unwrap(),
        chromium,
        "30",
        &page("ann", "bea"),
        &page("bea", "ann"),
    ]);
}

struct Echo;
impl WebSocket for Echo {
    fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
        ws.send(msg);
    }
}

fn echo_server() -> (shardloop::Handle, SocketAddr) {
    let opts = WsOptions {
        max_message: 2 << 20,
        max_frame: 2 << 20,
        ..WsOptions::default()
    };
    let app = Router::new().websocket("/echo", opts, |_| Echo);
    common::started(common::builder(2).listen("127.0.0.1:0", HttpServer::new(app).factory()))
}

#[test]
fn python_websockets_echo_text_binary_fragments_ping_and_close() {
    let (_h, addr) = echo_server();
    run_python(&[
        script("ws_client.py").to_str().unwrap(),
        "echo",
        &format!("ws://{addr}/echo"),
    ]);
}

/// A raw client after a handshake (the 101 read away).
fn raw_client(addr: SocketAddr) -> std::net::TcpStream {
    let mut s = common::connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn masked(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_head(true, op, payload.len() as u64, Some([5, 6, 7, 8]), &mut out);
    let mut p = payload.to_vec();
    frame::apply_mask(&mut p, [5, 6, 7, 8], 0);
    out.extend_from_slice(&p);
    out
}

#[test]
fn hostile_clients_are_closed_with_a_code_and_cost_nobody_else() {
    let (_h, addr) = echo_server();
    let mut good = raw_client(addr);
    // An unmasked frame: close 1002, then the server's FIN.
    let mut bad = raw_client(addr);
    let mut unmasked = Vec::new();
    frame::encode_head(true, frame::opcode::TEXT, 2, None, &mut unmasked);
    unmasked.extend_from_slice(b"hi");
    bad.write_all(&unmasked).unwrap();
    let (got, _) = common::read_to_end_lossy(&mut bad);
    let h = frame::FrameHead::parse(&got).expect("a close frame");
    assert_eq!(h.opcode, frame::opcode::CLOSE);
    assert_eq!(got[h.header_len..h.header_len + 2], 1002u16.to_be_bytes());
    // A frame claiming 2^40 bytes: 1009 at once, nothing held for it.
    let mut huge_client = raw_client(addr);
    let mut huge = Vec::new();
    frame::encode_head(
        true,
        frame::opcode::BINARY,
        1 << 40,
        Some([1; 4]),
        &mut huge,
    );
    huge_client.write_all(&huge).unwrap();
    let (got, _) = common::read_to_end_lossy(&mut huge_client);
    let h = frame::FrameHead::parse(&got).expect("a close frame");
    assert_eq!(got[h.header_len..h.header_len + 2], 1009u16.to_be_bytes());
    // The good client is still served.
    good.write_all(&masked(frame::opcode::TEXT, b"still here"))
        .unwrap();
    let mut reply = [0u8; 12];
    good.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[2..], b"still here");
    // And closes cleanly: our close is answered, then the server's FIN.
    good.write_all(&masked(frame::opcode::CLOSE, &1000u16.to_be_bytes()))
        .unwrap();
    let (got, err) = common::read_to_end_lossy(&mut good);
    assert_eq!(got, [0x88, 2, 0x03, 0xe8]);
    assert_eq!(err, None, "a FIN, not a reset");
}

#[test]
fn a_stopping_server_closes_websockets_with_1001() {
    let (h, addr) = echo_server();
    let mut c = raw_client(addr);
    c.write_all(&masked(frame::opcode::TEXT, b"before"))
        .unwrap();
    let mut reply = [0u8; 8];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[2..], b"before");
    h.stop_within(Duration::from_secs(5));
    // The server's close frame: 1001, going away.
    let mut head = [0u8; 2];
    c.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x88, "a close frame");
    let mut payload = vec![0u8; usize::from(head[1] & 0x7f)];
    c.read_exact(&mut payload).unwrap();
    assert_eq!(payload[..2], 1001u16.to_be_bytes());
    // Answered: the server closes the connection.
    c.write_all(&masked(frame::opcode::CLOSE, &1001u16.to_be_bytes()))
        .unwrap();
    let (rest, err) = common::read_to_end_lossy(&mut c);
    assert!(rest.is_empty() && err.is_none(), "{rest:?} {err:?}");
    h.wait();
}
