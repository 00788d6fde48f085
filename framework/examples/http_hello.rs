//! HTTP/1.1 plaintext server: answers every request with "Hello, World!".
//! Keep-alive and pipelining work (requests are answered in order, each
//! batch of pipelined requests with one write); `Connection: close` and
//! HTTP/1.0 without keep-alive close after the response. Malformed requests
//! get 400 and are closed; oversized headers get 431.
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
}

const BODY: &[u8] = b"Hello, World!";
const HELLO_KEEP_ALIVE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: shardloop\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
const MAX_HEAD: usize = 16 * 1024;

struct Hello {
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Hello {
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

    /// Answers every complete request at the front of `data`; returns bytes
    /// consumed and whether to close afterwards.
    fn handle(&mut self, mut data: &[u8]) -> (usize, bool) {
        let total = data.len();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(data) {
                Ok(httparse::Status::Complete(n)) => {
                    let version = req.version.unwrap_or(1);
                    let mut close = version == 0;
                    let mut body_len = 0usize;
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("connection") {
                            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                            if v.contains("close") {
                                close = true;
                            } else if v.contains("keep-alive") {
                                close = false;
                            }
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            match std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                            {
                                Some(n) => body_len = n,
                                None => {
                                    self.respond("400 Bad Request", b"bad content-length", true);
                                    return (total, true);
                                }
                            }
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            self.respond(
                                "501 Not Implemented",
                                b"chunked requests not supported",
                                true,
                            );
                            return (total, true);
                        }
                    }
                    if data.len() < n + body_len {
                        // Wait for the body; a hello server ignores it.
                        return (total - data.len(), false);
                    }
                    let path_ok = req.path.is_some_and(|p| p.starts_with('/'));
                    if !path_ok {
                        self.respond("400 Bad Request", b"bad request target", true);
                        return (total, true);
                    }
                    self.respond("200 OK", BODY, close);
                    data = &data[n + body_len..];
                    if close {
                        return (total, true);
                    }
                }
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
        let (consumed, close) = if self.buf.is_empty() {
            let (c, close) = self.handle(data);
            self.buf.extend_from_slice(&data[c..]);
            (0, close)
        } else {
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let (c, close) = self.handle(&buf);
            self.buf = buf;
            (c, close)
        };
        self.buf.drain(..consumed);
        if !self.out.is_empty() {
            conn.write(&self.out);
            self.out.clear();
        }
        if close {
            self.buf.clear();
            conn.close();
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let builder =
        Server::builder()
            .pin(!args.no_pin)
            .listen((args.bind.as_str(), args.port), |_shard| {
                |_peer| Hello {
                    buf: Vec::new(),
                    out: Vec::new(),
                }
            });
    let handle = common::start(builder, args.shards, &args.cores)?;
    println!(
        "http_hello listening on http://{}/ with {} shards",
        handle.tcp_addr(0),
        handle.shards()
    );
    handle.wait();
    Ok(())
}
