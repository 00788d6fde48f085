//! Prometheus exposition of every shard's figures, served by a shardloop
//! listener of the server itself (`ServerBuilder::metrics`): text format
//! 0.0.4, `shardloop_` prefix, a `shard` label.

use crate::api::{ServerStats, ShardStats};
use crate::reactor::{Conn, Protocol};
use std::fmt::Write;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// (extra label, value) for each shard.
    value: fn(&ShardStats) -> Vec<(&'static str, f64)>,
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

macro_rules! one {
    ($f:ident) => {
        |s: &ShardStats| vec![("", s.$f as f64)]
    };
}

const FAMILIES: &[Family] = &[
    Family {
        name: "shardloop_shard_busy_seconds_total",
        kind: "counter",
        help: "Time the shard's loop spent working.",
        value: |s| vec![("", secs(s.busy_ns))],
    },
    Family {
        name: "shardloop_shard_idle_seconds_total",
        kind: "counter",
        help: "Time the shard's loop spent waiting in poll.",
        value: |s| vec![("", secs(s.idle_ns))],
    },
    Family {
        name: "shardloop_shard_loop_iterations_total",
        kind: "counter",
        help: "Loop iterations.",
        value: one!(loop_iterations),
    },
    Family {
        name: "shardloop_shard_wakeups_total",
        kind: "counter",
        help: "Polls that returned I/O events.",
        value: one!(wakeups),
    },
    Family {
        name: "shardloop_shard_events_total",
        kind: "counter",
        help: "I/O events dispatched.",
        value: one!(events),
    },
    Family {
        name: "shardloop_connections_open",
        kind: "gauge",
        help: "Connections open on the shard.",
        value: one!(connections_open),
    },
    Family {
        name: "shardloop_connections_accepted_total",
        kind: "counter",
        help: "Connections accepted or connected outbound.",
        value: one!(connections_accepted),
    },
    Family {
        name: "shardloop_connections_closed_total",
        kind: "counter",
        help: "Connections closed, for any reason.",
        value: one!(connections_closed),
    },
    Family {
        name: "shardloop_connections_rejected_total",
        kind: "counter",
        help: "Connections closed at once (limits, stop).",
        value: one!(connections_rejected),
    },
    Family {
        name: "shardloop_bytes_received_total",
        kind: "counter",
        help: "Bytes read from sockets.",
        value: one!(bytes_in),
    },
    Family {
        name: "shardloop_bytes_sent_total",
        kind: "counter",
        help: "Bytes written to sockets.",
        value: one!(bytes_out),
    },
    Family {
        name: "shardloop_output_buffered_bytes",
        kind: "gauge",
        help: "Output bytes queued in the shard's connections (sampled).",
        value: one!(output_buffered),
    },
    Family {
        name: "shardloop_bus_messages_total",
        kind: "counter",
        help: "Bus messages, by direction.",
        value: |s| {
            vec![
                ("direction=\"in\"", s.bus_received as f64),
                ("direction=\"out\"", s.bus_sent as f64),
            ]
        },
    },
    Family {
        name: "shardloop_inbox_depth",
        kind: "gauge",
        help: "Bus messages waiting when the inbox was last drained.",
        value: one!(inbox_depth),
    },
    Family {
        name: "shardloop_timers_fired_total",
        kind: "counter",
        help: "Timers fired.",
        value: one!(timers_fired),
    },
    Family {
        name: "shardloop_tasks_spawned_total",
        kind: "counter",
        help: "Tasks spawned on the shard's executor.",
        value: one!(tasks_spawned),
    },
    Family {
        name: "shardloop_task_polls_total",
        kind: "counter",
        help: "Task polls.",
        value: one!(task_polls),
    },
    Family {
        name: "shardloop_tasks_ready",
        kind: "gauge",
        help: "Tasks ready to run at the end of the last iteration.",
        value: one!(tasks_ready),
    },
    Family {
        name: "shardloop_slow_callbacks_total",
        kind: "counter",
        help: "Loop phases that held the loop past the slow-callback threshold, by kind.",
        value: |s| {
            vec![
                ("kind=\"read\"", s.slow_callbacks as f64),
                ("kind=\"timer\"", s.slow_timers as f64),
                ("kind=\"message\"", s.slow_messages as f64),
                ("kind=\"task\"", s.slow_tasks as f64),
            ]
        },
    },
    Family {
        name: "shardloop_stalls_total",
        kind: "counter",
        help: "Stalls the watchdog saw while they happened.",
        value: one!(stalls),
    },
    Family {
        name: "shardloop_callback_panics_total",
        kind: "counter",
        help: "Protocol callbacks or tasks that panicked.",
        value: one!(callback_panics),
    },
    Family {
        name: "shardloop_closes_total",
        kind: "counter",
        help: "Connections ended by a limit, by reason.",
        value: |s| {
            vec![
                ("reason=\"idle_timeout\"", s.idle_timeouts as f64),
                ("reason=\"read_timeout\"", s.read_timeouts as f64),
                ("reason=\"close_timeout\"", s.close_timeouts as f64),
                ("reason=\"output_overflow\"", s.output_overflows as f64),
            ]
        },
    },
    Family {
        name: "shardloop_writes_refused_total",
        kind: "counter",
        help: "Writes refused after the output was shut.",
        value: one!(writes_refused),
    },
    Family {
        name: "shardloop_backpressure_pauses_total",
        kind: "counter",
        help: "Times reading paused because output was above high water.",
        value: one!(backpressure_pauses),
    },
    Family {
        name: "shardloop_tls_handshakes_total",
        kind: "counter",
        help: "TLS handshakes, by outcome.",
        value: |s| {
            vec![
                ("outcome=\"ok\"", s.tls_handshakes as f64),
                ("outcome=\"failed\"", s.tls_handshake_failures as f64),
                ("outcome=\"timeout\"", s.tls_handshake_timeouts as f64),
            ]
        },
    },
    Family {
        name: "shardloop_udp_datagrams_total",
        kind: "counter",
        help: "UDP datagrams, by direction.",
        value: |s| {
            vec![
                ("direction=\"in\"", s.udp_datagrams_in as f64),
                ("direction=\"out\"", s.udp_datagrams_out as f64),
            ]
        },
    },
    Family {
        name: "shardloop_udp_problems_total",
        kind: "counter",
        help: "UDP datagrams dropped before sending, and UDP errors.",
        value: |s| {
            vec![
                ("kind=\"send_drop\"", s.udp_send_drops as f64),
                ("kind=\"error\"", s.udp_errors as f64),
            ]
        },
    },
    Family {
        name: "shardloop_proxy_headers_total",
        kind: "counter",
        help: "PROXY protocol headers, by outcome.",
        value: |s| {
            vec![
                ("outcome=\"ok\"", s.proxy_headers as f64),
                ("outcome=\"refused\"", s.proxy_header_errors as f64),
            ]
        },
    },
    Family {
        name: "shardloop_tls_errors_total",
        kind: "counter",
        help: "TLS connections that failed after the handshake.",
        value: one!(tls_errors),
    },
    Family {
        name: "shardloop_connect_failures_total",
        kind: "counter",
        help: "Outbound connections that failed.",
        value: one!(connect_failures),
    },
];

/// The loop-lag histogram's bucket bounds, in seconds.
const LAG_BUCKETS: [&str; 4] = ["0.0001", "0.001", "0.01", "0.1"];

/// Renders `stats` in the Prometheus text format.
pub fn render(stats: &ServerStats) -> String {
    let mut out = String::with_capacity(16 * 1024);
    for f in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for s in &stats.shards {
            for (label, v) in (f.value)(s) {
                let sep = if label.is_empty() { "" } else { "," };
                let _ = writeln!(
                    out,
                    "{}{{shard=\"{}\"{sep}{label}}} {}",
                    f.name,
                    s.shard,
                    fmt(v)
                );
            }
        }
    }
    let name = "shardloop_loop_lag_seconds";
    let _ = writeln!(out, "# HELP {name} How late the loop woke up for a timer.");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for s in &stats.shards {
        let counts = [
            s.loop_lag_le_100us,
            s.loop_lag_le_1ms,
            s.loop_lag_le_10ms,
            s.loop_lag_le_100ms,
        ];
        let mut cumulative = 0;
        for (le, c) in LAG_BUCKETS.iter().zip(counts) {
            cumulative += c;
            let _ = writeln!(
                out,
                "{name}_bucket{{shard=\"{}\",le=\"{le}\"}} {cumulative}",
                s.shard
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{shard=\"{}\",le=\"+Inf\"}} {}",
            s.shard, s.loop_lag_count
        );
        let _ = writeln!(
            out,
            "{name}_sum{{shard=\"{}\"}} {}",
            s.shard,
            fmt(secs(s.loop_lag_sum_ns))
        );
        let _ = writeln!(
            out,
            "{name}_count{{shard=\"{}\"}} {}",
            s.shard, s.loop_lag_count
        );
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
    out
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

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
        self.listen(listen, |_shard| |_peer| MetricsHttp::new(None))
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
        let extra: MetricsExtra = std::sync::Arc::new(extra);
        self.listen(listen, move |_shard| {
            let extra = extra.clone();
            move |_peer| MetricsHttp::new(Some(extra.clone()))
        })
    }
}

/// The HTTP side of the metrics listener: `GET /metrics`, keep-alive.
pub(crate) struct MetricsHttp {
    buf: Vec<u8>,
    extra: Option<MetricsExtra>,
}

impl MetricsHttp {
    pub(crate) fn new(extra: Option<MetricsExtra>) -> Self {
        MetricsHttp {
            buf: Vec::new(),
            extra,
        }
    }

    fn body(&self, conn: &mut Conn<'_, Self>) -> String {
        let mut body = render(&conn.shard().handle().stats());
        if let Some(extra) = &self.extra {
            extra(&mut body);
        }
        body
    }
}

impl Protocol for MetricsHttp {
    type Message = ();

    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let n = match req.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if self.buf.len() <= 16 * 1024 => return,
                _ => {
                    conn.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    conn.close();
                    return;
                }
            };
            let close = req.version == Some(0)
                || req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                });
            let (status, ctype, body) = match (req.method, req.path) {
                (Some("GET"), Some(p)) if p == "/metrics" || p.starts_with("/metrics?") => {
                    ("200 OK", CONTENT_TYPE, self.body(conn))
                }
                _ => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
            };
            self.buf.drain(..n);
            conn.write(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
                    body.len(),
                    if close { "Connection: close\r\n" } else { "" }
                )
                .as_bytes(),
            );
            conn.write_owned(body.into_bytes());
            if close {
                conn.close();
                return;
            }
        }
    }
}
