//! Per-shard counters: plain integers on the shard's hot path, published to
//! atomics once per loop iteration so any thread reads them without locks.

use super::conn_load::ConnLoad;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How a counter appears in the Prometheus exposition (`/metrics`): each
/// counter names its family right where it is declared, so none can be
/// left out (runtime/metrics.rs renders them; a test checks every one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    /// A counter of nanoseconds, exposed in seconds.
    Seconds,
    /// A bucket of the loop-lag histogram (not cumulative here).
    LagBucket,
    /// The loop-lag histogram's count.
    LagCount,
    /// The loop-lag histogram's sum, in nanoseconds (exposed in seconds).
    LagSum,
}

/// One counter's place in the exposition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Export {
    /// The `ShardStats` field (named by the test that checks each one is
    /// exported).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) field: &'static str,
    pub(crate) kind: Kind,
    pub(crate) family: &'static str,
    /// A label telling this counter from others of its family.
    pub(crate) label: Option<(&'static str, &'static str)>,
    pub(crate) help: &'static str,
}

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident => $kind:ident $family:literal
        $({ $lk:ident = $lv:literal })? $help:literal ),* $(,)?) => {
        /// A snapshot of one shard's counters.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct ShardStats {
            /// Shard index.
            pub shard: usize,
            $( $(#[$doc])* pub $name: u64, )*
        }

        /// The shard's own, unsynchronised copy.
        #[derive(Debug, Default, Clone)]
        pub(crate) struct LocalCounters {
            $( pub(crate) $name: u64, )*
        }

        /// The published copy other threads read.
        #[derive(Default)]
        pub(crate) struct SharedCounters {
            $( $name: AtomicU64, )*
        }

        impl SharedCounters {
            pub(crate) fn publish(&self, local: &LocalCounters) {
                $( self.$name.store(local.$name, Relaxed); )*
            }

            pub(crate) fn snapshot(&self, shard: usize) -> ShardStats {
                ShardStats { shard, $( $name: self.$name.load(Relaxed), )* }
            }
        }

        impl ShardStats {
            fn add(&mut self, other: &ShardStats) {
                $( self.$name += other.$name; )*
            }

            /// Every counter's exposition, in declaration order.
            pub(crate) const EXPORTS: &'static [Export] = &[
                $( Export {
                    field: stringify!($name),
                    kind: counters!(@kind $kind),
                    family: $family,
                    label: counters!(@label $( $lk = $lv )?),
                    help: $help,
                }, )*
            ];

            /// The counters' values, in the order of [`ShardStats::EXPORTS`].
            pub(crate) fn values(&self) -> Vec<u64> {
                vec![ $( self.$name, )* ]
            }
        }
    };
    (@kind counter) => { Kind::Counter };
    (@kind gauge) => { Kind::Gauge };
    (@kind seconds) => { Kind::Seconds };
    (@kind lag_bucket) => { Kind::LagBucket };
    (@kind lag_count) => { Kind::LagCount };
    (@kind lag_sum) => { Kind::LagSum };
    (@label) => { None };
    (@label $lk:ident = $lv:literal) => { Some((stringify!($lk), $lv)) };
}

counters! {
    /// Connections currently open on the shard.
    connections_open => gauge "shardloop_connections_open" "Connections open on the shard.",
    /// Connections accepted (or connected outbound) since start.
    connections_accepted => counter "shardloop_connections_accepted_total" "Connections accepted or connected outbound.",
    /// Connections closed since start, for any reason.
    connections_closed => counter "shardloop_connections_closed_total" "Connections closed, for any reason.",
    /// Connections handed to the shard but closed at once (limit or stop).
    connections_rejected => counter "shardloop_connections_rejected_total" "Connections closed at once (limits, stop).",
    /// Connections refused because their source address had
    /// `max_connections_per_ip` open already.
    refused_per_ip_connections => counter "shardloop_connections_refused_total" { reason = "per_ip_connections" } "Connections refused by a per-source-address limit, by reason.",
    /// Connections refused because their source address connected faster
    /// than `connection_rate_per_ip`.
    refused_per_ip_rate => counter "shardloop_connections_refused_total" { reason = "per_ip_rate" } "Connections refused by a per-source-address limit, by reason.",
    /// Bytes read from sockets.
    bytes_in => counter "shardloop_bytes_received_total" "Bytes read from sockets.",
    /// Bytes written to sockets.
    bytes_out => counter "shardloop_bytes_sent_total" "Bytes written to sockets.",
    /// Bytes read from one connection and queued straight on another
    /// ([`Conn::forward_to`](crate::Conn::forward_to)).
    /// PROXY headers from peers outside the listener's trusted networks
    /// (refused, or read and ignored).
    proxy_untrusted => counter "shardloop_proxy_untrusted_total" "PROXY headers from peers outside the listener's trusted networks (refused or ignored).",
    bytes_forwarded => counter "shardloop_bytes_forwarded_total" "Bytes forwarded from one connection's input to another's output on the same shard.",
    /// Loop iterations.
    loop_iterations => counter "shardloop_shard_loop_iterations_total" "Loop iterations.",
    /// Polls that returned at least one I/O event (connections, the
    /// shard's own listeners and UDP sockets; not the bus waker).
    wakeups => counter "shardloop_shard_wakeups_total" "Polls that returned I/O events.",
    /// I/O events dispatched (one socket's readiness is one event, however
    /// many reads or datagrams it then serves).
    events => counter "shardloop_shard_events_total" "I/O events dispatched.",
    /// Bus messages received (closures, typed messages, new connections).
    bus_received => counter "shardloop_bus_messages_total" { direction = "in" } "Bus messages, by direction.",
    /// Bus messages sent to other shards.
    bus_sent => counter "shardloop_bus_messages_total" { direction = "out" } "Bus messages, by direction.",
    /// Typed messages dropped because their connection was gone (stale id)
    /// or had a different message type.
    messages_dropped => counter "shardloop_bus_messages_dropped_total" "Typed messages dropped: their connection was gone or expected another type.",
    /// Timers fired.
    timers_fired => counter "shardloop_timers_fired_total" "Timers fired.",
    /// User callbacks that panicked (each aborted its connection).
    callback_panics => counter "shardloop_callback_panics_total" "Protocol callbacks or tasks that panicked.",
    /// I/O phases (reads and `data_received`, accepts on the shard's own
    /// listeners, datagrams) that held the loop longer than the
    /// slow-callback threshold: one slow callback, or a batch that was.
    slow_callbacks => counter "shardloop_slow_callbacks_total" { kind = "read" } "Loop phases that held the loop past the slow-callback threshold, by kind.",
    /// Times a protocol was told to pause producing (output over high water).
    producer_pauses => counter "shardloop_producer_pauses_total" "Times a protocol was told to pause producing (output over high water).",
    /// Connections closed by their idle timeout.
    idle_timeouts => counter "shardloop_closes_total" { reason = "idle_timeout" } "Connections ended by a limit, by reason.",
    /// Outbound connections that could not be established.
    connect_failures => counter "shardloop_connect_failures_total" "Outbound connections that failed.",
    /// Outbound connections established.
    outbound_connected => counter "shardloop_outbound_connected_total" "Outbound connections established.",
    /// Accepted connections closed (any reason): with the acceptor's count
    /// of connections handed over, the shard's open inbound connections.
    inbound_closed => counter "shardloop_connections_closed_by_direction_total" { direction = "inbound" } "Connections closed after they were made, by direction.",
    /// Connections that moved to this shard from another (live migration).
    migrated_in => counter "shardloop_connections_migrated_total" { direction = "in" } "Connections that moved between shards, by direction.",
    /// Connections that moved from this shard to another.
    migrated_out => counter "shardloop_connections_migrated_total" { direction = "out" } "Connections that moved between shards, by direction.",
    /// Moves asked for (by the protocol or the rebalancer) that did not
    /// happen: the connection closed, got work tied to it, or its target
    /// shard was gone by then.
    migrations_refused => counter "shardloop_migrations_refused_total" "Connection moves that were asked for and did not happen.",
    /// Outbound connections closed after connecting.
    outbound_closed => counter "shardloop_connections_closed_by_direction_total" { direction = "outbound" } "Connections closed after they were made, by direction.",
    /// Writes refused because the connection's output was already shut
    /// (after FIN, or during `connection_lost`); their bytes were dropped.
    writes_refused => counter "shardloop_writes_refused_total" "Writes refused after the output was shut.",
    /// Connections aborted because a write came while the peer left more
    /// than `max_output_buffer` unread.
    output_overflows => counter "shardloop_closes_total" { reason = "output_overflow" } "Connections ended by a limit, by reason.",
    /// Times the shard stopped reading a connection because its output was
    /// above the high-water mark.
    backpressure_pauses => counter "shardloop_backpressure_pauses_total" "Times reading paused because output was above high water.",
    /// Graceful closes aborted because they did not flush within `close_timeout`.
    close_timeouts => counter "shardloop_closes_total" { reason = "close_timeout" } "Connections ended by a limit, by reason.",
    /// Connections closed by their protocol's read deadline.
    read_timeouts => counter "shardloop_closes_total" { reason = "read_timeout" } "Connections ended by a limit, by reason.",
    /// TLS handshakes completed (accepted, connected, or `start_tls`).
    tls_handshakes => counter "shardloop_tls_handshakes_total" { outcome = "ok" } "TLS handshakes, by outcome.",
    /// TLS handshakes that failed (refused, bad input, peer left).
    tls_handshake_failures => counter "shardloop_tls_handshakes_total" { outcome = "failed" } "TLS handshakes, by outcome.",
    /// TLS handshakes that did not finish within `tls_handshake_timeout`.
    tls_handshake_timeouts => counter "shardloop_tls_handshakes_total" { outcome = "timeout" } "TLS handshakes, by outcome.",
    /// TLS connections that failed after the handshake (bad record,
    /// fatal alert, or no `close_notify` before EOF).
    tls_errors => counter "shardloop_tls_errors_total" "TLS connections that failed after the handshake.",
    /// UDP datagrams received.
    udp_datagrams_in => counter "shardloop_udp_datagrams_total" { direction = "in" } "UDP datagrams, by direction.",
    /// UDP datagrams sent.
    udp_datagrams_out => counter "shardloop_udp_datagrams_total" { direction = "out" } "UDP datagrams, by direction.",
    /// UDP datagrams dropped before sending (queue full, socket closed or unconnected).
    udp_send_drops => counter "shardloop_udp_problems_total" { kind = "send_drop" } "UDP datagrams dropped before sending, and UDP errors.",
    /// UDP errors: truncated (oversized) datagrams, ICMP errors, failed sends.
    udp_errors => counter "shardloop_udp_problems_total" { kind = "error" } "UDP datagrams dropped before sending, and UDP errors.",
    /// PROXY protocol headers read (the real client's address taken).
    proxy_headers => counter "shardloop_proxy_headers_total" { outcome = "ok" } "PROXY protocol headers, by outcome.",
    /// Connections closed for a missing, malformed or late PROXY header.
    proxy_header_errors => counter "shardloop_proxy_headers_total" { outcome = "refused" } "PROXY protocol headers, by outcome.",
    /// Tasks spawned on the shard's executor.
    tasks_spawned => counter "shardloop_tasks_spawned_total" "Tasks spawned on the shard's executor.",
    /// Task polls.
    task_polls => counter "shardloop_task_polls_total" "Task polls.",
    /// Tasks dropped unfinished because their connection ended.
    tasks_cancelled => counter "shardloop_tasks_cancelled_total" "Tasks dropped unfinished because their connection ended.",
    /// Nanoseconds the shard spent working (from waking up to polling again).
    busy_ns => seconds "shardloop_shard_busy_seconds_total" "Time the shard's loop spent working.",
    /// Nanoseconds the shard spent waiting in its poll.
    idle_ns => seconds "shardloop_shard_idle_seconds_total" "Time the shard's loop spent waiting in poll.",
    /// The shard thread's CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`,
    /// read every 10 ms): against `busy_ns`, a preempted or throttled shard
    /// shows busy time above its CPU time.
    cpu_ns => seconds "shardloop_shard_cpu_seconds_total" "CPU time of the shard's thread.",
    /// Timer batches by how late they fired (from the earliest deadline in
    /// the batch, on the tick grid, to the start of the loop's timer
    /// phase): at most 100 µs. A loop that oversleeps and a loop too busy
    /// to sleep both show here.
    loop_lag_le_100us => lag_bucket "shardloop_loop_lag_seconds" { le = "0.0001" } "How late the loop woke up for a timer.",
    /// ... at most 1 ms (and over 100 µs).
    loop_lag_le_1ms => lag_bucket "shardloop_loop_lag_seconds" { le = "0.001" } "How late the loop woke up for a timer.",
    /// ... at most 10 ms.
    loop_lag_le_10ms => lag_bucket "shardloop_loop_lag_seconds" { le = "0.01" } "How late the loop woke up for a timer.",
    /// ... at most 100 ms.
    loop_lag_le_100ms => lag_bucket "shardloop_loop_lag_seconds" { le = "0.1" } "How late the loop woke up for a timer.",
    /// ... over 100 ms.
    loop_lag_over_100ms => lag_bucket "shardloop_loop_lag_seconds" { le = "+Inf" } "How late the loop woke up for a timer.",
    /// Timer batches fired (each measured for lateness).
    loop_lag_count => lag_count "shardloop_loop_lag_seconds" "How late the loop woke up for a timer.",
    /// Total lateness of those batches, in nanoseconds.
    loop_lag_sum_ns => lag_sum "shardloop_loop_lag_seconds" "How late the loop woke up for a timer.",
    /// Requests (closures, typed messages) waiting in the inbox when the
    /// shard last drained it (a gauge; at most `LoopOptions::inbox_capacity`).
    inbox_depth => gauge "shardloop_inbox_depth" "Bus requests waiting when the inbox was last drained.",
    /// Requests refused because this shard's inbox was full (the senders
    /// got `Error::Overloaded`).
    bus_rejected => counter "shardloop_bus_messages_rejected_total" "Bus requests refused because this shard's inbox was full.",
    /// Nanoseconds this shard's inbox spent full: from the first refusal to
    /// the drain that made room, a spell still going counted up to the read.
    inbox_full_ns => seconds "shardloop_inbox_full_seconds_total" "Time this shard's inbox spent full (refusing requests).",
    /// Tasks ready to run at the end of the last iteration (a gauge).
    tasks_ready => gauge "shardloop_tasks_ready" "Tasks ready to run at the end of the last iteration.",
    /// Output bytes buffered in the shard's connections, sampled (a gauge).
    output_buffered => gauge "shardloop_output_buffered_bytes" "Output bytes queued in the shard's connections (sampled).",
    /// Timer phases that held the loop longer than the slow-callback threshold.
    slow_timers => counter "shardloop_slow_callbacks_total" { kind = "timer" } "Loop phases that held the loop past the slow-callback threshold, by kind.",
    /// Inbox phases (messages, closures, new connections) that did.
    slow_messages => counter "shardloop_slow_callbacks_total" { kind = "message" } "Loop phases that held the loop past the slow-callback threshold, by kind.",
    /// Task phases that did.
    slow_tasks => counter "shardloop_slow_callbacks_total" { kind = "task" } "Loop phases that held the loop past the slow-callback threshold, by kind.",
    /// Flush phases (writes, TLS encryption, `resume_producing`,
    /// `notify_flushed`) that did.
    slow_flushes => counter "shardloop_slow_callbacks_total" { kind = "flush" } "Loop phases that held the loop past the slow-callback threshold, by kind.",
    /// Stalls the watchdog saw on this shard while they happened.
    stalls => counter "shardloop_stalls_total" "Stalls the watchdog saw while they happened.",
}

impl ShardStats {
    /// Mean I/O events per wake-up: low values under load mean the shard
    /// spends its time in syscalls rather than in batches of work.
    pub fn events_per_wake(&self) -> f64 {
        if self.wakeups == 0 {
            0.0
        } else {
            self.events as f64 / self.wakeups as f64
        }
    }
}

/// Counters of every shard, read through [`Handle::stats`](crate::Handle::stats).
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    /// One entry per shard, in shard order.
    pub shards: Vec<ShardStats>,
    /// Connections the acceptor closed at once because the global limit was reached.
    pub rejected_by_acceptor: u64,
    /// Times the acceptor stopped accepting because every shard was
    /// saturated (`ServerBuilder::admission`).
    pub admission_pauses: u64,
    /// Nanoseconds it spent paused.
    pub admission_paused_ns: u64,
    /// Shards whose thread died (see [`Handle::shard_deaths`](crate::Handle::shard_deaths)).
    pub dead_shards: Vec<usize>,
    /// Each shard's heaviest connections (at most 8 a shard), by the time
    /// their callbacks and tasks held the shard in its last accounting
    /// window of about a second; shard by shard, heaviest first.
    pub heaviest_connections: Vec<ConnLoad>,
    /// Each shard's connection pools by name, live; shard by shard,
    /// names in order.
    pub pools: Vec<super::PoolSample>,
}

impl ServerStats {
    /// How uneven the shards' load has been since start: the busiest
    /// shard's utilisation (busy / (busy + idle)) over the mean. 1.0 is
    /// perfectly even; `None` before any shard has measured anything.
    pub fn busy_imbalance(&self) -> Option<f64> {
        let utils: Vec<f64> = self
            .shards
            .iter()
            .filter(|s| s.busy_ns + s.idle_ns > 0)
            .map(|s| s.busy_ns as f64 / (s.busy_ns + s.idle_ns) as f64)
            .collect();
        let mean = utils.iter().sum::<f64>() / utils.len().max(1) as f64;
        let max = utils.iter().copied().fold(0.0, f64::max);
        (mean > 0.0).then(|| max / mean)
    }

    /// Sum over all shards (the `shard` field is the shard count).
    pub fn total(&self) -> ShardStats {
        let mut t = ShardStats {
            shard: self.shards.len(),
            ..ShardStats::default()
        };
        for s in &self.shards {
            t.add(s);
        }
        t
    }
}

/// The shared counters of all shards, one cache line apart.
pub(crate) struct StatsBoard {
    pub(crate) shards: Box<[CachePadded<SharedCounters>]>,
    pub(crate) rejected_by_acceptor: AtomicU64,
    /// Times the acceptor paused for admission, and the time paused.
    pub(crate) admission_pauses: AtomicU64,
    pub(crate) admission_paused_ns: AtomicU64,
    /// Each shard's heaviest connections of its last accounting window
    /// (written once a second by the shard).
    pub(crate) heaviest: Box<[std::sync::Mutex<Vec<ConnLoad>>]>,
    /// Each shard's pools' live figures (registered as they are made).
    pub(crate) pools: Box<[std::sync::Mutex<Vec<std::sync::Weak<super::PoolCounters>>>]>,
}

impl StatsBoard {
    pub(crate) fn new(shards: usize) -> Self {
        StatsBoard {
            shards: (0..shards).map(|_| CachePadded::default()).collect(),
            rejected_by_acceptor: AtomicU64::new(0),
            admission_pauses: AtomicU64::new(0),
            admission_paused_ns: AtomicU64::new(0),
            heaviest: (0..shards).map(|_| Default::default()).collect(),
            pools: (0..shards).map(|_| Default::default()).collect(),
        }
    }

    pub(crate) fn snapshot(&self) -> ServerStats {
        ServerStats {
            shards: self
                .shards
                .iter()
                .enumerate()
                .map(|(i, s)| s.snapshot(i))
                .collect(),
            rejected_by_acceptor: self.rejected_by_acceptor.load(Relaxed),
            admission_pauses: self.admission_pauses.load(Relaxed),
            admission_paused_ns: self.admission_paused_ns.load(Relaxed),
            dead_shards: Vec::new(),
            heaviest_connections: self
                .heaviest
                .iter()
                .flat_map(|h| h.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .collect(),
            pools: self
                .pools
                .iter()
                .enumerate()
                .flat_map(|(shard, p)| {
                    let mut pools = p.lock().unwrap_or_else(|e| e.into_inner());
                    super::pool_stats::samples(shard, &mut pools)
                })
                .collect(),
        }
    }

    /// A shard's busy and idle nanoseconds, its inbox depth and ready
    /// tasks, as last published (for the acceptor's load tracker).
    pub(crate) fn load_of(&self, shard: usize) -> (u64, u64, u64, u64) {
        let s = &self.shards[shard];
        (
            s.busy_ns.load(Relaxed),
            s.idle_ns.load(Relaxed),
            s.inbox_depth.load(Relaxed),
            s.tasks_ready.load(Relaxed),
        )
    }

    /// Accepted connections a shard closed, rejected or sent to another
    /// shard, and those it received from other shards, as last published
    /// (used by balancing: outbound connections are not the acceptor's,
    /// and never move).
    pub(crate) fn gone_and_arrived(&self, shard: usize) -> (u64, u64) {
        let s = &self.shards[shard];
        let gone = s.inbound_closed.load(Relaxed)
            + s.connections_rejected.load(Relaxed)
            + s.migrated_out.load(Relaxed);
        (gone, s.migrated_in.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_snapshot_and_total() {
        let board = StatsBoard::new(2);
        let mut a = LocalCounters {
            events: 10,
            wakeups: 4,
            connections_closed: 3,
            inbound_closed: 2,
            ..LocalCounters::default()
        };
        board.shards[0].publish(&a);
        a.events = 1;
        a.wakeups = 1;
        board.shards[1].publish(&a);
        let s = board.snapshot();
        assert_eq!(s.shards[0].events, 10);
        assert_eq!(s.shards[0].events_per_wake(), 2.5);
        assert_eq!(s.total().events, 11);
        assert_eq!(s.total().connections_closed, 6);
        assert_eq!(board.gone_and_arrived(1), (2, 0), "inbound closes only");
    }

    #[test]
    fn busy_imbalance_is_max_over_mean_utilisation() {
        let shard = |busy, idle| ShardStats {
            busy_ns: busy,
            idle_ns: idle,
            ..ShardStats::default()
        };
        let s = ServerStats {
            shards: vec![shard(60, 40), shard(20, 80)],
            ..ServerStats::default()
        };
        assert!(
            (s.busy_imbalance().unwrap() - 1.5).abs() < 1e-9,
            "0.6 / mean 0.4"
        );
        assert_eq!(ServerStats::default().busy_imbalance(), None);
    }
}
