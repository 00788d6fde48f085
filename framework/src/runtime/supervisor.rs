//! Shard supervision: a shard thread that dies (a panic in framework code,
//! or in a user callback outside the per-connection protection, such as a
//! factory maker) is noticed, logged, marked dead so the acceptor stops
//! routing to it, and reported through the `Handle` and by `Server::run`.

use super::server::ServerInner;
use crate::reactor::{Shard, ShardInit};
use crate::sync::worker::panic_message;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A shard thread that ended by panicking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDeath {
    /// The shard's index.
    pub shard: usize,
    /// The panic's message, if it was text.
    pub message: String,
}

/// The body of a shard thread: pin, build, run, and report a death.
pub(crate) fn run_shard(
    inner: Arc<ServerInner>,
    init: ShardInit,
    core: Option<core_affinity::CoreId>,
) {
    let index = init.index;
    if let Some(core) = core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(shard = index, core = core.id, "could not pin shard to core");
        }
    }
    // Unwind safety: the shard (and everything it owns: connections,
    // protocols, timers) is dropped by the unwind; what it shares with other
    // threads is atomics and channels, consistent at every instruction. What
    // is left is only recorded here.
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| Shard::new(init).run())) {
        shard_died(&inner, index, panic_message(p.as_ref()));
    }
}

fn shard_died(inner: &Arc<ServerInner>, shard: usize, message: String) {
    tracing::error!(
        shard,
        panic = %message,
        "shard thread died; its connections are lost and it gets no new ones"
    );
    inner.shared.dead[shard].store(true, Ordering::Release);
    // Its outbound connections died with it: take them out of the shared
    // count (inbound ones are counted by the acceptor, which skips dead shards).
    let s = inner.shared.stats.shards[shard].snapshot(shard);
    let open = s.outbound_connected.saturating_sub(s.outbound_closed) as usize;
    let _ = inner
        .shared
        .open_total
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            Some(n.saturating_sub(open))
        });
    inner
        .deaths
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ShardDeath { shard, message });
    let all_dead = inner.shared.dead.iter().all(|d| d.load(Ordering::Acquire));
    if all_dead || !inner.keep_running_on_shard_death {
        let handle = super::Handle {
            inner: Arc::clone(inner),
        };
        handle.stop();
    }
}
