//! A UDP socket on a shard: the socket, its send queue, its protocol.

use super::DatagramProtocol;
use crate::reactor::ShardCtx;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

/// Bytes a socket may hold queued for sending; beyond it datagrams are
/// dropped and counted (UDP has no backpressure to offer).
const MAX_QUEUED_BYTES: usize = 1 << 20;

/// Builds a shard's protocol for a `listen_udp` socket.
pub(crate) type UdpMaker = Arc<dyn Fn(usize) -> Box<dyn DatagramProtocol> + Send + Sync>;

/// The socket side of an endpoint (what a callback's `Udp` reaches).
pub(crate) struct EndpointCore {
    pub(crate) socket: mio::net::UdpSocket,
    /// The peer of a connected socket.
    pub(crate) remote: Option<SocketAddr>,
    /// Datagrams waiting for the socket (`None`: to the connected peer).
    pub(crate) out: VecDeque<(Vec<u8>, Option<SocketAddr>)>,
    pub(crate) out_bytes: usize,
    /// The socket refused a send; waiting for a writable event.
    pub(crate) write_blocked: bool,
    /// `close` was called.
    pub(crate) closing: bool,
}

impl EndpointCore {
    pub(crate) fn new(socket: mio::net::UdpSocket, remote: Option<SocketAddr>) -> Self {
        EndpointCore {
            socket,
            remote,
            out: VecDeque::new(),
            out_bytes: 0,
            write_blocked: false,
            closing: false,
        }
    }

    pub(crate) fn queue(&mut self, data: &[u8], to: Option<SocketAddr>, ctx: &mut ShardCtx) {
        if self.closing || self.out_bytes.saturating_add(data.len()) > MAX_QUEUED_BYTES {
            ctx.counters.udp_send_drops += 1;
            return;
        }
        self.out_bytes += data.len();
        self.out.push_back((data.to_vec(), to));
    }
}

/// A socket with its protocol.
pub(crate) struct UdpEndpoint {
    pub(crate) core: EndpointCore,
    pub(crate) proto: Box<dyn DatagramProtocol>,
}
