//! `reuse_port` listeners on the ring: one multishot accept per listener
//! replaces the epoll loop's readiness event and `accept4` calls (one per
//! connection, and one more that finds none): a connection costs one
//! `getpeername` (the multishot accept cannot return the address).

use crate::net::{Addr, Stream};
use crate::reactor::shard::Shard;
use std::os::fd::{AsRawFd, OwnedFd};

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

    /// Own listener `k` accepted a connection.
    pub(super) fn ring_accepted(&mut self, k: usize, fd: OwnedFd) {
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
