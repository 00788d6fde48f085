//! HTTP gateway in front of a RESP key-value store (resp_kv, or Redis):
//! `GET /key/NAME` looks NAME up over a pooled per-shard backend connection
//! and answers 200 with the value, 404 if it is missing, 502 if the backend
//! is unreachable or answers nonsense, 504 if it does not answer in time.
//! The HTTP side is `shardloop::http` (keep-alive, pipelining answered in
//! order, the library's limits); each lookup is an `async` handler on the
//! shard's executor using `ClientStream`, not a hand-written state machine.
//! A client that pipelines without reading costs at most 16 requests in
//! flight, one read of input and the answers the socket did not take;
//! each shard opens at most `--max-backend-conns` backend connections.
//!
//! ```text
//! cargo run --release -p shardloop --example resp_kv -- --port 6380 &
//! cargo run --release -p shardloop --example gateway -- --port 8081 --backend 127.0.0.1:6380
//! redis-cli -p 6380 SET greeting hello
//! curl http://127.0.0.1:8081/key/greeting
//! ```

mod common;

use clap::Parser;
use shardloop::client::{ClientStream, Pool, PoolError, PoolOptions, Pooled};
use shardloop::endpoint::Connect;
use shardloop::http::{header, Body, Handler, HeaderValue, HttpServer, Limits, Method, Reply};
use shardloop::http::{Request, Response, StatusCode};
use shardloop::task::timeout;
use shardloop::{Server, ShardCtx};
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

/// A value is read from the backend in pieces of at most this much, so a
/// length the backend claims is never allocated before its bytes arrive.
const VALUE_PIECE: usize = 1024 * 1024;

/// One shard's backend connections (the library's pool, one key: the
/// backend) and what a lookup may take.
struct Backend {
    pool: Pool<SocketAddr, ClientStream>,
    addr: SocketAddr,
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

impl Backend {
    /// An idle connection, a new one, or the first to free up.
    async fn connection(&self) -> Result<Pooled<SocketAddr, ClientStream>, Failure> {
        let connect = Connect::tcp(self.addr).timeout(self.limit);
        match self
            .pool
            .checkout(self.addr, || ClientStream::connect(connect))
            .await
        {
            Ok(c) => Ok(c),
            Err(PoolError::Timeout(_)) => Err(Failure::Timeout),
            Err(PoolError::Connect(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(Failure::Timeout)
            }
            Err(_) => Err(Failure::BadGateway),
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
                // Read to its end: the connection serves the next lookup.
                s.release();
                Ok(v)
            }
            // Dropped without a release: the pool closes it.
            Ok(Ok(Err(f))) => Err(f),
            Err(_) => Err(Failure::Timeout),
            Ok(Err(_)) => Err(Failure::BadGateway),
        }
    }
}

/// What every shard's pool is made from.
#[derive(Clone, Copy)]
struct PoolConfig {
    backend: SocketAddr,
    max_idle: usize,
    max_open: usize,
    limit: Duration,
    max_value: usize,
}

/// A shard's pool, made on first use on that shard (a shard service: no
/// lock, never shared).
#[derive(Default)]
struct ShardPool(Option<Rc<Backend>>);

/// `GET /key/NAME`: the value from the backend.
struct Lookup(PoolConfig);

fn text(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

impl Handler for Lookup {
    fn call(&self, req: Request<Body>, ctx: &mut ShardCtx) -> Reply {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        let key = match req.uri().path().strip_prefix("/key/") {
            Some(k) if get && !k.is_empty() => k.as_bytes().to_vec(),
            _ => return Reply::Now(text(StatusCode::NOT_FOUND, "use /key/NAME\n")),
        };
        let c = self.0;
        let pool = ctx
            .service::<ShardPool>()
            .0
            .get_or_insert_with(|| {
                Rc::new(Backend {
                    pool: Pool::new(PoolOptions {
                        max_idle: c.max_idle,
                        max_per_key: c.max_open,
                        wait_timeout: c.limit,
                        name: "redis".to_string(),
                        ..PoolOptions::default()
                    }),
                    addr: c.backend,
                    limit: c.limit,
                    max_value: c.max_value,
                })
            })
            .clone();
        Reply::later(async move {
            match pool.get(&key).await {
                Ok(Some(v)) => text(StatusCode::OK, v),
                Ok(None) => text(StatusCode::NOT_FOUND, "no such key\n"),
                Err(Failure::BadGateway) => text(StatusCode::BAD_GATEWAY, "backend unavailable\n"),
                Err(Failure::Timeout) => text(StatusCode::GATEWAY_TIMEOUT, "backend timed out\n"),
            }
        })
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let backend = args.backend;
    let config = PoolConfig {
        backend,
        max_idle: args.pool,
        max_open: args.max_backend_conns.max(1),
        limit: Duration::from_millis(args.backend_timeout_ms.max(1)),
        max_value: args.max_value,
    };
    // A lookup takes no request body.
    let limits = Limits {
        max_body: 0,
        ..Limits::default()
    };
    let http = HttpServer::new(Lookup(config))
        .limits(limits)
        .server_name("shardloop-gateway");
    let builder = Server::builder().listen(
        args.serve.listen((args.bind.as_str(), args.port))?,
        http.factory(),
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
