//! The driver's accepts: one multishot accept per listening socket.
//! (Single-shot accepts that return the peer's address would save the
//! shard's `getpeername` per connection, but measured slower: each arms
//! the listener's wait again in the kernel; churn 1.04 against 1.12 epoll's
//! per CPU-second.)

use super::{user_data, Completion, Driver, Kind, Op};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

impl Driver {
    /// Accepts from listening socket `fd` as listener `k`: a multishot
    /// accept, one [`Completion::Accepted`] per connection. Called again
    /// after [`Completion::AcceptFailed`] to resume (a no-op while armed).
    pub(crate) fn listen(&mut self, k: u32, fd: RawFd) {
        let i = k as usize;
        if self.listeners.len() <= i {
            self.listeners.resize(i + 1, (None, false));
        }
        self.listeners[i].0 = Some(fd);
        self.arm_accept(k);
    }

    fn arm_accept(&mut self, k: u32) {
        let Some(&(Some(fd), false)) = self.listeners.get(k as usize) else {
            return;
        };
        self.listeners[k as usize].1 = true;
        self.push(Op::Accept { fd }, user_data(Kind::Accept, k, 0));
    }

    /// Stops accepting on every listener, now: the kernel holds a
    /// listening socket with an armed accept open, so until the cancel
    /// is in, closing it would not stop connections from coming to it.
    /// Connections accepted meanwhile are closed as they complete.
    pub(crate) fn unlisten_all(&mut self) {
        for k in 0..self.listeners.len() {
            let (fd, armed) = std::mem::take(&mut self.listeners[k]);
            if fd.is_some() && armed {
                let target = user_data(Kind::Accept, k as u32, 0);
                self.push(Op::Cancel { target }, user_data(Kind::Cancel, k as u32, 0));
            }
        }
        if let Err(e) = self.submit() {
            tracing::error!(error = %e, "io_uring submit failed");
        }
    }

    /// An accept's completion, for listener `k`.
    pub(super) fn accepted(&mut self, k: u32, res: i32, more: bool) -> Option<Completion> {
        let listening = self
            .listeners
            .get(k as usize)
            .is_some_and(|(fd, _)| fd.is_some());
        if !more {
            if let Some(l) = self.listeners.get_mut(k as usize) {
                l.1 = false;
            }
        }
        if res >= 0 {
            // SAFETY: the kernel made this descriptor for us with this
            // completion; nothing else knows its number.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if !listening {
                // Accepted while the cancel was on its way: nobody's
                // (closed as it drops).
                return None;
            }
            if !more {
                // The multishot accept ended without an error (the kernel
                // may end one at will): it goes on.
                self.arm_accept(k);
            }
            return Some(Completion::Accepted { listener: k, fd });
        }
        let error = io::Error::from_raw_os_error(-res);
        if !listening || res == -libc::ECANCELED {
            return None;
        }
        if crate::net::is_transient_accept_error(&error) {
            // A connection reset before it was accepted and the like: the
            // next one is accepted as usual.
            if !more {
                self.arm_accept(k);
            }
            return None;
        }
        Some(Completion::AcceptFailed { listener: k, error })
    }
}
