//! Helpers shared by the load generator's integration tests.
#![allow(dead_code)]

use shardloop_devtools::{build, Spawned, Target};
use std::path::PathBuf;
use std::process::Command;

/// The framework's echo example in its own process (one shard, unpinned).
pub fn echo_example() -> Spawned {
    let mut cmd = Command::new(build("shardloop", Target::Example("echo")));
    cmd.args(["--shards", "1", "--port", "0", "--no-pin"]);
    Spawned::start(cmd).expect("start the echo example")
}

/// The `shardloop-load` binary, built in the tests' profile.
pub fn loadgen_bin() -> PathBuf {
    build("shardloop-loadgen", Target::Bin("shardloop-load"))
}
