//! Cross-thread primitives the shards and the runtime share, naming nothing
//! above them: the bus inbox with its parked-flag wake-up and capacity, the worker
//! pool's queue, each shard's loop marks for the watchdog, and the
//! `Promise`/`Resolver` pair a result travels in between threads.

pub(crate) mod bus;
pub(crate) mod capacity;
pub(crate) mod marks;
pub mod promise;
pub(crate) mod worker;
