//! Listening sockets: binding them with the options a server wants, and
//! accepting from either family.

use super::addr::{unix_addr, Addr};
use super::stream::Stream;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Binds a non-blocking Unix-domain listener at `path`. A socket file left
/// behind by a dead server (nobody accepts on it) is replaced; a live one is
/// an error.
pub(crate) fn bind_unix(
    path: &std::path::Path,
    backlog: i32,
) -> io::Result<mio::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() && std::os::unix::net::UnixStream::connect(path).is_err() {
            std::fs::remove_file(path)?;
        }
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    let std_listener: std::os::unix::net::UnixListener = socket.into();
    Ok(mio::net::UnixListener::from_std(std_listener))
}

/// Binds a non-blocking TCP listener with `SO_REUSEADDR` and `options`
/// (resolved: `backlog` given). `SO_REUSEPORT` puts several sockets on one
/// port, the kernel spreading connections over them. Options set on the
/// listener (`TCP_NODELAY`, keep-alive, buffers, user timeout) are copied by
/// Linux to every accepted socket: no `setsockopt` per connection.
pub(crate) fn bind_tcp_with(
    addr: SocketAddr,
    options: &super::SocketOptions,
) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if options.reuse_port == Some(true) {
        socket.set_reuse_port(true)?;
    }
    options.apply(&socket, true)?;
    socket.bind(&addr.into())?;
    socket.listen(options.backlog.unwrap_or(1024))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Accept errors that concern only the connection being accepted (the
/// peer left, a signal): accept the next one at once.
pub(crate) fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A listening socket of either family.
pub(crate) enum Listener {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener),
}

impl Listener {
    /// Accepts one connection with its peer's address (from `accept4`
    /// itself: no `getpeername`).
    pub(crate) fn accept(&self) -> io::Result<(Stream, Addr)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), Addr::Tcp(a))),
            Listener::Unix(l) => l.accept().map(|(s, a)| (Stream::Unix(s), unix_addr(a))),
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
