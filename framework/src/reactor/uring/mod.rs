//! The completion (io_uring) backend's parts: the start-up probe and the
//! provided-buffer ring multishot receives fill. The shard loop's
//! boundary for it is being built in steps (issue 26); these parts are
//! tested against real sockets on their own first.

// Memory the kernel reads and writes (see lib.rs): each block says why
// it is sound, and the tests drive it against real sockets.
#[allow(unsafe_code)]
pub(crate) mod buf_ring;
#[allow(unsafe_code)]
pub(crate) mod driver;
pub(crate) mod probe;
