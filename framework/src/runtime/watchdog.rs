//! The stall detector: each shard marks which phase of its loop it is in
//! and since when (relaxed stores of values it has anyway); a watchdog
//! thread notices a shard that has not come back to its poll within
//! `Settings::stall_threshold` *while it is stuck*, and reports which
//! shard, which phase and which connection's callback is running.

use super::server::ServerInner;
use crate::sync::marks::{unpack, LoopPhase};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A loop that did not come back to its poll in time, seen while it was stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StallReport {
    /// The shard.
    pub shard: usize,
    /// What it was doing when seen (the loop may have spent part of
    /// `stuck_for` in earlier phases of the same iteration).
    pub phase: LoopPhase,
    /// The connection whose callback was running, as `shard:slot#generation`
    /// (generation modulo 2^24), if one was.
    pub conn: Option<String>,
    /// How long it had been out of its poll when seen.
    pub stuck_for: Duration,
}

/// Reports kept for `Handle::stalls` (the oldest are dropped).
const KEPT: usize = 64;

/// The watchdog thread's loop; ends when the server stops.
pub(crate) fn watch(inner: Arc<ServerInner>) {
    let shards = inner.shared.activity.len();
    let mut reported_seq = vec![u64::MAX; shards];
    loop {
        let threshold = inner.shared.settings.load().stall_threshold;
        std::thread::sleep(
            (threshold / 4).clamp(Duration::from_millis(2), Duration::from_millis(250)),
        );
        if inner
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let now = inner.shared.nanos_since_epoch(Instant::now());
        for (i, a) in inner.shared.activity.iter().enumerate() {
            let phase = LoopPhase::from_u8(a.phase.load(Acquire));
            if matches!(phase, LoopPhase::Polling | LoopPhase::Stopped) {
                continue;
            }
            let seq = a.seq.load(Relaxed);
            // Since the loop left its poll, whichever phase it is in now.
            let stuck = Duration::from_nanos(now.saturating_sub(a.awake_since_ns.load(Relaxed)));
            if stuck < threshold || reported_seq[i] == seq {
                continue;
            }
            reported_seq[i] = seq;
            a.stalls.fetch_add(1, Relaxed);
            let conn = unpack(a.conn.load(Relaxed)).map(|(s, slot, g)| format!("{s}:{slot}#{g}"));
            tracing::warn!(
                shard = i,
                phase = phase.name(),
                conn = conn.as_deref().unwrap_or("-"),
                stuck_ms = stuck.as_millis() as u64,
                "shard stalled: its loop has not polled for longer than the stall threshold \
                 (a blocking callback delays every connection on this shard)"
            );
            let mut log = inner.stall_log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == KEPT {
                log.pop_front();
            }
            log.push_back(StallReport {
                shard: i,
                phase,
                conn,
                stuck_for: stuck,
            });
        }
    }
}

/// The kept reports, oldest first.
pub(crate) fn reports(log: &std::sync::Mutex<VecDeque<StallReport>>) -> Vec<StallReport> {
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}
