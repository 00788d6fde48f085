//! The WebSocket peer: tokio-tungstenite on tokio's current-thread
//! runtime, echoing every text and binary message (the WebSocket echo
//! benchmark's reference; answers pings as the library does).

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", args.port)).await?;
        println!("peer_tungstenite listening on {}", l.local_addr()?);
        loop {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            tokio::task::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}
