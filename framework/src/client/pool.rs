//! A connection pool of one shard, generic over the connection and over
//! what tells connections apart (an origin, a backend): idle connections
//! reused most recently first, at most `max_per_key` open per key (others
//! wait, up to `wait_timeout`), idle ones dropped after `idle_timeout`,
//! every one retired after `max_lifetime`, a health check on checkout.
//! Shard-local like everything a task touches: no lock, not `Send`.

use crate::api::pool_stats::{down, up};
use crate::api::PoolCounters;
use crate::reactor::exec::local;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// What a pooled connection says of itself.
pub trait Poolable {
    /// False once the connection cannot carry another request (the peer
    /// closed it, an error). Checked on checkout; an idle connection the
    /// peer closed is dropped there, never handed out.
    fn is_usable(&self) -> bool;
}

impl Poolable for super::ClientStream {
    /// Open, and nothing unread (bytes nobody asked for mean the
    /// connection is out of step with its protocol).
    fn is_usable(&self) -> bool {
        self.is_open() && !self.has_unread()
    }
}

/// Limits of a [`Pool`].
///
/// ```
/// use shardloop::client::PoolOptions;
/// use std::time::Duration;
/// let opts = PoolOptions { max_per_key: 8, ..PoolOptions::default() };
/// assert_eq!(opts.max_idle, 32);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Idle connections kept per key at most (more are closed on return).
    pub max_idle: usize,
    /// Connections open per key at most (idle and in use); a checkout past
    /// it waits for one to come back.
    pub max_per_key: usize,
    /// An idle connection unused this long is closed.
    pub idle_timeout: Option<Duration>,
    /// A connection this old is not reused (closed on return or checkout).
    pub max_lifetime: Option<Duration>,
    /// How long a checkout waits for a connection when `max_per_key` are
    /// in use, before failing with [`PoolError::Timeout`].
    pub wait_timeout: Duration,
    /// The name its figures carry in `Handle::stats().pools` and in
    /// `/metrics` (label `pool`); a shard's pools of one name are summed.
    pub name: String,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_idle: 32,
            max_per_key: 256,
            idle_timeout: Some(Duration::from_secs(90)),
            max_lifetime: None,
            wait_timeout: Duration::from_secs(10),
            name: "pool".to_string(),
        }
    }
}

/// Why a checkout failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// `max_per_key` connections stayed in use for `wait_timeout`.
    #[error("no connection free within {0:?} (all in use)")]
    Timeout(Duration),
    /// A new connection could not be opened.
    #[error("cannot connect: {0}")]
    Connect(#[from] std::io::Error),
}

pub use crate::api::PoolStats;

struct Idle<C> {
    conn: C,
    born: Instant,
    since: Instant,
}

struct Entry<C> {
    idle: Vec<Idle<C>>,
    open: usize,
    waiters: Vec<Waker>,
}

impl<C> Default for Entry<C> {
    fn default() -> Self {
        Entry {
            idle: Vec::new(),
            open: 0,
            waiters: Vec::new(),
        }
    }
}

struct Inner<K, C> {
    opts: PoolOptions,
    keys: HashMap<K, Entry<C>>,
    /// Its figures, live (its shard's stats board reads them too).
    counters: Arc<PoolCounters>,
}

/// A pool of connections of one shard. Cloning shares it (an `Rc`): keep
/// one per shard in a shard service and clone it into tasks.
///
/// ```no_run
/// use shardloop::client::{ClientStream, Pool, PoolOptions};
/// use shardloop::endpoint::Connect;
/// use std::net::SocketAddr;
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pool: Pool<SocketAddr, ClientStream> = Pool::new(PoolOptions::default());
/// let redis: SocketAddr = "127.0.0.1:6379".parse()?;
/// let mut conn = pool.checkout(redis, || ClientStream::connect(Connect::tcp(redis))).await?;
/// conn.write_all(b"PING\r\n").await?;
/// let pong = conn.read_line(64).await?;
/// // Back to the pool for the next request; a connection dropped
/// // instead (mid-reply, after an error) is closed.
/// conn.release();
/// # let _ = pong; Ok(()) }
/// ```
pub struct Pool<K, C> {
    inner: Rc<RefCell<Inner<K, C>>>,
}

impl<K, C> Clone for Pool<K, C> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Eq + Hash + Clone + 'static, C: Poolable + 'static> Pool<K, C> {
    /// An empty pool. Made on a shard, its figures are published with
    /// the shard's (`Handle::stats().pools`, `/metrics`) while it lives.
    pub fn new(opts: PoolOptions) -> Self {
        let counters = Arc::new(PoolCounters::named(opts.name.clone()));
        local::with(|l| l.pools.push(counters.clone()));
        Pool {
            inner: Rc::new(RefCell::new(Inner {
                opts,
                keys: HashMap::new(),
                counters,
            })),
        }
    }

    /// A connection for `key`: an idle one that passes its health check,
    /// else a new one from `connect` if fewer than `max_per_key` are open,
    /// else the next one returned (waiting up to `wait_timeout`).
    pub async fn checkout<F, Fut>(&self, key: K, connect: F) -> Result<Pooled<K, C>, PoolError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<C>>,
    {
        let wait = self.inner.borrow().opts.wait_timeout;
        let mut waited = false;
        let got = crate::task::timeout(
            wait,
            poll_fn(|cx| {
                let mut inner = self.inner.borrow_mut();
                let now = local::now();
                match inner.take(&key, now) {
                    Some(found) => Poll::Ready(Some(found)),
                    None if inner.entry(&key).open < inner.opts.max_per_key => {
                        inner.entry(&key).open += 1;
                        up(&inner.counters.open, 1);
                        Poll::Ready(None)
                    }
                    None => {
                        if !std::mem::replace(&mut waited, true) {
                            up(&inner.counters.waited, 1);
                        }
                        inner.entry(&key).waiters.push(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }),
        )
        .await;
        let found = match got {
            Ok(found) => found,
            Err(_) => {
                up(&self.inner.borrow().counters.timed_out, 1);
                return Err(PoolError::Timeout(wait));
            }
        };
        if let Some((conn, born)) = found {
            let mut p = self.pooled(key, conn, born);
            p.reused = true;
            return Ok(p);
        }
        // A place was taken for a new connection: given back if the
        // connect fails, or if this checkout is dropped while it waits.
        let mut place = Place {
            pool: self,
            key: Some(key),
        };
        let conn = connect().await.map_err(PoolError::Connect)?;
        let key = place.key.take().expect("held until here");
        up(&self.inner.borrow().counters.opened, 1);
        Ok(self.pooled(key, conn, local::now()))
    }

    fn pooled(&self, key: K, conn: C, born: Instant) -> Pooled<K, C> {
        Pooled {
            pool: self.clone(),
            key: Some(key),
            conn: Some(conn),
            born,
            reused: false,
        }
    }

    /// What the pool has done so far, and holds now.
    pub fn stats(&self) -> PoolStats {
        let inner = self.inner.borrow();
        let s = inner.counters.snapshot();
        // The live gauges follow every change; a recount must agree.
        debug_assert_eq!(
            (s.open, s.idle),
            inner.keys.values().fold((0, 0), |(o, i), e| (
                o + e.open as u64,
                i + e.idle.len() as u64
            )),
            "pool gauges out of step"
        );
        s
    }

    /// Closes the idle connections past `idle_timeout` or `max_lifetime`
    /// (checkouts do it for their key; call this from a `call_every` to
    /// keep a quiet pool small).
    pub fn prune(&self) {
        let mut inner = self.inner.borrow_mut();
        let now = local::now();
        let opts = inner.opts.clone();
        let mut closed = 0;
        for e in inner.keys.values_mut() {
            let before = e.idle.len();
            e.idle.retain(|i| fresh(&opts, i, now));
            let n = before - e.idle.len();
            e.open -= n;
            closed += n as u64;
            if n > 0 {
                wake_all(&mut e.waiters);
            }
        }
        let c = &inner.counters;
        up(&c.closed, closed);
        down(&c.open, closed);
        down(&c.idle, closed);
        inner
            .keys
            .retain(|_, e| e.open > 0 || !e.waiters.is_empty());
    }
}

/// A place in a key's `max_per_key` taken for a connection being opened.
struct Place<'a, K: Eq + Hash + Clone + 'static, C: Poolable + 'static> {
    pool: &'a Pool<K, C>,
    /// Taken once the connection is up.
    key: Option<K>,
}

impl<K: Eq + Hash + Clone + 'static, C: Poolable + 'static> Drop for Place<'_, K, C> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.pool.inner.borrow_mut().gone(&key);
        }
    }
}

fn fresh<C: Poolable>(opts: &PoolOptions, i: &Idle<C>, now: Instant) -> bool {
    let idle_ok = opts
        .idle_timeout
        .is_none_or(|t| now.duration_since(i.since) < t);
    let age_ok = opts
        .max_lifetime
        .is_none_or(|t| now.duration_since(i.born) < t);
    idle_ok && age_ok && i.conn.is_usable()
}

fn wake_all(waiters: &mut Vec<Waker>) {
    for w in waiters.drain(..) {
        w.wake();
    }
}

impl<K: Eq + Hash + Clone, C: Poolable> Inner<K, C> {
    fn entry(&mut self, key: &K) -> &mut Entry<C> {
        if !self.keys.contains_key(key) {
            self.keys.insert(key.clone(), Entry::default());
        }
        self.keys.get_mut(key).expect("inserted")
    }

    /// The most recently returned idle connection that is still good;
    /// those found stale on the way are closed.
    fn take(&mut self, key: &K, now: Instant) -> Option<(C, Instant)> {
        let opts = self.opts.clone();
        let e = self.keys.get_mut(key)?;
        let c = &self.counters;
        while let Some(i) = e.idle.pop() {
            down(&c.idle, 1);
            if fresh(&opts, &i, now) {
                up(&c.reused, 1);
                return Some((i.conn, i.born));
            }
            e.open -= 1;
            down(&c.open, 1);
            up(&c.closed, 1);
        }
        None
    }

    /// A connection of `key` is gone: its place frees a waiter.
    fn gone(&mut self, key: &K) {
        if let Some(e) = self.keys.get_mut(key) {
            if e.open > 0 {
                e.open -= 1;
                down(&self.counters.open, 1);
            }
            wake_all(&mut e.waiters);
        }
    }
}

/// A connection checked out of a [`Pool`]: used through `Deref`, then
/// [`release`](Pooled::release)d for reuse. Dropped without a release
/// (an error, a reply not read to its end), it is closed, so nothing
/// half-read is ever handed to the next user.
pub struct Pooled<K: Eq + Hash + Clone + 'static, C: Poolable + 'static> {
    pool: Pool<K, C>,
    key: Option<K>,
    conn: Option<C>,
    born: Instant,
    reused: bool,
}

impl<K: Eq + Hash + Clone + 'static, C: Poolable + 'static> Pooled<K, C> {
    /// True if the connection served an earlier checkout (a request on
    /// it may meet a close the server made while it was idle).
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// Returns the connection to the pool for the next checkout (closed
    /// instead if it is unusable, too old, or `max_idle` are idle).
    pub fn release(mut self) {
        let (Some(key), Some(conn)) = (self.key.take(), self.conn.take()) else {
            return;
        };
        let mut inner = self.pool.inner.borrow_mut();
        let now = local::now();
        let opts = inner.opts.clone();
        let idle = Idle {
            conn,
            born: self.born,
            since: now,
        };
        let keep = fresh(&opts, &idle, now) && inner.entry(&key).idle.len() < opts.max_idle;
        if keep {
            let e = inner.entry(&key);
            e.idle.push(idle);
            wake_all(&mut e.waiters);
            up(&inner.counters.idle, 1);
        } else {
            up(&inner.counters.closed, 1);
            inner.gone(&key);
        }
    }

    /// Takes the connection out of the pool for good: its place is free
    /// for another (counted in `PoolStats::detached`). For a connection
    /// that is shared from now on, such as an HTTP/2 one carrying every
    /// request to its origin at once.
    pub fn detach(mut self) -> C {
        let key = self.key.take().expect("present until released");
        let conn = self.conn.take().expect("present until released");
        let mut inner = self.pool.inner.borrow_mut();
        up(&inner.counters.detached, 1);
        inner.gone(&key);
        conn
    }

    /// When the connection was opened.
    pub fn opened_at(&self) -> Instant {
        self.born
    }
}

impl<K: Eq + Hash + Clone + 'static, C: Poolable + 'static> Deref for Pooled<K, C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.conn.as_ref().expect("present until released")
    }
}

impl<K: Eq + Hash + Clone + 'static, C: Poolable + 'static> DerefMut for Pooled<K, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("present until released")
    }
}

impl<K: Eq + Hash + Clone + 'static, C: Poolable + 'static> Drop for Pooled<K, C> {
    fn drop(&mut self) {
        if let (Some(key), Some(conn)) = (self.key.take(), self.conn.take()) {
            drop(conn);
            let mut inner = self.pool.inner.borrow_mut();
            up(&inner.counters.closed, 1);
            inner.gone(&key);
        }
    }
}
