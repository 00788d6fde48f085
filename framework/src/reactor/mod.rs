//! One shard thread: its loop, I/O dispatch, connection lifecycle, outbound
//! connects, inbox and timer dispatch, and what protocol callbacks receive
//! (`Conn`, `ShardCtx`) together with the traits they implement
//! (`Protocol`, `Factory`).
//!
//! Protocols call the reactor through `Conn`/`ShardCtx` and the reactor
//! calls protocols: that cycle is intrinsic to a callback API and is kept
//! inside this folder. Nothing here is shared between threads except through
//! `envelope` (the bus's messages).

mod accounting;
mod conn;
mod conn_core;
mod conn_layer;
mod conn_state;
mod dispatch;
mod envelope;
mod erased;
pub(crate) mod exec;
mod forward;
mod io;
mod layer;
mod lifecycle;
mod migrate;
mod names;
pub(crate) use names::is_unresolved;
mod outbound;
mod output;
mod own_listeners;
#[cfg(target_os = "linux")]
mod precise_wake;
mod protocol;
mod race;
mod shard;
mod shard_ctx;
mod shared;
mod tasks;
mod timers;
pub(crate) mod udp;
// The completion backend (io_uring).
#[cfg(target_os = "linux")]
mod uring;
pub(crate) use udp::bind_udp;
#[cfg(target_os = "linux")]
pub(crate) use uring::probe::probe as uring_probe;
#[cfg(all(test, target_os = "linux"))]
pub(crate) use uring::{
    driver::NOTIF_USAGE_ZC_COPIED as URING_ZC_COPIED, kernel::Op as UringOp,
    kernel::Scripted as UringScripted, ScriptedRing,
};

pub use conn::Conn;
pub(crate) use conn_core::{ConnObserver, ConnectionEnd};
pub(crate) use envelope::{Envelope, Inboxes, SharedTask};
#[cfg(any(test, feature = "test-util"))]
pub(crate) use erased::ErasedProto;
pub(crate) use erased::{ErasedFactory, FactoryMaker};
pub(crate) use layer::{Layer, LayerMaker, LayerRefusal, WireSink};
pub use migrate::{Migrate, MigrateError, Rebalance};
pub use protocol::{Factory, Protocol};
#[cfg(any(test, feature = "test-util"))]
pub(crate) use shard::Readiness;
pub(crate) use shard::{Shard, ShardInit, WAKER_TOKEN};
pub use shard_ctx::ShardCtx;
pub(crate) use shard_ctx::{Dest, PendingConnect};
#[cfg(any(test, feature = "test-util"))]
pub(crate) use shared::VirtualDial;
pub(crate) use shared::{ListenerMakers, Outbound, Shared};
pub use timers::wheel as timer_wheel;
pub(crate) use timers::ConnOnce as ConnOp;
pub use timers::TimerHandle;
