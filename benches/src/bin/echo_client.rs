//! A closed-loop echo load client written directly on `mio`, sharing no code
//! with shardloop, so it can measure shardloop (or any echo server) as an
//! independent peer. Each connection keeps `--pipeline` messages of
//! `--size` bytes in flight and checks every echoed byte.
//!
//! ```text
//! taskset -c 1 cargo run --release -p shardloop-benches --bin echo_client -- \
//!     --addr 127.0.0.1:7000 -c 64 --size 64 -d 10
//! ```

use anyhow::{bail, Context};
use clap::Parser;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "independent closed-loop echo client (plain mio)")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: SocketAddr,
    /// Connections.
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// Message size in bytes.
    #[arg(short, long, default_value_t = 64)]
    size: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Seconds to measure.
    #[arg(short, long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up, not counted.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
}

struct Client {
    stream: TcpStream,
    msg: Vec<u8>,
    /// Bytes of the current burst still to send / to receive.
    to_send: usize,
    received: usize,
    done: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.size == 0 || args.connections == 0 || args.pipeline == 0 {
        bail!("--size, --connections and --pipeline must be at least 1");
    }
    let mut poll = Poll::new()?;
    let mut clients = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let std = std::net::TcpStream::connect(args.addr)
            .with_context(|| format!("connect to {}", args.addr))?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let msg: Vec<u8> = (0..args.size * args.pipeline)
            .map(|j| (i * 31 + j) as u8)
            .collect();
        clients.push(Client {
            stream,
            to_send: msg.len(),
            msg,
            received: 0,
            done: 0,
        });
    }
    let burst = args.size * args.pipeline;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 1 << 16];
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let mut base: Option<u64> = None;
    let mut kick: Vec<usize> = (0..clients.len()).collect();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if base.is_none() && now >= measure_from {
            base = Some(clients.iter().map(|c| c.done).sum());
        }
        for i in kick.drain(..) {
            let c = &mut clients[i];
            while c.to_send > 0 {
                let off = burst - c.to_send;
                match c.stream.write(&c.msg[off..]) {
                    Ok(n) => c.to_send -= n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e).context("write"),
                }
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut clients[i];
            if ev.is_writable() && c.to_send > 0 {
                kick.push(i);
            }
            if !ev.is_readable() {
                continue;
            }
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => bail!("server closed connection {i}"),
                    Ok(n) => {
                        for (k, &b) in buf[..n].iter().enumerate() {
                            if b != c.msg[(c.received + k) % burst] {
                                bail!("connection {i}: wrong byte echoed");
                            }
                        }
                        c.received += n;
                        if c.received >= burst {
                            c.received -= burst;
                            c.done += args.pipeline as u64;
                            c.to_send = burst;
                            kick.push(i);
                        }
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e).context("read"),
                }
            }
        }
    }
    let total: u64 = clients.iter().map(|c| c.done).sum::<u64>() - base.unwrap_or(0);
    let secs = args.duration as f64;
    println!(
        "{} connections, {} B messages, pipeline {}: {} messages in {:.1} s = {:.0} msg/s ({:.1} MB/s each way)",
        args.connections,
        args.size,
        args.pipeline,
        total,
        secs,
        total as f64 / secs,
        total as f64 * args.size as f64 / secs / 1e6
    );
    Ok(())
}
