//! Outbound clients beyond a single connect: the reconnecting client, and
//! `ClientStream`, a connection used from shard tasks with `await`.

pub mod reconnect;
mod stream;

pub use stream::ClientStream;
