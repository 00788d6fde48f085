//! The integration tests of this crate, in one test binary: each module
//! was a test binary of its own, and linking the whole crate 40 times
//! took most of CI's time.

mod breakdown;
mod churn;
mod common;
mod connect_phase;
mod halfway;
mod http2;
mod live_metrics;
mod loadgen;
mod scenarios;
mod segments;
mod send_stamp;
mod slo;
mod stages;
mod templates;
mod tls;
mod unix;
