//! Each shard's loop marks, for the stall watchdog: which phase of its
//! loop it is in, since when, and which connection's callback runs, as
//! relaxed stores of values the shard has anyway. The watchdog thread
//! (runtime/watchdog.rs) reads them.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{
    AtomicU64, AtomicU8,
    Ordering::{Relaxed, Release},
};
use std::sync::Arc;

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
    pub(crate) fn from_u8(v: u8) -> Self {
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
    pub(crate) seq: AtomicU64,
    pub(crate) phase: AtomicU8,
    /// When the loop last left its poll: a stall is measured from here,
    /// across phases (a loop held 60 % of the threshold by its reads and
    /// 60 % by its timers has not polled for longer than the threshold).
    pub(crate) awake_since_ns: AtomicU64,
    /// The connection whose callback runs now (`ConnId` packed; 0: none).
    pub(crate) conn: AtomicU64,
    /// Stalls seen on this shard.
    pub(crate) stalls: AtomicU64,
}

impl Activity {
    pub(crate) fn enter(&self, phase: LoopPhase) {
        // Release: a watchdog that sees this phase sees the wake-up time
        // stored before it (never an earlier iteration's).
        self.phase.store(phase as u8, Release);
        self.conn.store(0, Relaxed);
    }

    /// The loop left its poll at `at_ns`.
    pub(crate) fn next_iteration(&self, at_ns: u64) {
        self.awake_since_ns.store(at_ns, Relaxed);
        self.seq.fetch_add(1, Relaxed);
    }

    /// A callback of `conn` runs from now on.
    pub(crate) fn running(&self, conn: crate::api::ConnId) {
        self.conn.store(pack(conn), Relaxed);
    }

    /// That callback returned: a stall from here on is not its doing.
    pub(crate) fn returned(&self) {
        self.conn.store(0, Relaxed);
    }
}

fn pack(id: crate::api::ConnId) -> u64 {
    // Shard 16 bits, slot 24 bits, generation 24 bits: enough to name it
    // in a report (+1 so that 0 means "none").
    ((id.shard() as u64) << 48
        | (id.slot() as u64 & 0xff_ffff) << 24
        | (id.generation() as u64 & 0xff_ffff))
        + 1
}

pub(crate) fn unpack(v: u64) -> Option<(u16, u32, u32)> {
    let v = v.checked_sub(1)?;
    Some((
        (v >> 48) as u16,
        ((v >> 24) & 0xff_ffff) as u32,
        (v & 0xff_ffff) as u32,
    ))
}

/// All shards' marks.
pub(crate) type Activities = Arc<[CachePadded<Activity>]>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_ids_pack_and_unpack() {
        let id = crate::api::ConnId::new(3, 1234, 56);
        assert_eq!(unpack(pack(id)), Some((3, 1234, 56)));
        assert_eq!(unpack(0), None);
    }
}
