//! The byte stream under a connection: a TCP or Unix-domain socket, or a
//! virtual stream (the testing kit's fake and scripted sockets). The shard
//! drives them all alike; the two kernel sockets are matched statically and
//! only the virtual one goes through a vtable.

use super::addr::{unix_addr, Addr};
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

/// A byte stream that is not a kernel socket. The shard reads, writes, shuts
/// down and resets it exactly as it would a socket; it has no poller
/// registration, so whoever drives it says when it is readable or writable.
pub(crate) trait VirtualStream: Read + Write + Send {
    /// The remote end's address.
    fn peer_addr(&self) -> io::Result<Addr>;
    /// The local end's address.
    fn local_addr(&self) -> io::Result<Addr>;
    /// Sends FIN: no more output.
    fn shutdown_write(&mut self);
    /// The coming close is an abort (RST).
    fn reset_on_close(&mut self);
    /// For a connecting stream: why the connect failed, once it has.
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }
    /// The number a completion backend's scripted kernel knows this
    /// stream by (`None`: it goes through the readiness path).
    #[cfg(all(test, target_os = "linux"))]
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

/// A connection's stream.
pub(crate) enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
    /// The testing kit's scripted sockets.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    Virtual(Box<dyn VirtualStream>),
}

impl Stream {
    pub(crate) fn peer_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Tcp),
            Stream::Unix(s) => s.peer_addr().map(unix_addr),
            Stream::Virtual(v) => v.peer_addr(),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Addr::Tcp),
            Stream::Unix(s) => s.local_addr().map(unix_addr),
            Stream::Virtual(v) => v.local_addr(),
        }
    }

    /// For a connecting socket: the connect error, if it failed.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
            Stream::Virtual(v) => v.take_error(),
        }
    }

    /// The socket under it, for options.
    pub(crate) fn sock_ref(&self) -> Option<socket2::SockRef<'_>> {
        match self {
            Stream::Tcp(s) => Some(socket2::SockRef::from(s)),
            Stream::Unix(s) => Some(socket2::SockRef::from(s)),
            Stream::Virtual(_) => None,
        }
    }

    pub(crate) fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    /// Sends FIN.
    pub(crate) fn shutdown_write(&mut self) {
        match self {
            Stream::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Stream::Unix(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Stream::Virtual(v) => v.shutdown_write(),
        }
    }

    /// Makes the coming close an abort (RST for TCP).
    pub(crate) fn reset_on_close(&mut self) {
        match self {
            Stream::Tcp(s) => {
                let _ = socket2::SockRef::from(&*s).set_linger(Some(Duration::ZERO));
            }
            // Unix sockets have no RST; closing with unread data is the abort.
            Stream::Unix(_) => {}
            Stream::Virtual(v) => v.reset_on_close(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Virtual(v) => v.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Virtual(v) => v.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
            Stream::Virtual(v) => v.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl mio::event::Source for Stream {
    fn register(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
            Stream::Virtual(_) => Ok(()),
        }
    }

    fn reregister(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
            Stream::Virtual(_) => Ok(()),
        }
    }

    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
            Stream::Virtual(_) => Ok(()),
        }
    }
}
