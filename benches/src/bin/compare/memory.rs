//! Memory per idle connection: RSS growth of a server holding many idle
//! connections.

use crate::catalog::ServerDef;
use anyhow::Context;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

/// What a server holds per connection: idle, after one small echo on each
/// (buffers a burst left behind), and what stays after all have closed.
pub(crate) struct ConnMemory {
    /// RSS growth per idle connection, in bytes.
    pub(crate) idle: f64,
    /// RSS growth per connection after one 64-byte echo on each, in bytes.
    pub(crate) after_echo: f64,
    /// RSS still held over the start after every connection closed, in bytes.
    pub(crate) after_close: f64,
}

/// Measures [`ConnMemory`] with `n` connections. The server may be wrapped
/// in taskset, which execs it, so the child's PID is the server's.
pub(crate) fn memory_per_connection(
    dir: &Path,
    def: &ServerDef,
    n: usize,
) -> anyhow::Result<ConnMemory> {
    use std::io::{Read, Write};
    let srv = crate::start(dir, def, &[], None)?;
    std::thread::sleep(Duration::from_millis(300));
    // Warm the allocator with a few connections first, then measure from there.
    let warm: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(srv.addr))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(srv.child.id())?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(TcpStream::connect(srv.addr)?);
    }
    // Let the server accept everything.
    std::thread::sleep(Duration::from_millis(1500));
    let idle = rss_kib(srv.child.id())?;
    let msg = [b'x'; 64];
    let mut back = [0u8; 64];
    for c in &mut conns {
        c.write_all(&msg)?;
        c.read_exact(&mut back)?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let echoed = rss_kib(srv.child.id())?;
    drop(conns);
    std::thread::sleep(Duration::from_millis(1500));
    let closed = rss_kib(srv.child.id())?;
    drop(warm);
    let per = |kib: u64| (kib.saturating_sub(before) * 1024) as f64 / n as f64;
    Ok(ConnMemory {
        idle: per(idle),
        after_echo: per(echoed),
        after_close: (closed.saturating_sub(before) * 1024) as f64,
    })
}
