//! Placeholder crate: see the open issue that fills it. It only re-exports the framework so the workspace builds.
pub use shardloop;
