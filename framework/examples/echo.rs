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
}

struct Echo {
    open: Arc<AtomicU64>,
    welcome: bool,
}

impl Protocol for Echo {
    type Message = ();

    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let n = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if self.welcome {
            conn.write(format!("Welcome! There are currently {n} open connections.\n").as_bytes());
        }
    }

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
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
    let counter = open.clone();
    let builder = Server::builder().pin(!args.no_pin).listen(
        (args.bind.as_str(), args.port),
        move |_shard| {
            let open = counter.clone();
            move |_peer| Echo {
                open: open.clone(),
                welcome,
            }
        },
    );
    let handle = common::start(builder, args.shards, &args.cores)?;
    println!(
        "echo listening on {} with {} shards",
        handle.tcp_addr(0),
        handle.shards()
    );
    // Shard 0 reports the count when it changes.
    handle.submit_to(0, move |ctx| {
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
