//! Errors returned by the framework's public API, all in one place below
//! every other folder (any of them may return one).

mod endpoint;
mod tls;

pub use endpoint::EndpointError;
use std::io;
pub use tls::TlsConfigError;

/// Everything that can go wrong when building, starting or talking to a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener address did not resolve.
    #[error("cannot resolve listen address {addr:?}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// An endpoint description is malformed.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The endpoint that failed.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A TLS listener's certificate, key or settings could not be loaded.
    #[error("TLS listener {addr}: {source}")]
    Tls {
        /// The listener.
        addr: String,
        /// What was wrong.
        source: TlsConfigError,
    },
    /// A builder setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A shard index outside `0..shards`.
    #[error("no shard {index}: the server has {shards} shards")]
    NoSuchShard {
        /// The index asked for.
        index: usize,
        /// How many shards there are.
        shards: usize,
    },
    /// A shard thread died; the server stopped.
    #[error("shard {shard} died: {message}")]
    ShardDied {
        /// The shard's index.
        shard: usize,
        /// Its panic's message.
        message: String,
    },
    /// The server has stopped and no longer accepts work.
    #[error("the server has stopped")]
    Stopped,
    /// Shard `shard`'s inbox holds its capacity of requests
    /// (`LoopOptions::inbox_capacity`): the request was not queued. A full
    /// inbox never blocks the sender; retry later, shed the work, or (from
    /// a thread outside the shards) wait with
    /// [`Handle::post_to_within`](crate::Handle::post_to_within).
    #[error("shard {shard} is overloaded: its inbox is full")]
    Overloaded {
        /// The shard whose inbox is full.
        shard: usize,
    },
    /// A thread could not be spawned, or the poller could not be created.
    #[error("cannot start the server: {0}")]
    Io(#[from] io::Error),
}

/// Short alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why [`Conn::forward_to`](crate::Conn::forward_to) refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The target lives on another shard: send bytes there by message.
    #[error("the target connection is on another shard")]
    OtherShard,
    /// A connection cannot forward its input to itself.
    #[error("a connection cannot forward to itself")]
    ToItself,
    /// This connection's input goes to a task (`Conn::spawn_stream`).
    #[error("this connection's input is read by a task")]
    ReadByTask,
}
