//! Threads and what crosses between them: the builder and `Server` that
//! start them, the `Handle` that controls them from anywhere, the acceptor
//! and its balancing policy, the bus between shards, the worker pool.

mod acceptor;
mod balance;
mod bind;
mod builder;
pub(crate) mod bus;
mod handle;
mod lifecycle;
pub mod metrics;
mod server;
mod supervisor;
mod systemd;
pub(crate) mod watchdog;
pub(crate) mod worker;

pub use balance::{BalancingPolicy, LeastConnections, RoundRobin, ShardLoad};
pub use builder::{Pinning, ServerBuilder};
pub use handle::Handle;
pub use lifecycle::Phase;
pub use server::Server;
pub(crate) use server::ServerInner;
pub(crate) use supervisor::panic_message;
pub use supervisor::ShardDeath;
pub use watchdog::{LoopPhase, StallReport};
pub use worker::DeferError;
