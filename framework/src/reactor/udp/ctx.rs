//! Opening UDP sockets from a shard: a connected client socket or a bound
//! one (multicast receivers, peers on a fixed port).

use super::protocol::DatagramProtocol;
use crate::reactor::shard::Shard;
use crate::reactor::shard_ctx::ShardCtx;
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// A socket to register at the end of the current callback.
pub(crate) struct PendingUdp {
    socket: std::net::UdpSocket,
    remote: Option<SocketAddr>,
    proto: Box<dyn DatagramProtocol>,
}

/// A non-blocking UDP socket bound to `addr` (`SO_REUSEPORT` when `shared`).
pub(crate) fn bind_udp(addr: SocketAddr, shared: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if shared {
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

impl ShardCtx {
    /// Opens a UDP socket on this shard connected to `remote` (a client):
    /// the protocol sends with [`Udp::send`](crate::udp::Udp::send), only
    /// `remote`'s datagrams arrive, and ICMP errors (nobody listening) come
    /// to `error_received`. Returns the local address.
    pub fn udp_connect<P: DatagramProtocol>(
        &mut self,
        remote: SocketAddr,
        protocol: P,
    ) -> io::Result<SocketAddr> {
        let any: SocketAddr = if remote.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = bind_udp(any, false)?;
        socket.connect(remote)?;
        self.queue_udp(socket, Some(remote), Box::new(protocol))
    }

    /// Opens a UDP socket on this shard bound to `addr` (port 0: any),
    /// unconnected: for multicast receivers or a peer on a fixed port.
    /// Returns the bound address.
    pub fn udp_bind<P: DatagramProtocol>(
        &mut self,
        addr: SocketAddr,
        protocol: P,
    ) -> io::Result<SocketAddr> {
        let socket = bind_udp(addr, false)?;
        self.queue_udp(socket, None, Box::new(protocol))
    }

    fn queue_udp(
        &mut self,
        socket: std::net::UdpSocket,
        remote: Option<SocketAddr>,
        proto: Box<dyn DatagramProtocol>,
    ) -> io::Result<SocketAddr> {
        let local = socket.local_addr()?;
        self.pending_udp.push(PendingUdp {
            socket,
            remote,
            proto,
        });
        Ok(local)
    }
}

impl Shard {
    /// Registers the UDP sockets opened during this iteration.
    pub(in crate::reactor) fn open_pending_udp(&mut self) {
        for p in std::mem::take(&mut self.ctx.pending_udp) {
            let socket = mio::net::UdpSocket::from_std(p.socket);
            if let Err(e) = self.add_udp(socket, p.remote, p.proto) {
                tracing::error!(error = %e, "cannot add a UDP socket to the shard");
            }
        }
    }

    /// Starts the `listen_udp` sockets this shard was given.
    pub(in crate::reactor) fn start_udp(&mut self) {
        for (socket, make) in std::mem::take(&mut self.udp_init) {
            let proto = make(self.ctx.index);
            let socket = mio::net::UdpSocket::from_std(socket);
            if let Err(e) = self.add_udp(socket, None, proto) {
                tracing::error!(shard = self.ctx.index, error = %e, "cannot serve a UDP socket");
            }
        }
    }
}
