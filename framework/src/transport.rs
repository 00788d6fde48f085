//! The byte streams a connection runs over: TCP, Unix-domain sockets, and a
//! fake socket for the testing kit. The shard treats them alike.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Address of a connection's end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 socket address.
    Tcp(SocketAddr),
    /// A Unix-domain socket path; `None` for an unnamed socket (most clients).
    Unix(Option<PathBuf>),
}

impl Addr {
    /// The socket address, for TCP.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Addr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Self {
        Addr::Tcp(a)
    }
}

fn unix_addr(a: std::os::unix::net::SocketAddr) -> Addr {
    Addr::Unix(a.as_pathname().map(|p| p.to_path_buf()))
}

/// What the testing kit's fake socket has seen.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    /// Bytes the connection flushed.
    pub(crate) written: Vec<u8>,
    /// The connection sent FIN.
    pub(crate) shutdown_write: bool,
    /// The connection was aborted (would have sent RST).
    pub(crate) aborted: bool,
    /// The peer has sent EOF: reads return 0.
    pub(crate) peer_eof: bool,
    /// Bytes the "socket" accepts before reporting it is full (None: unlimited).
    pub(crate) capacity: Option<usize>,
    /// Why the protocol was told the connection was lost.
    pub(crate) lost: Option<crate::protocol::CloseReason>,
}

/// A socket that records instead of sending (see [`crate::testing`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeSocket {
    pub(crate) state: Arc<Mutex<FakeState>>,
}

impl FakeSocket {
    pub(crate) fn record_lost(&self, reason: &crate::protocol::CloseReason) {
        self.lock().lost = Some(reason.clone());
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        // A panic while the testing kit held the lock is a test failure anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's stream.
pub(crate) enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
    Fake(FakeSocket),
}

impl Stream {
    pub(crate) fn peer_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Tcp),
            Stream::Unix(s) => s.peer_addr().map(unix_addr),
            Stream::Fake(_) => Ok(Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], 40000)))),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Addr::Tcp),
            Stream::Unix(s) => s.local_addr().map(unix_addr),
            Stream::Fake(_) => Ok(Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], 7000)))),
        }
    }

    /// For a connecting socket: the connect error, if it failed.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
            Stream::Fake(_) => Ok(None),
        }
    }

    pub(crate) fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    /// Sends FIN.
    pub(crate) fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Fake(f) => {
                f.lock().shutdown_write = true;
                Ok(())
            }
        };
    }

    /// Makes the coming close an abort (RST for TCP).
    pub(crate) fn reset_on_close(&self) {
        match self {
            Stream::Tcp(s) => {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
            // Unix sockets have no RST; closing with unread data is the abort.
            Stream::Unix(_) => {}
            Stream::Fake(f) => f.lock().aborted = true,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Fake(f) => {
                if f.lock().peer_eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Fake(f) => {
                let mut st = f.lock();
                let room = match st.capacity {
                    Some(c) => c.saturating_sub(st.written.len()),
                    None => buf.len(),
                };
                if room == 0 && !buf.is_empty() {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let n = room.min(buf.len());
                st.written.extend_from_slice(&buf[..n]);
                Ok(n)
            }
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
            Stream::Fake(_) => {
                let mut total = 0;
                for b in bufs {
                    match self.write(b) {
                        Ok(n) => {
                            total += n;
                            if n < b.len() {
                                break;
                            }
                        }
                        Err(e) if total == 0 => return Err(e),
                        Err(_) => break,
                    }
                }
                Ok(total)
            }
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
            Stream::Fake(_) => Ok(()),
        }
    }

    fn reregister(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
            Stream::Fake(_) => Ok(()),
        }
    }

    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
            Stream::Fake(_) => Ok(()),
        }
    }
}

/// A listening socket of either family.
pub(crate) enum Listener {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener),
}

impl Listener {
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(Addr::Tcp),
            Listener::Unix(l) => l.local_addr().map(unix_addr),
        }
    }
}

impl mio::event::Source for Listener {
    fn register(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(r, t, i),
            Listener::Unix(l) => l.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(r, t, i),
            Listener::Unix(l) => l.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(r),
            Listener::Unix(l) => l.deregister(r),
        }
    }
}
