//! What users implement: `Protocol` (one instance per connection, living on
//! one shard) and `Factory` (one per shard per listener).
//!
//! They live in the reactor because their callbacks take [`Conn`] and
//! [`ShardCtx`], and those call back into protocols: that cycle is intrinsic
//! to a callback API and stays inside this folder.

use super::conn::Conn;
use super::shard_ctx::ShardCtx;
use crate::api::CloseReason;
use crate::net::Addr;
use std::io;

/// One connection's behaviour, as in Twisted. An instance is created by a
/// [`Factory`] on the shard that owns the connection and is only ever touched
/// by that shard's thread, so it needs no locks and need not be `Send`.
///
/// ```
/// use shardloop::{Conn, Protocol};
/// struct Echo;
/// impl Protocol for Echo {
///     type Message = ();
///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
///         conn.write(data);
///     }
/// }
/// ```
///
/// # The contract
///
/// **Order.** For a connection that is established:
///
/// ```text
/// connection_made
///   ( data_received | message | pause_producing | resume_producing
///   | reading_resumed | output_flushed | server_stopping )*
///   [ eof_received ]            at most once, after the last data_received
///   ( message | output_flushed | pause/resume_producing )*   while half-open
/// connection_lost               exactly once, last
/// ```
///
/// - `connection_made` runs when the connection is usable: after the TCP
///   connect for an outbound one, after the TLS handshake or PROXY header
///   on a layered one. A connection that never gets there (a refused or
///   timed-out connect, a failed handshake) gets no other callback: an
///   outbound one gets [`connect_failed`](Protocol::connect_failed)
///   instead, an inbound one is dropped with its protocol.
/// - `connection_lost` runs exactly once for every connection that got
///   `connection_made`, whatever ended it (graceful close, reset, a
///   timeout, a cap, a callback's panic, the server stopping), with the
///   [`CloseReason`]; nothing runs after it.
/// - `message` runs only between the two; a message for a connection that
///   is gone (or whose slot was reused) is dropped and counted, never
///   delivered to another connection.
/// - A connection whose input goes to a task ([`Conn::spawn_stream`]) gets
///   no `data_received` and no `eof_received`: the task reads both.
///
/// **No re-entrancy.** Callbacks of one connection never overlap, and
/// nothing in the framework calls a protocol from inside one of its own
/// callbacks: every method of [`Conn`] and [`ShardCtx`] queues its effect
/// or records it, and the shard applies it when the callback returns
/// (`pause_producing` for the writes of a callback runs right after it;
/// a `close` takes effect after it; messages and `post_to` closures to
/// this shard run later in the same loop iteration). Another connection's
/// protocol is never reachable from a callback except by message.
///
/// **What may be called when.** Any `Conn` method from any callback that
/// gets a `Conn`. [`ShardCtx`] (through [`Conn::shard`]) from anywhere on
/// the shard. Blocking in a callback blocks every connection of the shard:
/// use [`Conn::defer_to_thread`] or [`ShardCtx::defer`] (the watchdog
/// reports a callback that holds the loop past
/// `Settings::stall_threshold`).
///
/// **Writes after close.** `close()` and `shutdown_write()` send
/// everything written, then FIN; writes made after the call but before FIN
/// goes out still go first. Once FIN is sent, after `abort()`, and during
/// `connection_lost`, the output is shut: writes are refused and counted
/// (`writes_refused`), never turned into a reset. `abort()` drops unsent
/// output and sends RST.
///
/// **Panics.** A panic in a callback aborts this connection only
/// ([`CloseReason::CallbackPanic`], counted); its `connection_lost` still
/// runs. The shard and every other connection carry on.
///
/// **Caps.** A peer that sends without reading stops being read above the
/// high-water mark (TCP flow control slows it), and the connection is
/// aborted if one write would push its unsent output past
/// `Settings::max_output_buffer`; see [`Conn::write`].
pub trait Protocol: Sized + 'static {
    /// Typed messages other shards or threads can send to this connection
    /// by its [`ConnId`](crate::ConnId). Use `()` if there are none.
    type Message: Send + 'static;

    /// The connection is established.
    fn connection_made(&mut self, _conn: &mut Conn<'_, Self>) {}

    /// Bytes arrived. `data` is only valid during the call.
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]);

    /// The peer closed its sending side. The default closes ours after
    /// flushing everything written so far.
    fn eof_received(&mut self, conn: &mut Conn<'_, Self>) {
        conn.close();
    }

    /// The connection is gone; writes are ignored from here on. Called exactly
    /// once per connection that got `connection_made`.
    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, _reason: &CloseReason) {}

    /// A typed message addressed to this connection arrived over the bus.
    fn message(&mut self, _conn: &mut Conn<'_, Self>, _msg: Self::Message) {}

    /// Reading was resumed after `pause_reading`. Input that arrived
    /// meanwhile follows through `data_received`; a protocol that held
    /// buffered input while paused (as `LineReceiver` does) delivers it here.
    fn reading_resumed(&mut self, _conn: &mut Conn<'_, Self>) {}

    /// Output buffered for this connection passed the high-water mark: stop
    /// producing until `resume_producing`.
    fn pause_producing(&mut self, _conn: &mut Conn<'_, Self>) {}

    /// Output drained to the low-water mark.
    fn resume_producing(&mut self, _conn: &mut Conn<'_, Self>) {}

    /// Bytes were handed to the kernel, after
    /// [`Conn::notify_flushed`](crate::Conn::notify_flushed) asked to be
    /// told. Everything written so far except the last
    /// [`Conn::buffered`](crate::Conn::buffered) bytes has left the
    /// connection's queue (on a TLS connection, `buffered` counts
    /// ciphertext; the queue being empty still means everything). Runs
    /// after each flush that makes progress (a large write handed to the
    /// socket directly counts), until the queue is empty.
    /// Used by the load generator to stamp a request's send time when its
    /// bytes leave, not when they are queued.
    fn output_flushed(&mut self, _conn: &mut Conn<'_, Self>) {}

    /// A TLS handshake started with [`Conn::start_tls`](crate::Conn::start_tls)
    /// on a running connection finished (Twisted's `handshakeCompleted`):
    /// [`Conn::tls_info`](crate::Conn::tls_info) now says what it
    /// negotiated. A connection that starts with TLS needs no such call:
    /// its `connection_made` runs after its handshake.
    fn handshake_completed(&mut self, _conn: &mut Conn<'_, Self>) {}

    /// An outbound connection made with [`ShardCtx::connect`] could not
    /// be established (refused, unreachable, timed out). No other callback
    /// runs for it. The default logs the error.
    fn connect_failed(&mut self, _shard: &mut ShardCtx, error: &io::Error) {
        tracing::debug!(%error, "outbound connection failed");
    }

    /// The server is stopping gracefully. The default closes the connection
    /// after flushing; a protocol may instead finish its current work first
    /// (it is aborted at the stop deadline).
    fn server_stopping(&mut self, conn: &mut Conn<'_, Self>) {
        conn.close();
    }
}

/// Builds protocols for one listener on one shard. Each shard gets its own
/// factory (from the closure given to
/// [`ServerBuilder::listen`](crate::ServerBuilder::listen)), so it can hold
/// shard-local state without locks. Any `FnMut(Addr) -> P` is a factory.
pub trait Factory: 'static {
    /// The protocol it builds.
    type Protocol: Protocol;
    /// Builds the protocol for a new connection from `peer`.
    fn build_protocol(&mut self, peer: Addr) -> Self::Protocol;
}

impl<P: Protocol, F: FnMut(Addr) -> P + 'static> Factory for F {
    type Protocol = P;
    fn build_protocol(&mut self, peer: Addr) -> P {
        self(peer)
    }
}
