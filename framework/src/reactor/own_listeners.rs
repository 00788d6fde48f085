//! `reuse_port` mode: the shard accepts on its own `SO_REUSEPORT` listener
//! inside its loop, so a new connection costs no thread hop, no bus message
//! and no acceptor wake-up.

use super::shard::{Shard, LISTENER_TOKEN_BASE};
use crate::net::{is_transient_accept_error, Addr, Stream};
use std::io;
use std::time::Duration;

/// Connections accepted per listener per iteration before the shard serves
/// its other work (the rest wait for the next iteration).
const ACCEPT_BATCH: usize = 64;
/// After an accept error such as "out of descriptors", wait this long.
const RETRY_AFTER: Duration = Duration::from_millis(10);

impl Shard {
    /// The own listener a token names, if it is one.
    pub(super) fn own_listener_of(&self, token: usize) -> Option<usize> {
        let k = LISTENER_TOKEN_BASE.checked_sub(token)?;
        (k < self.own_listeners.len()).then_some(k)
    }

    /// Accepts from own listener `k` until it would block, or up to a batch.
    pub(super) fn accept_own(&mut self, k: usize) {
        #[cfg(target_os = "linux")]
        if self.ring.is_some() {
            // The ring accepts (this is its retry after a failure).
            return self.ring_listen(k);
        }
        for _ in 0..ACCEPT_BATCH {
            let Some((index, listener)) = self.own_listeners.get(k) else {
                return;
            };
            let index = *index;
            match listener.accept() {
                Ok((stream, peer)) => self.accept_here(Stream::Tcp(stream), Addr::Tcp(peer), index),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_transient_accept_error(&e) => {}
                Err(e) => return self.accept_failed(k, &e),
            }
        }
        // Readiness is edge-triggered: come back for the rest next iteration.
        self.accept_again.push(k);
    }

    /// Accepting on own listener `k` failed with an error such as EMFILE
    /// (on either backend): retrying at once would spin, so it is tried
    /// again after a pause.
    pub(super) fn accept_failed(&mut self, k: usize, e: &io::Error) {
        if let Some(suppressed) = self.ctx.log_limits.accept_error.allow() {
            tracing::warn!(shard = self.ctx.index, error = %e, suppressed, "accept failed; retrying in 10 ms");
        }
        let task = super::timers::TimerTask::AcceptAgain(k);
        self.ctx.timers.insert_after(RETRY_AFTER, task);
    }

    /// Accepts what the last iteration left waiting.
    pub(super) fn accept_deferred(&mut self) {
        if self.accept_again.is_empty() {
            return;
        }
        for k in std::mem::take(&mut self.accept_again) {
            self.accept_own(k);
        }
    }

    /// A connection this shard accepted itself: its share of the global
    /// limit (no shared counter is touched), then as any other.
    pub(super) fn accept_here(&mut self, stream: Stream, peer: Addr, listener: usize) {
        if self.conns.len() >= self.connection_share {
            self.ctx.counters.connections_rejected += 1;
            if let Some(suppressed) = self.ctx.log_limits.connection_limit.allow() {
                tracing::warn!(
                    shard = self.ctx.index,
                    share = self.connection_share,
                    suppressed,
                    "this shard's share of max_connections reached; closing new connection"
                );
            }
            return;
        }
        self.accept_inbound(stream, peer, listener, false);
    }

    /// Stops accepting (the server is stopping): closing the sockets makes
    /// the kernel send new connections to the other shards' sockets, or
    /// refuse them once all are closed.
    pub(super) fn close_own_listeners(&mut self) {
        #[cfg(target_os = "linux")]
        self.ring_unlisten();
        self.own_listeners.clear();
        self.accept_again.clear();
    }
}
