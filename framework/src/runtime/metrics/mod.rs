//! Prometheus exposition of every shard's figures, served by a shardloop
//! listener of the server itself (`ServerBuilder::metrics`): text format
//! 0.0.4, `shardloop_` prefix, a `shard` label. [`text`] writes and parses
//! the format for everyone (the load generator's `/metrics`, the tuner's
//! `advise`, the tests).

pub mod text;

use crate::api::{Export, Kind, ServerStats, ShardStats};
use std::fmt::Write;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Renders `stats` in the Prometheus text format: every counter of
/// [`ShardStats`] in the family its declaration names (api/stats.rs), one
/// sample per shard, then the server-wide figures.
pub fn render(stats: &ServerStats) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let exports = ShardStats::EXPORTS;
    let values: Vec<Vec<u64>> = stats.shards.iter().map(ShardStats::values).collect();
    // Families in the order their first counter is declared; a family's
    // samples together, under one HELP and TYPE.
    let mut families: Vec<&str> = Vec::new();
    for e in exports {
        if !families.contains(&e.family) {
            families.push(e.family);
        }
    }
    for family in families {
        let members: Vec<(usize, &Export)> = exports
            .iter()
            .enumerate()
            .filter(|(_, e)| e.family == family)
            .collect();
        let first = members[0].1;
        let kind = match first.kind {
            Kind::Counter | Kind::Seconds => "counter",
            Kind::Gauge => "gauge",
            Kind::LagBucket | Kind::LagCount | Kind::LagSum => "histogram",
        };
        let _ = writeln!(out, "# HELP {family} {}", first.help);
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for (s, shard_values) in stats.shards.iter().zip(&values) {
            if kind == "histogram" {
                histogram(&mut out, family, s.shard, &members, shard_values);
                continue;
            }
            for &(i, e) in &members {
                let v = match e.kind {
                    Kind::Seconds => secs(shard_values[i]),
                    _ => shard_values[i] as f64,
                };
                let label = e
                    .label
                    .map(|(k, v)| format!(",{k}=\"{v}\""))
                    .unwrap_or_default();
                let _ = writeln!(out, "{family}{{shard=\"{}\"{label}}} {}", s.shard, fmt(v));
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP shardloop_shard_up 1 while the shard's thread runs, 0 once it died."
    );
    let _ = writeln!(out, "# TYPE shardloop_shard_up gauge");
    for s in &stats.shards {
        let up = u8::from(!stats.dead_shards.contains(&s.shard));
        let _ = writeln!(out, "shardloop_shard_up{{shard=\"{}\"}} {up}", s.shard);
    }
    let _ = writeln!(
        out,
        "# HELP shardloop_rejected_by_acceptor_total Connections refused at the global limit."
    );
    let _ = writeln!(out, "# TYPE shardloop_rejected_by_acceptor_total counter");
    let _ = writeln!(
        out,
        "shardloop_rejected_by_acceptor_total {}",
        stats.rejected_by_acceptor
    );
    text::family(
        &mut out,
        "shardloop_admission_pauses_total",
        "counter",
        "Times the acceptor stopped accepting because every shard was saturated.",
    );
    text::sample(
        &mut out,
        "shardloop_admission_pauses_total",
        &[],
        stats.admission_pauses as f64,
    );
    text::family(
        &mut out,
        "shardloop_admission_paused_seconds_total",
        "counter",
        "Time the acceptor spent not accepting because every shard was saturated.",
    );
    text::sample(
        &mut out,
        "shardloop_admission_paused_seconds_total",
        &[],
        secs(stats.admission_paused_ns),
    );
    heaviest(&mut out, stats);
    pools(&mut out, stats);
    out
}

/// Each shard's connection pools, by name: what they hold now, and what
/// they have done.
fn pools(out: &mut String, stats: &ServerStats) {
    if stats.pools.is_empty() {
        return;
    }
    let family = "shardloop_pool_connections";
    text::family(
        out,
        family,
        "gauge",
        "Connections a pool holds now, idle or in use (checked out).",
    );
    for p in &stats.pools {
        let shard = p.shard.to_string();
        let in_use = p.stats.open.saturating_sub(p.stats.idle);
        for (state, v) in [("idle", p.stats.idle), ("in_use", in_use)] {
            let labels = [
                ("shard", shard.as_str()),
                ("pool", p.pool.as_str()),
                ("state", state),
            ];
            text::sample(out, family, &labels, v as f64);
        }
    }
    type Field = fn(&crate::client::PoolStats) -> u64;
    let counters: [(&str, &str, Field); 6] = [
        ("opened", "Connections a pool opened.", |s| s.opened),
        ("reused", "Checkouts an idle connection served.", |s| {
            s.reused
        }),
        (
            "closed",
            "Connections a pool closed (idle or too old, unusable, over max_idle, or discarded).",
            |s| s.closed,
        ),
        (
            "waited",
            "Checkouts that waited for a connection (max_per_key in use).",
            |s| s.waited,
        ),
        (
            "timed_out",
            "Checkouts that gave up waiting (wait_timeout).",
            |s| s.timed_out,
        ),
        (
            "detached",
            "Connections taken out of a pool for good (shared HTTP/2 connections).",
            |s| s.detached,
        ),
    ];
    for (what, help, field) in counters {
        let family = format!("shardloop_pool_{what}_total");
        text::family(out, &family, "counter", help);
        for p in &stats.pools {
            let shard = p.shard.to_string();
            let labels = [("shard", shard.as_str()), ("pool", p.pool.as_str())];
            text::sample(out, &family, &labels, field(&p.stats) as f64);
        }
    }
}

/// Each shard's heaviest connections of its last window, by rank (at most
/// 8 series a shard: the cardinality stays bounded however many
/// connections come and go; the `conn` and `peer` labels say which).
fn heaviest(out: &mut String, stats: &ServerStats) {
    let family = "shardloop_connection_busy_ratio";
    text::family(
        out,
        family,
        "gauge",
        "Share of its shard's time a connection's callbacks and tasks took in the last window, for each shard's heaviest connections by rank.",
    );
    let mut rank = 0;
    let mut shard = usize::MAX;
    for c in &stats.heaviest_connections {
        if c.conn.shard() != shard {
            shard = c.conn.shard();
            rank = 0;
        }
        rank += 1;
        let (shard_s, rank_s) = (shard.to_string(), rank.to_string());
        let conn = c.conn.to_string();
        let peer = c.peer.map_or_else(|| "unix".to_string(), |a| a.to_string());
        let labels = [
            ("shard", shard_s.as_str()),
            ("rank", rank_s.as_str()),
            ("conn", conn.as_str()),
            ("peer", peer.as_str()),
        ];
        text::sample(out, family, &labels, c.share());
    }
}

/// One shard's samples of a histogram family: cumulative buckets in
/// declaration order (the last is `+Inf`), then the sum and the count.
fn histogram(
    out: &mut String,
    family: &str,
    shard: usize,
    members: &[(usize, &Export)],
    v: &[u64],
) {
    let mut cumulative = 0u64;
    for &(i, e) in members {
        match (e.kind, e.label) {
            (Kind::LagBucket, Some((_, le))) => {
                cumulative += v[i];
                let _ = writeln!(
                    out,
                    "{family}_bucket{{shard=\"{shard}\",le=\"{le}\"}} {cumulative}"
                );
            }
            (Kind::LagSum, _) => {
                let _ = writeln!(out, "{family}_sum{{shard=\"{shard}\"}} {}", fmt(secs(v[i])));
            }
            (Kind::LagCount, _) => {
                let _ = writeln!(out, "{family}_count{{shard=\"{shard}\"}} {}", v[i]);
            }
            _ => {}
        }
    }
}

use text::format_value as fmt;

/// An application's own metric families, appended to `/metrics` after the
/// server's (see [`ServerBuilder::metrics_with`](crate::ServerBuilder::metrics_with)).
/// It writes complete families (`# HELP`, `# TYPE`, samples) in the text
/// format; it runs on the shard serving the scrape, so it should read
/// shared state (atomics, a short lock), not compute at length.
pub type MetricsExtra = std::sync::Arc<dyn Fn(&mut String) + Send + Sync>;

impl super::builder::ServerBuilder {
    /// Serves `/metrics` (Prometheus text format: every shard's load,
    /// connections, bytes, bus, timers, tasks, slow callbacks by kind,
    /// stalls, loop lag) on `listen` (an address, an endpoint string, or a
    /// [`Listen`](crate::endpoint::Listen) with TLS), from a listener of
    /// this server itself.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol, Server};
    /// # struct Echo;
    /// # impl Protocol for Echo { type Message = ();
    /// #     fn data_received(&mut self, c: &mut Conn<'_, Self>, d: &[u8]) { c.write(d) } }
    /// let server = Server::builder()
    ///     .listen("127.0.0.1:7000", |_| |_| Echo)
    ///     .metrics("127.0.0.1:9100")
    ///     .build()?;
    /// // curl http://127.0.0.1:9100/metrics
    /// # Ok::<(), shardloop::Error>(())
    /// ```
    pub fn metrics(self, listen: impl Into<crate::endpoint::Listen>) -> Self {
        self.listen(listen, Scrapes::new(None).server().factory())
    }

    /// Like [`metrics`](crate::ServerBuilder::metrics), with the application's own
    /// families appended after the server's on every scrape.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol, Server};
    /// # struct Echo;
    /// # impl Protocol for Echo { type Message = ();
    /// #     fn data_received(&mut self, c: &mut Conn<'_, Self>, d: &[u8]) { c.write(d) } }
    /// use std::fmt::Write;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// let jobs = Arc::new(AtomicU64::new(0));
    /// let seen = jobs.clone();
    /// let server = Server::builder()
    ///     .listen("127.0.0.1:7000", |_| |_| Echo)
    ///     .metrics_with("127.0.0.1:9100", move |out: &mut String| {
    ///         let _ = writeln!(out, "# HELP app_jobs_total Jobs done.");
    ///         let _ = writeln!(out, "# TYPE app_jobs_total counter");
    ///         let _ = writeln!(out, "app_jobs_total {}", seen.load(Ordering::Relaxed));
    ///     })
    ///     .build()?;
    /// # Ok::<(), shardloop::Error>(())
    /// ```
    pub fn metrics_with<F>(self, listen: impl Into<crate::endpoint::Listen>, extra: F) -> Self
    where
        F: Fn(&mut String) + Send + Sync + 'static,
    {
        let scrapes = Scrapes::new(Some(std::sync::Arc::new(extra)));
        self.listen(listen, scrapes.server().factory())
    }
}

mod http;
pub(crate) use http::Scrapes;

#[cfg(test)]
mod tests;
