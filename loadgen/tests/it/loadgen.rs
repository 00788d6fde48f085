//! The load generator against real servers on 127.0.0.1: the framework's
//! echo example (as a separate process) and small servers built here.

use shardloop::{Conn, Protocol};
use shardloop_loadgen::{run, Config, Mode, Workload};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{echo_example, loadgen_bin, server};

fn short(addr: std::net::SocketAddr) -> Config {
    let mut c = Config::new(addr);
    c.threads = 2;
    c.connections = 8;
    c.duration = Duration::from_millis(1500);
    c
}

fn assert_counts_add_up(r: &shardloop_loadgen::Report) {
    assert_eq!(
        r.requests,
        r.responses_ok + r.errors.request_errors(),
        "sent = received + errors: {:?}",
        r
    );
}

#[test]
fn library_closed_loop_against_echo_example_counts_add_up() {
    let server = echo_example();
    let mut cfg = short(server.addr);
    cfg.mode = Mode::Closed { pipeline: 4 };
    cfg.workload = Workload::Echo { size: 100 };
    let r = run(&cfg, |_| {}).unwrap();
    assert!(r.responses_ok > 100, "{}", r.summary());
    assert_eq!(r.errors.total(), 0, "{}", r.summary());
    assert_counts_add_up(&r);
    assert_eq!(r.bytes_in, r.responses_ok * 100);
    assert!(r.latency_us.p50 > 0.0 && r.latency_us.p50 <= r.latency_us.p99);
    assert_eq!(r.latency_us.count, r.responses_ok);
}

/// Echoes, but corrupts one byte of every 50th chunk it receives.
struct Corrupting {
    n: u64,
}
impl Protocol for Corrupting {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.n += 1;
        if self.n.is_multiple_of(50) {
            let mut bad = data.to_vec();
            bad[0] ^= 0x20;
            conn.write(&bad);
        } else {
            conn.write(data);
        }
    }
}

#[test]
fn corrupted_bytes_count_as_protocol_errors_never_success() {
    let h = server(|| Corrupting { n: 0 });
    let mut cfg = short(h.tcp_addr(0));
    cfg.connections = 4;
    let r = run(&cfg, |_| {}).unwrap();
    assert!(r.errors.protocol > 0, "{}", r.summary());
    assert!(r.responses_ok > r.errors.protocol);
    assert_counts_add_up(&r);
    h.shutdown();
}

/// Echoes; once, about a second after `armed_at`, stalls the whole shard for 200 ms.
struct Staller {
    armed_at: Instant,
    stalled: Arc<AtomicBool>,
}
impl Protocol for Staller {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        if self.armed_at.elapsed() > Duration::from_secs(1)
            && !self.stalled.swap(true, Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        conn.write(data);
    }
}

#[test]
fn open_loop_shows_a_stall_in_corrected_but_not_uncorrected_p99() {
    let armed_at = Instant::now();
    let stalled = Arc::new(AtomicBool::new(false));
    let s2 = stalled.clone();
    let h = server(move || Staller {
        armed_at,
        stalled: s2.clone(),
    });
    let mut cfg = short(h.tcp_addr(0));
    cfg.connections = 4;
    cfg.threads = 1;
    cfg.duration = Duration::from_secs(3);
    cfg.mode = Mode::Open {
        rate: 1000.0,
        max_in_flight: 1,
    };
    let r = run(&cfg, |_| {}).unwrap();
    assert!(stalled.load(Ordering::Relaxed));
    assert_counts_add_up(&r);
    // About 200 of 3000 requests were due during the stall: 6.7% > 1%.
    assert!(
        r.latency_us.p99 >= 100_000.0,
        "corrected p99 must show the stall: {}",
        r.summary()
    );
    // Only the 4 requests in flight saw it as service time: 0.13% < 1%.
    assert!(
        r.uncorrected_latency_us.p99 < 50_000.0,
        "uncorrected p99 must not: {}",
        r.summary()
    );
    assert!(
        r.uncorrected_latency_us.max >= 150_000.0,
        "but its max does"
    );
    h.shutdown();
}

/// Minimal HTTP/1.1 responder: alternates Content-Length and chunked bodies;
/// `/missing` gets 404.
struct Http {
    buf: Vec<u8>,
    n: u64,
    served: Arc<AtomicU64>,
}
impl Protocol for Http {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = self.buf.drain(..end + 4).collect();
            let missing = head.starts_with(b"GET /missing ");
            // A POST carries "ping" as its body: answered 201 with it.
            if head.starts_with(b"POST ") {
                let ok = std::str::from_utf8(&head)
                    .unwrap()
                    .contains("Content-Length: 4\r\n");
                if !ok {
                    conn.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                    continue;
                }
                if self.buf.len() < 4 {
                    // The body is still on its way (input arrives in any
                    // pieces): the request waits for it, whole.
                    let mut whole = head;
                    whole.append(&mut self.buf);
                    self.buf = whole;
                    break;
                }
                let body: Vec<u8> = self.buf.drain(..4).collect();
                let reply = if body == b"ping" {
                    "201 Created"
                } else {
                    "422 Unprocessable"
                };
                conn.write(format!("HTTP/1.1 {reply}\r\nContent-Length: 0\r\n\r\n").as_bytes());
                self.served.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.n += 1;
            self.served.fetch_add(1, Ordering::Relaxed);
            if missing {
                conn.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
            } else if self.n.is_multiple_of(2) {
                conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n7\r\n, world\r\n0\r\n\r\n");
            } else {
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello, world");
            }
        }
    }
}

#[test]
fn http_workload_parses_content_length_and_chunked_and_counts_statuses() {
    let served = Arc::new(AtomicU64::new(0));
    let s2 = served.clone();
    let h = server(move || Http {
        buf: Vec::new(),
        n: 0,
        served: s2.clone(),
    });
    let addr = h.tcp_addr(0);
    let mut cfg = short(addr);
    cfg.mode = Mode::Closed { pipeline: 8 };
    cfg.workload = Workload::Http {
        path: "/".into(),
        host: addr.to_string(),
        headers: vec![("X-Test".into(), "1".into())],
        method: "GET".into(),
        body: Vec::new(),
    };
    let r = run(&cfg, |_| {}).unwrap();
    assert!(r.responses_ok > 100, "{}", r.summary());
    assert_eq!(r.errors.total(), 0, "{}", r.summary());
    assert_counts_add_up(&r);

    cfg.workload = Workload::Http {
        path: "/missing".into(),
        host: addr.to_string(),
        headers: vec![],
        method: "GET".into(),
        body: Vec::new(),
    };
    let r = run(&cfg, |_| {}).unwrap();
    assert_eq!(r.responses_ok, 0);
    assert!(r.errors.status > 0);
    assert_counts_add_up(&r);
    assert_eq!(r.http_status.keys().copied().collect::<Vec<_>>(), vec![404]);
    assert_eq!(r.http_status[&404], r.errors.status);

    // Method and body: a POST with a body, every answer 201 and counted.
    cfg.workload = Workload::Http {
        path: "/items".into(),
        host: addr.to_string(),
        headers: vec![],
        method: "POST".into(),
        body: b"ping".to_vec(),
    };
    let r = run(&cfg, |_| {}).unwrap();
    assert!(r.responses_ok > 0, "{}", r.summary());
    assert_eq!(
        r.http_status.keys().copied().collect::<Vec<_>>(),
        vec![201],
        "{}",
        r.summary()
    );
    assert_eq!(r.http_status[&201], r.responses_ok);
    assert!(
        r.summary().contains("HTTP status: 201 ×"),
        "{}",
        r.summary()
    );
    h.shutdown();
}

#[test]
fn binary_writes_json_and_hlog_that_round_trip_through_merge() {
    let server = echo_example();
    let bin = loadgen_bin();
    let dir = std::env::temp_dir().join(format!("sl-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two load generators at once (as on two machines), then merged.
    let children: Vec<std::process::Child> = (0..2)
        .map(|i| {
            Command::new(&bin)
                .arg(server.addr.to_string())
                .args(["-t", "1", "-c", "4", "-d", "2s", "-R", "500", "--latency"])
                .arg("--json")
                .arg(dir.join(format!("run{i}.json")))
                .arg("--hlog")
                .arg(dir.join(format!("run{i}.hlog")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("Requests/sec:"), "{stdout}");
        assert!(stdout.contains("Detailed Percentile spectrum:"), "{stdout}");
    }
    let mut counts = Vec::new();
    for i in 0..2 {
        let json = dir.join(format!("run{i}.json"));
        let hlog = dir.join(format!("run{i}.hlog"));
        let r: shardloop_loadgen::Report =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_counts_add_up(&r);
        let text = std::fs::read_to_string(&hlog).unwrap();
        assert!(text.contains("#[StartTime:"));
        let intervals = shardloop_loadgen::hlog::read_log(text.as_bytes()).unwrap();
        let in_log: u64 = intervals
            .iter()
            .filter(|i| i.tag.is_none())
            .map(|i| i.histogram.len())
            .sum();
        assert_eq!(in_log, r.latency_us.count, "the log holds every sample");
        counts.push(r.latency_us.count);
    }
    let merged_log = dir.join("merged.hlog");
    let out = Command::new(&bin)
        .arg("merge")
        .arg(dir.join("run0.hlog"))
        .arg(dir.join("run1.hlog"))
        .arg("--hlog")
        .arg(&merged_log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let total: u64 = counts.iter().sum();
    assert!(stdout.contains(&format!("({total} samples)")), "{stdout}");
    let merged = shardloop_loadgen::hlog::merge_files(&[merged_log]).unwrap();
    assert_eq!(merged.latency.len(), total);
    // JSON inputs merge too, with their counts.
    let m = shardloop_loadgen::hlog::merge_files(&[dir.join("run0.json"), dir.join("run1.json")])
        .unwrap();
    assert_eq!(m.latency.len(), total);
    assert!(m.requests >= total);
    // The merged log is on one grid: about one slot per second of the run,
    // each holding both generators' samples.
    let merged_log =
        shardloop_loadgen::hlog::read_log(&std::fs::read(dir.join("merged.hlog")).unwrap())
            .unwrap();
    let slots = merged_log.iter().filter(|i| i.tag.is_none()).count();
    assert!((2..=4).contains(&slots), "{slots} slots");
    // A run that did not overlap them is refused.
    let later = dir.join("later.hlog");
    let out = Command::new(&bin)
        .arg(server.addr.to_string())
        .args(["-t", "1", "-c", "2", "-d", "1s"])
        .arg("--hlog")
        .arg(&later)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(&bin)
        .arg("merge")
        .arg(dir.join("run0.hlog"))
        .arg(&later)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not overlap in time"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_fails_with_one_line_errors() {
    let bin = loadgen_bin();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![port.to_string(), "-d".into(), "1s".into()],
            "cannot connect",
        ),
        (
            vec!["127.0.0.1:1".into(), "--rate=0".into()],
            "needs some rate above zero",
        ),
        (
            vec!["127.0.0.1:1".into(), "-d".into(), "soon".into()],
            "invalid value",
        ),
        (vec!["no-such-host.invalid:80".into()], "cannot resolve"),
        (vec!["ftp://127.0.0.1:21/".into()], "unsupported URL scheme"),
        (
            vec!["127.0.0.1:1".into(), "-w".into(), "custom".into()],
            "needs --payload",
        ),
        (
            vec!["127.0.0.1:1".into(), "-R".into(), "1e-20".into()],
            "is too low",
        ),
        (
            vec!["127.0.0.1:1".into(), "-s".into(), "100000000000".into()],
            "must be at most",
        ),
        (
            vec![
                "127.0.0.1:1".into(),
                "-t".into(),
                "1000".into(),
                "-c".into(),
                "1000".into(),
            ],
            "threads (1000) must be at most",
        ),
        (
            vec!["127.0.0.1:1".into(), "-c".into(), "1000000".into()],
            "open files",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(&bin).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Answers every request with garbage: no request can succeed.
struct Garbage;
impl Protocol for Garbage {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(&vec![b'!'; data.len()]);
    }
}

#[test]
fn exits_non_zero_when_no_request_succeeded() {
    let h = server(|| Garbage);
    let bin = loadgen_bin();
    let out = Command::new(&bin)
        .args([&h.tcp_addr(0).to_string(), "-d", "1s", "-c", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no request succeeded"), "{err}");
    h.shutdown();
}

#[test]
fn a_run_shorter_than_an_interval_measures_cpu_over_its_own_time() {
    // The CPU window once began at the first interval boundary, which for
    // a run shorter than an interval was its end: usually no tick at all
    // (0%), now and then one over almost no time (several hundred percent).
    // A closed loop against a local echo server keeps its thread busy.
    let server = echo_example();
    let mut cfg = short(server.addr);
    cfg.threads = 1;
    cfg.duration = Duration::from_millis(400);
    cfg.warmup = Duration::from_millis(100);
    for _ in 0..3 {
        let r = run(&cfg, |_| {}).unwrap();
        assert!(!r.loadgen_cpu_percent.is_empty());
        for (name, pct) in &r.loadgen_cpu_percent {
            assert!(
                *pct > 10.0 && *pct <= 110.0,
                "{name}: {pct}% of one core: {}",
                r.summary()
            );
        }
    }
}

/// An HTTP server with a WebSocket echo at `/ws`, on 2 shards.
fn websocket_echo() -> shardloop::Handle {
    use shardloop::http::ws::{Message, WebSocket, WsConn, WsOptions};
    use shardloop::http::{HttpServer, Router};
    struct Echo;
    impl WebSocket for Echo {
        fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: Message) {
            ws.send(msg);
        }
    }
    let app = Router::new().websocket("/ws", WsOptions::default(), |_| Echo);
    shardloop::Server::builder()
        .shards(2)
        .listen("127.0.0.1:0", HttpServer::new(app).factory())
        .build()
        .unwrap()
        .start()
        .unwrap()
}

#[test]
fn websocket_messages_are_echoed_checked_and_counted() {
    let h = websocket_echo();
    let addr = h.tcp_addr(0);
    let mut cfg = short(addr);
    cfg.mode = Mode::Closed { pipeline: 4 };
    cfg.workload = Workload::WebSocket {
        path: "/ws".into(),
        host: addr.to_string(),
        size: 300,
    };
    let r = run(&cfg, |_| {}).unwrap();
    assert!(r.responses_ok > 100, "{}", r.summary());
    assert_eq!(r.errors.total(), 0, "{}", r.summary());
    assert_counts_add_up(&r);
    // Each echo is a 4-byte header (300 needs the 16-bit length) and the bytes.
    assert_eq!(r.bytes_in, r.responses_ok * 304);
    // A path that is not a WebSocket: the handshake is refused (404),
    // counted, and nothing is sent.
    cfg.workload = Workload::WebSocket {
        path: "/nope".into(),
        host: addr.to_string(),
        size: 10,
    };
    cfg.duration = Duration::from_millis(300);
    let r = run(&cfg, |_| {}).unwrap();
    assert_eq!(r.responses_ok, 0, "{}", r.summary());
    assert!(r.errors.total() > 0, "{}", r.summary());
    // The command line: a ws:// target selects the workload.
    let out = Command::new(loadgen_bin())
        .arg(format!("ws://{addr}/ws"))
        .args(["-c", "4", "-d", "1s", "-s", "100"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("websocket workload"), "{text}");
}

#[test]
fn messages_of_drawn_sizes_over_websocket_and_echo() {
    let h = websocket_echo();
    let addr = h.tcp_addr(0);
    let mut cfg = short(addr);
    cfg.mode = Mode::Closed { pipeline: 4 };
    cfg.workload = Workload::WebSocket {
        path: "/ws".into(),
        host: addr.to_string(),
        size: 64,
    };
    let sizes = shardloop_loadgen::template::Sizes::parse("16..8000:zipf:1.2", 1).unwrap();
    let summary = sizes.summary();
    cfg.sizes = Some(std::sync::Arc::new(sizes));
    let r = run(&cfg, |_| {}).unwrap();
    assert!(r.responses_ok > 100, "{}", r.summary());
    assert_eq!(
        r.errors.total(),
        0,
        "every echo checked at its own size: {}",
        r.summary()
    );
    assert_eq!(r.message_sizes.as_ref(), Some(&summary));
    // The bytes sent follow the distribution: their mean per message is
    // near the table's (headers of 6 to 8 bytes besides).
    let mean = r.bytes_out as f64 / r.requests as f64;
    assert!(
        mean > summary.mean * 0.7 && mean < summary.mean * 1.3 + 8.0,
        "{mean} vs {summary:?}"
    );
    assert!(
        r.summary().contains("Message sizes (16..8000:zipf:1.2)"),
        "{}",
        r.summary()
    );
    // The command line, against an echo server, and a size a line cannot have.
    let echo = crate::common::echo_example();
    let addr = echo.addr.to_string();
    let (code, text) = crate::common::load([&addr, "-c", "2", "-d", "300ms", "--sizes", "1..4096"]);
    assert!(code == 0, "{text}");
    let (code, text) =
        crate::common::load([&addr, "-w", "line", "--sizes", "1..10", "-d", "300ms"]);
    assert!(code != 0);
    assert!(text.contains("at least 2"), "{text}");
}
