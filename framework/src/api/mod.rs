//! What users name but do not drive: why a connection ended, connection
//! ids, hot-reloadable settings, counters. Plain data with no dependency on
//! the runtime, so every other folder may use it.

mod close_reason;
mod conn_id;
mod settings;
mod stats;

pub use close_reason::{CloseReason, TlsFailure};
pub use conn_id::ConnId;
pub use settings::Settings;
pub(crate) use stats::{LocalCounters, StatsBoard};
pub use stats::{ServerStats, ShardStats};
