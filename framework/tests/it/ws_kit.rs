//! The WebSocket session through the testing kit (no sockets, manual
//! clock): every split of the input, the framing rules of RFC 6455 §5,
//! the close handshake, the idle ping.

use shardloop::http::ws::frame::{self, opcode, FrameHead};
use shardloop::http::ws::{close_code, Message, WebSocket, WsConn, WsOptions};
use shardloop::http::{Body, HttpConnection, HttpServer, Request, Response, Router};
use shardloop::testing::FakeTransport;
use shardloop::Factory;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<String>>>;

/// Echoes messages, logs every event, closes on "quit".
struct Recorder(Log);

impl WebSocket for Recorder {
    fn on_open(&mut self, ws: &mut WsConn<'_, '_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("open {:?}", ws.protocol()));
    }
    fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
        self.0.lock().unwrap().push(match &msg {
            Message::Text(t) => format!("text {t}"),
            Message::Binary(b) => format!("binary {}", b.len()),
        });
        if msg.as_text() == Some("quit") {
            return ws.close(close_code::NORMAL, "as you wish");
        }
        ws.send(msg);
    }
    fn on_pong(&mut self, _ws: &mut WsConn<'_, '_>, payload: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("pong {}", payload.len()));
    }
    fn on_close(&mut self, _ws: &mut WsConn<'_, '_>, code: u16, reason: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("close {code} {reason}"));
    }
}

const HANDSHAKE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn transport(opts: WsOptions) -> (FakeTransport<HttpConnection>, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let app = Router::new()
        .get("/", |_: &Request<Body>| Response::new(Body::from("plain")))
        .websocket("/ws", opts, move |_| Recorder(l.clone()));
    let mut factory = HttpServer::new(app).factory()(0);
    let t = FakeTransport::new(factory.build_protocol(shardloop::Addr::Unix(None)));
    (t, log)
}

fn opened(opts: WsOptions) -> (FakeTransport<HttpConnection>, Log) {
    let (mut t, log) = transport(opts);
    t.receive(HANDSHAKE);
    let head = String::from_utf8(t.take_written()).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (t, log)
}

/// A client's frame (masked).
fn client(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = Vec::new();
    frame::encode_head(fin, op, payload.len() as u64, Some(key), &mut out);
    let mut p = payload.to_vec();
    frame::apply_mask(&mut p, key, 0);
    out.extend_from_slice(&p);
    out
}

/// The server's frames in `wire`, as (opcode, payload).
fn frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(h) = FrameHead::parse(wire) {
        assert!(h.fin && h.mask.is_none(), "{h:?}");
        let end = h.header_len + h.len as usize;
        out.push((h.opcode, wire[h.header_len..end].to_vec()));
        wire = &wire[end..];
    }
    assert!(wire.is_empty(), "trailing bytes {wire:?}");
    out
}

fn close_frame(code: u16, reason: &str) -> (u8, Vec<u8>) {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    (opcode::CLOSE, p)
}

fn events(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[test]
fn handshake_and_frames_split_anywhere_give_the_same_messages() {
    let mut input = HANDSHAKE.to_vec();
    input.extend(client(true, opcode::TEXT, "héllo".as_bytes()));
    input.extend(client(false, opcode::TEXT, &"€".as_bytes()[..1]));
    input.extend(client(true, opcode::PING, b"p"));
    input.extend(client(false, opcode::CONTINUATION, &"€".as_bytes()[1..]));
    input.extend(client(true, opcode::CONTINUATION, b"!"));
    input.extend(client(true, opcode::BINARY, &[7u8; 300]));
    let expect = ["open None", "text héllo", "text €!", "binary 300"];
    for cut in 0..input.len() {
        let (mut t, log) = transport(WsOptions::default());
        t.receive(&input[..cut]);
        t.receive(&input[cut..]);
        assert_eq!(events(&log), expect, "cut at {cut}");
        let wire = t.written();
        let end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let f = frames(&wire[end..]);
        assert_eq!(f[0], (opcode::TEXT, "héllo".as_bytes().to_vec()));
        // The ping is answered between the fragments.
        assert_eq!(f[1], (opcode::PONG, b"p".to_vec()));
        assert_eq!(f[2], (opcode::TEXT, "€!".as_bytes().to_vec()));
        assert_eq!(f[3], (opcode::BINARY, vec![7u8; 300]));
        assert!(t.is_open());
    }
    let (mut t, log) = transport(WsOptions::default());
    for b in &input {
        t.receive(&[*b]);
    }
    assert_eq!(events(&log), expect);
}

/// Sends `input` after the handshake; the server's close frame and the
/// handler's last event.
fn failure(opts: WsOptions, input: &[u8]) -> ((u8, Vec<u8>), String, bool) {
    let (mut t, log) = opened(opts);
    t.receive(input);
    let f = frames(&t.take_written());
    let last = events(&log).last().cloned().unwrap();
    (f.last().cloned().unwrap(), last, t.is_open())
}

#[test]
fn protocol_errors_close_with_1002() {
    let mut unmasked = Vec::new();
    frame::encode_head(true, opcode::TEXT, 2, None, &mut unmasked);
    unmasked.extend_from_slice(b"hi");
    let mut rsv = client(true, opcode::TEXT, b"x");
    rsv[0] |= 0x40;
    let mut nested = client(false, opcode::TEXT, b"a");
    nested.extend(client(true, opcode::TEXT, b"b"));
    let mut long_ping = Vec::new();
    frame::encode_head(true, opcode::PING, 126, Some([0; 4]), &mut long_ping);
    long_ping.extend_from_slice(&[0; 126]);
    let cases: [(&str, Vec<u8>); 7] = [
        ("unmasked", unmasked),
        ("rsv", rsv),
        ("opcode 3", client(true, 3, b"")),
        (
            "continuation of nothing",
            client(true, opcode::CONTINUATION, b"x"),
        ),
        ("nested", nested),
        ("fragmented ping", client(false, opcode::PING, b"")),
        ("long ping", long_ping),
    ];
    for (name, input) in cases {
        let (close, last, open) = failure(WsOptions::default(), &input);
        assert_eq!(close.0, opcode::CLOSE, "{name}");
        assert_eq!(close.1[..2], 1002u16.to_be_bytes(), "{name}");
        assert!(last.starts_with("close 1002"), "{name}: {last}");
        assert!(!open, "{name}");
    }
}

#[test]
fn bad_utf8_fails_at_the_first_bad_fragment() {
    // The fragment is not final: the failure does not wait for the end.
    let (close, last, _) = failure(
        WsOptions::default(),
        &client(false, opcode::TEXT, b"ok\xff"),
    );
    assert_eq!(close.1[..2], 1007u16.to_be_bytes());
    assert!(last.starts_with("close 1007"), "{last}");
    // A character cut at the end of the final fragment.
    let (close, _, _) = failure(
        WsOptions::default(),
        &client(true, opcode::TEXT, b"\xe2\x82"),
    );
    assert_eq!(close.1[..2], 1007u16.to_be_bytes());
    // A close reason that is not UTF-8.
    let (close, _, _) = failure(
        WsOptions::default(),
        &client(true, opcode::CLOSE, b"\x03\xe8\xff"),
    );
    assert_eq!(close.1[..2], 1007u16.to_be_bytes());
}

#[test]
fn frames_and_messages_are_capped_at_exactly_their_limits() {
    let opts = WsOptions {
        max_frame: 100,
        max_message: 150,
        ..WsOptions::default()
    };
    let (mut t, log) = opened(opts.clone());
    t.receive(&client(true, opcode::BINARY, &[1; 100]));
    let mut two = client(false, opcode::BINARY, &[1; 100]);
    two.extend(client(true, opcode::CONTINUATION, &[1; 50]));
    t.receive(&two);
    assert_eq!(events(&log)[1..], ["binary 100", "binary 150"]);
    assert!(t.is_open());
    let (close, ..) = failure(opts.clone(), &client(true, opcode::BINARY, &[1; 101]));
    assert_eq!(close.1[..2], 1009u16.to_be_bytes());
    let mut over = client(false, opcode::BINARY, &[1; 100]);
    over.extend(client(true, opcode::CONTINUATION, &[1; 51]));
    let (close, ..) = failure(opts, &over);
    assert_eq!(close.1[..2], 1009u16.to_be_bytes());
    // A header claiming 2^62 bytes holds nothing ahead of the bytes.
    let (mut t, _) = opened(WsOptions::default());
    let mut huge = Vec::new();
    frame::encode_head(true, opcode::BINARY, 1 << 62, Some([0; 4]), &mut huge);
    t.receive(&huge);
    assert_eq!(frames(&t.take_written())[0].1[..2], 1009u16.to_be_bytes());
}

#[test]
fn the_peers_close_is_echoed_and_the_server_closes_first() {
    let (mut t, log) = opened(WsOptions::default());
    t.receive(&client(true, opcode::CLOSE, b"\x03\xe8bye"));
    assert_eq!(frames(&t.take_written()), [close_frame(1000, "")]);
    assert_eq!(events(&log).last().unwrap(), "close 1000 bye");
    assert!(t.fin_sent());
    // No status: an empty close answers it, reported as 1005.
    let (mut t, log) = opened(WsOptions::default());
    t.receive(&client(true, opcode::CLOSE, b""));
    assert_eq!(frames(&t.take_written()), [(opcode::CLOSE, vec![])]);
    assert_eq!(events(&log).last().unwrap(), "close 1005 ");
    // One byte, and codes that may not be sent.
    for bad in [
        &b"\x03"[..],
        b"\x03\xed",
        b"\x03\xee",
        b"\x00\x00",
        b"\x13\x88",
    ] {
        let (close, ..) = failure(WsOptions::default(), &client(true, opcode::CLOSE, bad));
        assert_eq!(close.1[..2], 1002u16.to_be_bytes(), "{bad:?}");
    }
}

#[test]
fn our_close_waits_for_the_peer_then_for_the_timeout() {
    let opts = WsOptions {
        close_timeout: Duration::from_secs(2),
        ..WsOptions::default()
    };
    let (mut t, log) = opened(opts.clone());
    t.receive(&client(true, opcode::TEXT, b"quit"));
    assert_eq!(
        frames(&t.take_written()),
        [close_frame(1000, "as you wish")]
    );
    // Data after our close is discarded; pings are not answered.
    t.receive(&client(true, opcode::TEXT, b"late"));
    t.receive(&client(true, opcode::PING, b""));
    assert!(t.take_written().is_empty());
    assert!(t.is_open());
    t.receive(&client(true, opcode::CLOSE, b"\x03\xe8"));
    assert!(t.fin_sent());
    assert_eq!(events(&log)[1..], ["text quit", "close 1000 "]);
    // A peer that never answers: closed at the timeout.
    let (mut t, log) = opened(opts);
    t.receive(&client(true, opcode::TEXT, b"quit"));
    t.advance(Duration::from_millis(1900));
    assert!(!t.fin_sent());
    t.advance(Duration::from_millis(200));
    assert!(t.fin_sent());
    // The handshake never finished: the connection ended abnormally.
    t.peer_close();
    assert_eq!(events(&log).last().unwrap(), "close 1006 ");
}

#[test]
fn an_idle_peer_is_pinged_then_dropped() {
    let opts = WsOptions {
        ping_interval: Some(Duration::from_secs(10)),
        ..WsOptions::default()
    };
    let (mut t, log) = opened(opts);
    t.advance(Duration::from_secs(11));
    assert_eq!(frames(&t.take_written()), [(opcode::PING, vec![])]);
    t.receive(&client(true, opcode::PONG, b""));
    t.advance(Duration::from_secs(10));
    t.advance(Duration::from_secs(10));
    // Heard from (the pong), then pinged again.
    assert_eq!(frames(&t.take_written()), [(opcode::PING, vec![])]);
    assert!(t.is_open());
    t.advance(Duration::from_secs(10));
    assert!(!t.is_open() || t.fin_sent());
    assert_eq!(
        events(&log)[1..],
        ["pong 0", "close 1006 no answer to ping"]
    );
}

#[test]
fn eof_without_a_close_is_abnormal_and_reported_once() {
    let (mut t, log) = opened(WsOptions::default());
    t.peer_close();
    t.peer_reset();
    assert_eq!(events(&log), ["open None", "close 1006 "]);
}

#[test]
fn a_bus_message_is_sent_to_the_peer() {
    let (mut t, _) = opened(WsOptions::default());
    t.message(Message::from("from afar"));
    assert_eq!(
        frames(&t.take_written()),
        [(opcode::TEXT, b"from afar".to_vec())]
    );
}

#[test]
fn the_101_follows_earlier_pipelined_answers_and_plain_http_is_not_upgraded() {
    let (mut t, log) = transport(WsOptions::default());
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    input.extend_from_slice(HANDSHAKE);
    input.extend(client(true, opcode::TEXT, b"right after"));
    t.receive(&input);
    let wire = String::from_utf8_lossy(&t.written()).into_owned();
    let plain = wire.find("plain").unwrap();
    let switching = wire.find("101 Switching Protocols").unwrap();
    assert!(plain < switching, "{wire}");
    assert_eq!(events(&log), ["open None", "text right after"]);
    // A bad handshake is answered over HTTP and the connection stays HTTP.
    let (mut t, log) = transport(WsOptions::default());
    t.receive(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let wire = String::from_utf8_lossy(&t.written()).into_owned();
    assert!(wire.starts_with("HTTP/1.1 426 "), "{wire}");
    assert!(wire.contains("Sec-Websocket-Version: 13\r\n"), "{wire}");
    assert!(wire.ends_with("plain"), "{wire}");
    assert!(events(&log).is_empty());
}
