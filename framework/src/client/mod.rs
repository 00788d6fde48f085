//! Outbound clients beyond a single connect: the reconnecting client, and
//! `ClientStream`, a connection used from shard tasks with `await`.

mod pool;
pub mod reconnect;
mod stream;

pub use pool::{Pool, PoolError, PoolOptions, PoolStats, Poolable, Pooled};
pub use stream::ClientStream;
