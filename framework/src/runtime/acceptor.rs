//! The acceptor thread: one `mio::Poll` over every listener; accepts until
//! `WouldBlock` and hands each connection to a shard chosen by the balancing
//! policy. On descriptor exhaustion it backs off instead of spinning.

use super::balance::{BalancingPolicy, Gate, LoadTracker, ShardLoad, LOAD_PERIOD};
use super::server::ServerInner;
use crate::net::{is_transient_accept_error, Addr, Listener, Stream};
use crate::reactor::Envelope;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const ACCEPTOR_WAKER: Token = Token(usize::MAX);

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(crate) struct Acceptor {
    pub(crate) poll: Poll,
    /// Listeners with their index (factories and TLS are looked up by it).
    pub(crate) listeners: Vec<(usize, Listener)>,
    pub(crate) inner: Arc<ServerInner>,
    pub(crate) policy: Box<dyn BalancingPolicy>,
    pub(crate) max_connections: usize,
    /// Budgets for the log lines a flood of connections can cause.
    pub(crate) log_limits: crate::api::LogLimits,
    /// The shards' load, smoothed, for the policy.
    pub(crate) tracker: LoadTracker,
    /// When to stop accepting (`ServerBuilder::admission`), if set.
    pub(crate) gate: Option<Gate>,
}

/// Errors that mean "out of descriptors or memory": retrying at once would spin.
fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

impl Acceptor {
    pub(crate) fn run(mut self) {
        for (i, (_, l)) in self.listeners.iter_mut().enumerate() {
            if let Err(e) = self
                .poll
                .registry()
                .register(l, Token(i), Interest::READABLE)
            {
                tracing::error!(error = %e, "cannot register listener; acceptor exits");
                return;
            }
        }
        let shards = self.inner.shared.inboxes.len();
        let mut assigned = vec![0u64; shards];
        let mut loads = Vec::with_capacity(shards);
        // Connections accepted in this wake-up, per shard: one bus message
        // (and at most one wake-up) per shard, however many there are.
        let mut batches: Vec<Vec<Envelope>> = (0..shards).map(|_| Vec::new()).collect();
        let mut events = Events::with_capacity(64);
        let mut backoff: Option<Instant> = None;
        let mut delay = Duration::ZERO;
        // A load-aware policy needs figures that are fresh when a
        // connection comes, however long the acceptor slept before it.
        let sample_every = (self.policy.uses_load() || self.gate.is_some()).then_some(LOAD_PERIOD);
        self.sample_load(Instant::now());
        loop {
            let timeout = match (backoff, sample_every) {
                (Some(at), _) => Some(at.saturating_duration_since(Instant::now())),
                (None, every) => every,
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "acceptor poll failed; acceptor exits");
                    return;
                }
            }
            if self.inner.shared.stopping.load(Ordering::Acquire) {
                break;
            }
            // At most every 25 ms: a few relaxed loads per shard.
            let now = Instant::now();
            self.sample_load(now);
            let resumed = match self.admit(now) {
                Admit::Paused => continue,
                Admit::Resumed => true,
                Admit::Open => false,
            };
            let ready: Vec<usize> = match backoff {
                Some(at) if now < at => continue,
                // After a back-off or a pause, edge-triggered readiness may
                // have been consumed already: try every listener.
                Some(_) => (0..self.listeners.len()).collect(),
                None if resumed => (0..self.listeners.len()).collect(),
                None => events
                    .iter()
                    .filter(|e| e.token() != ACCEPTOR_WAKER)
                    .map(|e| e.token().0)
                    .collect(),
            };
            backoff = None;
            for i in ready {
                loop {
                    let (index, listener) = &self.listeners[i];
                    match listener.accept() {
                        Ok((stream, peer)) => {
                            delay = Duration::ZERO;
                            let index = *index;
                            let hand = Hand {
                                stream,
                                peer,
                                listener: index,
                            };
                            self.dispatch(hand, &mut assigned, &mut loads, &mut batches);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if is_transient_accept_error(&e) => {}
                        Err(e) => {
                            delay = (delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                            let backoff_ms = delay.as_millis() as u64;
                            if let Some(suppressed) = self.log_limits.accept_error.allow() {
                                if is_exhaustion(&e) {
                                    tracing::warn!(error = %e, backoff_ms, suppressed, "accept: out of file descriptors or memory; backing off");
                                } else {
                                    tracing::error!(error = %e, backoff_ms, suppressed, "accept failed; backing off");
                                }
                            }
                            backoff = Some(Instant::now() + delay);
                            break;
                        }
                    }
                }
                if backoff.is_some() {
                    break;
                }
            }
            self.send_batches(&mut batches);
        }
        for (_, l) in &self.listeners {
            if let Listener::Unix(u) = l {
                if let Some(p) = u
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
                {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        tracing::debug!("acceptor stopped");
    }

    /// Feeds the load tracker the shards' published counters (it samples
    /// at most every 25 ms).
    fn sample_load(&mut self, now: Instant) {
        let stats = &self.inner.shared.stats;
        self.tracker.sample(now, |i| stats.load_of(i));
    }

    /// Whether to accept now, by the admission rule (if any), and the
    /// pauses published for `/metrics`.
    fn admit(&mut self, now: Instant) -> Admit {
        let Some(gate) = self.gate.as_mut() else {
            return Admit::Open;
        };
        let shared = &self.inner.shared;
        let coolest = (0..shared.inboxes.len())
            .filter(|&i| !shared.dead[i].load(Ordering::Acquire))
            .map(|i| self.tracker.busy(i))
            .fold(f64::INFINITY, f64::min);
        let changed = gate.update(coolest, now);
        let stats = &shared.stats;
        stats.admission_pauses.store(gate.pauses, Ordering::Relaxed);
        let paused = u64::try_from(gate.paused_until(now).as_nanos()).unwrap_or(u64::MAX);
        stats.admission_paused_ns.store(paused, Ordering::Relaxed);
        match changed {
            Some(false) => {
                tracing::warn!(busy = coolest, "every shard is saturated: accepting paused");
                Admit::Paused
            }
            Some(true) => {
                tracing::info!(busy = coolest, "a shard has room again: accepting resumed");
                Admit::Resumed
            }
            None if gate.is_paused() => Admit::Paused,
            None => Admit::Open,
        }
    }

    /// Picks a shard for a new connection (or refuses it at the global
    /// limit) and adds it to that shard's batch. The open count is the sum
    /// over shards of handed minus closed (as last published), so no shared
    /// counter is written per connection.
    fn dispatch(
        &mut self,
        hand: Hand,
        assigned: &mut [u64],
        loads: &mut Vec<ShardLoad>,
        batches: &mut [Vec<Envelope>],
    ) {
        loads.clear();
        let mut open = 0u64;
        for (shard, &n) in assigned.iter().enumerate() {
            if self.inner.shared.dead[shard].load(Ordering::Acquire) {
                continue;
            }
            // Handed (this batch included) and moved in, minus closed and
            // moved out, as last published.
            let (gone, arrived) = self.inner.shared.stats.gone_and_arrived(shard);
            let open_here = (n + arrived).saturating_sub(gone);
            open += open_here;
            let mut load = ShardLoad::new(shard, open_here);
            self.tracker.fill(&mut load);
            loads.push(load);
        }
        if open >= self.max_connections as u64 {
            self.inner
                .shared
                .stats
                .rejected_by_acceptor
                .fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = self.log_limits.connection_limit.allow() {
                tracing::warn!(
                    limit = self.max_connections,
                    suppressed,
                    "global connection limit reached; closing new connection"
                );
            }
            return;
        }
        if loads.is_empty() {
            // Every shard died; the server is stopping.
            return;
        }
        let shard = loads[self.policy.pick(loads) % loads.len()].shard;
        assigned[shard] += 1;
        batches[shard].push(Envelope::Accepted {
            stream: hand.stream,
            peer: hand.peer,
            listener: hand.listener,
        });
    }

    fn send_batches(&mut self, batches: &mut [Vec<Envelope>]) {
        for (shard, batch) in batches.iter_mut().enumerate() {
            let env = match batch.len() {
                0 => continue,
                1 => batch.pop().expect("one"),
                _ => Envelope::Batch(std::mem::take(batch)),
            };
            // A refused send (the shard is gone) drops the connections.
            let _ = self.inner.shared.inboxes[shard].send(env);
        }
    }
}

/// A connection on its way to a shard.
struct Hand {
    stream: Stream,
    peer: Addr,
    listener: usize,
}

/// What admission says for this wake-up.
enum Admit {
    Open,
    Paused,
    /// Open again after a pause: every listener is tried.
    Resumed,
}
