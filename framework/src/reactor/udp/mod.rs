//! UDP sockets on a shard: registering them, receiving in batches within a
//! per-iteration budget, delivering to the protocol, sending its queue in
//! batches, closing.

mod batch;
mod ctx;
mod protocol;
mod socket;

pub(crate) use ctx::{bind_udp, PendingUdp};
pub use protocol::{DatagramProtocol, Udp};
pub(crate) use socket::UdpMaker;

use super::shard::{Shard, MAX_UDP_SOCKETS, UDP_TOKEN_BASE};
use super::shard_ctx::ShardCtx;
use batch::{RecvBatch, SendBatch, BATCH};
use mio::{Interest, Token};
use socket::{EndpointCore, UdpEndpoint};
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Datagrams one socket may deliver per loop iteration (fairness).
const BUDGET: usize = 256;

/// A shard's UDP state.
pub(crate) struct UdpTable {
    pub(crate) endpoints: slab::Slab<UdpEndpoint>,
    recv: Option<RecvBatch>,
    send: Option<SendBatch>,
    /// Largest datagram received whole (receive slot size).
    pub(crate) max_datagram: usize,
    /// Sockets with datagrams left after their budget.
    pub(crate) again: Vec<usize>,
}

impl UdpTable {
    pub(crate) fn new(max_datagram: usize) -> Self {
        UdpTable {
            endpoints: slab::Slab::new(),
            recv: None,
            send: None,
            max_datagram,
            again: Vec::new(),
        }
    }
}

/// Runs one protocol callback; a panic is counted and logged, and the
/// socket goes on (one bad datagram must not stop the service).
fn call(
    ep: &mut UdpEndpoint,
    ctx: &mut ShardCtx,
    f: impl FnOnce(&mut dyn DatagramProtocol, &mut Udp<'_>),
) {
    // No connection's callback runs now (for the stall watchdog).
    ctx.shared.activity[ctx.index].returned();
    let mut udp = Udp {
        ep: &mut ep.core,
        ctx,
    };
    let proto = ep.proto.as_mut();
    // Unwind safety: the callback reaches only this socket's protocol and
    // queue and the shard context through `&mut`, each left as a returning
    // callback could leave it.
    if catch_unwind(AssertUnwindSafe(|| f(proto, &mut udp))).is_err() {
        udp.ctx.counters.callback_panics += 1;
        tracing::error!("UDP protocol callback panicked; the socket goes on");
    }
}

impl Shard {
    /// Adds a UDP socket and starts its protocol.
    pub(crate) fn add_udp(
        &mut self,
        mut socket: mio::net::UdpSocket,
        remote: Option<SocketAddr>,
        proto: Box<dyn DatagramProtocol>,
    ) -> io::Result<()> {
        let entry = self.udp.endpoints.vacant_entry();
        let k = entry.key();
        if k >= MAX_UDP_SOCKETS {
            return Err(io::Error::other("too many UDP sockets on one shard"));
        }
        self.poll.registry().register(
            &mut socket,
            Token(UDP_TOKEN_BASE - k),
            Interest::READABLE,
        )?;
        entry.insert(UdpEndpoint {
            core: EndpointCore::new(socket, remote),
            proto,
        });
        call(&mut self.udp.endpoints[k], &mut self.ctx, |p, u| {
            p.started(u)
        });
        self.after_udp(k);
        Ok(())
    }

    /// The UDP socket a token names, if it is one.
    pub(super) fn udp_of(&self, token: usize) -> Option<usize> {
        let k = UDP_TOKEN_BASE.checked_sub(token)?;
        (k < MAX_UDP_SOCKETS && self.udp.endpoints.contains(k)).then_some(k)
    }

    pub(super) fn udp_ready(&mut self, k: usize, readable: bool, writable: bool) {
        if writable {
            if let Some(ep) = self.udp.endpoints.get_mut(k) {
                ep.core.write_blocked = false;
            }
        }
        if readable {
            self.udp_receive(k);
        }
        self.after_udp(k);
    }

    /// Receives and delivers up to the budget.
    fn udp_receive(&mut self, k: usize) {
        let slot = self.udp.max_datagram;
        let mut batch = self.udp.recv.take().unwrap_or_else(|| RecvBatch::new(slot));
        let more = self.udp_receive_with(k, &mut batch);
        self.udp.recv = Some(batch);
        if more {
            // Edge-triggered: come back for the rest next iteration.
            self.udp.again.push(k);
        }
    }

    /// Returns true if the budget ran out with datagrams possibly left.
    fn udp_receive_with(&mut self, k: usize, batch: &mut RecvBatch) -> bool {
        let slot = self.udp.max_datagram;
        let mut delivered = 0;
        while delivered < BUDGET {
            let Some(ep) = self.udp.endpoints.get_mut(k) else {
                return false;
            };
            if ep.core.closing {
                return false;
            }
            let n = match batch.recv(&ep.core.socket) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // An ICMP error queued on the socket (connected sockets).
                    self.ctx.counters.udp_errors += 1;
                    call(ep, &mut self.ctx, |p, u| p.error_received(u, &e));
                    delivered += 1;
                    continue;
                }
            };
            self.ctx.counters.udp_datagrams_in += n as u64;
            for i in 0..n {
                let r = batch.got[i];
                if r.truncated {
                    self.ctx.counters.udp_errors += 1;
                    let e = io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "a datagram from {} was longer than {slot} bytes; dropped",
                            r.from
                        ),
                    );
                    call(ep, &mut self.ctx, |p, u| p.error_received(u, &e));
                    continue;
                }
                let data = batch.datagram(i);
                call(ep, &mut self.ctx, |p, u| {
                    p.datagram_received(u, data, r.from)
                });
            }
            delivered += n;
            if n < BATCH {
                return false;
            }
            // Replies leave between batches, so the queue stays short.
            self.flush_udp(k);
        }
        true
    }

    /// Sends what the socket's queue holds, in batches.
    pub(super) fn flush_udp(&mut self, k: usize) {
        let udp = &mut self.udp;
        let send = udp.send.get_or_insert_with(SendBatch::new);
        let Some(ep) = udp.endpoints.get_mut(k) else {
            return;
        };
        while !ep.core.out.is_empty() && !ep.core.write_blocked {
            match send.send(&ep.core.socket, ep.core.queued()) {
                Ok(n) => {
                    self.ctx.counters.udp_datagrams_out += n as u64;
                    ep.core.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ep.core.write_blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The first datagram failed (too big, refused, unroutable): drop it.
                    ep.core.consume(1);
                    self.ctx.counters.udp_errors += 1;
                    call(ep, &mut self.ctx, |p, u| p.error_received(u, &e));
                }
            }
        }
        // Writable events only while a send waits for one.
        let want = ep.core.write_blocked;
        if want != ep.core.write_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(UDP_TOKEN_BASE - k);
            match self
                .poll
                .registry()
                .reregister(&mut ep.core.socket, token, interest)
            {
                Ok(()) => ep.core.write_interest = want,
                Err(e) => {
                    // Without the writable event the queue would wait
                    // forever: drop it and say so.
                    self.ctx.counters.udp_errors += 1;
                    self.ctx.counters.udp_send_drops += ep.core.out.len() as u64;
                    ep.core.consume(ep.core.out.len());
                    ep.core.write_blocked = false;
                    call(ep, &mut self.ctx, |p, u| p.error_received(u, &e));
                }
            }
        }
    }

    /// After callbacks: send the queue; close a socket that asked to.
    fn after_udp(&mut self, k: usize) {
        self.flush_udp(k);
        if self.udp.endpoints.get(k).is_some_and(|ep| ep.core.closing) {
            self.close_udp(k);
        }
    }

    fn close_udp(&mut self, k: usize) {
        if !self.udp.endpoints.contains(k) {
            return;
        }
        let mut ep = self.udp.endpoints.remove(k);
        ep.core.closing = true;
        call(&mut ep, &mut self.ctx, |p, u| p.stopped(u));
        let _ = self.poll.registry().deregister(&mut ep.core.socket);
        self.udp.again.retain(|&j| j != k);
    }

    /// Receives what sockets left over last iteration.
    pub(super) fn udp_deferred(&mut self) {
        for k in std::mem::take(&mut self.udp.again) {
            self.udp_ready(k, true, false);
        }
    }

    /// The server is stopping: every UDP socket closes.
    pub(super) fn close_all_udp(&mut self) {
        let keys: Vec<usize> = self.udp.endpoints.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close_udp(k);
        }
    }
}
