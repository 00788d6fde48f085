//! `reuse_port` listeners on the ring: one multishot accept per listener
//! replaces the epoll loop's readiness event and `accept4` calls (one per
//! connection, and one more that finds none), so a burst of connections
//! costs the shard no system call to take them.

use super::driver::Completion;
use crate::net::{Addr, Stream};
use crate::reactor::shard::Shard;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// After an accept error such as "out of descriptors", wait this long
/// (as the epoll loop does).
const RETRY_AFTER: Duration = Duration::from_millis(10);

impl Shard {
    /// Accepts on own listener `k` through the ring (again, after a
    /// failure; a no-op while its accept is armed).
    pub(crate) fn ring_listen(&mut self, k: usize) {
        let Some((_, listener)) = self.own_listeners.get(k) else {
            return;
        };
        let fd = listener.as_raw_fd();
        if let Some(ring) = self.ring.as_mut() {
            ring.driver.listen(k as u32, fd);
        }
    }

    /// The shard stops accepting: the listeners' accepts are cancelled
    /// before their sockets close.
    pub(crate) fn ring_unlisten(&mut self) {
        if let Some(ring) = self.ring.as_mut() {
            ring.driver.unlisten_all();
        }
    }

    /// An accept completion of listener `k`.
    pub(super) fn ring_accept(&mut self, c: Completion) {
        match c {
            Completion::Accepted { listener, fd } => self.ring_accepted(listener as usize, fd),
            Completion::AcceptFailed { listener, error } => {
                // EMFILE and the like: retrying at once would spin.
                if let Some(suppressed) = self.ctx.log_limits.accept_error.allow() {
                    tracing::warn!(shard = self.ctx.index, error = %error, suppressed, "accept failed; retrying in 10 ms");
                }
                let task = crate::reactor::timers::TimerTask::AcceptAgain(listener as usize);
                self.ctx.timers.insert_after(RETRY_AFTER, task);
            }
            _ => {}
        }
    }

    fn ring_accepted(&mut self, k: usize, fd: OwnedFd) {
        let stream = std::net::TcpStream::from(fd);
        let Some(&(index, _)) = self.own_listeners.get(k) else {
            return;
        };
        // (The multishot accept cannot return the address; a peer that
        // reset already has none, and is dropped as accept4 would.)
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let stream = mio::net::TcpStream::from_std(stream);
        self.accept_here(Stream::Tcp(stream), Addr::Tcp(peer), index);
    }
}
