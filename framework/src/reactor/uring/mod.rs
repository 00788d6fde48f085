//! The completion (io_uring) backend: the start-up probe, the
//! provided-buffer ring multishot receives fill, the kernel boundary (a
//! real ring, or in tests a scripted kernel), the driver (the operations
//! and their completions, apart from the shard), and the shard's side.

// Memory the kernel reads and writes (see lib.rs): each block says why
// it is sound, and the tests drive it against real sockets.
mod accept;
#[allow(unsafe_code)]
pub(crate) mod buf_ring;
#[allow(unsafe_code)]
pub(crate) mod driver;
mod input;
#[allow(unsafe_code)]
pub(crate) mod kernel;
pub(crate) mod probe;
mod shard;
#[cfg(test)]
pub(crate) use shard::ScriptedRing;
pub(crate) use shard::{Quiet, Ring};
