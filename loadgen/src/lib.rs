//! # shardloop-loadgen
//!
//! A load generator built on shardloop itself: each loadgen thread is a
//! shard, each connection a `Protocol`. Closed loop (connections × pipeline)
//! or open loop (a constant total rate, latency measured from each
//! request's intended send time, as wrk2 does, with the uncorrected service
//! time beside it). Latency goes into HdrHistograms; results come out as a
//! wrk-style summary, wrk2's percentile spectrum, JSON and interval logs.
//!
//! ```no_run
//! use shardloop_loadgen::{run, Config, Mode};
//! use std::time::Duration;
//! let mut cfg = Config::new("127.0.0.1:7000".parse().unwrap());
//! cfg.connections = 64;
//! cfg.mode = Mode::Open { rate: 50_000.0, max_in_flight: 1 };
//! cfg.duration = Duration::from_secs(5);
//! let report = run(&cfg, |_progress| {})?;
//! println!("{}", report.summary());
//! # Ok::<(), shardloop_loadgen::LoadError>(())
//! ```

#![forbid(unsafe_code)]

pub mod cli;
mod client;
mod codec;
mod config;
mod cpu;
mod engine;
pub mod hlog;
mod live;
pub mod plan;
mod recorder;
mod report;
pub mod scenario;
pub mod segment;
pub mod slo;
pub mod template;

pub use config::{Config, Mode, ResponseFrame, TlsTarget, Workload};
pub use cpu::process_cpu_ticks;
pub use engine::{run, Progress, Setup};
pub use recorder::{new_histogram, ErrorCounts, ErrorKind, Sample};
pub use report::{
    decode_histogram, encode_histogram, fmt_us, spectrum, write_csv, Aborted, Interval,
    LatencySummary, Report,
};

/// Why a load run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Inconsistent settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No connection could be established.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Target.
        addr: shardloop::Addr,
        /// The first connect error.
        reason: String,
    },
    /// The loadgen's own shards could not start.
    #[error("cannot start loadgen threads: {0}")]
    Framework(#[from] shardloop::Error),
    /// An interval log could not be read or written.
    #[error("interval log: {0}")]
    Hlog(String),
    /// An input file of `merge` is unreadable or malformed.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing output failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
