//! Which I/O model a server's shards run on.

use std::fmt;
use std::str::FromStr;

/// How a server's shards do their I/O ([`ServerBuilder::backend`](crate::ServerBuilder::backend)):
/// the same protocols, framing, TLS, timers and tasks run on either.
///
/// - `Epoll` (the default): readiness, as Twisted's epoll reactor and
///   mio: the loop is told a socket is readable, then reads it.
/// - `IoUring` (Linux): completion, as Twisted's IOCP reactor: each
///   connection's receive stays armed in the kernel (multishot) and fills
///   buffers from one ring per shard, so an idle connection holds no read
///   buffer; the sends of one loop iteration go to the kernel together in
///   the same system call that waits. Where the kernel or a sandbox does
///   not offer what it needs, the server runs on epoll and says why in one
///   log line ([`Handle::backend`](crate::Handle::backend) tells which
///   runs). UDP sockets, connects in progress and the bus's wake-ups stay
///   readiness-driven on both (through the ring on this one).
///
/// ```
/// use shardloop::{Backend, Server};
/// let backend: Backend = "io-uring".parse().unwrap();
/// assert_eq!(backend, Backend::IoUring);
/// let builder = Server::builder().backend(backend);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Readiness (epoll).
    #[default]
    Epoll,
    /// Completion (io_uring).
    IoUring,
}

impl Backend {
    /// Its name on command lines and in metrics: `epoll`, `io-uring`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Epoll => "epoll",
            Backend::IoUring => "io-uring",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s.to_ascii_lowercase().as_str() {
            "epoll" => Ok(Backend::Epoll),
            "io-uring" | "io_uring" | "iouring" | "uring" => Ok(Backend::IoUring),
            _ => Err(format!("unknown backend {s:?} (epoll or io-uring)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for b in [Backend::Epoll, Backend::IoUring] {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
        }
        assert_eq!("IO_URING".parse::<Backend>(), Ok(Backend::IoUring));
        assert!("kqueue"
            .parse::<Backend>()
            .unwrap_err()
            .contains("epoll or io-uring"));
    }
}
