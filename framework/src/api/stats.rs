//! Per-shard counters: plain integers on the shard's hot path, published to
//! atomics once per loop iteration so any thread reads them without locks.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
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
        }
    };
}

counters! {
    /// Connections currently open on the shard.
    connections_open,
    /// Connections accepted (or connected outbound) since start.
    connections_accepted,
    /// Connections closed since start, for any reason.
    connections_closed,
    /// Connections handed to the shard but closed at once (limit or stop).
    connections_rejected,
    /// Bytes read from sockets.
    bytes_in,
    /// Bytes written to sockets.
    bytes_out,
    /// Loop iterations.
    loop_iterations,
    /// Polls that returned at least one I/O event.
    wakeups,
    /// I/O events dispatched.
    events,
    /// Bus messages received (closures, typed messages, new connections).
    bus_received,
    /// Bus messages sent to other shards.
    bus_sent,
    /// Typed messages dropped because their connection was gone (stale id)
    /// or had a different message type.
    messages_dropped,
    /// Timers fired.
    timers_fired,
    /// User callbacks that panicked (each aborted its connection).
    callback_panics,
    /// Callbacks that held the loop longer than the slow-callback threshold.
    slow_callbacks,
    /// Times a protocol was told to pause producing (output over high water).
    producer_pauses,
    /// Connections closed by their idle timeout.
    idle_timeouts,
    /// Outbound connections that could not be established.
    connect_failures,
    /// Outbound connections established.
    outbound_connected,
    /// Accepted connections closed (any reason): with the acceptor's count
    /// of connections handed over, the shard's open inbound connections.
    inbound_closed,
    /// Outbound connections closed after connecting.
    outbound_closed,
    /// Writes refused because the connection's output was already shut
    /// (after FIN, or during `connection_lost`); their bytes were dropped.
    writes_refused,
    /// Connections aborted because a write would exceed `max_output_buffer`.
    output_overflows,
    /// Times the shard stopped reading a connection because its output was
    /// above the high-water mark.
    backpressure_pauses,
    /// Graceful closes aborted because they did not flush within `close_timeout`.
    close_timeouts,
    /// Connections closed by their protocol's read deadline.
    read_timeouts,
    /// TLS handshakes completed (accepted, connected, or `start_tls`).
    tls_handshakes,
    /// TLS handshakes that failed (refused, bad input, peer left).
    tls_handshake_failures,
    /// TLS handshakes that did not finish within `tls_handshake_timeout`.
    tls_handshake_timeouts,
    /// TLS connections that failed after the handshake (bad record,
    /// fatal alert, or no `close_notify` before EOF).
    tls_errors,
    /// UDP datagrams received.
    udp_datagrams_in,
    /// UDP datagrams sent.
    udp_datagrams_out,
    /// UDP datagrams dropped before sending (queue full, socket closed or unconnected).
    udp_send_drops,
    /// UDP errors: truncated (oversized) datagrams, ICMP errors, failed sends.
    udp_errors,
    /// PROXY protocol headers read (the real client's address taken).
    proxy_headers,
    /// Connections closed for a missing, malformed or late PROXY header.
    proxy_header_errors,
    /// Tasks spawned on the shard's executor.
    tasks_spawned,
    /// Task polls.
    task_polls,
    /// Tasks dropped unfinished because their connection ended.
    tasks_cancelled,
    /// Nanoseconds the shard spent working (from waking up to polling again).
    busy_ns,
    /// Nanoseconds the shard spent waiting in its poll.
    idle_ns,
    /// Timer batches that fired late, by how late: at most 100 µs.
    loop_lag_le_100us,
    /// ... at most 1 ms (and over 100 µs).
    loop_lag_le_1ms,
    /// ... at most 10 ms.
    loop_lag_le_10ms,
    /// ... at most 100 ms.
    loop_lag_le_100ms,
    /// ... over 100 ms.
    loop_lag_over_100ms,
    /// Timer batches measured for lateness.
    loop_lag_count,
    /// Total lateness of those batches, in nanoseconds.
    loop_lag_sum_ns,
    /// Inbox messages waiting when the shard last drained it (a gauge).
    inbox_depth,
    /// Tasks ready to run at the end of the last iteration (a gauge).
    tasks_ready,
    /// Output bytes buffered in the shard's connections, sampled (a gauge).
    output_buffered,
    /// Timer phases that held the loop longer than the slow-callback threshold.
    slow_timers,
    /// Inbox phases (messages, closures, new connections) that did.
    slow_messages,
    /// Task phases that did.
    slow_tasks,
    /// Stalls the watchdog saw on this shard while they happened.
    stalls,
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
    /// Shards whose thread died (see [`Handle::shard_deaths`](crate::Handle::shard_deaths)).
    pub dead_shards: Vec<usize>,
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
}

impl StatsBoard {
    pub(crate) fn new(shards: usize) -> Self {
        StatsBoard {
            shards: (0..shards).map(|_| CachePadded::default()).collect(),
            rejected_by_acceptor: AtomicU64::new(0),
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
            dead_shards: Vec::new(),
        }
    }

    /// Accepted connections a shard closed or rejected, as last published
    /// (used by balancing: outbound connections are not the acceptor's).
    pub(crate) fn gone(&self, shard: usize) -> u64 {
        let s = &self.shards[shard];
        s.inbound_closed.load(Relaxed) + s.connections_rejected.load(Relaxed)
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
        assert_eq!(board.gone(1), 2, "inbound closes only");
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
