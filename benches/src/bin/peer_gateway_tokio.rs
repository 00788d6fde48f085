//! The tokio peer of the `gateway` example, for side-by-side runs: a
//! current-thread runtime, a task per connection, HTTP/1.1 keep-alive, and
//! `GET /key/NAME` looked up with a RESP `GET` over a pooled backend
//! connection (what a redis-style client does), 404 for a missing key,
//! 502 for a backend failure.

use clap::Parser;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The RESP backend.
    #[arg(long)]
    backend: SocketAddr,
}

type Pool = Rc<RefCell<Vec<BufReader<TcpStream>>>>;

fn response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nServer: shardloop-gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// `GET key` on a pooled backend connection: Ok(Some(value)), Ok(None) if missing.
async fn get(pool: &Pool, backend: SocketAddr, key: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let pooled = pool.borrow_mut().pop();
    let mut conn = match pooled {
        Some(c) => c,
        None => {
            let s = TcpStream::connect(backend).await?;
            s.set_nodelay(true)?;
            BufReader::new(s)
        }
    };
    let mut req = format!("*2\r\n$3\r\nGET\r\n${}\r\n", key.len()).into_bytes();
    req.extend_from_slice(key);
    req.extend_from_slice(b"\r\n");
    conn.get_mut().write_all(&req).await?;
    let mut line = Vec::new();
    conn.read_until(b'\n', &mut line).await?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad reply");
    let len = line
        .strip_prefix(b"$")
        .and_then(|l| l.strip_suffix(b"\r\n"))
        .ok_or_else(bad)?;
    let value = if len == b"-1" {
        None
    } else {
        let n: usize = std::str::from_utf8(len)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        let mut v = vec![0u8; n + 2];
        conn.read_exact(&mut v).await?;
        v.truncate(n);
        Some(v)
    };
    pool.borrow_mut().push(conn);
    Ok(value)
}

async fn serve(mut s: TcpStream, pool: Pool, backend: SocketAddr) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut inbuf: Vec<u8> = Vec::new();
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        inbuf.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let used = match req.parse(&inbuf) {
                Ok(httparse::Status::Complete(used)) => used,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            };
            let key = req
                .path
                .and_then(|p| p.strip_prefix("/key/"))
                .map(|k| k.as_bytes().to_vec());
            inbuf.drain(..used);
            out.extend(match key {
                None => response("404 Not Found", b"use /key/NAME\n"),
                Some(k) => match get(&pool, backend, &k).await {
                    Ok(Some(v)) => response("200 OK", &v),
                    Ok(None) => response("404 Not Found", b"no such key\n"),
                    Err(_) => response("502 Bad Gateway", b"backend unavailable\n"),
                },
            });
        }
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(("127.0.0.1", a.port)).await?;
        println!("peer_gateway_tokio listening on {}", listener.local_addr()?);
        let pool: Pool = Rc::default();
        loop {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            tokio::task::spawn_local(serve(s, pool.clone(), a.backend));
        }
    })
}
