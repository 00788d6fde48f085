//! # shardloop
//!
//! A sharded reactor framework for network servers that use every core, in
//! the spirit of Twisted: you write a [`Protocol`] (`connection_made`,
//! `data_received`, `connection_lost`), the framework runs one instance per
//! connection on one shard thread.
//!
//! An acceptor thread accepts connections and hands them round-robin (or by
//! another [`BalancingPolicy`]) to N shards. Each shard is a thread, optionally
//! pinned to a core, with its own `mio` poll loop, its own connections and
//! protocol instances (never shared, never locked) and its own hierarchical
//! [`timer_wheel`]. Shards talk through a batched message bus; any thread can
//! reach them through a [`Handle`].
//!
//! The modules are the architecture (see ARCHITECTURE.md at the repository
//! root), and their imports point one way: `api/` holds the plain types
//! users name, `sync/` what crosses threads, `net/` sockets and the output
//! queue, `reactor/` one shard thread and the callback API protocols see
//! (with the [`timer_wheel`]), [`task`] the executor's face, [`tls`] and
//! [`proxy`] transport layers, [`framing`] line and frame protocols,
//! [`endpoint`] the `Listen`/`Connect` descriptions, [`client`] outbound
//! clients, `runtime/` the threads, and `testing` (feature `test-util`) the
//! kit for unit-testing protocols without sockets. Public items are
//! re-exported at the crate root.
//!
//! ```no_run
//! use shardloop::{Conn, Protocol, Server};
//!
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     type Message = ();
//!     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
//!         conn.write(data);
//!     }
//! }
//!
//! let handle = Server::builder()
//!     .shards(2)
//!     .listen("127.0.0.1:0", |_shard| |_peer| Echo)
//!     .build()?
//!     .start()?;
//! println!("echo on {}", handle.tcp_addr(0));
//! handle.shutdown();
//! # Ok::<(), shardloop::Error>(())
//! ```

// Audited exceptions: a listener's TCP_FASTOPEN queue length
// (net/socket_options.rs), which neither socket2 nor nix sets; and the
// completion backend's memory shared with the kernel (reactor/uring/:
// the provided-buffer ring and the submissions that name our buffers),
// which the `io-uring` crate leaves to its caller.
#![deny(unsafe_code)]

mod api;
pub mod client;
pub mod endpoint;
mod error;
pub mod framing;
pub mod http;
pub mod limit;
mod net;
pub mod proxy;
mod reactor;
mod runtime;
mod sync;
pub mod task;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod tls;

pub use api::{
    Backend, CloseReason, ConnId, ConnLoad, LogLimit, PoolSample, ServerStats, Settings,
    ShardStats, TlsFailure,
};
pub use error::{Error, ForwardError, Result};
pub use net::{Addr, Keepalive, SocketOptions};
/// The hierarchical timer wheel each shard runs its timers on, as a pure
/// data structure (insert, cancel, advance).
pub use reactor::timer_wheel;
pub use reactor::{
    Conn, Factory, Migrate, MigrateError, Protocol, Rebalance, ShardCtx, TimerHandle,
};
pub use runtime::metrics;
pub use runtime::{
    Admission, BalancingPolicy, DeferError, Handle, LeastConnections, LifecyclePhase, LoadAware,
    LoopOptions, LoopPhase, Pinning, Placement, PlacementError, RoundRobin, Server, ServerBuilder,
    ShardDeath, ShardLoad, StallReport,
};

/// UDP, as Twisted's `listenUDP` and `DatagramProtocol`, sharded.
///
/// [`ServerBuilder::listen_udp`](crate::ServerBuilder::listen_udp) binds one
/// `SO_REUSEPORT` socket per shard on the same address, so the kernel
/// spreads flows (by a hash of the addresses) over the shards; each shard
/// runs its own [`DatagramProtocol`](crate::udp::DatagramProtocol) instance, with no locks. Datagrams are
/// received and sent in batches (`recvmmsg`/`sendmmsg` on Linux); replies
/// queued in a callback leave together at the end of it.
/// [`ShardCtx::udp_connect`](crate::ShardCtx::udp_connect) and
/// [`ShardCtx::udp_bind`](crate::ShardCtx::udp_bind) open client and
/// multicast sockets on a shard.
///
/// ```no_run
/// use shardloop::udp::{DatagramProtocol, Udp};
/// use shardloop::Server;
/// use std::net::SocketAddr;
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, udp: &mut Udp<'_>, data: &[u8], from: SocketAddr) {
///         udp.send_to(data, from);
///     }
/// }
/// Server::builder()
///     .listen_udp("127.0.0.1:9000", |_shard| Echo)
///     .build()?
///     .run()?;
/// # Ok::<(), shardloop::Error>(())
/// ```
pub mod udp {
    pub use crate::reactor::udp::{DatagramProtocol, Udp};
}
