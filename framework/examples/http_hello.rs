//! HTTP/1.1 plaintext server: answers every request with "Hello, World!".
//! Keep-alive and pipelining work (requests are answered in order, each
//! batch of pipelined requests with one write); `Connection: close` and
//! HTTP/1.0 without keep-alive close after the response. Malformed requests
//! get 400 and are closed; oversized headers get 431; a malformed, overflowing
//! or conflicting Content-Length gets 400, a body over `--max-body` 413.
//! Bodies are discarded as they stream past, never buffered. A started
//! request must arrive complete within `--request-timeout` (slowloris), an
//! idle keep-alive connection is closed after `--keepalive-timeout`.
//!
//! ```text
//! cargo run --release -p shardloop --example http_hello -- --shards 2 --port 8080
//! curl -v http://127.0.0.1:8080/
//! wrk -t1 -c64 -d10s http://127.0.0.1:8080/
//! ```

mod common;

use clap::Parser;
use shardloop::{Conn, Protocol, Server};
use std::io::Write;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "shardloop HTTP/1.1 hello-world server")]
struct Args {
    /// Number of shards (default: number of cores).
    #[arg(short, long)]
    shards: Option<usize>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(short, long, default_value_t = 8080)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Pin shards to these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Do not pin shards to cores.
    #[arg(long)]
    no_pin: bool,
    /// Largest request body accepted, in bytes (read and discarded; larger: 413).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_body: u64,
    /// Seconds a started request may take to arrive complete (0: no limit).
    #[arg(long, default_value_t = 10)]
    request_timeout: u64,
    /// Seconds an idle keep-alive connection is kept (0: forever).
    #[arg(long, default_value_t = 60)]
    keepalive_timeout: u64,
    #[command(flatten)]
    serve: common::ServeArgs,
}

const BODY: &[u8] = b"Hello, World!";
const HELLO_KEEP_ALIVE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: shardloop\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
const MAX_HEAD: usize = 16 * 1024;

/// Limits a peer cannot push past.
#[derive(Clone, Copy)]
struct Limits {
    /// Largest request body accepted (it is read and discarded, never buffered).
    max_body: u64,
    /// Time a started request may take to arrive complete.
    request_timeout: Option<Duration>,
}

struct Hello {
    buf: Vec<u8>,
    out: Vec<u8>,
    /// Body bytes of the current request still to discard.
    body_left: u64,
    /// The request deadline is armed (a request is partly received).
    deadline_armed: bool,
    /// The closing request was read to its last byte with nothing behind it.
    clean_end: bool,
    limits: Limits,
}

/// How a request's head ends the exchange.
enum Head {
    /// Answer, then read `body` bytes and discard them.
    Ok { close: bool, body: u64 },
    /// Answer with this error and close.
    Reject(&'static str, &'static [u8]),
}

/// Reads the framing headers of a parsed request, with checked numbers:
/// a Content-Length is digits only and fits in u64, several must agree,
/// and a Transfer-Encoding is not supported.
fn inspect(req: &httparse::Request<'_, '_>, max_body: u64) -> Head {
    let mut close = req.version.unwrap_or(1) == 0;
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_content_length(h.value) else {
                return Head::Reject("400 Bad Request", b"bad content-length");
            };
            if length.is_some_and(|l| l != n) {
                return Head::Reject("400 Bad Request", b"conflicting content-length");
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Head::Reject("501 Not Implemented", b"transfer-encoding not supported");
        }
    }
    if !req.path.is_some_and(|p| p.starts_with('/')) {
        return Head::Reject("400 Bad Request", b"bad request target");
    }
    let body = length.unwrap_or(0);
    if body > max_body {
        return Head::Reject("413 Content Too Large", b"request body too large");
    }
    Head::Ok { close, body }
}

/// `1*DIGIT` (surrounding blanks allowed), as a u64; `None` on a sign,
/// another character, or overflow.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

impl Hello {
    fn new(limits: Limits) -> Self {
        Hello {
            buf: Vec::new(),
            out: Vec::new(),
            body_left: 0,
            deadline_armed: false,
            clean_end: false,
            limits,
        }
    }

    fn respond(&mut self, status: &str, body: &[u8], close: bool) {
        if status == "200 OK" && !close {
            // The hot path: the keep-alive answer is always the same bytes.
            self.out.extend_from_slice(HELLO_KEEP_ALIVE);
            return;
        }
        let _ = write!(
            self.out,
            "HTTP/1.1 {status}\r\nServer: shardloop\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        self.out.extend_from_slice(body);
    }

    /// Answers every complete request at the front of `data` (discarding
    /// bodies as they pass); returns bytes consumed and whether to close.
    fn handle(&mut self, mut data: &[u8]) -> (usize, bool) {
        let total = data.len();
        loop {
            if self.body_left > 0 {
                let n = (data.len() as u64).min(self.body_left);
                self.body_left -= n;
                data = &data[n as usize..];
                if self.body_left > 0 {
                    return (total, false);
                }
            }
            if data.is_empty() {
                return (total, false);
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(data) {
                Ok(httparse::Status::Complete(n)) => match inspect(&req, self.limits.max_body) {
                    Head::Ok { close, body } => {
                        self.respond("200 OK", BODY, close);
                        if close {
                            // Nothing after it and no body: the client sends
                            // nothing more, so no lingering is needed.
                            self.clean_end = body == 0 && n == data.len();
                            return (total, true);
                        }
                        data = &data[n..];
                        self.body_left = body;
                    }
                    Head::Reject(status, why) => {
                        self.respond(status, why, true);
                        return (total, true);
                    }
                },
                Ok(httparse::Status::Partial) => {
                    if data.len() > MAX_HEAD {
                        self.respond(
                            "431 Request Header Fields Too Large",
                            b"header too large",
                            true,
                        );
                        return (total, true);
                    }
                    return (total - data.len(), false);
                }
                Err(_) => {
                    self.respond("400 Bad Request", b"malformed request", true);
                    return (total, true);
                }
            }
        }
    }
}

impl Protocol for Hello {
    type Message = ();

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let close = if self.buf.is_empty() {
            let (c, close) = self.handle(data);
            self.buf.extend_from_slice(&data[c..]);
            close
        } else {
            // Only a partial head is ever buffered (bodies are discarded as
            // they pass), so this copy is bounded by MAX_HEAD.
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let (c, close) = self.handle(&buf);
            self.buf = buf;
            self.buf.drain(..c);
            close
        };
        if !self.out.is_empty() {
            conn.write(&self.out);
            self.out.clear();
        }
        if close {
            self.buf.clear();
            if std::mem::take(&mut self.clean_end) {
                conn.close_without_linger();
            } else {
                conn.close();
            }
            return;
        }
        // A request in progress must complete in time, however slowly its
        // bytes trickle in; between requests only the idle timeout applies.
        let in_progress = !self.buf.is_empty() || self.body_left > 0;
        if in_progress != self.deadline_armed {
            self.deadline_armed = in_progress;
            conn.set_read_timeout(self.limits.request_timeout.filter(|_| in_progress));
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let limits = Limits {
        max_body: args.max_body,
        request_timeout: (args.request_timeout > 0)
            .then(|| Duration::from_secs(args.request_timeout)),
    };
    let settings = shardloop::Settings {
        idle_timeout: (args.keepalive_timeout > 0)
            .then(|| Duration::from_secs(args.keepalive_timeout)),
        ..shardloop::Settings::default()
    };
    let builder = Server::builder()
        .pinning(common::pinning(args.no_pin))
        .settings(settings)
        .listen(
            args.serve.listen((args.bind.as_str(), args.port))?,
            move |_shard| move |_peer| Hello::new(limits),
        );
    let handle = common::start(builder, args.shards, &args.cores, &args.serve)?;
    println!(
        "http_hello listening on http://{}/ with {} shards",
        handle.tcp_addr(0),
        handle.shards()
    );
    handle.wait();
    Ok(())
}
