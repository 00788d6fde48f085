//! The user-facing model: `Protocol` (one instance per connection, living on
//! one shard), `Factory` (one per shard per listener) and why a connection ended.

use crate::conn::{Conn, ConnCore};
use crate::context::ShardCtx;
use crate::transport::Addr;
use std::any::Any;
use std::fmt;
use std::io;

/// Why a connection ended; passed to [`Protocol::connection_lost`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We closed it with [`Conn::close`]: all output was written, then FIN sent.
    Done,
    /// The peer closed its side (EOF) and we closed ours after flushing.
    PeerClosed,
    /// We aborted it with [`Conn::abort`]: pending output dropped, RST sent.
    Aborted,
    /// A socket error, such as a reset by the peer.
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error as text.
        message: String,
    },
    /// Nothing was received for the idle timeout (output was still flushed).
    IdleTimeout,
    /// A callback of this connection's protocol panicked; the connection was aborted.
    CallbackPanic,
    /// The server stopped: the connection was closed gracefully, or aborted
    /// when the stop deadline passed.
    ServerStopped,
    /// The protocol closed the connection because the peer broke its rules
    /// (a line too long, a malformed frame); output was still flushed.
    ProtocolError(String),
}

impl CloseReason {
    pub(crate) fn io(e: &io::Error) -> Self {
        CloseReason::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// True for a close where no output was lost (`Done`, `PeerClosed`,
    /// `IdleTimeout`, and a graceful `ServerStopped`).
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            CloseReason::Done
                | CloseReason::PeerClosed
                | CloseReason::IdleTimeout
                | CloseReason::ServerStopped
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Done => f.write_str("closed"),
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Aborted => f.write_str("aborted"),
            CloseReason::Io { message, .. } => write!(f, "I/O error: {message}"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::CallbackPanic => f.write_str("protocol callback panicked"),
            CloseReason::ServerStopped => f.write_str("server stopped"),
            CloseReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// One connection's behaviour, as in Twisted. An instance is created by a
/// [`Factory`] on the shard that owns the connection and is only ever touched
/// by that shard's thread, so it needs no locks and need not be `Send`.
///
/// Every callback gets a [`Conn`] to write, close, set timers and reach the
/// shard. A panic in a callback aborts only this connection.
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

    /// An outbound connection made with [`ShardCtx::connect_tcp`] could not
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

/// Object-safe face of a protocol, so one shard can hold connections of
/// several protocol types (several listeners, outbound clients).
pub(crate) trait ErasedProto {
    fn connection_made(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn data_received(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx, data: &[u8]);
    fn eof_received(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn connection_lost(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx, reason: &CloseReason);
    /// Returns false if `msg` is not this protocol's message type.
    fn message(
        &mut self,
        core: &mut ConnCore,
        ctx: &mut ShardCtx,
        msg: Box<dyn Any + Send>,
    ) -> bool;
    fn pause_producing(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn reading_resumed(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn resume_producing(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn server_stopping(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx);
    fn connect_failed(&mut self, ctx: &mut ShardCtx, error: &io::Error);
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<P: Protocol> ErasedProto for P {
    fn connection_made(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::connection_made(self, &mut Conn::new(core, ctx));
    }
    fn data_received(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx, data: &[u8]) {
        Protocol::data_received(self, &mut Conn::new(core, ctx), data);
    }
    fn eof_received(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::eof_received(self, &mut Conn::new(core, ctx));
    }
    fn connection_lost(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx, reason: &CloseReason) {
        Protocol::connection_lost(self, &mut Conn::new(core, ctx), reason);
    }
    fn message(
        &mut self,
        core: &mut ConnCore,
        ctx: &mut ShardCtx,
        msg: Box<dyn Any + Send>,
    ) -> bool {
        match msg.downcast::<P::Message>() {
            Ok(m) => {
                Protocol::message(self, &mut Conn::new(core, ctx), *m);
                true
            }
            Err(_) => false,
        }
    }
    fn pause_producing(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::pause_producing(self, &mut Conn::new(core, ctx));
    }
    fn resume_producing(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::resume_producing(self, &mut Conn::new(core, ctx));
    }
    fn reading_resumed(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::reading_resumed(self, &mut Conn::new(core, ctx));
    }
    fn server_stopping(&mut self, core: &mut ConnCore, ctx: &mut ShardCtx) {
        Protocol::server_stopping(self, &mut Conn::new(core, ctx));
    }
    fn connect_failed(&mut self, ctx: &mut ShardCtx, error: &io::Error) {
        Protocol::connect_failed(self, ctx, error);
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Object-safe face of a factory.
pub(crate) trait ErasedFactory {
    fn build(&mut self, peer: Addr) -> Box<dyn ErasedProto>;
}

impl<F: Factory> ErasedFactory for F {
    fn build(&mut self, peer: Addr) -> Box<dyn ErasedProto> {
        Box::new(self.build_protocol(peer))
    }
}

/// Makes a shard's factory for one listener; called once on each shard thread.
pub(crate) type FactoryMaker =
    std::sync::Arc<dyn Fn(usize) -> Box<dyn ErasedFactory> + Send + Sync>;
