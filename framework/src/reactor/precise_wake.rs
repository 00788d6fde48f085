//! Sub-millisecond wake-ups for a shard whose timer tick is finer than
//! epoll's millisecond timeout.

use super::shard::TIMERFD_TOKEN;
use mio::Interest;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::io;
use std::time::{Duration, Instant};

/// Wakes the shard at a sub-millisecond deadline: `epoll_wait` only takes
/// milliseconds (mio rounds up), so a fine timer tick would otherwise fire
/// up to a millisecond late.
pub(crate) struct PreciseWake {
    fd: TimerFd,
    armed_for: Option<Instant>,
}

impl PreciseWake {
    pub(crate) fn new(registry: &mio::Registry) -> io::Result<Self> {
        use std::os::fd::{AsFd, AsRawFd};
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_fd().as_raw_fd()),
            TIMERFD_TOKEN,
            Interest::READABLE,
        )?;
        Ok(PreciseWake {
            fd,
            armed_for: None,
        })
    }

    /// Arms the timer for `at` (once per distinct deadline: one syscall).
    pub(crate) fn arm(&mut self, at: Instant, now: Instant) {
        if self.armed_for == Some(at) {
            return;
        }
        let left = at
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        // A failure leaves the shard waking on epoll's millisecond timeout:
        // late by under a millisecond, never lost.
        let armed = self.fd.set(
            Expiration::OneShot(TimeSpec::from_duration(left)),
            TimerSetTimeFlags::empty(),
        );
        if armed.is_err() {
            return;
        }
        self.armed_for = Some(at);
    }
}
