//! Threads and what crosses between them: the builder and `Server` that
//! start them, the `Handle` that controls them from anywhere, the acceptor
//! and its balancing policy, the bus between shards, the worker pool.

mod acceptor;
mod balance;
mod bind;
mod builder;
mod handle;
pub mod metrics;
mod placement;
mod server;
mod supervisor;
mod systemd;
mod triggers;
pub(crate) mod watchdog;
mod worker;

pub use crate::sync::marks::LoopPhase;
pub use crate::sync::worker::DeferError;
pub use balance::{Admission, BalancingPolicy, LeastConnections, LoadAware, RoundRobin, ShardLoad};
pub use builder::{LoopOptions, Pinning, ServerBuilder};
pub use handle::Handle;
pub use placement::{Placement, PlacementError};
pub use server::Server;
#[cfg(any(test, feature = "test-util"))]
pub(crate) use server::ServerInner;
pub use supervisor::ShardDeath;
pub use triggers::LifecyclePhase;
pub use watchdog::StallReport;
