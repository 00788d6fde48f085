//! TCP proxy: for each accepted connection, opens a connection to the
//! backend from the same shard and splices bytes both ways with
//! `Conn::forward_to`: what one side reads goes straight into the other's
//! output, with no message and no copy into a `Vec`. Backpressure runs end
//! to end: while one side's output is above the high-water mark, the other
//! side stops reading until it drains. A half-close is passed on as a
//! half-close (the other direction keeps flowing), a reset as a reset: a
//! truncated stream never looks complete.
//!
//! ```text
//! cargo run --release -p shardloop --example proxy -- --port 7003 --backend 127.0.0.1:8080
//! curl http://127.0.0.1:7003/
//! ```

mod common;

use clap::Parser;
use shardloop::endpoint::Connect;
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
    #[command(flatten)]
    serve: common::ServeArgs,
}

/// What one side tells the other (both live on the same shard).
enum Pipe {
    /// The backend side is up; this is its id.
    Connected(ConnId),
    /// The other side's peer finished sending (EOF): finish writing, then FIN.
    Eof,
    /// The other side is gone cleanly: finish writing, then close.
    Closed,
    /// The other side was reset or aborted: reset this one too.
    Reset,
    /// The backend could not be reached.
    Failed(String),
}

/// One end of a proxied pair.
struct Side {
    peer: Option<ConnId>,
    backend: SocketAddr,
    is_front: bool,
    /// This side's peer sent EOF.
    read_done: bool,
    /// This side sent FIN (the other side's peer sent EOF).
    write_done: bool,
}

impl Side {
    fn new(peer: Option<ConnId>, backend: SocketAddr, is_front: bool) -> Self {
        Side {
            peer,
            backend,
            is_front,
            read_done: false,
            write_done: false,
        }
    }
}

impl Side {
    fn tell(&self, conn: &mut Conn<'_, Self>, msg: Pipe) {
        if let Some(p) = self.peer {
            // The two sides share a shard (the backend connects from the
            // client's): a local queue, which has no capacity to refuse.
            let _ = conn.shard().send(p, msg);
        }
    }
}

impl Protocol for Side {
    type Message = Pipe;

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        if self.is_front {
            // Hold the client's bytes until the backend is there.
            conn.pause_reading();
            let back = Side::new(Some(conn.id()), self.backend, false);
            let backend = self.backend;
            let backend = Connect::tcp(backend).timeout(Duration::from_secs(5));
            conn.shard().connect(backend, back);
        } else if let Some(front) = self.peer {
            // Same shard by construction (the front connected from here).
            if conn.forward_to(front).is_err() {
                return conn.abort();
            }
            let me = conn.id();
            self.tell(conn, Pipe::Connected(me));
        }
    }

    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {
        // Input is forwarded to the other side; it comes here only once
        // that side is gone, and this one is told to close right after.
    }

    fn message(&mut self, conn: &mut Conn<'_, Self>, msg: Pipe) {
        match msg {
            Pipe::Connected(back) => {
                self.peer = Some(back);
                if conn.forward_to(back).is_err() {
                    return conn.abort();
                }
                conn.resume_reading();
            }
            Pipe::Eof => {
                conn.shutdown_write();
                self.write_done = true;
                if self.read_done {
                    conn.close();
                }
            }
            Pipe::Closed => conn.close(),
            Pipe::Reset => conn.abort(),
            Pipe::Failed(why) => {
                tracing::warn!(backend = %self.backend, %why, "backend unreachable");
                conn.close();
            }
        }
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        // Half-close: pass the EOF on, keep the other direction open.
        self.read_done = true;
        self.tell(conn, Pipe::Eof);
        if self.write_done {
            conn.close();
        }
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        let msg = match reason {
            CloseReason::Io { .. }
            | CloseReason::Aborted
            | CloseReason::CallbackPanic
            | CloseReason::CloseTimeout
            | CloseReason::OutputOverflow => Pipe::Reset,
            _ => Pipe::Closed,
        };
        self.tell(conn, msg);
    }

    fn connect_failed(&mut self, ctx: &mut ShardCtx, error: &std::io::Error) {
        // Only the backend side connects out; tell the client side.
        if let Some(front) = self.peer {
            let _ = ctx.send(front, Pipe::Failed(error.to_string()));
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let backend = args.backend;
    let builder = Server::builder().listen(
        args.serve.listen((args.bind.as_str(), args.port))?,
        move |_shard| move |_peer| Side::new(None, backend, true),
    );
    let handle = common::start(builder, args.shards, &[], &args.serve)?;
    println!(
        "proxy listening on {} with {} shards, forwarding to {backend}",
        handle.local_addrs()[0],
        handle.shards()
    );
    handle.wait();
    Ok(())
}
