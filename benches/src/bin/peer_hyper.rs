//! The hyper peer: hyper 1.x's HTTP/1.1 server on tokio's current-thread
//! runtime, answering "Hello, World!" (text/plain) to every request, or
//! `{"message":"Hello, World!"}` with `--json`, as TechEmpower's hyper
//! entry does (pipelined responses flushed together).

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Answer JSON instead of plain text.
    #[arg(long)]
    json: bool,
}

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(r)
}

async fn json(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("{{\"message\":\"{}\"}}", "Hello, World!");
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", args.port)).await?;
        println!("peer_hyper listening on {}", l.local_addr()?);
        loop {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            let io = TokioIo::new(s);
            let is_json = args.json;
            tokio::task::spawn(async move {
                let mut conn = http1::Builder::new();
                conn.pipeline_flush(true);
                let _ = if is_json {
                    conn.serve_connection(io, service_fn(json)).await
                } else {
                    conn.serve_connection(io, service_fn(hello)).await
                };
            });
        }
    })
}
