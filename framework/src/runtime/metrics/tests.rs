//! Every counter reaches `/metrics`, in a well-formed exposition.

use super::*;

/// A shard whose counters all differ (field k holds 1000 + k), so a
/// sample can only show up if its own counter put it there.
fn distinct(shard: usize) -> ShardStats {
    let mut s = ShardStats {
        shard,
        ..ShardStats::default()
    };
    let mut k = 0u64;
    // Through the public fields, in declaration order.
    macro_rules! set {
        ($($f:ident),*) => { $( k += 1; s.$f = 1000 + k; )* };
    }
    set!(
        connections_open,
        connections_accepted,
        connections_closed,
        connections_rejected,
        refused_per_ip_connections,
        refused_per_ip_rate,
        bytes_in,
        bytes_out,
        proxy_untrusted,
        bytes_forwarded,
        loop_iterations,
        wakeups,
        events,
        bus_received,
        bus_sent,
        messages_dropped,
        timers_fired,
        callback_panics,
        slow_callbacks,
        producer_pauses,
        idle_timeouts,
        connect_failures,
        outbound_connected,
        inbound_closed,
        migrated_in,
        migrated_out,
        migrations_refused,
        outbound_closed,
        writes_refused,
        output_overflows,
        backpressure_pauses,
        close_timeouts,
        read_timeouts,
        tls_handshakes,
        tls_handshake_failures,
        tls_handshake_timeouts,
        tls_errors,
        udp_datagrams_in,
        udp_datagrams_out,
        udp_send_drops,
        udp_errors,
        proxy_headers,
        proxy_header_errors,
        tasks_spawned,
        task_polls,
        tasks_cancelled,
        busy_ns,
        idle_ns,
        cpu_ns,
        loop_lag_le_100us,
        loop_lag_le_1ms,
        loop_lag_le_10ms,
        loop_lag_le_100ms,
        loop_lag_over_100ms,
        loop_lag_count,
        loop_lag_sum_ns,
        inbox_depth,
        bus_rejected,
        inbox_full_ns,
        tasks_ready,
        output_buffered,
        slow_timers,
        slow_messages,
        slow_tasks,
        slow_flushes,
        stalls
    );
    assert_eq!(
        k as usize,
        ShardStats::EXPORTS.len(),
        "a counter was added: list it here too"
    );
    s
}

#[test]
fn every_shard_counter_is_exported() {
    let stats = ServerStats {
        shards: vec![distinct(0), distinct(1)],
        ..ServerStats::default()
    };
    let text = render(&stats);
    let values = stats.shards[1].values();
    let mut lag_cumulative = 0;
    for (e, v) in ShardStats::EXPORTS.iter().zip(values) {
        let shard = "shard=\"1\"";
        let label = e
            .label
            .map(|(k, v)| format!(",{k}=\"{v}\""))
            .unwrap_or_default();
        let line = match e.kind {
            Kind::Counter | Kind::Gauge => format!("{}{{{shard}{label}}} {v}", e.family),
            Kind::Seconds => format!("{}{{{shard}{label}}} {}", e.family, v as f64 / 1e9),
            Kind::LagBucket => {
                lag_cumulative += v;
                format!("{}_bucket{{{shard}{label}}} {lag_cumulative}", e.family)
            }
            Kind::LagCount => format!("{}_count{{{shard}}} {v}", e.family),
            Kind::LagSum => format!("{}_sum{{{shard}}} {}", e.family, v as f64 / 1e9),
        };
        assert!(
            text.lines().any(|l| l == line),
            "ShardStats::{} is not in /metrics as `{line}`:\n{text}",
            e.field
        );
    }
    let dropped = stats.shards[0].messages_dropped;
    assert!(text.contains(&format!(
        "shardloop_bus_messages_dropped_total{{shard=\"0\"}} {dropped}"
    )));
    shardloop_exposition_is_well_formed(&text);
}

/// Each family once, HELP and TYPE before its samples, unique series.
fn shardloop_exposition_is_well_formed(text: &str) {
    let mut typed = std::collections::HashSet::new();
    let mut series = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(typed.insert(name.to_string()), "{name} typed twice");
        } else if !line.starts_with('#') {
            let (name_labels, _) = line.rsplit_once(' ').unwrap();
            let name = name_labels.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "sample before its TYPE: {line}");
            assert!(
                series.insert(name_labels.to_string()),
                "duplicate series {line}"
            );
        }
    }
}
