//! Receiving and sending datagrams in batches: `recvmmsg`/`sendmmsg` on
//! Linux (through `nix`'s safe wrappers), one `recvfrom`/`sendto` at a
//! time elsewhere.

use std::io;
use std::net::SocketAddr;

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub(crate) const BATCH: usize = 16;

/// One received datagram: where it is in the batch buffer, its sender, and
/// whether it was longer than the slot (cut short by the kernel).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) from: SocketAddr,
    pub(crate) truncated: bool,
}

/// Reusable receive buffers for a shard: `BATCH` slots of `slot` bytes.
pub(crate) struct RecvBatch {
    bufs: Vec<u8>,
    slot: usize,
    pub(crate) got: Vec<Received>,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl RecvBatch {
    pub(crate) fn new(slot: usize) -> Self {
        RecvBatch {
            bufs: vec![0u8; slot * BATCH],
            slot,
            got: Vec::with_capacity(BATCH),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// The `i`-th datagram of the last batch.
    pub(crate) fn datagram(&self, i: usize) -> &[u8] {
        let r = &self.got[i];
        let start = i * self.slot;
        &self.bufs[start..start + r.len.min(self.slot)]
    }

    /// Receives up to a batch; `WouldBlock` when there is none.
    #[cfg(target_os = "linux")]
    pub(crate) fn recv(&mut self, socket: &mio::net::UdpSocket) -> io::Result<usize> {
        use nix::sys::socket::{recvmmsg, MsgFlags};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;
        self.got.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .chunks_mut(self.slot)
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        for msg in results {
            let Some(from) = msg.address.and_then(|a| std_addr(&a)) else {
                continue;
            };
            self.got.push(Received {
                len: msg.bytes,
                from,
                truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            });
        }
        Ok(self.got.len())
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn recv(&mut self, socket: &mio::net::UdpSocket) -> io::Result<usize> {
        self.got.clear();
        for i in 0..BATCH {
            let start = i * self.slot;
            match socket.recv_from(&mut self.bufs[start..start + self.slot]) {
                Ok((len, from)) => self.got.push(Received {
                    len,
                    from,
                    truncated: false,
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && i > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(self.got.len())
    }
}

#[cfg(target_os = "linux")]
fn std_addr(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Reusable send headers for a shard.
pub(crate) struct SendBatch {
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl SendBatch {
    pub(crate) fn new() -> Self {
        SendBatch {
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Sends the first datagrams of `queue` (at most a batch); returns how
    /// many the kernel took. `None` as the address: the connected peer.
    #[cfg(target_os = "linux")]
    pub(crate) fn send<'q>(
        &mut self,
        socket: &mio::net::UdpSocket,
        queue: impl Iterator<Item = (&'q [u8], Option<SocketAddr>)>,
    ) -> io::Result<usize> {
        use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, SockaddrStorage};
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;
        let mut slices: Vec<[IoSlice<'q>; 1]> = Vec::with_capacity(BATCH);
        let mut addrs: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
        for (data, to) in queue.take(BATCH) {
            slices.push([IoSlice::new(data)]);
            addrs.push(to.map(SockaddrStorage::from));
        }
        if slices.is_empty() {
            return Ok(0);
        }
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter(),
            &addrs,
            no_cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        Ok(sent.count())
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn send<'q>(
        &mut self,
        socket: &mio::net::UdpSocket,
        queue: impl Iterator<Item = (&'q [u8], Option<SocketAddr>)>,
    ) -> io::Result<usize> {
        let mut n = 0;
        for (data, to) in queue.take(BATCH) {
            let r = match to {
                Some(to) => socket.send_to(data, to),
                None => socket.send(data),
            };
            match r {
                Ok(_) => n += 1,
                Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}
