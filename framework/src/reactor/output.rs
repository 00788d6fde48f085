//! A connection's output path, apart from any protocol type: admission
//! (shut output, the output cap), the connection's layer, large writes
//! straight to the socket, the queue. `Conn::write` and the shard's input
//! forwarding (`Conn::forward_to`) both come here.

use super::conn_core::ConnCore;
use super::layer::WireSink;
use super::shard_ctx::ShardCtx;
use crate::api::CloseReason;

/// Writes at least this large skip the queue when it is empty.
pub(super) const WRITE_THROUGH: usize = 64 * 1024;

impl ConnCore {
    /// Queues `data` for sending (see [`Conn::write`](crate::Conn::write)).
    /// Inlined into `Conn::write`: it is every reply's path.
    #[inline]
    pub(crate) fn write(&mut self, ctx: &mut ShardCtx, data: &[u8]) {
        if !self.admit(ctx, data.len()) {
            return;
        }
        if self.layer.is_some() {
            return self.encode(ctx, data);
        }
        let mut data = data;
        if data.len() >= WRITE_THROUGH && self.out.is_empty() && !self.state.is_write_blocked() {
            data = self.write_through(ctx, data);
            if data.is_empty() {
                if self.state.watches_flush() {
                    // Nothing queued, but the watcher is told at the flush.
                    ctx.mark_dirty(self);
                }
                return;
            }
        }
        self.out.push(data, &mut ctx.pool);
        ctx.mark_dirty(self);
    }

    /// Queues an owned buffer; large ones are sent without a copy.
    pub(crate) fn write_owned(&mut self, ctx: &mut ShardCtx, data: Vec<u8>) {
        if self.admit(ctx, data.len()) {
            if self.layer.is_some() {
                return self.encode(ctx, &data);
            }
            self.out.push_owned(data, &mut ctx.pool);
            ctx.mark_dirty(self);
        }
    }

    /// Queues a shared buffer by reference (no copy; through the layer, if
    /// any, it is encoded like any write).
    pub(crate) fn write_shared(&mut self, ctx: &mut ShardCtx, data: std::sync::Arc<[u8]>) {
        if self.admit(ctx, data.len()) {
            if self.layer.is_some() {
                return self.encode(ctx, &data);
            }
            self.out.push_shared(data, &mut ctx.pool);
            ctx.mark_dirty(self);
        }
    }

    /// Writes `data` straight to the socket; returns what it did not take.
    /// An error is left for the flush to report (it will meet it again).
    fn write_through<'d>(&mut self, ctx: &mut ShardCtx, data: &'d [u8]) -> &'d [u8] {
        match std::io::Write::write(&mut self.stream, data) {
            Ok(n) => {
                ctx.counters.bytes_out += n as u64;
                self.state.wrote_through();
                if n < data.len() {
                    // A short write: the socket buffer is full.
                    self.state.set_write_blocked(true);
                }
                &data[n..]
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.state.set_write_blocked(true);
                data
            }
            Err(_) => data,
        }
    }

    /// Whether `n` more bytes may be queued: the common case inline, the
    /// refusals out of line.
    #[inline]
    fn admit(&mut self, ctx: &mut ShardCtx, n: usize) -> bool {
        // What this iteration writes is not limited (a large reply streams
        // to a peer that reads); what the peer left unread before is.
        if n != 0
            && self.state.accepts_output()
            && self.held as usize <= ctx.settings.max_output_buffer
        {
            return true;
        }
        self.refuse(ctx, n)
    }

    /// A write that may not be queued: nothing, after the output was shut
    /// (counted), or a peer that left too much unread (the connection is
    /// aborted).
    #[cold]
    fn refuse(&mut self, ctx: &mut ShardCtx, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        if !self.state.accepts_output() {
            ctx.counters.writes_refused += 1;
            tracing::debug!(conn = %self.id, bytes = n, "write after the output was shut; dropped");
            return false;
        }
        let limit = ctx.settings.max_output_buffer;
        ctx.counters.output_overflows += 1;
        if let Some(suppressed) = ctx.log_limits.output_overflow.allow() {
            tracing::warn!(
                conn = %self.id,
                unread = self.held,
                bytes = n,
                limit,
                suppressed,
                "the peer left more than the output limit unread; aborting"
            );
        }
        self.state.request_abort();
        self.set_reason(CloseReason::OutputOverflow);
        // Listed for the flush, which ends it: the writer may be a callback
        // of another connection (forwarding), with no after-callback here.
        ctx.mark_dirty(self);
        false
    }

    /// Encodes output through the connection's layer (already admitted).
    fn encode(&mut self, ctx: &mut ShardCtx, data: &[u8]) {
        let Some(layer) = self.layer.as_mut() else {
            return;
        };
        let mut wire = WireSink {
            out: &mut self.out,
            pool: &mut ctx.pool,
        };
        if let Err(reason) = layer.encode(data, &mut wire) {
            tracing::debug!(conn = %self.id, %reason, "the transport layer refused output; aborting");
            self.state.request_abort();
            self.set_reason(reason);
        }
        if self.out.len() >= WRITE_THROUGH && !self.state.is_write_blocked() {
            // As for plaintext: a large output goes to the socket now rather
            // than piling up until the end of the iteration.
            if let Ok((n, blocked)) = self.out.flush_to(&mut self.stream, &mut ctx.pool) {
                ctx.counters.bytes_out += n as u64;
                self.state.set_write_blocked(blocked);
            }
        }
        ctx.mark_dirty(self);
    }
}
