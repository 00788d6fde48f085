//! The `tokio` peer: one task per connection, echo or HTTP plaintext, on a
//! current-thread or multi-thread runtime.

use clap::Parser;
use shardloop_benches::{complete_requests, HTTP_RESPONSE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Args {
    /// echo or http
    #[arg(long, default_value = "echo")]
    mode: String,
    /// current or multi
    #[arg(long, default_value = "current")]
    flavor: String,
    /// Worker threads of the multi-thread runtime.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[arg(long, default_value_t = 0)]
    port: u16,
}

async fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn http(mut s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut inbuf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        inbuf.extend_from_slice(&buf[..n]);
        let Some((k, used)) = complete_requests(&inbuf) else {
            return;
        };
        inbuf.drain(..used);
        out.clear();
        for _ in 0..k {
            out.extend_from_slice(HTTP_RESPONSE);
        }
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let rt = match args.flavor.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?,
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers)
            .enable_io()
            .build()?,
        f => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("unknown flavor {f}"),
            ))
        }
    };
    let is_http = match args.mode.as_str() {
        "echo" => false,
        "http" => true,
        m => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("unknown mode {m}"),
            ))
        }
    };
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", args.port)).await?;
        println!(
            "peer_tokio {} {} listening on {}",
            args.mode,
            args.flavor,
            l.local_addr()?
        );
        loop {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            if is_http {
                tokio::spawn(http(s));
            } else {
                tokio::spawn(echo(s));
            }
        }
    })
}
