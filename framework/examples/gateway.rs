//! HTTP gateway in front of a RESP key-value store (resp_kv, or Redis):
//! `GET /key/NAME` looks NAME up over a pooled per-shard backend connection
//! and answers 200 with the value, 404 if it is missing, 502 if the backend
//! is unreachable or answers nonsense, 504 if it does not answer in time.
//! Each request is an `async` task (shardloop's executor, `ClientStream`),
//! not a hand-written state machine; pipelined requests are answered in order.
//! A client that pipelines without reading costs at most 64 queued requests,
//! one read of input and one answer (measured: 2 MiB of RSS for 4 MB of
//! requests sent without reading); each shard opens at most
//! `--max-backend-conns` backend connections.
//!
//! ```text
//! cargo run --release -p shardloop --example resp_kv -- --port 6380 &
//! cargo run --release -p shardloop --example gateway -- --port 8081 --backend 127.0.0.1:6380
//! redis-cli -p 6380 SET greeting hello
//! curl http://127.0.0.1:8081/key/greeting
//! ```

mod common;

use clap::Parser;
use shardloop::client::ClientStream;
use shardloop::endpoint::Connect;
use shardloop::task::{timeout, ConnTask};
use shardloop::{Conn, Protocol, Server};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "shardloop HTTP gateway to a RESP key-value backend")]
struct Args {
    /// Number of shards (default: number of cores).
    #[arg(short, long)]
    shards: Option<usize>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(short, long, default_value_t = 8081)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// The RESP backend (resp_kv or Redis).
    #[arg(long)]
    backend: SocketAddr,
    /// Milliseconds the backend may take to connect and to answer (504 after).
    #[arg(long, default_value_t = 2000)]
    backend_timeout_ms: u64,
    /// Idle backend connections kept per shard.
    #[arg(long, default_value_t = 64)]
    pool: usize,
    /// Backend connections open at once per shard, idle or busy; requests
    /// beyond it wait for one (and get 504 if none frees in time).
    #[arg(long, default_value_t = 256)]
    max_backend_conns: usize,
    /// Largest value passed on, in bytes (larger ones get 502).
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    max_value: usize,
    /// Pin shards to these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    #[command(flatten)]
    serve: common::ServeArgs,
}

const MAX_HEAD: usize = 16 * 1024;
/// Requests a connection may have waiting before reading from it pauses:
/// a client pipelining without reading is slowed by TCP, not buffered for.
const MAX_QUEUED: usize = 64;
/// A value is read from the backend in pieces of at most this much, so a
/// length the backend claims is never allocated before its bytes arrive.
const VALUE_PIECE: usize = 1024 * 1024;

/// One shard's backend connections: the idle ones, and how many are open.
struct Pool {
    backend: SocketAddr,
    idle: RefCell<Vec<ClientStream>>,
    max_idle: usize,
    /// Open connections (idle or lent out), at most `max_open`.
    open: std::cell::Cell<usize>,
    max_open: usize,
    /// Requests waiting for a connection to free up.
    waiters: RefCell<VecDeque<std::task::Waker>>,
    limit: Duration,
    max_value: usize,
}

/// Why a lookup produced no value.
enum Failure {
    /// Unreachable, reset, or a reply that is not a bulk string.
    BadGateway,
    /// No answer within the limit.
    Timeout,
}

impl Pool {
    /// An idle connection, or a new one if fewer than `max_open` are open,
    /// or the first one to free up.
    async fn connection(&self) -> Result<ClientStream, Failure> {
        let got = timeout(
            self.limit,
            std::future::poll_fn(|cx| {
                while let Some(s) = self.idle.borrow_mut().pop() {
                    if !s.is_eof() {
                        return std::task::Poll::Ready(Some(s));
                    }
                    self.open.set(self.open.get() - 1);
                }
                if self.open.get() < self.max_open {
                    self.open.set(self.open.get() + 1);
                    return std::task::Poll::Ready(None);
                }
                self.waiters.borrow_mut().push_back(cx.waker().clone());
                std::task::Poll::Pending
            }),
        )
        .await;
        match got {
            Ok(Some(s)) => Ok(s),
            Ok(None) => self.connect().await.inspect_err(|_| self.release()),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// A connection was closed or dropped: one more may open.
    fn release(&self) {
        self.open.set(self.open.get() - 1);
        self.wake_waiters();
    }

    /// Wakes every waiter (each re-checks): a waker left by a request that
    /// timed out meanwhile must not swallow the wake-up.
    fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Gives a healthy connection back: kept idle, or closed.
    fn give_back(&self, s: ClientStream) {
        if self.idle.borrow().len() < self.max_idle {
            self.idle.borrow_mut().push(s);
            self.wake_waiters();
        } else {
            drop(s);
            self.release();
        }
    }

    async fn connect(&self) -> Result<ClientStream, Failure> {
        match timeout(
            self.limit,
            ClientStream::connect(Connect::tcp(self.backend).timeout(self.limit)),
        )
        .await
        {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => Err(Failure::Timeout),
            Ok(Err(_)) => Err(Failure::BadGateway),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// `GET key` on the backend: `Some(value)`, or `None` for a missing key.
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
        let mut s = self.connection().await?;
        let mut req = format!("*2\r\n$3\r\nGET\r\n${}\r\n", key.len()).into_bytes();
        req.extend_from_slice(key);
        req.extend_from_slice(b"\r\n");
        let reply = timeout(self.limit, async {
            s.write_all(&req).await?;
            let line = s.read_line(64).await?.unwrap_or_default();
            let Some(len) = line.strip_prefix(b"$") else {
                return Ok(Err(Failure::BadGateway));
            };
            if len == b"-1" {
                return Ok(Ok(None));
            }
            let Some(n) = std::str::from_utf8(len)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
            else {
                return Ok(Err(Failure::BadGateway));
            };
            if n > self.max_value {
                return Ok(Err(Failure::BadGateway));
            }
            // Grown as the bytes arrive: the claimed length is not trusted
            // with an allocation up front.
            let mut value = Vec::new();
            while value.len() < n + 2 {
                let at = value.len();
                value.resize(at + (n + 2 - at).min(VALUE_PIECE), 0);
                s.read_exact(&mut value[at..]).await?;
            }
            if !value.ends_with(b"\r\n") {
                return Ok(Err(Failure::BadGateway));
            }
            value.truncate(n);
            Ok::<_, std::io::Error>(Ok(Some(value)))
        })
        .await;
        match reply {
            Ok(Ok(Ok(v))) => {
                self.give_back(s);
                Ok(v)
            }
            other => {
                drop(s);
                self.release();
                match other {
                    Ok(Ok(Err(f))) => Err(f),
                    Err(_) => Err(Failure::Timeout),
                    _ => Err(Failure::BadGateway),
                }
            }
        }
    }
}

/// One parsed request: the key asked for (None: not a /key/ path), and
/// whether to close after answering.
struct Request {
    key: Option<Vec<u8>>,
    close: bool,
}

/// What a connection shares with its worker task.
#[derive(Default)]
struct Pending {
    /// Requests waiting for the worker, in order.
    queue: VecDeque<Request>,
    /// The worker is busy with a request (not waiting for one).
    busy: bool,
    /// Wakes the worker when a request arrives.
    waker: Option<std::task::Waker>,
    /// The client half-closed: close once every answer is written.
    eof: bool,
    /// Reading paused: `MAX_QUEUED` requests were waiting.
    paused: bool,
    /// The connection's output is above its high-water mark: the next
    /// answer waits until the client reads.
    output_full: bool,
}

struct Gateway {
    pool: Rc<Pool>,
    buf: Vec<u8>,
    pending: Rc<RefCell<Pending>>,
}

/// A response's head and body (sent as they are: a large value is not copied).
fn response(status: &str, body: impl Into<Vec<u8>>, close: bool) -> (Vec<u8>, Vec<u8>) {
    let body = body.into();
    let head = format!(
        "HTTP/1.1 {status}\r\nServer: shardloop-gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    (head, body)
}

/// The connection's one worker task: answers queued requests one after
/// the other, so pipelined responses keep request order, and waits for the
/// next; closes after the last answer if the client half-closed.
async fn serve(task: ConnTask<Gateway>, pool: Rc<Pool>, pending: Rc<RefCell<Pending>>) {
    loop {
        let req = std::future::poll_fn(|cx| {
            let mut p = pending.borrow_mut();
            match p.queue.pop_front() {
                Some(r) => {
                    p.busy = true;
                    if p.paused && p.queue.len() <= MAX_QUEUED / 2 {
                        p.paused = false;
                        task.run(|_, c| c.resume_reading());
                    }
                    std::task::Poll::Ready(Some(r))
                }
                None if p.eof => std::task::Poll::Ready(None),
                None => {
                    p.busy = false;
                    p.waker = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }
        })
        .await;
        let Some(req) = req else {
            task.close();
            return;
        };
        let (head, body) = match req.key {
            None => response("404 Not Found", b"use /key/NAME\n".as_slice(), req.close),
            Some(key) => match pool.get(&key).await {
                Ok(Some(v)) => response("200 OK", v, req.close),
                Ok(None) => response("404 Not Found", b"no such key\n".as_slice(), req.close),
                Err(Failure::BadGateway) => response(
                    "502 Bad Gateway",
                    b"backend unavailable\n".as_slice(),
                    req.close,
                ),
                Err(Failure::Timeout) => response(
                    "504 Gateway Timeout",
                    b"backend timed out\n".as_slice(),
                    req.close,
                ),
            },
        };
        // The client has not read the previous answers: wait for it.
        std::future::poll_fn(|cx| {
            let mut p = pending.borrow_mut();
            if p.output_full {
                p.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        task.write_owned(head);
        task.write_owned(body);
        if req.close {
            task.close();
            return;
        }
    }
}

impl Gateway {
    /// Parses every complete request head at the front of `buf`.
    fn parse(&mut self) -> Result<Vec<Request>, &'static [u8]> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&self.buf[pos..]) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut close = req.version == Some(0);
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        } else if (h.name.eq_ignore_ascii_case("content-length")
                            && h.value.trim_ascii() != b"0")
                            || h.name.eq_ignore_ascii_case("transfer-encoding")
                        {
                            // A lookup gateway takes no request bodies.
                            return Err(b"400 Bad Request");
                        }
                    }
                    let key = req
                        .path
                        .and_then(|p| p.strip_prefix("/key/"))
                        .filter(|k| !k.is_empty() && req.method == Some("GET"))
                        .map(|k| k.as_bytes().to_vec());
                    out.push(Request { key, close });
                    pos += n;
                    if close {
                        break;
                    }
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() - pos > MAX_HEAD {
                        return Err(b"431 Request Header Fields Too Large");
                    }
                    break;
                }
                Err(_) => return Err(b"400 Bad Request"),
            }
        }
        self.buf.drain(..pos);
        Ok(out)
    }
}

impl Protocol for Gateway {
    type Message = ();

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let requests = match self.parse() {
            Ok(r) => r,
            Err(status) => {
                let status = String::from_utf8_lossy(status);
                let (head, body) = response(&status, b"bad request\n".as_slice(), true);
                conn.write(&head);
                conn.write(&body);
                conn.close();
                return;
            }
        };
        if requests.is_empty() {
            return;
        }
        let mut p = self.pending.borrow_mut();
        p.queue.extend(requests);
        if p.queue.len() >= MAX_QUEUED && !p.paused {
            p.paused = true;
            conn.pause_reading();
        }
        if let Some(w) = p.waker.take() {
            w.wake();
        }
    }

    fn pause_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        self.pending.borrow_mut().output_full = true;
    }

    fn resume_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        let mut p = self.pending.borrow_mut();
        p.output_full = false;
        if let Some(w) = p.waker.take() {
            w.wake();
        }
    }

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let (pool, pending) = (self.pool.clone(), self.pending.clone());
        conn.spawn(move |task| serve(task, pool, pending));
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        // Answers still being looked up are written first: the worker closes.
        let mut p = self.pending.borrow_mut();
        p.eof = true;
        if p.queue.is_empty() && !p.busy {
            conn.close();
        } else if let Some(w) = p.waker.take() {
            w.wake();
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let backend = args.backend;
    let limit = Duration::from_millis(args.backend_timeout_ms.max(1));
    let max_idle = args.pool;
    let (max_open, max_value) = (args.max_backend_conns.max(1), args.max_value);
    let builder = Server::builder().listen(
        args.serve.listen((args.bind.as_str(), args.port))?,
        move |_shard| {
            // One pool per shard: created on the shard thread, never shared.
            let pool = Rc::new(Pool {
                backend,
                idle: RefCell::new(Vec::new()),
                max_idle,
                open: std::cell::Cell::new(0),
                max_open,
                waiters: RefCell::new(VecDeque::new()),
                limit,
                max_value,
            });
            move |_peer| Gateway {
                pool: pool.clone(),
                buf: Vec::new(),
                pending: Rc::default(),
            }
        },
    );
    let handle = common::start(builder, args.shards, &args.cores, &args.serve)?;
    println!(
        "gateway listening on http://{}/ with {} shards, backend {backend}",
        handle.tcp_addr(0),
        handle.shards()
    );
    handle.wait();
    Ok(())
}
