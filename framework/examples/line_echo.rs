//! Line echo on `LineReceiver`: every `\r\n`- or `\n`-terminated line comes
//! back. Lines up to 1 MiB; a longer one is reported to the client and in
//! the log, and the connection is closed. A line must be complete within
//! `--line-timeout` (a peer trickling bytes is closed, however active), and
//! output backs up into TCP flow control rather than memory.
//!
//! ```text
//! cargo run --release -p shardloop --example line_echo -- --port 7002
//! ```

mod common;

use clap::Parser;
use shardloop::framing::{FrameError, FrameProtocol, FramedConn, LineDecoder, LineReceiver};
use shardloop::{Server, Settings};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "shardloop line echo server (LineReceiver)")]
struct Args {
    /// Number of shards (default: number of cores).
    #[arg(short, long)]
    shards: Option<usize>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(short, long, default_value_t = 7002)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Longest line accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_line: usize,
    /// Seconds a line may take to arrive complete (0: no limit).
    #[arg(long, default_value_t = 30)]
    line_timeout: u64,
    #[command(flatten)]
    serve: common::ServeArgs,
}

struct LineEcho {
    line_timeout: Option<Duration>,
}

impl FrameProtocol<LineDecoder> for LineEcho {
    type Message = ();

    fn connection_made(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>) {
        conn.set_read_timeout(self.line_timeout);
    }

    fn frame_received(&mut self, conn: &mut FramedConn<'_, '_, LineDecoder, Self>, line: &[u8]) {
        conn.write(line);
        conn.write(b"\r\n");
        // The next line gets its own deadline.
        conn.set_read_timeout(self.line_timeout);
    }

    fn frame_error(
        &mut self,
        conn: &mut FramedConn<'_, '_, LineDecoder, Self>,
        error: &FrameError,
        _data: &[u8],
    ) {
        tracing::warn!(peer = %conn.peer_addr(), %error, "oversized line; closing");
        conn.write(format!("-ERR {error}\r\n").as_bytes());
        conn.close_with_error(error.to_string());
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let max_line = args.max_line;
    let line_timeout = (args.line_timeout > 0).then(|| Duration::from_secs(args.line_timeout));
    // One echoed line must fit in a connection's output queue.
    let defaults = Settings::default();
    let settings = Settings {
        max_output_buffer: defaults.max_output_buffer.max(max_line.saturating_mul(2)),
        ..defaults
    };
    let builder = Server::builder().settings(settings).listen(
        args.serve.listen((args.bind.as_str(), args.port))?,
        move |_shard| {
            move |_peer| {
                LineReceiver::new(
                    LineDecoder::new(b"\r\n".to_vec(), max_line).accept_bare_lf(true),
                    LineEcho { line_timeout },
                )
            }
        },
    );
    let handle = common::start(builder, args.shards, &[], &args.serve)?;
    println!(
        "line_echo listening on {} with {} shards",
        handle.local_addrs()[0],
        handle.shards()
    );
    handle.wait();
    Ok(())
}
