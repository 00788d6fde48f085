//! The UDP comparison: shardloop's udp_echo (one shard) against the
//! hand-written `recvmmsg`/`sendmmsg` loop (`peer_udp`), both on core 0,
//! driven from core 1 by a closed-loop client: 32 connected sockets, 8
//! datagrams of 64 bytes in flight on each, a new one sent per echo.

use anyhow::Context;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SOCKETS: usize = 32;
const WINDOW: usize = 8;
const SIZE: usize = 64;

/// Runs the client for `duration`; returns datagrams echoed per second and
/// per second of the server's CPU time.
pub(crate) fn measure(
    server: SocketAddr,
    pid: u32,
    duration: Duration,
) -> anyhow::Result<(f64, f64)> {
    let mut poll = Poll::new()?;
    let mut socks = Vec::with_capacity(SOCKETS);
    for i in 0..SOCKETS {
        let mut s = UdpSocket::bind("127.0.0.1:0".parse()?)?;
        s.connect(server)?;
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        socks.push(s);
    }
    let payload = [0x5au8; SIZE];
    let mut outstanding = vec![0usize; SOCKETS];
    let mut last_progress = vec![Instant::now(); SOCKETS];
    let refill = |s: &UdpSocket, out: &mut usize| {
        while *out < WINDOW && s.send(&payload).is_ok() {
            *out += 1;
        }
    };
    for (s, out) in socks.iter().zip(outstanding.iter_mut()) {
        refill(s, out);
    }
    let before = shardloop_loadgen::process_cpu_ticks(pid)?;
    let start = Instant::now();
    let end = start + duration;
    let mut echoed = 0u64;
    let mut events = Events::with_capacity(256);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for ev in events.iter() {
            let i = ev.token().0;
            loop {
                match socks[i].recv(&mut buf) {
                    Ok(n) if n == SIZE => {
                        echoed += 1;
                        outstanding[i] = outstanding[i].saturating_sub(1);
                        last_progress[i] = Instant::now();
                    }
                    Ok(_) => anyhow::bail!("a datagram came back changed"),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e).context("receive"),
                }
            }
            refill(&socks[i], &mut outstanding[i]);
        }
        // A lost datagram would shrink the window for good: refill quiet sockets.
        let now = Instant::now();
        for i in 0..SOCKETS {
            if now.duration_since(last_progress[i]) > Duration::from_millis(50) {
                outstanding[i] = 0;
                last_progress[i] = now;
                refill(&socks[i], &mut outstanding[i]);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = (shardloop_loadgen::process_cpu_ticks(pid)? - before) as f64 / 100.0;
    Ok((echoed as f64 / secs, echoed as f64 / cpu.max(1e-9)))
}
