//! Helpers shared by the load generator's integration tests.
#![allow(dead_code)]

use shardloop::{Conn, Handle, Protocol, Server};
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

/// Runs the `shardloop-load` binary with `args`; its exit code (-1 if a
/// signal ended it) and its output, stdout then stderr.
pub fn load<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> (i32, String) {
    let out = Command::new(loadgen_bin()).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A one-shard server in this process (unpinned), each connection running
/// the protocol `make` returns.
pub fn server<P: Protocol>(make: impl Fn() -> P + Send + Sync + Clone + 'static) -> Handle {
    Server::builder()
        .shards(1)
        .pinning(shardloop::Pinning::Off)
        .listen("127.0.0.1:0", move |_| {
            let make = make.clone();
            move |_| make()
        })
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// Echoes every byte.
pub struct Echo;
impl Protocol for Echo {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
}
