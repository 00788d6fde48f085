//! A socket with no kernel behind it: it hands the shard the input a test
//! queued, step by step (data, spurious `WouldBlock`, EOF, errors such as
//! `ECONNRESET`), and records what the shard writes, accepting as much per
//! call as the test allows (short writes, `WouldBlock`, `EPIPE`).

use crate::api::CloseReason;
use crate::net::{Addr, VirtualStream};
use crate::reactor::{ConnObserver, ConnectionEnd, ShardCtx};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// What one `read` call on the fake socket returns.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadStep {
    /// Bytes the peer sent; a read smaller than them takes a prefix and
    /// leaves the rest for the next read.
    Data(Vec<u8>),
    /// One spurious `WouldBlock`.
    WouldBlock,
    /// The peer's FIN: this and every later read returns 0.
    Eof,
    /// One failed read (e.g. `ConnectionReset`).
    Error(io::ErrorKind),
}

/// What one `write`/`writev` call on the fake socket does.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteStep {
    /// Takes at most this many bytes (fewer than offered is a short write).
    Accept(usize),
    /// Takes nothing: the socket buffer is full.
    WouldBlock,
    /// Fails (e.g. `BrokenPipe` after the peer reset).
    Error(io::ErrorKind),
}

/// What the fake socket has seen and what it will do next.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    /// Input not yet read, in order.
    pub(crate) inbound: VecDeque<ReadStep>,
    /// The peer's FIN has been read.
    pub(crate) eof_read: bool,
    /// Bytes the connection flushed.
    pub(crate) written: Vec<u8>,
    /// Scripted outcomes of the next write calls; once empty, `capacity` rules.
    pub(crate) write_script: VecDeque<WriteStep>,
    /// Unread bytes the socket holds before reporting it is full (None: unlimited).
    pub(crate) capacity: Option<usize>,
    /// The connection sent FIN.
    pub(crate) shutdown_write: bool,
    /// The connection was aborted (would have sent RST).
    pub(crate) aborted: bool,
    /// Why the protocol was told the connection was lost.
    pub(crate) lost: Option<CloseReason>,
    /// Read calls made (syscalls, in a real socket).
    pub(crate) reads: usize,
    /// Write calls made, vectored or not.
    pub(crate) writes: usize,
    /// An outbound socket's connect, while it is not done.
    pub(crate) connect: Connecting,
    /// The (local, peer) addresses it reports, if not the defaults
    /// (127.0.0.1:7000 and 127.0.0.1:40000).
    pub(crate) addrs: Option<(Addr, Addr)>,
    /// Its number in a scripted kernel (completion model), once attached.
    #[cfg(all(test, target_os = "linux"))]
    pub(crate) ring_fd: Option<std::os::fd::RawFd>,
}

/// Where an outbound fake socket's connect stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connecting {
    /// Connected (an accepted socket always is).
    #[default]
    Done,
    /// No answer yet: no peer address.
    Waiting,
    /// Failed with this error.
    Failed(io::ErrorKind),
}

impl FakeState {
    /// True if a read would return something other than `WouldBlock`.
    pub(crate) fn has_input(&self) -> bool {
        self.eof_read || !self.inbound.is_empty()
    }
}

/// A shared handle on one fake socket: the shard holds one, the test another.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeSocket {
    state: Arc<Mutex<FakeState>>,
}

impl FakeSocket {
    pub(crate) fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panic while the test held the lock fails that test anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An observer that records why the connection ended.
    pub(crate) fn end_recorder(&self) -> Box<dyn ConnObserver> {
        Box::new(EndRecorder(self.clone()))
    }
}

impl Read for FakeSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.lock();
        st.reads += 1;
        if buf.is_empty() {
            return Ok(0);
        }
        match st.inbound.pop_front() {
            None if st.eof_read => Ok(0),
            None | Some(ReadStep::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Some(ReadStep::Eof) => {
                st.eof_read = true;
                Ok(0)
            }
            Some(ReadStep::Error(kind)) => Err(kind.into()),
            Some(ReadStep::Data(mut data)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                if n < data.len() {
                    data.drain(..n);
                    st.inbound.push_front(ReadStep::Data(data));
                }
                Ok(n)
            }
        }
    }
}

impl Write for FakeSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// One call, one scripted step, as one `writev` is one syscall.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut st = self.lock();
        st.writes += 1;
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        let room = match st.write_script.pop_front() {
            Some(WriteStep::Accept(n)) => n,
            Some(WriteStep::WouldBlock) => return Err(io::ErrorKind::WouldBlock.into()),
            Some(WriteStep::Error(kind)) => return Err(kind.into()),
            None => match st.capacity {
                Some(c) => c.saturating_sub(st.written.len()),
                None => offered,
            },
        };
        if room == 0 && offered > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut left = room.min(offered);
        let taken = left;
        for b in bufs {
            let n = left.min(b.len());
            st.written.extend_from_slice(&b[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl VirtualStream for FakeSocket {
    fn peer_addr(&self) -> io::Result<Addr> {
        let st = self.lock();
        if st.connect != Connecting::Done {
            return Err(io::ErrorKind::NotConnected.into());
        }
        Ok(match &st.addrs {
            Some((_, peer)) => peer.clone(),
            None => Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], 40000))),
        })
    }

    fn local_addr(&self) -> io::Result<Addr> {
        Ok(match &self.lock().addrs {
            Some((local, _)) => local.clone(),
            None => Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], 7000))),
        })
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(match self.lock().connect {
            Connecting::Failed(kind) => Some(kind.into()),
            _ => None,
        })
    }

    fn shutdown_write(&mut self) {
        self.lock().shutdown_write = true;
    }

    fn reset_on_close(&mut self) {
        self.lock().aborted = true;
    }

    #[cfg(all(test, target_os = "linux"))]
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        self.lock().ring_fd
    }
}

/// Records the reason a connection ended into its fake socket's state.
struct EndRecorder(FakeSocket);

impl ConnObserver for EndRecorder {
    fn made(&mut self, _ctx: &mut ShardCtx) {}

    fn ended(self: Box<Self>, _ctx: &mut ShardCtx, end: ConnectionEnd) {
        if let ConnectionEnd::Lost(reason) = end {
            self.0.lock().lost = Some(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_follow_the_script_and_eof_sticks() {
        let mut s = FakeSocket::default();
        s.lock().inbound.extend([
            ReadStep::Data(b"hello".to_vec()),
            ReadStep::WouldBlock,
            ReadStep::Error(io::ErrorKind::ConnectionReset),
            ReadStep::Eof,
        ]);
        let mut buf = [0u8; 3];
        assert_eq!(s.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        assert_eq!(s.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"lo");
        let e = s.read(&mut buf).unwrap_err().kind();
        assert_eq!(e, io::ErrorKind::WouldBlock);
        let e = s.read(&mut buf).unwrap_err().kind();
        assert_eq!(e, io::ErrorKind::ConnectionReset);
        assert_eq!(s.read(&mut buf).unwrap(), 0);
        assert_eq!(s.read(&mut buf).unwrap(), 0, "EOF stays");
        assert_eq!(s.lock().reads, 6);
    }

    #[test]
    fn writes_follow_the_script_then_the_capacity() {
        let mut s = FakeSocket::default();
        s.lock().write_script.extend([
            WriteStep::Accept(4),
            WriteStep::WouldBlock,
            WriteStep::Error(io::ErrorKind::BrokenPipe),
        ]);
        s.lock().capacity = Some(6);
        let bufs = [IoSlice::new(b"abc"), IoSlice::new(b"def")];
        assert_eq!(s.write_vectored(&bufs).unwrap(), 4);
        let e = s.write(b"x").unwrap_err().kind();
        assert_eq!(e, io::ErrorKind::WouldBlock);
        let e = s.write(b"x").unwrap_err().kind();
        assert_eq!(e, io::ErrorKind::BrokenPipe);
        assert_eq!(s.write(b"efgh").unwrap(), 2, "capacity 6, 4 held");
        assert_eq!(s.lock().written, b"abcdef");
        assert_eq!(s.lock().writes, 4);
    }
}
