//! The integration tests of this crate, in one test binary: each module
//! was a test binary of its own, and linking the whole crate 40 times
//! took most of CI's time.

mod advise;
mod charts;
mod profile_cli;
mod remote;
mod sweep;
mod topology;
