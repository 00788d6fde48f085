//! Echo server: every byte a client sends comes back. Like Twisted's echo
//! example it keeps count of open connections; it prints the count whenever
//! it changes (at most once a second), and with `--welcome` greets each
//! client with it, as Twisted's does.
//!
//! ```text
//! cargo run --release -p shardloop --example echo -- --shards 2 --port 7000
//! ```

mod common;

use clap::Parser;
use shardloop::task::ConnTask;
use shardloop::{Conn, Protocol, Server};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "shardloop echo server")]
struct Args {
    /// Number of shards (default: number of cores).
    #[arg(short, long)]
    shards: Option<usize>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(short, long, default_value_t = 7000)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Do not pin shards to cores.
    #[arg(long)]
    no_pin: bool,
    /// Pin shards to these cores (comma-separated), e.g. to keep a core for the client.
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Greet each client with the open-connection count (breaks pure echo).
    #[arg(long)]
    welcome: bool,
    /// Echo from an async task per connection (`Conn::spawn_stream`: it
    /// reads and writes through its ConnTask) instead of from
    /// `data_received`: the same server on the executor path, to compare
    /// their cost.
    #[arg(long = "async")]
    use_async: bool,
    #[command(flatten)]
    serve: common::ServeArgs,
}

/// The task of `--async`: the whole connection as one `async fn`.
async fn echo_task(task: ConnTask<Echo>) {
    // Empty until bytes arrive: an idle connection holds no read buffer.
    let mut buf = Vec::new();
    // Until EOF (0) or a failed read; then close (after flushing).
    while let Ok(1..) = task.read_buf(&mut buf).await {
        task.write(&buf);
        buf.clear();
    }
    task.close();
}

struct Echo {
    open: Arc<AtomicU64>,
    welcome: bool,
    /// `--async`: a task reads and writes the connection.
    use_async: bool,
}

impl Protocol for Echo {
    type Message = ();

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let n = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if self.welcome {
            conn.write(format!("Welcome! There are currently {n} open connections.\n").as_bytes());
        }
        if self.use_async {
            conn.spawn_stream(echo_task);
        }
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        // Not called with `--async`: the task reads the connection.
        conn.write(data);
    }

    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, _reason: &shardloop::CloseReason) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    // Shared by all shards on purpose: one counter, touched once per connect
    // and close, never per byte.
    let open = Arc::new(AtomicU64::new(0));
    let welcome = args.welcome;
    let use_async = args.use_async;
    let counter = open.clone();
    let builder = Server::builder()
        .pinning(common::pinning(args.no_pin))
        .listen(
            args.serve.listen((args.bind.as_str(), args.port))?,
            move |_shard| {
                let open = counter.clone();
                move |_peer| Echo {
                    open: open.clone(),
                    welcome,
                    use_async,
                }
            },
        );
    let handle = common::start(builder, args.shards, &args.cores, &args.serve)?;
    println!(
        "echo listening on {} with {} shards",
        handle.tcp_addr(0),
        handle.shards()
    );
    // Shard 0 reports the count when it changes.
    handle.post_to(0, move |ctx| {
        let mut last = u64::MAX;
        ctx.call_every(Duration::from_secs(1), move |_| {
            let n = open.load(Ordering::Relaxed);
            if n != last {
                println!("{n} open connections");
                last = n;
            }
        });
    })?;
    handle.wait();
    let total = handle.stats().total();
    println!(
        "stopped: {} connections served, {} bytes in, {} bytes out",
        total.connections_accepted, total.bytes_in, total.bytes_out
    );
    Ok(())
}
