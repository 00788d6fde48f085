//! Sub-millisecond wake-ups for a shard whose timer tick is finer than
//! epoll's millisecond timeout.

use super::shard::TIMERFD_TOKEN;
use mio::Interest;
use std::io;
use std::time::{Duration, Instant};

/// Wakes the shard at a sub-millisecond deadline: `epoll_wait` only takes
/// milliseconds (mio rounds up), so a fine timer tick would otherwise fire
/// up to a millisecond late.
pub(crate) struct PreciseWake {
    fd: timerfd::TimerFd,
    armed_for: Option<Instant>,
}

impl PreciseWake {
    pub(crate) fn new(registry: &mio::Registry) -> io::Result<Self> {
        use std::os::fd::AsRawFd;
        let fd = timerfd::TimerFd::new_custom(timerfd::ClockId::Monotonic, true, true)?;
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
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
        self.fd.set_state(
            timerfd::TimerState::Oneshot(left),
            timerfd::SetTimeFlags::Default,
        );
        self.armed_for = Some(at);
    }
}
