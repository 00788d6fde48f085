//! The stall detector: each shard marks which phase of its loop it is in
//! and since when (relaxed stores of values it has anyway); a watchdog
//! thread notices a shard that has not come back to its poll within
//! `Settings::stall_threshold` *while it is stuck*, and reports which
//! shard, which phase and which connection's callback is running.

use super::server::ServerInner;
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a shard is doing, as the watchdog sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoopPhase {
    /// Waiting in its poll (idle, not stuck).
    Polling,
    /// Reading and running `data_received` and friends.
    Io,
    /// Running bus messages, closures and new connections.
    Inbox,
    /// Running timer callbacks.
    Timers,
    /// Polling tasks.
    Tasks,
    /// Flushing output (and `resume_producing`).
    Flush,
    /// Gone (stopped or died).
    Stopped,
}

impl LoopPhase {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => LoopPhase::Io,
            2 => LoopPhase::Inbox,
            3 => LoopPhase::Timers,
            4 => LoopPhase::Tasks,
            5 => LoopPhase::Flush,
            6 => LoopPhase::Stopped,
            _ => LoopPhase::Polling,
        }
    }

    /// A short name (a metrics label, a log field).
    pub fn name(self) -> &'static str {
        match self {
            LoopPhase::Polling => "poll",
            LoopPhase::Io => "io",
            LoopPhase::Inbox => "inbox",
            LoopPhase::Timers => "timers",
            LoopPhase::Tasks => "tasks",
            LoopPhase::Flush => "flush",
            LoopPhase::Stopped => "stopped",
        }
    }
}

/// One shard's marks, written by the shard, read by the watchdog.
#[derive(Default)]
pub(crate) struct Activity {
    /// Loop iterations (changes whenever the loop moves on).
    seq: AtomicU64,
    phase: AtomicU8,
    /// When the phase began, in ns since the server's epoch.
    since_ns: AtomicU64,
    /// The connection whose callback runs now (`ConnId` packed; 0: none).
    conn: AtomicU64,
    /// Stalls seen on this shard.
    pub(crate) stalls: AtomicU64,
}

impl Activity {
    pub(crate) fn enter(&self, phase: LoopPhase, at_ns: u64) {
        self.phase.store(phase as u8, Relaxed);
        self.since_ns.store(at_ns, Relaxed);
        self.conn.store(0, Relaxed);
    }

    pub(crate) fn next_iteration(&self) {
        self.seq.fetch_add(1, Relaxed);
    }

    pub(crate) fn running(&self, conn: crate::ConnId) {
        self.conn.store(pack(conn), Relaxed);
    }
}

fn pack(id: crate::ConnId) -> u64 {
    // Shard 16 bits, slot 24 bits, generation 24 bits: enough to name it
    // in a report (+1 so that 0 means "none").
    ((id.shard() as u64) << 48
        | (id.slot() as u64 & 0xff_ffff) << 24
        | (id.generation() as u64 & 0xff_ffff))
        + 1
}

fn unpack(v: u64) -> Option<(u16, u32, u32)> {
    let v = v.checked_sub(1)?;
    Some((
        (v >> 48) as u16,
        ((v >> 24) & 0xff_ffff) as u32,
        (v & 0xff_ffff) as u32,
    ))
}

/// All shards' marks.
pub(crate) type Activities = Arc<[CachePadded<Activity>]>;

/// A loop that did not come back to its poll in time, seen while it was stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StallReport {
    /// The shard.
    pub shard: usize,
    /// What it was doing.
    pub phase: LoopPhase,
    /// The connection whose callback was running, as `shard:slot#generation`
    /// (generation modulo 2^24), if one was.
    pub conn: Option<String>,
    /// How long it had been stuck when seen.
    pub stuck_for: Duration,
}

/// Reports kept for `Handle::stalls` (the oldest are dropped).
const KEPT: usize = 64;

/// The watchdog thread's loop; ends when the server stops.
pub(crate) fn watch(inner: Arc<ServerInner>) {
    let shards = inner.activity.len();
    let mut reported_seq = vec![u64::MAX; shards];
    loop {
        let threshold = inner.settings.load().stall_threshold;
        std::thread::sleep(
            (threshold / 4).clamp(Duration::from_millis(2), Duration::from_millis(250)),
        );
        if inner.stopping.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let now = inner.nanos_since_epoch(Instant::now());
        for (i, a) in inner.activity.iter().enumerate() {
            let phase = LoopPhase::from_u8(a.phase.load(Relaxed));
            if matches!(phase, LoopPhase::Polling | LoopPhase::Stopped) {
                continue;
            }
            let seq = a.seq.load(Relaxed);
            let stuck = Duration::from_nanos(now.saturating_sub(a.since_ns.load(Relaxed)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_ids_pack_and_unpack() {
        let id = crate::ConnId::new(3, 1234, 56);
        assert_eq!(unpack(pack(id)), Some((3, 1234, 56)));
        assert_eq!(unpack(0), None);
    }
}
