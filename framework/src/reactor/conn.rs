//! `Conn`: the context every protocol callback receives (Twisted's
//! transport plus the reactor calls a protocol makes).

use super::conn_core::ConnCore;
use super::protocol::Protocol;
use super::shard_ctx::{DeferredCallback, ShardCtx};
use super::timers::{RepeatFn, TimerHandle, TimerTask};
use crate::api::{CloseReason, ConnId};
use crate::net::Addr;
use std::io::IoSlice;
use std::marker::PhantomData;
use std::time::Duration;

/// The context of a protocol callback: the connection's transport (write,
/// close, pause), its timers, and the shard it lives on.
///
/// Writes are buffered and flushed once per loop iteration with one
/// `write`/`writev` per connection.
pub struct Conn<'a, P> {
    pub(super) core: &'a mut ConnCore,
    pub(super) ctx: &'a mut ShardCtx,
    _protocol: PhantomData<fn(&mut P)>,
}

impl<'a, P: Protocol> Conn<'a, P> {
    pub(crate) fn new(core: &'a mut ConnCore, ctx: &'a mut ShardCtx) -> Self {
        Conn {
            core,
            ctx,
            _protocol: PhantomData,
        }
    }

    /// This connection's id: use it to address messages to it from anywhere.
    pub fn id(&self) -> ConnId {
        self.core.id
    }

    /// The remote address.
    pub fn peer_addr(&self) -> &Addr {
        &self.core.peer
    }

    /// The connection's socket, to read or set options on it (`None` for
    /// the testing kit's virtual streams).
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol};
    /// # struct P;
    /// # impl Protocol for P { type Message = ();
    /// fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
    ///     if let Some(s) = conn.socket() {
    ///         let _ = s.set_tcp_nodelay(false); // this one wants Nagle
    ///     }
    /// }
    /// #     fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {} }
    /// ```
    pub fn socket(&self) -> Option<socket2::SockRef<'_>> {
        self.core.stream.sock_ref()
    }

    /// The local address.
    pub fn local_addr(&self) -> &Addr {
        self.core.local_addr()
    }

    /// Queues bytes for sending. Refused (dropped and counted in
    /// `writes_refused`) once the output is shut: after
    /// [`shutdown_write`](Conn::shutdown_write) or a close has sent FIN,
    /// during `connection_lost`, or after an abort. A write that would grow
    /// the unsent output past `max_output_buffer` aborts the connection
    /// ([`CloseReason::OutputOverflow`]).
    ///
    /// A large write (64 KiB or more) with nothing queued before it is
    /// handed to the socket at once, and only what the socket does not take
    /// is copied into the queue.
    pub fn write(&mut self, data: &[u8]) {
        self.core.write(self.ctx, data);
    }

    /// Queues an owned buffer; large ones are sent without a copy. Same
    /// rules as [`write`](Conn::write).
    pub fn write_owned(&mut self, data: Vec<u8>) {
        self.core.write_owned(self.ctx, data);
    }

    /// Queues a buffer shared with the application (a stored value) by
    /// reference: nothing is copied, so a large value sent to many clients,
    /// or to one that reads slowly, costs its memory once. Same rules as
    /// [`write`](Conn::write) (on a TLS connection it is encrypted like
    /// any write).
    ///
    /// ```
    /// use shardloop::{Conn, Protocol};
    /// use std::sync::Arc;
    /// /// Serves one large document to every client that connects.
    /// struct Doc(Arc<[u8]>);
    /// impl Protocol for Doc {
    ///     type Message = ();
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
    ///         conn.write_shared(self.0.clone());
    ///         conn.close();
    ///     }
    ///     fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
    /// }
    /// ```
    pub fn write_shared(&mut self, data: std::sync::Arc<[u8]>) {
        self.core.write_shared(self.ctx, data);
    }

    /// Queues several buffers in order (they go out in one `writev` with
    /// whatever else is pending).
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) {
        for b in bufs {
            self.write(b);
        }
    }

    /// Bytes queued and not yet accepted by the socket.
    pub fn buffered(&self) -> usize {
        self.core.unsent()
    }

    /// True while output is accepted and less than `high_water_mark` is
    /// queued (Netty's `isWritable`). A protocol that answers requests
    /// stops taking new ones while this is false and goes on in
    /// [`Protocol::resume_producing`], so a client pipelining large replies
    /// gets them one at a time past the mark, and one that never reads
    /// costs a bounded amount (see `Settings::max_output_buffer`).
    ///
    /// ```
    /// use shardloop::{Conn, Protocol};
    /// /// Answers each byte with a 1 MiB reply, only as fast as the peer reads.
    /// struct Big { asked: usize }
    /// impl Big {
    ///     fn answer(&mut self, conn: &mut Conn<'_, Self>) {
    ///         while self.asked > 0 && conn.is_writable() {
    ///             self.asked -= 1;
    ///             conn.write(&vec![b'x'; 1 << 20]);
    ///         }
    ///     }
    /// }
    /// impl Protocol for Big {
    ///     type Message = ();
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///         self.asked += data.len();
    ///         self.answer(conn);
    ///     }
    ///     fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
    ///         self.answer(conn);
    ///     }
    /// }
    /// ```
    pub fn is_writable(&self) -> bool {
        !self.output_backed_up() && self.core.accepts_output()
    }

    /// At least `high_water_mark` bytes wait to be sent.
    pub(crate) fn output_backed_up(&self) -> bool {
        self.core.unsent() >= self.ctx.settings.high_water_mark
    }

    /// Asks for [`Protocol::output_flushed`] after the next flush that
    /// hands bytes to the kernel, and after each one until the queue is
    /// empty (then the request is spent). Writes are queued during a
    /// callback and flushed together at the end of the loop iteration (or
    /// when the socket is writable again), so this is when they really
    /// leave: Netty's write future, without a future per write.
    ///
    /// ```
    /// use shardloop::{Conn, Protocol};
    /// use std::time::Instant;
    /// struct Stamp { written: u64, left_at: Vec<(u64, Instant)> }
    /// impl Protocol for Stamp {
    ///     type Message = ();
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///         conn.write(data);
    ///         self.written += data.len() as u64;
    ///         conn.notify_flushed();
    ///     }
    ///     fn output_flushed(&mut self, conn: &mut Conn<'_, Self>) {
    ///         let gone = self.written - conn.buffered() as u64;
    ///         self.left_at.push((gone, Instant::now()));
    ///     }
    /// }
    /// ```
    pub fn notify_flushed(&mut self) {
        self.core.state.watch_flush();
        self.ctx.mark_dirty(self.core);
    }

    /// Closes gracefully: everything written so far (and in the rest of this
    /// callback) is sent, then FIN. `connection_lost(Done)` follows.
    pub fn close(&mut self) {
        self.core.begin_close(CloseReason::Done, self.ctx);
    }

    /// Closes gracefully like [`close`](Conn::close), but once the output is
    /// flushed closes the socket at once instead of sending FIN and waiting
    /// for the peer's (two syscalls and a wake-up less per connection, as
    /// nginx does). Only for when the peer will send nothing more — an HTTP
    /// response with `Connection: close` to a request read to its last
    /// byte: input arriving after the close makes the kernel answer with
    /// RST, which can destroy the response before the peer reads it.
    pub fn close_without_linger(&mut self) {
        self.core.state.request_no_linger();
        self.close();
    }

    /// Closes gracefully (flush, then FIN) because the peer broke the
    /// protocol; `connection_lost` gets [`CloseReason::ProtocolError`] with `why`.
    pub fn close_with_error(&mut self, why: impl Into<String>) {
        let why = why.into();
        if let Some(suppressed) = self.ctx.log_limits.protocol_error.allow() {
            tracing::debug!(conn = %self.core.id, %why, suppressed, "closing on protocol error");
        }
        self.core
            .begin_close(CloseReason::ProtocolError(why), self.ctx);
    }

    /// Half-closes: everything written so far is sent, then FIN; the
    /// connection stays open for reading (Twisted's `loseWriteConnection`).
    /// Writes from this call on are refused. The connection ends when the protocol
    /// calls [`close`](Conn::close) (at once if its output is out), e.g. from
    /// `eof_received`.
    pub fn shutdown_write(&mut self) {
        if self.core.state.request_half_close() {
            self.ctx.mark_dirty(self.core);
        }
    }

    /// True once [`shutdown_write`](Conn::shutdown_write) was called.
    pub fn is_write_shut(&self) -> bool {
        self.core.state.is_half_closed()
    }

    /// Closes at once: pending output is dropped and the peer gets RST.
    pub fn abort(&mut self) {
        if self.core.state.request_abort() {
            self.core.set_reason(CloseReason::Aborted);
        }
    }

    /// Counts one piece of work in flight for this connection (a request
    /// forwarded to another shard, say) until [`unhold`](Conn::unhold):
    /// [`close_when_idle`](Conn::close_when_idle) waits for all of them.
    /// Work deferred with [`defer_to_thread`](Conn::defer_to_thread) holds
    /// the connection by itself.
    pub fn hold(&mut self) {
        self.core.hold();
    }

    /// Ends one [`hold`](Conn::hold).
    pub fn unhold(&mut self) {
        self.core.unhold(&mut self.ctx.read_again);
    }

    /// Bounds the work in flight a peer can make this connection hold:
    /// reading pauses while [`holds`](Conn::holds) is `limit` or more (a
    /// client pipelining requests that are answered by other shards or
    /// threads, each counted with [`hold`](Conn::hold)), and resumes when
    /// it drops below; TCP flow control then slows the client. `None`
    /// lifts the limit.
    ///
    /// ```
    /// use shardloop::{Conn, Protocol};
    /// /// Each line goes to a worker thread; at most 64 at once per client.
    /// struct Lookups;
    /// impl Protocol for Lookups {
    ///     type Message = ();
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
    ///         conn.set_max_in_flight(Some(64));
    ///     }
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///         let line = data.to_vec();
    ///         // defer_to_thread holds the connection until the result is in.
    ///         conn.defer_to_thread(move || line.len(), |_, conn, n| {
    ///             conn.write(format!("{}\n", n.unwrap_or(0)).as_bytes());
    ///         });
    ///     }
    /// }
    /// ```
    pub fn set_max_in_flight(&mut self, limit: Option<u32>) {
        if limit.is_some() || self.core.extras.is_some() {
            self.core.extras().max_in_flight = limit;
        }
        self.core.check_in_flight(Some(&mut self.ctx.read_again));
    }

    /// Work in flight (holds not yet ended).
    pub fn holds(&self) -> u32 {
        self.core.holds
    }

    /// Closes gracefully once no work holds the connection: at once if
    /// none does, otherwise when the last [`unhold`](Conn::unhold) (or
    /// deferred result) arrives, so replies still in flight are written
    /// before FIN. Use it from `eof_received` in a protocol whose replies
    /// come back from other shards or threads.
    pub fn close_when_idle(&mut self) {
        if self.core.holds == 0 {
            self.close();
        } else {
            self.core.state.close_when_idle();
        }
    }

    /// True once `close` or `abort` was called.
    pub fn is_closing(&self) -> bool {
        self.core.state.is_closing()
    }

    /// Stops delivering `data_received` until `resume_reading`; the kernel's
    /// receive buffer then fills and TCP flow control slows the peer.
    pub fn pause_reading(&mut self) {
        self.core.state.pause_reading();
    }

    /// Resumes reading (input that arrived meanwhile is delivered promptly).
    pub fn resume_reading(&mut self) {
        if self.core.state.resume_reading() {
            self.ctx.read_again.push(self.core.id);
        }
    }

    /// True while reading is paused.
    pub fn is_reading_paused(&self) -> bool {
        self.core.state.is_read_paused()
    }

    /// Sets (or clears) this connection's idle timeout: it is closed with
    /// [`CloseReason::IdleTimeout`] after receiving nothing for `timeout`.
    /// Resetting on each read costs one store, no timer operation.
    ///
    /// Takes effect at once, shorter or longer than before: the check is
    /// rescheduled on every call.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.core.idle_ticks = timeout.map(|t| self.ctx.timers.ticks_of(t).max(1));
        self.core.last_read_tick = self.ctx.now_tick;
        self.ctx.arm_idle(self.core);
    }

    /// Sets (or clears, with `None`) a deadline for progress the protocol
    /// is waiting for, e.g. "a complete request within 10 s": unlike the idle
    /// timeout, reading bytes does not push it back, so a peer that trickles
    /// one byte at a time (slowloris) is still closed. Each call replaces the
    /// previous deadline; clear it once the request is complete. At the
    /// deadline the connection is closed after flushing, with
    /// [`CloseReason::ReadTimeout`].
    ///
    /// ```
    /// # use shardloop::{Conn, Protocol};
    /// # use std::time::Duration;
    /// struct Request { buf: Vec<u8> }
    /// impl Protocol for Request {
    ///     type Message = ();
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
    ///         conn.set_read_timeout(Some(Duration::from_secs(10)));
    ///     }
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///         self.buf.extend_from_slice(data);
    ///         if self.buf.ends_with(b"\r\n\r\n") {
    ///             conn.write(b"done\r\n");
    ///             // The next request gets its own 10 s.
    ///             conn.set_read_timeout(Some(Duration::from_secs(10)));
    ///             self.buf.clear();
    ///         }
    ///     }
    /// }
    /// ```
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        if let Some(old) = self
            .core
            .extras
            .as_mut()
            .and_then(|e| e.read_deadline.take())
        {
            self.ctx.timers.cancel_id(old);
        }
        if let Some(t) = timeout {
            let task = TimerTask::ReadDeadline(self.core.id);
            let id = self.ctx.timers.insert_after(t, task);
            self.core.extras().read_deadline = Some(id);
        }
    }

    /// Counts as activity for the idle timeout, as a read does.
    pub fn reset_idle_timer(&mut self) {
        self.core.last_read_tick = self.ctx.now_tick;
    }

    /// Runs `f` once after `delay` on this shard, if the connection is still
    /// open then (Twisted's `callLater`).
    pub fn call_later<F>(&mut self, delay: Duration, f: F) -> TimerHandle
    where
        F: FnOnce(&mut P, &mut Conn<'_, P>) + 'static,
    {
        let conn = self.core.id;
        let f = Box::new(
            move |p: &mut dyn std::any::Any, core: &mut ConnCore, ctx: &mut ShardCtx| {
                if let Some(p) = p.downcast_mut::<P>() {
                    f(p, &mut Conn::new(core, ctx));
                }
            },
        );
        let h = self.ctx.timers.once(delay, TimerTask::ConnOnce { conn, f });
        self.core.track_timer(h, &self.ctx.timers);
        h
    }

    /// Runs `f` every `interval` while the connection is open, until
    /// cancelled (Twisted's `LoopingCall`). Missed periods are skipped.
    pub fn call_every<F>(&mut self, interval: Duration, mut f: F) -> TimerHandle
    where
        F: FnMut(&mut P, &mut Conn<'_, P>) + 'static,
    {
        let conn = self.core.id;
        let f = Box::new(
            move |p: &mut dyn std::any::Any, core: &mut ConnCore, ctx: &mut ShardCtx| {
                if let Some(p) = p.downcast_mut::<P>() {
                    f(p, &mut Conn::new(core, ctx));
                }
            },
        );
        let h = self.ctx.timers.repeat(interval, RepeatFn::Conn(conn, f));
        self.core.track_timer(h, &self.ctx.timers);
        h
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, handle: TimerHandle) -> bool {
        self.ctx.timers.cancel(handle)
    }

    /// Runs `work` on the worker pool; `callback` gets its result on this
    /// connection's shard, if the connection is still open (otherwise the
    /// result is dropped). Twisted's `deferToThread`.
    pub fn defer_to_thread<T, W, C>(&mut self, work: W, callback: C)
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        C: FnOnce(&mut P, &mut Conn<'_, P>, Result<T, crate::DeferError>) + 'static,
    {
        // Deferred work holds the connection: `close_when_idle` waits for it.
        self.hold();
        let cb = DeferredCallback {
            conn: Some(self.core.id),
            f: Box::new(move |p, core, ctx, result| {
                if let (Some(p), Some(core)) = (p.and_then(|p| p.downcast_mut::<P>()), core) {
                    core.unhold(&mut ctx.read_again);
                    callback(
                        p,
                        &mut Conn::new(core, ctx),
                        crate::sync::worker::unbox_result::<T>(result),
                    );
                }
            }),
        };
        self.ctx.submit_deferred(work, cb);
    }

    /// Spawns `future` on this shard, tied to this connection: dropped,
    /// never polled again, when the connection ends. The public entry is
    /// [`Conn::spawn`] (task/conn_task.rs), which builds the future.
    pub(crate) fn spawn_tied(&mut self, future: super::exec::local::LocalFuture) {
        self.ctx.counters.tasks_spawned += 1;
        let id = self.ctx.tasks.spawn(future, Some(self.core.id));
        let tasks = &self.ctx.tasks;
        let list = &mut self.core.extras().tasks;
        if list.len() >= 16 && list.len().is_power_of_two() {
            list.retain(|t| tasks.contains(*t));
        }
        list.push(id);
    }

    /// The shard this connection lives on: bus, shard timers, shard-local services.
    pub fn shard(&mut self) -> &mut ShardCtx {
        self.ctx
    }
}
