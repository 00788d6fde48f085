//! The shard's timer service: the wheel plus what its entries mean
//! (one-shot and repeating callbacks, idle, read, close and linger
//! deadlines), the shard's clock, and the batch of timers firing now.

pub mod wheel;
#[cfg(test)]
mod wheel_tests;

use super::conn_core::ConnCore;
use super::shard_ctx::ShardCtx;
use crate::api::ConnId;
use slab::Slab;
use std::any::Any;
use std::time::{Duration, Instant};
use wheel::{TimerId, TimerWheel};

pub(crate) type ConnOnce = Box<dyn FnOnce(&mut dyn Any, &mut ConnCore, &mut ShardCtx)>;
pub(crate) type ConnRepeat = Box<dyn FnMut(&mut dyn Any, &mut ConnCore, &mut ShardCtx)>;
pub(crate) type ShardOnce = Box<dyn FnOnce(&mut ShardCtx)>;
pub(crate) type ShardRepeat = Box<dyn FnMut(&mut ShardCtx)>;

/// Deadlines are capped here (about 292 years of 1 ms ticks): far enough to
/// mean "never", small enough that no tick arithmetic can overflow.
const MAX_TICK: u64 = u64::MAX / 4;

/// A scheduled callback; cancel it with [`Conn::cancel_timer`](crate::Conn::cancel_timer)
/// or [`ShardCtx::cancel_timer`]. Cancelling a timer that already fired (or a
/// repeating one already cancelled) does nothing and returns false; a timer
/// cancelled before it ran never runs, even when it was due in the same
/// tick as the timer that cancels it. A handle belongs to the shard that set
/// the timer: cancelling it on another shard is refused (returns false and
/// logs), never mistaken for a timer of that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    pub(crate) shard: u16,
    pub(crate) kind: HandleKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HandleKind {
    Once(TimerId),
    Repeat { key: usize, generation: u64 },
}

pub(crate) enum TimerTask {
    ConnOnce {
        conn: ConnId,
        f: ConnOnce,
    },
    ShardOnce(ShardOnce),
    Repeat {
        key: usize,
        generation: u64,
    },
    Idle(ConnId),
    /// The protocol's read deadline ([`Conn::set_read_timeout`](crate::Conn::set_read_timeout)).
    ReadDeadline(ConnId),
    /// A graceful close has not finished flushing in time.
    CloseDeadline(ConnId),
    Linger(ConnId),
    ConnectTimeout(ConnId),
    /// A Happy Eyeballs race's next attempt is due (race, generation).
    RaceNext(usize, u64),
    /// A Happy Eyeballs race's connect timeout (race, generation).
    RaceDeadline(usize, u64),
    /// A TLS handshake has not finished in time.
    HandshakeDeadline(ConnId),
    /// Accept again on own listener `k` (after an accept error).
    AcceptAgain(usize),
    StopDeadline,
    /// The drain delay is over: begin the graceful stop.
    BeginStop(std::time::Instant),
    /// A task's timer (`task::sleep`): wake it.
    WakeTask(std::task::Waker),
}

pub(crate) enum RepeatFn {
    Conn(ConnId, ConnRepeat),
    Shard(ShardRepeat),
}

pub(crate) struct Repeat {
    pub(crate) generation: u64,
    pub(crate) interval_ticks: u64,
    pub(crate) deadline: u64,
    pub(crate) wheel_id: TimerId,
    /// Taken out while the callback runs.
    pub(crate) f: Option<RepeatFn>,
}

pub(crate) struct Timers {
    pub(crate) wheel: TimerWheel<TimerTask>,
    pub(crate) repeats: Slab<Repeat>,
    /// Timers taken from the wheel this iteration and not yet run; a
    /// cancelled one is emptied here so it never runs.
    firing: Vec<(TimerId, Option<TimerTask>)>,
    scratch: Vec<(TimerId, TimerTask)>,
    shard: u16,
    next_generation: u64,
    origin: Instant,
    tick_ns: u64,
    /// Set by the testing kit: time stands still until it is moved.
    manual_now: Option<Instant>,
}

/// Nanoseconds of `d`, saturated to `u64`.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Timers {
    /// `tick` is the wheel's resolution (1 ms by default).
    pub(crate) fn new(origin: Instant, tick: Duration, shard: u16) -> Self {
        Timers {
            wheel: TimerWheel::new(0),
            repeats: Slab::new(),
            firing: Vec::new(),
            scratch: Vec::new(),
            shard,
            next_generation: 0,
            origin,
            tick_ns: nanos(tick).max(1),
            manual_now: None,
        }
    }

    /// The shard's clock: real time, or the testing kit's manual clock.
    pub(crate) fn clock(&self) -> Instant {
        self.manual_now.unwrap_or_else(Instant::now)
    }

    /// Switches to (or moves) the manual clock (the testing kit's).
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn set_manual_clock(&mut self, now: Instant) {
        self.manual_now = Some(now);
    }

    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    /// Whole ticks since the shard started, rounded down.
    pub(crate) fn ticks_since_origin(&self, t: Instant) -> u64 {
        (nanos(t.saturating_duration_since(self.origin)) / self.tick_ns).min(MAX_TICK)
    }

    /// `d` in ticks, rounded up, saturated.
    pub(crate) fn ticks_of(&self, d: Duration) -> u64 {
        nanos(d).div_ceil(self.tick_ns).min(MAX_TICK)
    }

    /// The tick at which a timer set now for `delay` must fire: rounded up,
    /// so it never fires early; saturated, so `Duration::MAX` means "never".
    pub(crate) fn deadline_after(&self, delay: Duration) -> u64 {
        let now = nanos(self.clock().saturating_duration_since(self.origin));
        now.saturating_add(nanos(delay))
            .div_ceil(self.tick_ns)
            .min(MAX_TICK)
    }

    pub(crate) fn instant_of(&self, tick: u64) -> Instant {
        let after = Duration::from_nanos(tick.saturating_mul(self.tick_ns));
        self.origin
            .checked_add(after)
            .unwrap_or_else(|| self.origin + Duration::from_secs(100 * 365 * 24 * 3600))
    }

    fn handle(&self, kind: HandleKind) -> TimerHandle {
        TimerHandle {
            shard: self.shard,
            kind,
        }
    }

    /// Schedules `task` after `delay`; the raw id (for framework deadlines).
    pub(crate) fn insert_after(&mut self, delay: Duration, task: TimerTask) -> TimerId {
        let d = self.deadline_after(delay);
        self.wheel.insert(d, task)
    }

    /// Schedules `task` at tick `deadline`.
    pub(crate) fn insert_at(&mut self, deadline: u64, task: TimerTask) -> TimerId {
        self.wheel.insert(deadline.min(MAX_TICK), task)
    }

    pub(crate) fn once(&mut self, delay: Duration, task: TimerTask) -> TimerHandle {
        let id = self.insert_after(delay, task);
        self.handle(HandleKind::Once(id))
    }

    pub(crate) fn repeat(&mut self, interval: Duration, f: RepeatFn) -> TimerHandle {
        let interval_ticks = self.ticks_of(interval).max(1);
        let deadline = self.deadline_after(interval);
        let generation = self.next_generation;
        self.next_generation += 1;
        let entry = self.repeats.vacant_entry();
        let key = entry.key();
        let wheel_id = self
            .wheel
            .insert(deadline, TimerTask::Repeat { key, generation });
        entry.insert(Repeat {
            generation,
            interval_ticks,
            deadline,
            wheel_id,
            f: Some(f),
        });
        self.handle(HandleKind::Repeat { key, generation })
    }

    /// Cancels a timer of this shard. False if it already ran, was already
    /// cancelled, or belongs to another shard (refused and logged).
    pub(crate) fn cancel(&mut self, h: TimerHandle) -> bool {
        if h.shard != self.shard {
            tracing::warn!(
                timer_shard = h.shard,
                this_shard = self.shard,
                "timer handle used on another shard; cancel refused"
            );
            return false;
        }
        match h.kind {
            HandleKind::Once(id) => self.cancel_id(id),
            HandleKind::Repeat { key, generation } => match self.repeats.get(key) {
                Some(r) if r.generation == generation => {
                    let r = self.repeats.remove(key);
                    self.cancel_id(r.wheel_id);
                    true
                }
                _ => false,
            },
        }
    }

    /// Cancels a one-shot entry, whether still in the wheel or in the batch
    /// firing now.
    pub(crate) fn cancel_id(&mut self, id: TimerId) -> bool {
        if self.wheel.cancel(id).is_some() {
            return true;
        }
        match self.firing.iter_mut().find(|(i, _)| *i == id) {
            Some((_, task)) => task.take().is_some(),
            None => false,
        }
    }

    /// True while the timer is scheduled (in the wheel or about to fire).
    pub(crate) fn is_pending(&self, h: TimerHandle) -> bool {
        match h.kind {
            HandleKind::Once(id) => {
                self.wheel.deadline(id).is_some()
                    || self.firing.iter().any(|(i, t)| *i == id && t.is_some())
            }
            HandleKind::Repeat { key, generation } => self
                .repeats
                .get(key)
                .is_some_and(|r| r.generation == generation),
        }
    }

    /// Takes every timer due at `now` out of the wheel into the firing
    /// batch; returns how many, and the earliest deadline among them.
    pub(crate) fn collect_due(&mut self, now: u64) -> (usize, Option<u64>) {
        debug_assert!(self.firing.is_empty());
        let earliest = self.wheel.advance(now, &mut self.scratch);
        self.firing
            .extend(self.scratch.drain(..).map(|(id, t)| (id, Some(t))));
        (self.firing.len(), earliest)
    }

    /// The `i`th task of the firing batch, unless it was cancelled meanwhile.
    pub(crate) fn take_firing(&mut self, i: usize) -> Option<TimerTask> {
        self.firing.get_mut(i).and_then(|(_, t)| t.take())
    }

    /// Ends the firing batch.
    pub(crate) fn end_firing(&mut self) {
        self.firing.clear();
    }

    /// Re-arms a repeating timer for its next period after `now` (missed
    /// periods are skipped, as in Twisted's `LoopingCall`) and takes its
    /// callback out to run. `None` if it was cancelled.
    pub(crate) fn take_repeat(
        &mut self,
        key: usize,
        generation: u64,
        now: u64,
    ) -> Option<RepeatFn> {
        let r = self.repeats.get_mut(key)?;
        if r.generation != generation {
            return None;
        }
        let mut next = r.deadline.saturating_add(r.interval_ticks);
        if next <= now {
            next += (now - next) / r.interval_ticks * r.interval_ticks + r.interval_ticks;
        }
        r.deadline = next.min(MAX_TICK);
        r.wheel_id = self
            .wheel
            .insert(r.deadline, TimerTask::Repeat { key, generation });
        r.f.take()
    }

    /// Puts a repeating callback back unless it cancelled itself meanwhile.
    pub(crate) fn restore_repeat(&mut self, key: usize, generation: u64, f: RepeatFn) {
        if let Some(r) = self.repeats.get_mut(key) {
            if r.generation == generation && r.f.is_none() {
                r.f = Some(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let t = Timers::new(Instant::now(), Duration::from_millis(1), 0);
        // Nanoseconds saturate at u64::MAX: about 584 years, in 1 ms ticks.
        let never = u64::MAX.div_ceil(1_000_000);
        assert_eq!(t.ticks_of(Duration::MAX), never);
        assert_eq!(t.deadline_after(Duration::MAX), never);
        assert!(t.instant_of(MAX_TICK) > t.origin());
        // A 1 ns tick: the nanosecond count of 600 years exceeds u64.
        let fine = Timers::new(Instant::now(), Duration::from_nanos(1), 0);
        assert_eq!(
            fine.ticks_of(Duration::from_secs(600 * 365 * 86_400)),
            MAX_TICK
        );
    }

    #[test]
    fn handles_of_another_shard_are_refused() {
        let mut a = Timers::new(Instant::now(), Duration::from_millis(1), 0);
        let mut b = Timers::new(Instant::now(), Duration::from_millis(1), 1);
        let ha = a.once(Duration::from_secs(1), TimerTask::StopDeadline);
        let hb = b.once(Duration::from_secs(1), TimerTask::StopDeadline);
        assert_eq!(ha.kind, hb.kind, "same slot on both shards");
        assert!(!b.cancel(ha), "a's handle must not cancel b's timer");
        assert!(b.is_pending(hb));
        assert!(a.cancel(ha));
    }

    #[test]
    fn a_timer_cancelled_while_its_batch_fires_never_runs() {
        let mut t = Timers::new(Instant::now(), Duration::from_millis(1), 0);
        let first = t.once(Duration::from_millis(5), TimerTask::StopDeadline);
        let second = t.once(Duration::from_millis(5), TimerTask::StopDeadline);
        assert_eq!(t.collect_due(10).0, 2);
        assert!(t.take_firing(0).is_some(), "the first runs");
        // ... and cancels the second, due in the same tick.
        assert!(t.cancel(second));
        assert!(t.take_firing(1).is_none(), "cancelled: it must not run");
        assert!(!t.cancel(first), "already ran");
        t.end_firing();
        assert!(!t.cancel(second), "cancelled once only");
    }
}
