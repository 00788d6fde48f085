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

mod acceptor;
mod balance;
mod bus;
mod conn;
mod conn_id;
mod context;
pub mod endpoint;
mod error;
pub mod framing;
mod listener;
mod protocol;
pub mod reconnect;
mod server;
mod settings;
mod shard;
mod stats;
pub mod testing;
pub mod timer_wheel;
mod timers;
mod transport;
mod worker;
mod write_buf;

pub use balance::{BalancingPolicy, LeastConnections, RoundRobin, ShardLoad};
pub use conn::Conn;
pub use conn_id::ConnId;
pub use context::ShardCtx;
pub use error::{Error, Result};
pub use protocol::{CloseReason, Factory, Protocol};
pub use server::{Handle, Pinning, Server, ServerBuilder};
pub use settings::Settings;
pub use stats::{ServerStats, ShardStats};
pub use timers::TimerHandle;
pub use transport::Addr;
pub use worker::DeferError;
