//! Connects to host names: each shard's cache of answers (failures too),
//! and resolution on the worker pool, asked once however many connects
//! wait for the same name. A connect waiting for its name is parked here
//! and queued again once the answer is in the cache.
//!
//! The cache belongs to the shard (not to its thread) and runs on the
//! shard's clock: the simulation drives several shards from one thread
//! on a virtual clock, and each keeps its own answers and waiters.

use super::exec::local;
use super::shard::Shard;
use super::shard_ctx::{Dest, PendingConnect};
use crate::net::Resolve;
use crate::sync::worker::DeferError;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A name's addresses (in Happy Eyeballs' order), or why it has none.
pub(crate) type Answer = Result<Vec<SocketAddr>, (io::ErrorKind, String)>;

/// What a shard knows of one (host, port).
enum Entry {
    /// An answer, good until then.
    Known { until: Instant, answer: Answer },
    /// Being resolved: the connects waiting for it.
    Asking(Vec<PendingConnect>),
}

/// The most names a shard keeps answers for: past it, expired ones go,
/// then (if that freed nothing) all answers do.
const MAX_NAMES: usize = 4096;

/// One shard's answers and waiters, by (host, port).
#[derive(Default)]
pub(crate) struct Names(HashMap<(String, u16), Entry>);

/// What the resolver said of a name, on its way back to the shard that
/// asked, with how long to keep it (success, failure).
pub(crate) struct Resolved {
    host: String,
    port: u16,
    answer: io::Result<Vec<SocketAddr>>,
    ttl: (Duration, Duration),
}

impl Shard {
    /// A connect to `host:port`: raced over its addresses if the cache
    /// knows them (and the connect does not ask `fresh`), failed if it
    /// knows the name has none, else parked until the resolver answers
    /// (with any others waiting for the same name).
    pub(super) fn connect_by_name(
        &mut self,
        pc: PendingConnect,
        host: String,
        port: u16,
        fresh: bool,
    ) {
        let now = self.ctx.now;
        let names = &mut self.names.0;
        let key = (host, port);
        match names.get_mut(&key) {
            Some(Entry::Known { until, answer }) if *until > now && !fresh => {
                let answer = answer.clone();
                self.answered(pc, key.0, answer);
            }
            Some(Entry::Asking(waiting)) => waiting.push(pc),
            _ => {
                if names.len() >= MAX_NAMES {
                    names.retain(|_, e| match e {
                        Entry::Known { until, .. } => *until > now,
                        Entry::Asking(_) => true,
                    });
                    if names.len() >= MAX_NAMES {
                        names.retain(|_, e| matches!(e, Entry::Asking(_)));
                    }
                }
                names.insert(key.clone(), Entry::Asking(vec![pc]));
                self.ask(key.0, key.1);
            }
        }
    }

    /// A connect whose name was answered: raced over the addresses, or
    /// failed with why the name has none.
    pub(super) fn answered(&mut self, pc: PendingConnect, host: String, answer: Answer) {
        match answer {
            Ok(addrs) => self.start_race(pc, host, addrs),
            Err((kind, why)) => {
                let e = io::Error::new(kind, Unresolved(format!("cannot resolve {host}: {why}")));
                self.report_connect_failure(Some(pc.proto), pc.observer, e);
            }
        }
    }

    /// Resolves `host` on the worker pool (on a thread of its own if the
    /// server has none); the answer goes into the cache and the parked
    /// connects are queued again.
    fn ask(&mut self, host: String, port: u16) {
        let outbound = &self.shared.outbound;
        let resolver = outbound.resolver.clone();
        let ttl = (outbound.name_ttl, outbound.negative_ttl);
        let (h, r) = (host.clone(), resolver.clone());
        let on_pool = self.ctx.defer(move || r.resolve(&h, port));
        self.ctx.spawn_local(async move {
            let (answer, ttl) = match on_pool.await {
                Ok(Ok(answer)) => (answer, ttl),
                // A full queue is an overload, not an answer: the connects
                // waiting fail, and the next one asks again.
                Ok(Err(DeferError::Overloaded)) => {
                    let e = io::Error::other("the worker pool's queue is full");
                    (Err(e), (Duration::ZERO, Duration::ZERO))
                }
                Ok(Err(DeferError::Panicked(why))) => (
                    Err(io::Error::other(format!("the resolver panicked: {why}"))),
                    ttl,
                ),
                // No pool: a thread of its own.
                _ => (on_thread(resolver, &host, port).await, ttl),
            };
            let resolved = Resolved {
                host,
                port,
                answer,
                ttl,
            };
            local::with(|l| l.answers.push(resolved));
        });
    }

    /// Records an answer and queues the connects that waited for it again,
    /// with it (a TTL of zero must not send them back to the resolver).
    pub(crate) fn name_resolved(&mut self, r: Resolved) {
        let answer = match r.answer {
            Ok(a) if a.is_empty() => Err((io::ErrorKind::NotFound, "no address".to_string())),
            Ok(a) => Ok(crate::net::interleave(a)),
            Err(e) => Err((e.kind(), e.to_string())),
        };
        let ttl = if answer.is_ok() { r.ttl.0 } else { r.ttl.1 };
        let entry = Entry::Known {
            until: self.ctx.now + ttl,
            answer: answer.clone(),
        };
        let waiting = match self.names.0.insert((r.host.clone(), r.port), entry) {
            Some(Entry::Asking(waiting)) => waiting,
            _ => Vec::new(),
        };
        for mut pc in waiting {
            pc.target = Dest::Answered {
                host: r.host.clone(),
                answer: answer.clone(),
            };
            self.ctx.pending_connects.push(pc);
        }
    }
}

/// The error of a connect whose host name has no address (inside the
/// `io::Error` that `connect_failed` gets; see [`is_unresolved`]).
#[derive(Debug)]
struct Unresolved(String);

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unresolved {}

/// True if a connect failed because its host name has no address (as
/// opposed to addresses that did not answer).
pub(crate) fn is_unresolved(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|e| e.is::<Unresolved>())
}

async fn on_thread(
    resolver: Arc<dyn Resolve>,
    host: &str,
    port: u16,
) -> io::Result<Vec<SocketAddr>> {
    let (promise, answer) = crate::sync::promise::promise();
    let h = host.to_string();
    std::thread::Builder::new()
        .name("shardloop-resolve".into())
        .spawn(move || answer.resolve(resolver.resolve(&h, port)))?;
    promise.await.unwrap_or_else(|_| {
        Err(io::Error::other(
            "the resolver thread ended without an answer",
        ))
    })
}
