//! What users name but do not drive: why a connection ended, connection
//! ids, hot-reloadable settings, counters, what a TLS handshake or a PROXY
//! header established. Plain data with no dependency on
//! the runtime, so every other folder may use it.

mod backend;
mod close_reason;
mod conn_id;
pub(crate) mod conn_load;
mod log_limit;
pub(crate) mod pool_stats;
mod proxy_header;
mod settings;
mod stats;
mod tls_info;

pub use backend::Backend;
pub use close_reason::{CloseReason, TlsFailure};
pub use conn_id::ConnId;
pub use conn_load::ConnLoad;
pub use log_limit::LogLimit;
pub(crate) use log_limit::LogLimits;
pub(crate) use pool_stats::PoolCounters;
pub use pool_stats::{PoolSample, PoolStats};
pub(crate) use proxy_header::ProxyTrust;
pub use proxy_header::{ProxiedAddrs, ProxyHeader, UntrustedProxy};
pub use settings::Settings;
pub(crate) use stats::{Export, Kind, LocalCounters, StatsBoard};
pub use stats::{ServerStats, ShardStats};
pub use tls_info::TlsInfo;
