//! The HTTP benchmark server (TechEmpower's plaintext and JSON tests) on
//! `shardloop::http`: `GET /json` answers `{"message":"Hello, World!"}`
//! serialised per request; `/ws` is a WebSocket echo (the WebSocket
//! benchmark's server); every other request "Hello, World!" (a body, if
//! any, is read and dropped). Keep-alive, pipelining, HTTP/1.0, HEAD
//! and every limit are the library's: 414, 431, 413 past `--max-body`, 400
//! for malformed or ambiguous framing, a request cut off at
//! `--request-timeout`, an idle connection closed after
//! `--keepalive-timeout`.
//!
//! ```text
//! cargo run --release -p shardloop --example http_hello -- --shards 2 --port 8080
//! curl -v http://127.0.0.1:8080/
//! wrk -t1 -c64 -d10s http://127.0.0.1:8080/
//! ```

mod common;

use clap::Parser;
use shardloop::http::ws::{Message as WsMessage, WebSocket, WsConn, WsOptions};
use shardloop::http::{header, Body, HeaderValue, HttpServer, Limits, Reply, Response, Router};
use shardloop::Server;
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
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_body: u64,
    /// Seconds a request's head, and then its body, may take to arrive (0: no limit).
    #[arg(long, default_value_t = 10)]
    request_timeout: u64,
    /// Seconds an idle keep-alive connection is kept (0: forever).
    #[arg(long, default_value_t = 60)]
    keepalive_timeout: u64,
    #[command(flatten)]
    serve: common::ServeArgs,
}

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

fn with_type(body: Body, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The WebSocket echo: every message back as it came.
struct Echo;

impl WebSocket for Echo {
    fn on_message(&mut self, ws: &mut WsConn<'_, '_>, msg: WsMessage) {
        ws.send(msg);
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let limits = Limits {
        max_body: args.max_body,
        header_timeout: secs(args.request_timeout),
        body_timeout: secs(args.request_timeout),
        keep_alive: secs(args.keepalive_timeout),
        ..Limits::default()
    };
    let one_mib = bytes::Bytes::from(vec![b'x'; 1 << 20]);
    let app = Router::new()
        .get("/json", |_| {
            let body = serde_json::to_vec(&Message {
                message: "Hello, World!",
            })
            .expect("a struct of strings serialises");
            with_type(Body::from(body), "application/json")
        })
        .websocket("/ws", WsOptions::default(), |_| Echo)
        // One shared mebibyte, sent by reference (large-send benchmarks).
        .get("/1mib", move |_| {
            with_type(Body::from(one_mib.clone()), "application/octet-stream")
        })
        .fallback(|_, _: &mut shardloop::ShardCtx| {
            Reply::Now(with_type(Body::from("Hello, World!"), "text/plain"))
        });
    let http = HttpServer::new(app).limits(limits).server_name("shardloop");
    let builder = Server::builder()
        .pinning(common::pinning(args.no_pin))
        .listen(
            args.serve.listen((args.bind.as_str(), args.port))?,
            http.factory(),
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
