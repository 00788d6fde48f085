//! Limits a protocol (or the server, at accept) puts on what peers may
//! ask of a shard: a token bucket for rates ([`RateLimiter`]), a cap on
//! work in progress ([`ConcurrencyLimit`]), and the per-source-address
//! connection limits the shards enforce when a connection is made
//! (`Settings::max_connections_per_ip`, `Settings::connection_rate_per_ip`).
//!
//! All of them are shard-local or sharded: no lock on a request's path.

mod concurrency;
pub(crate) mod per_ip;
mod rate;

pub use concurrency::{ConcurrencyLimit, Permit};
pub use rate::{RateLimit, RateLimiter};
