//! TCP proxy: for each accepted connection, opens a connection to the
//! backend from the same shard and pipes bytes both ways. Backpressure runs
//! end to end: when one side's output passes the high-water mark, the other
//! side stops reading until it drains.
//!
//! ```text
//! cargo run --release -p shardloop --example proxy -- --port 7003 --backend 127.0.0.1:8080
//! curl http://127.0.0.1:7003/
//! ```

mod common;

use clap::Parser;
use shardloop::{CloseReason, Conn, ConnId, Protocol, Server, ShardCtx};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "shardloop TCP proxy")]
struct Args {
    /// Number of shards (default: number of cores).
    #[arg(short, long)]
    shards: Option<usize>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(short, long, default_value_t = 7003)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Backend to forward to.
    #[arg(long)]
    backend: SocketAddr,
}

/// What one side tells the other (both live on the same shard).
enum Pipe {
    /// The backend side is up; this is its id.
    Connected(ConnId),
    Data(Vec<u8>),
    /// Stop / resume reading: the other side's output is backed up / drained.
    Pause,
    Resume,
    /// The other side is gone: finish writing, then close.
    Closed,
    /// The backend could not be reached.
    Failed(String),
}

/// One end of a proxied pair.
struct Side {
    peer: Option<ConnId>,
    backend: SocketAddr,
    is_front: bool,
}

impl Side {
    fn tell(&self, conn: &mut Conn<'_, Self>, msg: Pipe) {
        if let Some(p) = self.peer {
            conn.shard().send(p, msg);
        }
    }
}

impl Protocol for Side {
    type Message = Pipe;

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        if self.is_front {
            // Hold the client's bytes until the backend is there.
            conn.pause_reading();
            let back = Side {
                peer: Some(conn.id()),
                backend: self.backend,
                is_front: false,
            };
            let backend = self.backend;
            conn.shard()
                .connect_tcp_timeout(backend, back, Duration::from_secs(5));
        } else {
            let me = conn.id();
            self.tell(conn, Pipe::Connected(me));
        }
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.tell(conn, Pipe::Data(data.to_vec()));
    }

    fn message(&mut self, conn: &mut Conn<'_, Self>, msg: Pipe) {
        match msg {
            Pipe::Connected(back) => {
                self.peer = Some(back);
                conn.resume_reading();
            }
            Pipe::Data(d) => conn.write(&d),
            Pipe::Pause => conn.pause_reading(),
            Pipe::Resume => conn.resume_reading(),
            Pipe::Closed => conn.close(),
            Pipe::Failed(why) => {
                tracing::warn!(backend = %self.backend, %why, "backend unreachable");
                conn.close();
            }
        }
    }

    fn pause_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.tell(conn, Pipe::Pause);
    }

    fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.tell(conn, Pipe::Resume);
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, Self>, _reason: &CloseReason) {
        self.tell(conn, Pipe::Closed);
    }

    fn connect_failed(&mut self, ctx: &mut ShardCtx, error: &std::io::Error) {
        // Only the backend side connects out; tell the client side.
        if let Some(front) = self.peer {
            ctx.send(front, Pipe::Failed(error.to_string()));
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let backend = args.backend;
    let builder = Server::builder().listen((args.bind.as_str(), args.port), move |_shard| {
        move |_peer| Side {
            peer: None,
            backend,
            is_front: true,
        }
    });
    let handle = common::start(builder, args.shards, &[])?;
    println!(
        "proxy listening on {} with {} shards, forwarding to {backend}",
        handle.local_addrs()[0],
        handle.shards()
    );
    handle.wait();
    Ok(())
}
