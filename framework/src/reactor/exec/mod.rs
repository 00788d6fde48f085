//! The shard-local executor's core: the tasks a shard keeps and polls
//! (`executor.rs`), and the thread-local record of the shard a thread runs
//! (`local.rs`), through which a task reaches its shard (wake-ups, timers,
//! operations on its connection, spawns, connects) without holding it.
//! The public face (`ConnTask`, `sleep`, `timeout`, `spawn_local`) is
//! `task/`, above the reactor.

pub(crate) mod executor;
pub(crate) mod input;
pub(crate) mod local;
