//! Happy Eyeballs (RFC 8305): a connect to a name with several addresses
//! tries them one after another (IPv6 and IPv4 alternating), each attempt
//! started `attempt_delay` after the one before, or at once when the one
//! before failed; the first to connect carries the connection and the
//! others are closed. Attempts are connection slots without a protocol;
//! the protocol, its observer and its TLS layer wait in the race until a
//! winner takes them. Nothing here runs for a connect to one address.

use super::conn_core::ConnObserver;
use super::erased::ErasedProto;
use super::layer::Layer;
use super::shard::Shard;
use super::shard_ctx::PendingConnect;
use super::timers::wheel::TimerId;
use super::timers::TimerTask;
use crate::api::ConnId;
use crate::net::{Addr, SocketOptions};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// One connect racing its addresses.
pub(super) struct Race {
    /// Tells this race from a later one in the same slab slot (timers).
    generation: u64,
    host: String,
    proto: Box<dyn ErasedProto>,
    observer: Option<Box<dyn ConnObserver>>,
    layer: Option<Box<dyn Layer>>,
    options: Option<SocketOptions>,
    /// Addresses not tried yet, in order.
    left: VecDeque<SocketAddr>,
    /// Attempts in flight.
    attempts: Vec<(ConnId, SocketAddr)>,
    /// Each address's failure, for the error if none connects.
    failures: Vec<String>,
    last_kind: io::ErrorKind,
    /// Starts the next attempt.
    stagger: Option<TimerId>,
    /// The connect timeout, over the whole race.
    deadline: Option<TimerId>,
}

impl Shard {
    /// Connects to the first of `addrs` that answers.
    pub(super) fn start_race(&mut self, pc: PendingConnect, host: String, addrs: Vec<SocketAddr>) {
        if let [one] = addrs[..] {
            return self.start_connect(pc, Addr::Tcp(one));
        }
        let layer = match pc.layer {
            Ok(layer) => layer,
            Err(e) => return self.report_connect_failure(Some(pc.proto), pc.observer, e),
        };
        self.race_generation += 1;
        let generation = self.race_generation;
        let key = self.races.insert(Race {
            generation,
            host,
            proto: pc.proto,
            observer: pc.observer,
            layer,
            options: pc.options,
            left: addrs.into(),
            attempts: Vec::new(),
            failures: Vec::new(),
            last_kind: io::ErrorKind::NotFound,
            stagger: None,
            deadline: None,
        });
        if let Some(t) = pc.timeout {
            let id = self
                .ctx
                .timers
                .insert_after(t, TimerTask::RaceDeadline(key, generation));
            self.races[key].deadline = Some(id);
        }
        self.next_attempt(key);
    }

    /// Starts the next address's attempt (and times the one after); the
    /// race is lost when no address is left and none is in flight.
    fn next_attempt(&mut self, key: usize) {
        if let Some(t) = self.races[key].stagger.take() {
            self.ctx.timers.cancel_id(t);
        }
        while let Some(addr) = self.races[key].left.pop_front() {
            let options = self.races[key].options.clone();
            match self.dial(Addr::Tcp(addr), options.as_ref()) {
                Ok(id) => {
                    self.conns[id.slot()].core.extras().race = Some(key);
                    let delay = self.shared.outbound.attempt_delay;
                    let race = &mut self.races[key];
                    race.attempts.push((id, addr));
                    if !race.left.is_empty() {
                        let task = TimerTask::RaceNext(key, race.generation);
                        race.stagger = Some(self.ctx.timers.insert_after(delay, task));
                    }
                    return;
                }
                Err(e) => self.races[key].failed(addr, &e),
            }
        }
        if self.races[key].attempts.is_empty() {
            self.lose_race(key, false);
        }
    }

    /// Attempt `slot` connected: it carries the connection, with the
    /// race's protocol, observer and layer; the other attempts close.
    pub(super) fn win_race(&mut self, key: usize, slot: usize) {
        let race = self.races.remove(key);
        self.cancel_race_timers(&race);
        for (id, _) in &race.attempts {
            if id.slot() != slot && self.live(*id) {
                self.drop_attempt(id.slot());
            }
        }
        let c = &mut self.conns[slot];
        c.core.extras().race = None;
        c.proto = Some(race.proto);
        c.core.extras().observer = race.observer;
        c.core.layer = race.layer;
    }

    /// Attempt `slot` failed: the next address at once, or the race is
    /// lost if none is left and none is in flight (or the server stops).
    pub(super) fn attempt_failed(&mut self, key: usize, slot: usize, e: io::Error) {
        let id = self.conns[slot].core.id;
        self.drop_attempt(slot);
        let race = &mut self.races[key];
        if let Some(at) = race.attempts.iter().position(|(a, _)| *a == id) {
            let (_, addr) = race.attempts.swap_remove(at);
            race.failed(addr, &e);
        }
        if self.shared.stopping.load(Ordering::Relaxed) {
            return self.lose_race(key, false);
        }
        if !self.races[key].left.is_empty() {
            self.next_attempt(key);
        } else if self.races[key].attempts.is_empty() {
            self.lose_race(key, false);
        }
    }

    /// A race's timer: the next attempt is due, or the connect timeout.
    pub(super) fn race_timer(&mut self, key: usize, generation: u64, deadline: bool) {
        match self.races.get_mut(key) {
            Some(r) if r.generation == generation => {
                if deadline {
                    r.deadline = None;
                    self.lose_race(key, true);
                } else {
                    r.stagger = None;
                    self.next_attempt(key);
                }
            }
            _ => {}
        }
    }

    /// No address connected: the protocol gets `connect_failed` naming
    /// the host and each address's failure.
    fn lose_race(&mut self, key: usize, timed_out: bool) {
        let mut race = self.races.remove(key);
        self.cancel_race_timers(&race);
        for (id, addr) in std::mem::take(&mut race.attempts) {
            if self.live(id) {
                self.drop_attempt(id.slot());
            }
            race.failures.push(format!("{addr}: no answer"));
        }
        let kind = if timed_out {
            io::ErrorKind::TimedOut
        } else {
            race.last_kind
        };
        let what = if timed_out { "timed out" } else { "failed" };
        let e = io::Error::new(
            kind,
            format!(
                "connect to {} {what} ({})",
                race.host,
                race.failures.join("; ")
            ),
        );
        self.report_connect_failure(Some(race.proto), race.observer, e);
    }

    fn cancel_race_timers(&mut self, race: &Race) {
        for t in [race.stagger, race.deadline].into_iter().flatten() {
            self.ctx.timers.cancel_id(t);
        }
    }

    /// Closes an attempt that lost (or failed) without telling anyone.
    fn drop_attempt(&mut self, slot: usize) {
        let mut c = self.conns.remove(slot);
        c.core.cancel_timers(&mut self.ctx.timers);
        let _ = self.poll.registry().deregister(&mut c.core.stream);
        self.shared.open_total.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Race {
    fn failed(&mut self, addr: SocketAddr, e: &io::Error) {
        self.failures.push(format!("{addr}: {e}"));
        self.last_kind = e.kind();
    }
}
