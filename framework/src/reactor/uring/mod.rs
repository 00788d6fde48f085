//! The completion (io_uring) backend: the start-up probe, the
//! provided-buffer ring multishot receives fill, the driver (the ring and
//! its operations, apart from the shard), and the shard's side of it.

// Memory the kernel reads and writes (see lib.rs): each block says why
// it is sound, and the tests drive it against real sockets.
mod accept;
#[allow(unsafe_code)]
pub(crate) mod buf_ring;
#[allow(unsafe_code)]
pub(crate) mod driver;
pub(crate) mod probe;
mod shard;
pub(crate) use shard::{Quiet, Ring};
