//! The codecs against hand-made responses, split in every way.
use super::*;
use crate::template::Draws;

fn done(consumed: usize) -> Decoded {
    Decoded::Done {
        status: 0,
        consumed,
        result: Ok(()),
    }
}

#[test]
fn echo_validates_every_byte_and_sequence() {
    let c = Codec::new(&Workload::Echo { size: 16 });
    let mut r = Vec::new();
    c.encode(7, &mut Draws::default(), &mut r);
    assert!(matches!(
        c.decode(&r[..10], 7, &mut Progress::default()),
        Decoded::Incomplete { need: 16, .. }
    ));
    assert_eq!(c.decode(&r, 7, &mut Progress::default()), done(16));
    let mut bad = r.clone();
    bad[5] ^= 1;
    assert_eq!(
        c.decode(&bad, 7, &mut Progress::default()),
        Decoded::Done {
            status: 0,
            consumed: 16,
            result: Err(ErrorKind::Protocol)
        }
    );
    assert!(
        matches!(
            c.decode(&r, 8, &mut Progress::default()),
            Decoded::Done {
                status: 0,
                result: Err(_),
                ..
            }
        ),
        "other request's bytes"
    );
}

#[test]
fn echo_replies_of_other_requests_or_shifted_never_match() {
    let c = Codec::new(&Workload::Echo { size: 64 });
    let msg = |seq| {
        let mut m = Vec::new();
        c.encode(seq, &mut Draws::default(), &mut m);
        m
    };
    for seq in 0..1000u64 {
        let m = msg(seq);
        assert_eq!(c.decode(&m, seq, &mut Progress::default()), done(64));
        // Every other request within the distinct-offset span, and the
        // same bytes shifted by one, are refused.
        for other in seq.saturating_sub(5)..seq + 5 {
            if other != seq {
                assert!(matches!(
                    c.decode(&msg(other), seq, &mut Progress::default()),
                    Decoded::Done {
                        status: 0,
                        result: Err(_),
                        ..
                    }
                ));
            }
        }
        let mut shifted = m[1..].to_vec();
        shifted.push(m[0]);
        assert!(matches!(
            c.decode(&shifted, seq, &mut Progress::default()),
            Decoded::Done {
                status: 0,
                result: Err(_),
                ..
            }
        ));
        assert!(!m.contains(&b'\n'));
    }
}

#[test]
fn line_frames_by_newline() {
    let c = Codec::new(&Workload::Line {
        size: 8,
        text: None,
    });
    let mut r = Vec::new();
    c.encode(1, &mut Draws::default(), &mut r);
    assert_eq!(r.len(), 8);
    assert_eq!(*r.last().unwrap(), b'\n');
    assert!(matches!(
        c.decode(&r[..7], 1, &mut Progress::default()),
        Decoded::Incomplete { .. }
    ));
    assert_eq!(c.decode(&r, 1, &mut Progress::default()), done(8));
    assert!(matches!(
        c.decode(b"short\n", 1, &mut Progress::default()),
        Decoded::Done {
            status: 0,
            consumed: 6,
            result: Err(ErrorKind::Protocol)
        }
    ));
}

/// `GET /` to host `h`.
fn get_codec() -> Codec {
    Codec::new(&Workload::Http {
        path: "/".into(),
        host: "h".into(),
        headers: vec![],
        method: "GET".into(),
        body: Vec::new(),
    })
}

#[test]
fn http_content_length_chunked_and_status() {
    let c = get_codec();
    let mut req = Vec::new();
    c.encode(0, &mut Draws::default(), &mut req);
    assert_eq!(req, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let http_done = |n: usize| Decoded::Done {
        status: 200,
        consumed: n,
        result: Ok(()),
    };
    assert_eq!(
        c.decode(ok, 0, &mut Progress::default()),
        http_done(ok.len())
    );
    assert!(matches!(
        c.decode(&ok[..ok.len() - 1], 0, &mut Progress::default()),
        Decoded::Incomplete { .. }
    ));
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nNEXT";
    assert_eq!(
        c.decode(chunked, 0, &mut Progress::default()),
        http_done(chunked.len() - 4)
    );
    assert!(matches!(
        c.decode(&chunked[..chunked.len() - 6], 0, &mut Progress::default()),
        Decoded::Incomplete { .. }
    ));
    let nf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        c.decode(nf, 0, &mut Progress::default()),
        Decoded::Done {
            status: 404,
            consumed: nf.len(),
            result: Err(ErrorKind::Status)
        }
    );
    assert_eq!(
        c.decode(b"garbage\r\n\r\n", 0, &mut Progress::default()),
        Decoded::Fatal
    );
    let post = Codec::new(&Workload::Http {
        path: "/p".into(),
        host: "h".into(),
        headers: vec![],
        method: "POST".into(),
        body: b"{}".to_vec(),
    });
    let mut req = Vec::new();
    post.encode(0, &mut Draws::default(), &mut req);
    assert_eq!(
        req,
        b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"
    );
}

#[test]
fn resp_encodes_commands_in_turn_and_parses_replies() {
    let c = Codec::new(&Workload::Resp {
        commands: vec![
            vec!["SET".into(), "k".into(), "v".into()],
            vec!["GET".into(), "k".into()],
        ],
    });
    let mut r = Vec::new();
    c.encode(0, &mut Draws::default(), &mut r);
    assert_eq!(r, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    r.clear();
    c.encode(1, &mut Draws::default(), &mut r);
    assert_eq!(r, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    assert_eq!(c.decode(b"+OK\r\n", 0, &mut Progress::default()), done(5));
    assert_eq!(
        c.decode(b"$1\r\nv\r\n", 0, &mut Progress::default()),
        done(7)
    );
    assert_eq!(c.decode(b"$-1\r\n", 0, &mut Progress::default()), done(5));
    assert!(matches!(
        c.decode(b"$3\r\nab", 0, &mut Progress::default()),
        Decoded::Incomplete { .. }
    ));
    assert_eq!(
        c.decode(b"*2\r\n:1\r\n$1\r\nx\r\n", 0, &mut Progress::default()),
        done(15)
    );
    assert!(matches!(
        c.decode(b"-ERR no\r\n", 0, &mut Progress::default()),
        Decoded::Done {
            status: 0,
            result: Err(ErrorKind::Status),
            ..
        }
    ));
    assert_eq!(
        c.decode(b"?what\r\n", 0, &mut Progress::default()),
        Decoded::Fatal
    );
}

#[test]
fn custom_delimiter_and_length() {
    let c = Codec::new(&Workload::Custom {
        payload: b"hi".to_vec(),
        response: ResponseFrame::Delimiter(b"\r\n".to_vec()),
    });
    assert_eq!(
        c.decode(b"abc\r\nxyz", 0, &mut Progress::default()),
        done(5)
    );
    assert!(matches!(
        c.decode(b"abc\r", 0, &mut Progress::default()),
        Decoded::Incomplete { .. }
    ));
    let c = Codec::new(&Workload::Custom {
        payload: b"hi".to_vec(),
        response: ResponseFrame::Length(3),
    });
    assert!(matches!(
        c.decode(b"ab", 0, &mut Progress::default()),
        Decoded::Incomplete { .. }
    ));
    assert_eq!(c.decode(b"abcd", 0, &mut Progress::default()), done(3));
}

#[test]
fn http_limits_and_hostile_numbers() {
    let c = get_codec();
    // A head that never ends: waited for up to 64 KiB, then malformed.
    let mut head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    head.resize(64 * 1024, b'a');
    assert!(matches!(
        c.decode(&head, 0, &mut Progress::default()),
        Decoded::Incomplete { .. }
    ));
    head.push(b'a');
    assert_eq!(c.decode(&head, 0, &mut Progress::default()), Decoded::Fatal);
    // Lengths that overflow, or past the response cap.
    for cl in ["18446744073709551616", "-1", "1e3", "67108865"] {
        let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(
            c.decode(r.as_bytes(), 0, &mut Progress::default()),
            Decoded::Fatal,
            "{cl}"
        );
    }
    for size in ["10000000000000000", "4000001", "zz", ""] {
        let r = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\n");
        assert_eq!(
            c.decode(r.as_bytes(), 0, &mut Progress::default()),
            Decoded::Fatal,
            "{size:?}"
        );
    }
    // A large chunk is waited for whole: the next look is when it can be there.
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut r = head.to_vec();
    r.extend_from_slice(b"100000\r\nabc");
    match c.decode(&r, 0, &mut Progress::default()) {
        Decoded::Incomplete { need, .. } => {
            assert_eq!(need, head.len() + 8 + 0x100000 + 2)
        }
        other => panic!("{other:?}"),
    }
}

/// Feeds `wire` one byte at a time as the connection does (decoding only
/// once `need` bytes are there, passing `searched` back) and returns what
/// the first complete decode said.
fn byte_by_byte(c: &Codec, wire: &[u8]) -> Decoded {
    let (mut need, mut progress) = (0, Progress::default());
    for n in 1..=wire.len() {
        if n < need {
            continue;
        }
        match c.decode(&wire[..n], 0, &mut progress) {
            Decoded::Incomplete { need: nd } => {
                assert!(nd > n, "progress is always asked for");
                need = nd;
            }
            other => return other,
        }
    }
    panic!("never complete");
}

#[test]
fn http_responses_decode_the_same_byte_by_byte() {
    let c = get_codec();
    let responses: [&[u8]; 3] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\nNEXT",
        b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nnoNEXT",
    ];
    for wire in responses {
        let whole = c.decode(wire, 0, &mut Progress::default());
        assert!(matches!(whole, Decoded::Done { .. }), "{whole:?}");
        assert_eq!(byte_by_byte(&c, wire), whole);
    }
    // A chunk not followed by CRLF, or a bad size after good chunks, is
    // found however the bytes arrive (the scan resumes past the good ones).
    let bad: [&[u8]; 2] = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\nhelloXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
    ];
    for wire in bad {
        assert_eq!(c.decode(wire, 0, &mut Progress::default()), Decoded::Fatal);
        assert_eq!(byte_by_byte(&c, wire), Decoded::Fatal);
    }
}

#[test]
fn the_longest_request_is_known_for_every_workload() {
    let workloads = [
        Workload::Echo { size: 300 },
        Workload::Line {
            size: 40,
            text: None,
        },
        // RESP cycles through commands of different lengths: the longest is
        // not the first.
        Workload::Resp {
            commands: vec![
                vec!["PING".into()],
                vec!["SET".into(), "k".into(), "v".repeat(100)],
            ],
        },
    ];
    for w in workloads {
        let c = Codec::new(&w);
        let longest = (0..8)
            .map(|seq| {
                let mut out = Vec::new();
                c.encode(seq, &mut Draws::default(), &mut out);
                out.len()
            })
            .max()
            .unwrap();
        assert_eq!(c.max_request_len(), longest, "{w:?}");
    }
}

/// A chunked body of `n` one-byte chunks, fed in 4 KiB reads as a
/// connection would: bytes looked at per wire byte.
fn scan_cost(c: &Codec, n: usize) -> f64 {
    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..n {
        wire.extend_from_slice(b"1\r\nx\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    super::SCANNED.with(|s| s.set(0));
    let (mut need, mut progress, mut have) = (0, Progress::default(), 0);
    loop {
        have = (have + 4096).min(wire.len());
        if have < need {
            continue;
        }
        match c.decode(&wire[..have], 0, &mut progress) {
            Decoded::Incomplete { need: nd } => {
                need = nd;
            }
            Decoded::Done { consumed, .. } => {
                assert_eq!(consumed, wire.len());
                break;
            }
            Decoded::Fatal | Decoded::Skip { .. } => panic!("no response at {have}"),
        }
    }
    super::SCANNED.with(|s| s.get()) as f64 / wire.len() as f64
}

#[test]
fn one_byte_chunks_cost_linear_time_from_1_kb_to_4_mb() {
    let c = get_codec();
    for n in [1 << 10, 1 << 16, 1 << 20, 4 << 20] {
        let per_byte = scan_cost(&c, n);
        assert!(
            per_byte < 3.0,
            "{n} chunks: {per_byte:.1} bytes looked at per byte"
        );
    }
}

#[test]
fn websocket_requests_are_masked_frames_and_echoes_are_checked() {
    let c = Codec::new(&Workload::WebSocket {
        path: "/ws".into(),
        host: "h:1".into(),
        size: 200,
    });
    let pre = String::from_utf8(c.preamble().unwrap().to_vec()).unwrap();
    assert!(pre.starts_with("GET /ws HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\n"));
    let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";
    assert_eq!(c.preamble_done(&answer[..20]), Ok(None));
    assert_eq!(c.preamble_done(answer), Ok(Some(answer.len())));
    assert_eq!(
        c.preamble_done(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"),
        Err(ErrorKind::Status)
    );
    // The request: a masked binary frame whose payload unmasks to message 3.
    let mut req = Vec::new();
    c.encode(3, &mut Draws::default(), &mut req);
    let h = FrameHead::parse(&req).unwrap();
    assert_eq!((h.fin, h.opcode, h.len), (true, opcode::BINARY, 200));
    let mut payload = req[h.header_len..].to_vec();
    frame::apply_mask(&mut payload, h.mask.unwrap(), 0);
    assert_eq!(payload, c.message(3, 200));
    // The echo (unmasked), preceded by a ping that answers nothing.
    let mut wire = Vec::new();
    frame::encode_head(true, opcode::PING, 2, None, &mut wire);
    wire.extend_from_slice(b"hi");
    let ping_len = wire.len();
    frame::encode_head(true, opcode::BINARY, 200, None, &mut wire);
    wire.extend_from_slice(&payload);
    assert_eq!(
        c.decode(&wire, 3, &mut Progress::default()),
        Decoded::Skip { consumed: ping_len }
    );
    let echo = &wire[ping_len..];
    for cut in 0..echo.len() {
        assert!(matches!(
            c.decode(&echo[..cut], 3, &mut Progress::default()),
            Decoded::Incomplete { .. }
        ));
    }
    assert_eq!(
        c.decode(echo, 3, &mut Progress::default()),
        done(echo.len())
    );
    assert!(matches!(
        c.decode(echo, 4, &mut Progress::default()),
        Decoded::Done {
            result: Err(ErrorKind::Protocol),
            ..
        }
    ));
    // A masked frame from a server, or a close, ends the connection.
    let mut masked = Vec::new();
    frame::encode_head(true, opcode::BINARY, 0, Some([1; 4]), &mut masked);
    assert_eq!(
        c.decode(&masked, 3, &mut Progress::default()),
        Decoded::Fatal
    );
    assert_eq!(
        c.decode(&[0x88, 0], 3, &mut Progress::default()),
        Decoded::Fatal
    );
}

#[test]
fn templated_http_requests_vary_and_carry_their_own_content_length() {
    let files = |_: &str| -> Result<Vec<u8>, String> { Ok(b"sku,qty\na1,2\nb22,10\n".to_vec()) };
    let vars =
        crate::template::Vars::parse(&["item=csv:items.csv".into(), "n=seq:5".into()], &files)
            .unwrap();
    let c = Codec::with_vars(
        &Workload::Http {
            path: "/orders/{{n}}".into(),
            host: "shop".into(),
            headers: vec![("X-Sku".into(), "{{item.sku}}".into())],
            method: "POST".into(),
            body: br#"{"sku":"{{item.sku}}","qty":{{item.qty}}}"#.to_vec(),
        },
        std::sync::Arc::new(vars),
    )
    .unwrap();
    let mut draws = c.draws(1);
    let mut req = |seq| {
        let mut r = Vec::new();
        c.encode(seq, &mut draws, &mut r);
        String::from_utf8(r).unwrap()
    };
    assert_eq!(
        req(0),
        "POST /orders/5 HTTP/1.1\r\nHost: shop\r\nX-Sku: a1\r\nContent-Length: 20\r\n\r\n{\"sku\":\"a1\",\"qty\":2}"
    );
    let second = req(1);
    assert!(
        second.starts_with("POST /orders/6 HTTP/1.1\r\n"),
        "{second}"
    );
    assert!(
        second.ends_with("Content-Length: 22\r\n\r\n{\"sku\":\"b22\",\"qty\":10}"),
        "{second}"
    );
    assert!(c.max_request_len() >= second.len());
    // An unknown variable is refused when the run is configured.
    let refused = Codec::with_vars(
        &Workload::Http {
            path: "/{{nope}}".into(),
            host: "h".into(),
            headers: vec![],
            method: "GET".into(),
            body: vec![],
        },
        std::sync::Arc::new(crate::template::Vars::parse(&["x=seq".into()], &files).unwrap()),
    );
    assert!(refused.err().unwrap().contains("no variable"));
}

#[test]
fn templated_resp_arguments_are_length_prefixed_as_drawn() {
    let vars = crate::template::Vars::parse(&["k=int:7..7".into(), "v=str:5".into()], &|_| {
        Err("no files".into())
    })
    .unwrap();
    let c = Codec::with_vars(
        &Workload::Resp {
            commands: vec![vec!["SET".into(), "key:{{k}}".into(), "{{v}}".into()]],
        },
        std::sync::Arc::new(vars),
    )
    .unwrap();
    let mut r = Vec::new();
    c.encode(0, &mut c.draws(3), &mut r);
    let text = String::from_utf8(r).unwrap();
    assert!(
        text.starts_with("*3\r\n$3\r\nSET\r\n$5\r\nkey:7\r\n$5\r\n"),
        "{text}"
    );
    assert_eq!(
        text.len(),
        "*3\r\n$3\r\nSET\r\n$5\r\nkey:7\r\n$5\r\n".len() + 5 + 2
    );
}

#[test]
fn messages_of_drawn_sizes_are_echoed_and_checked_at_their_own_length() {
    let sizes = std::sync::Arc::new(crate::template::Sizes::parse("1..3000:zipf:1.1", 1).unwrap());
    for w in [
        Workload::Echo { size: 64 },
        Workload::Line {
            size: 64,
            text: None,
        },
        Workload::WebSocket {
            path: "/".into(),
            host: "h".into(),
            size: 64,
        },
    ] {
        let c = Codec::new(&w).with_sizes(Some(sizes.clone()));
        let mut lens = std::collections::BTreeSet::new();
        for seq in 0..500u64 {
            let mut req = Vec::new();
            c.encode(seq, &mut Draws::default(), &mut req);
            lens.insert(req.len());
            assert!(req.len() <= c.max_request_len(), "{}", req.len());
            // The echo of the message is the answer; one byte off is not.
            let reply = match &w {
                Workload::WebSocket { .. } => {
                    let head = FrameHead::parse(&req).unwrap();
                    let mut payload = req[head.header_len..].to_vec();
                    frame::apply_mask(&mut payload, head.mask.unwrap(), 0);
                    let mut r = Vec::new();
                    frame::encode_head(true, opcode::BINARY, payload.len() as u64, None, &mut r);
                    r.extend_from_slice(&payload);
                    r
                }
                _ => req.clone(),
            };
            let d = c.decode(&reply, seq, &mut Progress::default());
            assert!(
                matches!(d, Decoded::Done { result: Ok(()), .. }),
                "{w:?} seq {seq}: {d:?}"
            );
            let mut wrong = reply.clone();
            let last = wrong.len() - 1;
            wrong[last] ^= 1;
            let d = c.decode(&wrong, seq, &mut Progress::default());
            assert!(
                !matches!(d, Decoded::Done { result: Ok(()), .. }),
                "{w:?} seq {seq}"
            );
        }
        assert!(lens.len() > 50, "sizes vary: {}", lens.len());
    }
    let s = sizes.summary();
    assert!(s.min >= 1 && s.max <= 3000 && s.p50 < s.p99, "{s:?}");
    assert!(crate::template::Sizes::parse("0..10", 1).is_err());
    assert!(crate::template::Sizes::parse("10", 1).is_err());
}

#[test]
fn a_line_template_renders_each_line_and_takes_any_one_line_reply() {
    let json = br#"[{"word": "two\nlines"}]"#.to_vec();
    let vars = crate::template::Vars::parse(
        &["n=seq:7".to_string(), "w=json:words.json".to_string()],
        &move |_| Ok(json.clone()),
    )
    .unwrap();
    let w = Workload::Line {
        size: 64,
        text: Some("GET key-{{n}} {{w.word}}".into()),
    };
    let c = Codec::with_vars(&w, std::sync::Arc::new(vars)).unwrap();
    let mut draws = c.draws(3);
    let mut out = Vec::new();
    c.encode(0, &mut draws, &mut out);
    c.encode(1, &mut draws, &mut out);
    // The value's newline went out as a space: one line per request.
    assert_eq!(out, b"GET key-7 two lines\nGET key-8 two lines\n");
    assert!(c.max_request_len() >= out.len() / 2);
    let reply = b"OK stored\n";
    for split in 0..reply.len() {
        let mut p = Progress::default();
        if split > 0 {
            assert!(matches!(
                c.decode(&reply[..split], 0, &mut p),
                Decoded::Incomplete { .. }
            ));
        }
        assert_eq!(c.decode(reply, 0, &mut p), done(reply.len()));
    }
}

#[test]
fn a_fixed_line_is_rendered_once() {
    let w = Workload::Line {
        size: 64,
        text: Some("PING".into()),
    };
    let c = Codec::new(&w);
    assert!(c.templated.is_none(), "rendered once");
    let mut out = Vec::new();
    c.encode(9, &mut Draws::default(), &mut out);
    assert_eq!(out, b"PING\n");
}
