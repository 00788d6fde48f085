//! Live connection migration: a connection leaves its shard's poller and
//! table and joins another shard's, with its socket, unread input (in the
//! kernel and in its transport layer), queued output, TLS session and
//! deadlines intact; its protocol is packed on the old shard and unpacked
//! on the new one, and `connection_lost` is not called. The rebalancer
//! (`rebalance.rs`) uses it to move busy connections off a hot shard.
//!
//! A moved connection gets a new [`ConnId`] on its new shard. Messages sent
//! to a former id are forwarded (one extra hop) for as long as the
//! connection lives, so ids stored in registries keep working.

mod moving;
pub(crate) mod rebalance;
#[cfg(test)]
mod tests;

use super::conn::Conn;
use super::conn_core::{ConnCore, ConnState, Phase};
use super::erased::ErasedProto;
use super::layer::Layer;
use super::protocol::Protocol;
use super::shard_ctx::ShardCtx;
use crate::api::ConnId;
use crate::net::{Addr, Stream, WriteBuf};
use std::time::{Duration, Instant};

pub use rebalance::Rebalance;

/// A protocol whose connections may move to another shard
/// ([`Conn::migrate_to`], or the rebalancer once
/// [`Conn::set_migratable`] allows it).
///
/// `pack` runs on the old shard after the protocol's last callback there and
/// turns it into something that can cross threads; `unpack` runs on the new
/// shard before anything else reaches the connection. What the framework
/// moves by itself: the socket, the bytes the peer sent and nobody read
/// yet, the output not yet sent, the transport layer (a TLS session), the
/// idle timeout and the read deadline, paused reading, `set_max_in_flight`.
/// What it does not: timers set with [`Conn::call_later`] or
/// [`Conn::call_every`] are closures of the old shard and are cancelled;
/// `pack` notes what `unpack` must set again.
///
/// A protocol whose state is `Send` moves as it is:
///
/// ```
/// use shardloop::{Conn, Migrate, Protocol};
/// struct Echo { seen: u64 }
/// impl Protocol for Echo {
///     type Message = ();
///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
///         self.seen += data.len() as u64;
///         conn.write(data);
///     }
/// }
/// impl Migrate for Echo {
///     type Packed = Self;
///     fn pack(self, _conn: &mut Conn<'_, Self>) -> Self { self }
///     fn unpack(packed: Self, _conn: &mut Conn<'_, Self>) -> Self { packed }
/// }
/// ```
///
/// One that holds shard-local state (an `Rc`, a heartbeat timer) packs
/// what it needs and rebuilds the rest:
///
/// ```
/// use shardloop::{Conn, Migrate, Protocol};
/// use std::{rc::Rc, time::Duration};
/// struct Session { user: String, cache: Rc<Vec<u8>> }
/// impl Session {
///     fn heartbeat(&mut self, conn: &mut Conn<'_, Self>) {
///         conn.call_every(Duration::from_secs(5), |_, conn| conn.write(b"PING\r\n"));
///     }
/// }
/// impl Protocol for Session {
///     type Message = ();
///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
///         self.heartbeat(conn);
///         conn.set_migratable(true); // the rebalancer may move it
///     }
///     fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
/// }
/// impl Migrate for Session {
///     type Packed = String;
///     fn pack(self, _conn: &mut Conn<'_, Self>) -> String { self.user }
///     fn unpack(user: String, conn: &mut Conn<'_, Self>) -> Self {
///         let mut s = Session { user, cache: Rc::default() };
///         s.heartbeat(conn); // timers stayed behind: set it again
///         s
///     }
/// }
/// ```
pub trait Migrate: Protocol {
    /// What crosses to the new shard.
    type Packed: Send + 'static;
    /// Packs the protocol on the old shard. `conn` is still usable (a last
    /// write goes out from the new shard); timers set here are cancelled.
    fn pack(self, conn: &mut Conn<'_, Self>) -> Self::Packed;
    /// Rebuilds the protocol on the new shard (`conn.id()` is the new id).
    fn unpack(packed: Self::Packed, conn: &mut Conn<'_, Self>) -> Self;
}

/// Why a connection cannot move (now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// No such shard.
    #[error("no shard {shard}: the server has {shards} shards")]
    NoSuchShard {
        /// The index asked for.
        shard: usize,
        /// How many shards there are.
        shards: usize,
    },
    /// The connection is already on that shard.
    #[error("the connection is already on shard {0}")]
    AlreadyThere(usize),
    /// Not open: still in its TLS handshake or PROXY header, closing, or
    /// its protocol is gone.
    #[error("the connection is not open (handshake, closing or closed)")]
    NotOpen,
    /// Work of this shard is tied to it: `hold`s or deferred results in
    /// flight, tasks (`Conn::spawn`, `spawn_stream`), or a `forward_to`
    /// route from or to it. Move it once they are done.
    #[error("work of this shard is tied to the connection (holds, tasks or routes)")]
    Busy,
    /// Connections this shard opened (clients, pools) stay where they
    /// were made.
    #[error("outbound connections do not move")]
    Outbound,
    /// The server is stopping.
    #[error("the server is stopping")]
    Stopping,
}

/// Turns a connection's protocol into what crosses threads (on the old
/// shard); the protocol's type is known only where it opted in.
pub(crate) type PackFn = fn(Box<dyn ErasedProto>, &mut ConnCore, &mut ShardCtx) -> Unpack;
/// Rebuilds the protocol on the new shard.
pub(crate) type Unpack =
    Box<dyn FnOnce(&mut ConnCore, &mut ShardCtx) -> Box<dyn ErasedProto> + Send>;

fn pack_as<P: Migrate>(
    proto: Box<dyn ErasedProto>,
    core: &mut ConnCore,
    ctx: &mut ShardCtx,
) -> Unpack {
    let proto: Box<P> = proto
        .into_any()
        .downcast()
        .unwrap_or_else(|_| unreachable!("a connection's packer is its protocol's"));
    let packed = P::pack(*proto, &mut Conn::new(core, ctx));
    Box::new(move |core: &mut ConnCore, ctx: &mut ShardCtx| {
        Box::new(P::unpack(packed, &mut Conn::new(core, ctx))) as Box<dyn ErasedProto>
    })
}

/// A connection's migration record (in its out-of-line extras): how to
/// pack it, whether the rebalancer may move it, where it is asked to go,
/// and the ids it had on earlier shards (forwarded there until it ends).
pub(crate) struct Mobility {
    pub(crate) pack: PackFn,
    pub(crate) rebalance: bool,
    pub(crate) target: Option<u16>,
    pub(crate) former: Vec<ConnId>,
    /// When it last arrived (the rebalancer leaves it alone for a while).
    pub(crate) arrived: Option<Instant>,
}

/// A shard's migration bookkeeping.
#[derive(Default)]
pub(crate) struct Moves {
    /// Connections whose protocol asked to move this iteration.
    pub(crate) departures: Vec<ConnId>,
    /// Ids of connections that moved away from (or through) this shard,
    /// and the shard each went to: messages to them are sent on.
    pub(crate) forwards: std::collections::HashMap<ConnId, u16>,
    /// Former ids of connections that moved here, and their id here.
    pub(crate) aliases: std::collections::HashMap<ConnId, ConnId>,
}

/// Everything of a connection that crosses to its new shard.
pub(crate) struct Migrant {
    pub(crate) stream: Stream,
    pub(crate) peer: Addr,
    pub(crate) local: Addr,
    pub(crate) out: WriteBuf,
    pub(crate) state: ConnState,
    pub(crate) held: u32,
    pub(crate) busy_ns: u32,
    /// The idle timeout in ticks, and how many ticks ago the last read was.
    pub(crate) idle: Option<(u64, u64)>,
    /// What was left of the protocol's read deadline.
    pub(crate) read_deadline: Option<Duration>,
    pub(crate) layer: Option<Box<dyn Layer>>,
    pub(crate) layer_input: Vec<u8>,
    pub(crate) max_in_flight: Option<u32>,
    pub(crate) pack: PackFn,
    pub(crate) rebalance: bool,
    pub(crate) former: Vec<ConnId>,
    pub(crate) unpack: Unpack,
}

/// Whether the connection can leave its shard now.
pub(crate) fn check_movable(core: &ConnCore, ctx: &ShardCtx) -> Result<(), MigrateError> {
    if ctx.stopping {
        return Err(MigrateError::Stopping);
    }
    if core.state.is_outbound() {
        return Err(MigrateError::Outbound);
    }
    let s = &core.state;
    if !s.is(Phase::Open)
        || !s.is_made()
        || s.is_closing()
        || s.abort_requested()
        || s.has_panicked()
        || s.has_layer_failed()
        || core.phase_timer.is_some()
    {
        return Err(MigrateError::NotOpen);
    }
    let id = core.id;
    let tasks = core
        .extras
        .as_ref()
        .is_some_and(|e| e.tasks.iter().any(|t| ctx.tasks.contains(*t)) || e.observer.is_some());
    let routed = !ctx.routes.is_empty()
        && ctx.routes.iter().any(|(from, route)| {
            *from == id || matches!(route, super::forward::Route::Forward(to) if *to == id)
        });
    let deferred = ctx.deferred.values().any(|d| d.conn == Some(id));
    if core.holds > 0 || tasks || routed || deferred || s.is_drain_waiter() {
        return Err(MigrateError::Busy);
    }
    Ok(())
}

impl<P: Migrate> Conn<'_, P> {
    /// Moves this connection to `shard` once the current callback returns:
    /// the protocol is packed here ([`Migrate::pack`]) and unpacked there,
    /// and everything the connection has in flight on the wire goes with
    /// it, in order. `connection_lost` is not called. The connection gets a
    /// new [`ConnId`]; messages to the old one are forwarded.
    ///
    /// Refused for a connection that is not open, has work of this shard
    /// tied to it, or was opened by this shard (see [`MigrateError`]). The
    /// move is checked again when it happens and dropped (counted in
    /// `shardloop_migrations_total{outcome="refused"}`) if the connection
    /// changed meanwhile, e.g. closed.
    ///
    /// ```
    /// use shardloop::{Conn, Migrate, Protocol};
    /// /// Moves to the shard a client names ("MOVE 3").
    /// struct Mover;
    /// impl Protocol for Mover {
    ///     type Message = ();
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///         if let Some(n) = data.strip_prefix(b"MOVE ") {
    ///             let shard = std::str::from_utf8(n).ok().and_then(|s| s.trim().parse().ok());
    ///             match shard.map(|s| conn.migrate_to(s)) {
    ///                 Some(Ok(())) => conn.write(b"moving\r\n"),
    ///                 _ => conn.write(b"cannot\r\n"),
    ///             }
    ///         }
    ///     }
    /// }
    /// impl Migrate for Mover {
    ///     type Packed = Self;
    ///     fn pack(self, _: &mut Conn<'_, Self>) -> Self { self }
    ///     fn unpack(p: Self, _: &mut Conn<'_, Self>) -> Self { p }
    /// }
    /// ```
    pub fn migrate_to(&mut self, shard: usize) -> Result<(), MigrateError> {
        let shards = self.ctx.shards;
        if shard >= shards {
            return Err(MigrateError::NoSuchShard { shard, shards });
        }
        if shard == self.ctx.index {
            return Err(MigrateError::AlreadyThere(shard));
        }
        check_movable(self.core, self.ctx)?;
        let m = self.mobility();
        let first = m.target.is_none();
        m.target = Some(shard as u16);
        if first {
            self.ctx.moves.departures.push(self.core.id);
        }
        Ok(())
    }

    /// Lets the rebalancer move this connection (`ServerBuilder::rebalance`),
    /// or forbids it again. Off by default: only a protocol that knows its
    /// connections are long-lived and movable opts in.
    pub fn set_migratable(&mut self, allow: bool) {
        self.mobility().rebalance = allow;
    }

    /// This connection's migration record, made on first use.
    fn mobility(&mut self) -> &mut Mobility {
        self.core.extras().mobility.get_or_insert_with(|| {
            Box::new(Mobility {
                pack: pack_as::<P>,
                rebalance: false,
                target: None,
                former: Vec::new(),
                arrived: None,
            })
        })
    }
}
