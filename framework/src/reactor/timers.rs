//! The shard's timer service: the wheel plus what its entries mean
//! (one-shot and repeating callbacks, idle and linger checks).

use super::conn_core::ConnCore;
use super::shard_ctx::ShardCtx;
use crate::api::ConnId;
use crate::timer_wheel::{TimerId, TimerWheel};
use slab::Slab;
use std::any::Any;
use std::time::{Duration, Instant};

pub(crate) type ConnOnce = Box<dyn FnOnce(&mut dyn Any, &mut ConnCore, &mut ShardCtx)>;
pub(crate) type ConnRepeat = Box<dyn FnMut(&mut dyn Any, &mut ConnCore, &mut ShardCtx)>;
pub(crate) type ShardOnce = Box<dyn FnOnce(&mut ShardCtx)>;
pub(crate) type ShardRepeat = Box<dyn FnMut(&mut ShardCtx)>;

/// A scheduled callback; cancel it with [`Conn::cancel_timer`](crate::Conn::cancel_timer)
/// or [`ShardCtx::cancel_timer`]. Cancelling a timer that already fired (or a
/// repeating one already cancelled) does nothing and returns false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerHandle(pub(crate) HandleKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HandleKind {
    Once(TimerId),
    Repeat { key: usize, generation: u64 },
}

pub(crate) enum TimerTask {
    ConnOnce { conn: ConnId, f: ConnOnce },
    ShardOnce(ShardOnce),
    Repeat { key: usize, generation: u64 },
    Idle(ConnId),
    Linger(ConnId),
    ConnectTimeout(ConnId),
    StopDeadline,
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
    next_generation: u64,
    origin: Instant,
    tick_ns: u64,
    /// Set by the testing kit: time stands still until it is moved.
    manual_now: Option<Instant>,
}

impl Timers {
    /// `tick` is the wheel's resolution (1 ms by default).
    pub(crate) fn new(origin: Instant, tick: Duration) -> Self {
        Timers {
            wheel: TimerWheel::new(0),
            repeats: Slab::new(),
            next_generation: 0,
            origin,
            tick_ns: (tick.as_nanos() as u64).max(1),
            manual_now: None,
        }
    }

    /// The shard's clock: real time, or the testing kit's manual clock.
    pub(crate) fn clock(&self) -> Instant {
        self.manual_now.unwrap_or_else(Instant::now)
    }

    /// Switches to (or moves) the manual clock.
    pub(crate) fn set_manual_clock(&mut self, now: Instant) {
        self.manual_now = Some(now);
    }

    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    /// Whole ticks since the shard started, rounded down.
    pub(crate) fn ticks_since_origin(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.origin).as_nanos() as u64) / self.tick_ns
    }

    /// `d` in ticks, rounded up.
    pub(crate) fn ticks_of(&self, d: Duration) -> u64 {
        (d.as_nanos() as u64).div_ceil(self.tick_ns)
    }

    /// The tick at which a timer set now for `delay` must fire: rounded up,
    /// so it never fires early.
    pub(crate) fn deadline_after(&self, delay: Duration) -> u64 {
        let at = self.clock().saturating_duration_since(self.origin) + delay;
        (at.as_nanos() as u64).div_ceil(self.tick_ns)
    }

    pub(crate) fn instant_of(&self, tick: u64) -> Instant {
        self.origin + Duration::from_nanos(tick.saturating_mul(self.tick_ns))
    }

    pub(crate) fn once(&mut self, delay: Duration, task: TimerTask) -> TimerHandle {
        let d = self.deadline_after(delay);
        TimerHandle(HandleKind::Once(self.wheel.insert(d, task)))
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
        TimerHandle(HandleKind::Repeat { key, generation })
    }

    pub(crate) fn cancel(&mut self, h: TimerHandle) -> bool {
        match h.0 {
            HandleKind::Once(id) => self.wheel.cancel(id).is_some(),
            HandleKind::Repeat { key, generation } => match self.repeats.get(key) {
                Some(r) if r.generation == generation => {
                    let r = self.repeats.remove(key);
                    self.wheel.cancel(r.wheel_id);
                    true
                }
                _ => false,
            },
        }
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
        let mut next = r.deadline + r.interval_ticks;
        if next <= now {
            next += (now - next) / r.interval_ticks * r.interval_ticks + r.interval_ticks;
        }
        r.deadline = next;
        r.wheel_id = self
            .wheel
            .insert(next, TimerTask::Repeat { key, generation });
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
