//! Socket options for listeners (their accepted connections inherit them on
//! Linux, so they cost nothing per connection) and outbound connections.

use socket2::{Socket, TcpKeepalive};
use std::io;
use std::time::Duration;

/// TCP keep-alive probes (`SO_KEEPALIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`); the system's default if None.
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub count: Option<u32>,
}

/// Options for a listening socket or an outbound connection. `None` leaves
/// the system's (or the server's) default.
///
/// ```
/// use shardloop::{Keepalive, SocketOptions};
/// use std::time::Duration;
/// let opts = SocketOptions {
///     keepalive: Some(Keepalive { idle: Duration::from_secs(60), interval: None, count: None }),
///     user_timeout: Some(Duration::from_secs(30)),
///     ..SocketOptions::default()
/// };
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `TCP_NODELAY` (the server's default is on).
    pub nodelay: Option<bool>,
    /// `SO_KEEPALIVE` with its timings.
    pub keepalive: Option<Keepalive>,
    /// `SO_RCVBUF` in bytes (the kernel doubles it for bookkeeping).
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF` in bytes.
    pub send_buffer: Option<usize>,
    /// `TCP_USER_TIMEOUT`: drop a connection whose sent data stays
    /// unacknowledged this long (Linux).
    pub user_timeout: Option<Duration>,
    /// TCP Fast Open: on a listener, the queue of pending TFO requests
    /// (`TCP_FASTOPEN`); on an outbound connection, any value turns on
    /// `TCP_FASTOPEN_CONNECT` (Linux).
    pub fastopen: Option<u32>,
    /// `IPV6_V6ONLY` for an IPv6 listener (false: also accept IPv4).
    pub ipv6_only: Option<bool>,
    /// Listen backlog.
    pub backlog: Option<i32>,
    /// `SO_REUSEPORT`: one listening socket per shard, each accepting in
    /// its own loop (no acceptor thread for this listener).
    pub reuse_port: Option<bool>,
}

impl SocketOptions {
    /// Sets what these options say on `s` (before `bind`/`listen` for a
    /// listener, before `connect` for an outbound socket).
    pub(crate) fn apply(&self, s: &Socket, listener: bool) -> io::Result<()> {
        if let Some(on) = self.nodelay {
            s.set_tcp_nodelay(on)?;
        }
        if let Some(k) = &self.keepalive {
            s.set_keepalive(true)?;
            let mut p = TcpKeepalive::new().with_time(k.idle);
            if let Some(i) = k.interval {
                p = p.with_interval(i);
            }
            if let Some(n) = k.count {
                p = p.with_retries(n);
            }
            s.set_tcp_keepalive(&p)?;
        }
        if let Some(n) = self.recv_buffer {
            s.set_recv_buffer_size(n)?;
        }
        if let Some(n) = self.send_buffer {
            s.set_send_buffer_size(n)?;
        }
        #[cfg(target_os = "linux")]
        if let Some(t) = self.user_timeout {
            s.set_tcp_user_timeout(Some(t))?;
        }
        if let Some(v6) = self.ipv6_only {
            s.set_only_v6(v6)?;
        }
        #[cfg(target_os = "linux")]
        if let Some(q) = self.fastopen {
            if listener {
                set_int(s, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, q as libc::c_int)?;
            } else {
                use nix::sys::socket::{setsockopt, sockopt::TcpFastOpenConnect};
                setsockopt(s, TcpFastOpenConnect, &true).map_err(io::Error::from)?;
            }
        }
        let _ = listener;
        Ok(())
    }

    /// Fills what `self` leaves unset from `defaults`.
    pub(crate) fn or(&self, defaults: &SocketOptions) -> SocketOptions {
        SocketOptions {
            nodelay: self.nodelay.or(defaults.nodelay),
            keepalive: self.keepalive.or(defaults.keepalive),
            recv_buffer: self.recv_buffer.or(defaults.recv_buffer),
            send_buffer: self.send_buffer.or(defaults.send_buffer),
            user_timeout: self.user_timeout.or(defaults.user_timeout),
            fastopen: self.fastopen.or(defaults.fastopen),
            ipv6_only: self.ipv6_only.or(defaults.ipv6_only),
            backlog: self.backlog.or(defaults.backlog),
            reuse_port: self.reuse_port.or(defaults.reuse_port),
        }
    }
}

/// `TCP_FASTOPEN` as the kernel reports it on a socket (the queue length
/// of a listener; 0 when off): the test reads back what was set.
#[cfg(all(test, target_os = "linux"))]
fn tcp_fastopen(s: &socket2::SockRef<'_>) -> io::Result<u32> {
    get_int(s, libc::IPPROTO_TCP, libc::TCP_FASTOPEN).map(|v| v.max(0) as u32)
}

/// Neither socket2 nor nix sets a listener's `TCP_FASTOPEN` queue length
/// (nix has only the client's `TCP_FASTOPEN_CONNECT`): one integer option,
/// set by hand.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_int(
    s: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is an open socket borrowed from `s` for the call; the
    // pointer and length describe `value`, a live c_int on this stack frame,
    // which the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(unsafe_code)]
fn get_int(
    s: &socket2::SockRef<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the fd is an open socket borrowed for the call; the kernel
    // writes at most `len` bytes into `value`, a live c_int on this stack
    // frame, and stores the length it wrote in `len`.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    #[test]
    fn fast_open_is_set_and_read_back_through_the_raw_calls() {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let opts = SocketOptions {
            fastopen: Some(32),
            ..SocketOptions::default()
        };
        opts.apply(&s, true).unwrap();
        assert_eq!(tcp_fastopen(&socket2::SockRef::from(&s)).unwrap(), 32);
        // The outbound flavour is a different option; it must be accepted.
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        opts.apply(&c, false).unwrap();
    }
}
