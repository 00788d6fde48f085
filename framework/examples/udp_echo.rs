//! UDP echo: every datagram goes back to its sender. One `SO_REUSEPORT`
//! socket per shard; the kernel spreads senders over the shards; datagrams
//! come in and go out in batches (`recvmmsg`/`sendmmsg`).
//!
//! ```text
//! cargo run --release -p shardloop --example udp_echo -- --port 9000
//! echo hello | socat - UDP:127.0.0.1:9000
//! ```

mod common;

use clap::Parser;
use shardloop::udp::{DatagramProtocol, Udp};
use shardloop::{LogLimit, LoopOptions, Server};
use std::net::SocketAddr;

#[derive(Parser, Debug)]
#[command(about = "shardloop UDP echo server")]
struct Args {
    /// Number of shards (default: number of cores).
    #[arg(short, long)]
    shards: Option<usize>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(short, long, default_value_t = 9000)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Do not pin shards to cores.
    #[arg(long)]
    no_pin: bool,
    /// Pin shards to these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Largest datagram echoed; longer ones are dropped and logged.
    #[arg(long, default_value_t = 65536)]
    max_datagram: usize,
    #[command(flatten)]
    serve: common::ServeArgs,
}

struct Echo {
    /// Anyone can send oversize datagrams: a few lines a second at most,
    /// each saying how many were held back.
    log: LogLimit,
}

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, udp: &mut Udp<'_>, data: &[u8], from: SocketAddr) {
        udp.send_to(data, from);
    }

    fn error_received(&mut self, _udp: &mut Udp<'_>, error: &std::io::Error) {
        if let Some(suppressed) = self.log.allow() {
            tracing::warn!(%error, suppressed, "UDP error");
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let mut loop_options = LoopOptions::default();
    loop_options.udp_max_datagram = args.max_datagram;
    let builder = Server::builder()
        .pinning(common::pinning(args.no_pin))
        .loop_options(loop_options)
        .listen_udp((args.bind.as_str(), args.port), |_shard| Echo {
            log: LogLimit::new(5),
        });
    let handle = common::start(builder, args.shards, &args.cores, &args.serve)?;
    println!(
        "udp_echo listening on {} with {} shards",
        handle.udp_addr(0),
        handle.shards()
    );
    handle.wait();
    Ok(())
}
