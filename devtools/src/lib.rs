//! Development-only helpers shared by the workspace's tests and benchmark
//! runners (never a dependency of a published crate).
//!
//! - [`build`]: builds an example or binary of the workspace in the profile
//!   the caller itself was built in, and returns its path (a filtered
//!   `cargo test` does not build examples, and a stale one would test old code);
//! - [`Spawned::start`]: runs a server program that prints its listening
//!   address on its first line of output, and parses that address;
//!   the process is stopped when the value is dropped.
//!
//! ```no_run
//! use shardloop_devtools::{build, Spawned, Target};
//! use std::process::Command;
//! let echo = build("shardloop", Target::Example("echo"));
//! let mut cmd = Command::new(echo);
//! cmd.args(["--port", "0", "--shards", "1"]);
//! let server = Spawned::start(cmd).unwrap();
//! println!("echo on {}", server.addr);
//! ```
#![forbid(unsafe_code)]

pub mod pki;
pub mod prom;

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to build.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// `cargo build --example NAME`.
    Example(&'a str),
    /// `cargo build --bin NAME`.
    Bin(&'a str),
}

/// The caller's profile directory (`target/debug` or `target/release`):
/// test binaries live in its `deps/`, examples in `examples/`, binaries in it.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable's path");
    let mut dir = exe
        .parent()
        .expect("executable has a directory")
        .to_path_buf();
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir.pop();
    }
    dir
}

/// Builds `target` of `package` in the caller's profile and returns the
/// executable's path.
///
/// # Panics
/// If cargo cannot be run or the build fails: both make the caller's test
/// meaningless.
pub fn build(package: &str, target: Target<'_>) -> PathBuf {
    let dir = profile_dir();
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package]);
    let path = match target {
        Target::Example(name) => {
            cmd.args(["--example", name]);
            dir.join("examples").join(name)
        }
        Target::Bin(name) => {
            cmd.args(["--bin", name]);
            dir.join(name)
        }
    };
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo");
    assert!(
        status.success(),
        "cargo build -p {package} {target:?} failed"
    );
    path
}

/// The first socket address in `line`, e.g. in
/// `echo listening on 127.0.0.1:7000 with 2 shards` or
/// `http_hello listening on http://127.0.0.1:8080/`.
pub fn parse_addr(line: &str) -> Option<SocketAddr> {
    line.split_whitespace().find_map(|w| {
        w.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .ok()
    })
}

/// A server process that printed its address; stopped when dropped.
pub struct Spawned {
    /// The process.
    pub child: Child,
    /// The address from its first line of output.
    pub addr: SocketAddr,
    /// That first line (some servers name several addresses in it).
    pub banner: String,
    /// On drop, send SIGINT and give it this long to stop gracefully before
    /// SIGKILL (`None`: SIGKILL at once).
    pub graceful_stop: Option<Duration>,
}

impl Spawned {
    /// Starts `cmd` with its stdout piped, reads the first line and parses
    /// the address in it. The rest of its output is read and discarded so it
    /// never blocks on a full pipe.
    pub fn start(mut cmd: Command) -> io::Result<Spawned> {
        let mut child = cmd.stdout(Stdio::piped()).spawn()?;
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let read = out.read_line(&mut line);
        let addr = match read.map(|_| parse_addr(&line)) {
            Ok(Some(a)) => a,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(match other {
                    Err(e) => e,
                    _ => io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{cmd:?} printed no address: {line:?}"),
                    ),
                });
            }
        };
        std::thread::spawn(move || io::copy(&mut out, &mut io::sink()));
        Ok(Spawned {
            child,
            addr,
            banner: line.trim_end().to_string(),
            graceful_stop: None,
        })
    }

    /// The process id (for /proc readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(grace) = self.graceful_stop {
            // Our own child, by PID.
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_found_in_the_examples_banners() {
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(
            parse_addr("echo listening on 127.0.0.1:7000 with 2 shards"),
            Some(a)
        );
        assert_eq!(
            parse_addr("http_hello listening on http://127.0.0.1:7000/ with 1 shards"),
            Some(a)
        );
        assert_eq!(
            parse_addr("peer listening on [::1]:80"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_addr("no address here"), None);
    }

    #[test]
    fn a_program_without_an_address_is_an_error() {
        let mut cmd = Command::new("echo");
        cmd.arg("hello");
        let err = Spawned::start(cmd).err().expect("no address printed");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
