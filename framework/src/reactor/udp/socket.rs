//! A UDP socket on a shard: the socket, its send queue, its protocol.

use super::protocol::DatagramProtocol;
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
    /// Datagrams waiting for the socket: where each is in `out_buf`, and
    /// its destination (`None`: the connected peer). One buffer for all of
    /// them, so queueing a reply allocates nothing once warm.
    pub(crate) out: VecDeque<(usize, usize, Option<SocketAddr>)>,
    pub(crate) out_buf: Vec<u8>,
    pub(crate) out_bytes: usize,
    /// The socket refused a send; waiting for a writable event.
    pub(crate) write_blocked: bool,
    /// Registered for writable events too: only while a send waits (a
    /// UDP socket turns writable after every datagram it sends, and each
    /// of those edges would be a wake-up for nothing).
    pub(crate) write_interest: bool,
    /// `close` was called.
    pub(crate) closing: bool,
}

impl EndpointCore {
    pub(crate) fn new(socket: mio::net::UdpSocket, remote: Option<SocketAddr>) -> Self {
        EndpointCore {
            socket,
            remote,
            out: VecDeque::new(),
            out_buf: Vec::new(),
            out_bytes: 0,
            write_blocked: false,
            write_interest: false,
            closing: false,
        }
    }

    pub(crate) fn queue(&mut self, data: &[u8], to: Option<SocketAddr>, ctx: &mut ShardCtx) {
        if self.closing || self.out_bytes.saturating_add(data.len()) > MAX_QUEUED_BYTES {
            ctx.counters.udp_send_drops += 1;
            return;
        }
        self.out_bytes += data.len();
        let start = self.out_buf.len();
        self.out_buf.extend_from_slice(data);
        self.out.push_back((start, data.len(), to));
    }

    /// The queued datagrams, oldest first.
    pub(crate) fn queued(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> + '_ {
        self.out
            .iter()
            .map(|&(start, len, to)| (&self.out_buf[start..start + len], to))
    }

    /// Forgets the `n` oldest datagrams (sent, or dropped after an error).
    pub(crate) fn consume(&mut self, n: usize) {
        for _ in 0..n {
            if let Some((_, len, _)) = self.out.pop_front() {
                self.out_bytes -= len;
            }
        }
        if self.out.is_empty() {
            self.out_buf.clear();
        }
    }
}

/// A socket with its protocol.
pub(crate) struct UdpEndpoint {
    pub(crate) core: EndpointCore,
    pub(crate) proto: Box<dyn DatagramProtocol>,
}
