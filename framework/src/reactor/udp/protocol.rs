//! What a UDP protocol implements (`DatagramProtocol`) and the context its
//! callbacks get (`Udp`).

use super::socket::EndpointCore;
use crate::reactor::ShardCtx;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// One UDP socket's behaviour on one shard (Twisted's `DatagramProtocol`).
pub trait DatagramProtocol: 'static {
    /// The socket is ready (Twisted's `startProtocol`): join multicast
    /// groups here, or send a first datagram.
    fn started(&mut self, _udp: &mut Udp<'_>) {}

    /// A datagram arrived. `data` is only valid during the call.
    fn datagram_received(&mut self, udp: &mut Udp<'_>, data: &[u8], from: SocketAddr);

    /// An error about this socket: a datagram longer than the receive
    /// buffer (`InvalidData`; it was cut short and not delivered), an ICMP
    /// error on a connected socket (`ConnectionRefused` when nobody
    /// listens), or a failed send. The default logs it.
    fn error_received(&mut self, _udp: &mut Udp<'_>, error: &io::Error) {
        tracing::debug!(%error, "UDP error");
    }

    /// The socket was closed (by [`Udp::close`] or the server stopping).
    fn stopped(&mut self, _udp: &mut Udp<'_>) {}
}

/// The context of a [`DatagramProtocol`] callback: send, multicast, close,
/// and the shard.
pub struct Udp<'a> {
    pub(crate) ep: &'a mut EndpointCore,
    pub(crate) ctx: &'a mut ShardCtx,
}

impl Udp<'_> {
    /// Queues a datagram to `to`; queued datagrams go out together (one
    /// `sendmmsg`) when the callback returns. Dropped and counted
    /// (`udp_send_drops`) when the socket's queue is full or closed.
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) {
        self.ep.queue(data, Some(to), self.ctx);
    }

    /// Queues a datagram to the connected peer
    /// ([`ShardCtx::udp_connect`](crate::ShardCtx::udp_connect)).
    pub fn send(&mut self, data: &[u8]) {
        if self.ep.remote.is_none() {
            self.ctx.counters.udp_send_drops += 1;
            tracing::debug!("UDP send on an unconnected socket; use send_to");
            return;
        }
        self.ep.queue(data, None, self.ctx);
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ep.socket.local_addr()
    }

    /// The connected peer, for a connected socket.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.ep.remote
    }

    /// Joins an IPv4 multicast group on `interface` (`0.0.0.0`: the default).
    pub fn join_multicast_v4(&mut self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.ep.socket.join_multicast_v4(&group, &interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&mut self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.ep.socket.leave_multicast_v4(&group, &interface)
    }

    /// Joins an IPv6 multicast group on interface index `interface` (0: the default).
    pub fn join_multicast_v6(&mut self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.ep.socket.join_multicast_v6(&group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&mut self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.ep.socket.leave_multicast_v6(&group, interface)
    }

    /// Whether this host receives its own IPv4 multicast datagrams.
    pub fn set_multicast_loop_v4(&mut self, on: bool) -> io::Result<()> {
        self.ep.socket.set_multicast_loop_v4(on)
    }

    /// The socket, for other options.
    pub fn socket(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.ep.socket)
    }

    /// Closes the socket once this callback returns (queued datagrams are
    /// sent first, as far as the kernel takes them).
    pub fn close(&mut self) {
        self.ep.closing = true;
    }

    /// The shard this socket lives on.
    pub fn shard(&mut self) -> &mut ShardCtx {
        self.ctx
    }
}
