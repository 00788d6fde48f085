//! # shardloop-tune
//!
//! Recommends a shard count from measured latency. For each shard count (and
//! optionally each value of a second knob) it starts the server, measures
//! closed-loop saturation throughput with the load generator, then bisects
//! for the highest open-loop rate whose p99 meets the target, and measures
//! p99 at fixed fractions of saturation. It fits the Universal Scalability
//! Law to extrapolate past this machine and writes a Markdown/JSON report
//! with SVG charts.

#![forbid(unsafe_code)]

pub mod advise;
pub mod charts;
pub mod profile;
pub mod report;
pub mod search;
pub mod server;
pub mod topology;
pub mod tune;
pub mod usl;

pub use report::{Recommendation, TuneReport, VariantResult};
pub use server::{Knob, RemoteSpec, ServerSpec};
pub use tune::{run, TuneConfig};

/// Why tuning failed.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// Bad settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server under test could not be started.
    #[error("server: {0}")]
    Server(String),
    /// A load run failed.
    #[error("load run: {0}")]
    Load(#[from] shardloop_loadgen::LoadError),
    /// Writing the report failed.
    #[error("report: {0}")]
    Report(String),
    /// File I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
