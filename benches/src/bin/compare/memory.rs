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

/// RSS growth per idle connection, in bytes. The server may be wrapped in
/// taskset, which execs it, so the child's PID is the server's.
pub(crate) fn memory_per_idle_connection(
    dir: &Path,
    def: &ServerDef,
    n: usize,
) -> anyhow::Result<f64> {
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
    let after = rss_kib(srv.child.id())?;
    drop(conns);
    drop(warm);
    Ok((after.saturating_sub(before) * 1024) as f64 / n as f64)
}
