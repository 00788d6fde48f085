//! `ShardCtx`: what code running on a shard can reach: the bus, shard-level
//! timers, shard-local services, settings and the server handle.

use super::conn_core::{ConnCore, ConnObserver};
use super::envelope::{Envelope, Inboxes, SharedTask};
use super::erased::ErasedProto;
use super::exec::executor::Tasks;
use super::shared::{ServerHandle, Shared};
use super::timers::{RepeatFn, TimerHandle, TimerTask, Timers};
use crate::api::{ConnId, LocalCounters, Settings};
use crate::error::Error;
use crate::net::BufPool;
use crate::sync::promise::{failed, promise, Promise, PromiseError};
use crate::sync::worker::{self, DeferError, Job, PoolSender};
use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shard a callback runs on. Reached through
/// [`Conn::shard`](crate::Conn::shard), or given to closures submitted with
/// [`Handle::post_to`](crate::Handle::post_to) and [`ShardCtx::post_to`].
///
/// ```no_run
/// # use shardloop::ShardCtx;
/// fn announce(ctx: &mut ShardCtx, text: String) {
///     // Runs the closure on every shard, this one included; a shard whose
///     // inbox is full is skipped and named in the error.
///     if let Err(e) = ctx.post_to_all(move |ctx| {
///         println!("shard {} got {text}", ctx.index());
///     }) {
///         eprintln!("not announced everywhere: {e}");
///     }
/// }
/// ```
pub struct ShardCtx {
    pub(crate) index: usize,
    pub(crate) shards: usize,
    pub(crate) inboxes: Inboxes,
    /// Messages for other shards, sent as one batch per target per iteration.
    pub(crate) outbox: Vec<Vec<Envelope>>,
    /// Messages for this shard, delivered later in the same iteration.
    pub(crate) local: VecDeque<Envelope>,
    pub(crate) timers: Timers,
    pub(crate) pool: BufPool,
    /// Slots with output to flush this iteration.
    pub(crate) dirty: Vec<usize>,
    /// Connections to read again next iteration (read cap hit, or resumed).
    pub(crate) read_again: Vec<ConnId>,
    pub(crate) counters: LocalCounters,
    /// Budgets for the log lines a peer can cause (see `LogLimit`).
    pub(crate) log_limits: crate::api::LogLimits,
    pub(crate) settings: Arc<Settings>,
    pub(crate) now: Instant,
    /// `now` in timer-wheel ticks.
    pub(crate) now_tick: u64,
    pub(crate) stopping: bool,
    /// What the shards of this server share.
    pub(crate) shared: Arc<Shared>,
    /// The runtime's `Handle`, opaque here (see runtime/handle.rs).
    pub(crate) handle: ServerHandle,
    /// The worker pool (None: no workers, or detached).
    pub(crate) workers: Option<PoolSender>,
    /// Run deferred work inline (the testing kit: deterministic).
    pub(crate) inline_deferred: bool,
    /// Callbacks waiting for deferred results, by key.
    pub(crate) deferred: HashMap<u64, DeferredCallback>,
    next_deferred: u64,
    /// Outbound connections to start once the current callback returns.
    pub(crate) pending_connects: Vec<PendingConnect>,
    /// UDP sockets opened in this iteration, registered at its end.
    pub(crate) pending_udp: Vec<super::udp::PendingUdp>,
    services: HashMap<TypeId, Box<dyn Any>>,
    /// Connections whose input goes to a task (`Conn::spawn_stream`) or to
    /// another connection (`Conn::forward_to`) rather than to
    /// `data_received`; empty for most shards, so the read path pays one
    /// length check.
    pub(crate) routes: HashMap<ConnId, super::forward::Route>,
    /// (target, forwarder): the forwarder reads again once the target's
    /// output drains.
    pub(crate) drain_waiters: Vec<(ConnId, ConnId)>,
    /// This shard's tasks (the local executor).
    pub(crate) tasks: Tasks,
    /// Connections moving away, and the ids of those that moved.
    pub(crate) moves: super::migrate::Moves,
}

/// A deferred result's destination: the connection (None: shard-level) and
/// what to call with the boxed `Result<T, DeferError>`.
pub(crate) struct DeferredCallback {
    pub(crate) conn: Option<ConnId>,
    pub(crate) f: DeferredFn,
}

/// Called with the connection's protocol and state (when it has one) and the boxed result.
pub(crate) type DeferredFn = Box<
    dyn FnOnce(Option<&mut dyn Any>, Option<&mut ConnCore>, &mut ShardCtx, Box<dyn Any + Send>),
>;

/// Where a pending connect goes.
pub(crate) enum Dest {
    Addr(crate::net::Addr),
    /// A host name, resolved first (`fresh`: asked again even if the
    /// shard's cache knows it, as a reconnecting client does).
    Name {
        host: String,
        port: u16,
        fresh: bool,
    },
    /// A name, answered (its addresses are raced: Happy Eyeballs).
    Answered {
        host: String,
        answer: super::names::Answer,
    },
}

pub(crate) struct PendingConnect {
    pub(crate) observer: Option<Box<dyn ConnObserver>>,
    pub(crate) target: Dest,
    pub(crate) proto: Box<dyn ErasedProto>,
    pub(crate) timeout: Option<Duration>,
    /// A layer to start once connected (TLS), or why it cannot be made
    /// (reported to the protocol as a failed connect).
    pub(crate) layer: std::io::Result<Option<Box<dyn super::layer::Layer>>>,
    /// Socket options instead of the server's outbound defaults.
    pub(crate) options: Option<crate::net::SocketOptions>,
}

impl PendingConnect {
    /// A connect to a name asks the resolver again rather than trust the
    /// shard's cached answer (a reconnect: the name may have moved).
    pub(crate) fn resolve_afresh(&mut self) {
        if let Dest::Name { fresh, .. } = &mut self.target {
            *fresh = true;
        }
    }
}

impl ShardCtx {
    pub(crate) fn new(
        index: usize,
        shared: &Arc<Shared>,
        handle: ServerHandle,
        settings: Arc<Settings>,
        tick: Duration,
    ) -> Self {
        let inboxes = shared.inboxes.clone();
        let inboxes_for_tasks = inboxes.clone();
        let handle_id = shared.id;
        let shards = inboxes.len();
        let now = Instant::now();
        ShardCtx {
            index,
            shards,
            inboxes,
            outbox: (0..shards).map(|_| Vec::new()).collect(),
            local: VecDeque::new(),
            timers: Timers::new(now, tick, index as u16),
            pool: BufPool::default(),
            dirty: Vec::new(),
            read_again: Vec::new(),
            counters: LocalCounters::default(),
            log_limits: crate::api::LogLimits::default(),
            settings,
            now,
            now_tick: 0,
            stopping: false,
            shared: shared.clone(),
            handle,
            workers: None,
            inline_deferred: false,
            deferred: HashMap::new(),
            next_deferred: 0,
            pending_connects: Vec::new(),
            pending_udp: Vec::new(),
            services: HashMap::new(),
            routes: HashMap::new(),
            drain_waiters: Vec::new(),
            tasks: Tasks::new(handle_id, index, inboxes_for_tasks),
            moves: Default::default(),
        }
    }

    /// This shard's index, `0..shards()`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of shards in the server.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The loop's clock: the time the current iteration woke up.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Current settings (refreshed once per loop iteration).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// True once a graceful stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Runs `f` on shard `shard` (this one included), fire and forget:
    /// no promise is made, so it costs one boxed closure on the bus. Use
    /// [`call_on`](ShardCtx::call_on) for a result. Messages to another
    /// shard are batched and sent at the end of this loop iteration.
    /// Fails for a shard index out of range, and with
    /// [`Error::Overloaded`] when that shard's inbox is full (`f` is
    /// dropped unrun; the sender never blocks).
    pub fn post_to(
        &mut self,
        shard: usize,
        f: impl FnOnce(&mut ShardCtx) + Send + 'static,
    ) -> Result<(), Error> {
        self.reserve(shard)?;
        self.route(shard, Envelope::Run(Box::new(f)));
        Ok(())
    }

    /// Runs `f` once on every shard, this one included, fire and forget
    /// ([`call_on_all`](ShardCtx::call_on_all) for results). Shards whose
    /// inbox is full are skipped: the error names the first of them, and
    /// every other shard still runs `f`.
    pub fn post_to_all(
        &mut self,
        f: impl Fn(&mut ShardCtx) + Send + Sync + 'static,
    ) -> Result<(), Error> {
        let f: SharedTask = Arc::new(f);
        let mut refused = None;
        for shard in 0..self.shards {
            match self.reserve(shard) {
                Ok(()) => self.route(shard, Envelope::Broadcast(f.clone())),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// Sends a typed message to a connection on any shard. It reaches the
    /// protocol's `message` callback; if the connection is gone (even if its
    /// slot was reused) or has another message type, it is dropped and
    /// counted. Fails for a shard index out of range, and with
    /// [`Error::Overloaded`] when the connection's shard has a full inbox
    /// (the message is dropped; the sender never blocks).
    pub fn send<M: Send + 'static>(&mut self, to: ConnId, msg: M) -> Result<(), Error> {
        self.reserve(to.shard())?;
        self.route(
            to.shard(),
            Envelope::ToConn {
                to,
                msg: Box::new(msg),
            },
        );
        Ok(())
    }

    /// Runs `f` on this shard after `delay`.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut ShardCtx) + 'static,
    ) -> TimerHandle {
        self.timers.once(delay, TimerTask::ShardOnce(Box::new(f)))
    }

    /// Runs `f` on this shard every `interval` until cancelled.
    pub fn call_every(
        &mut self,
        interval: Duration,
        f: impl FnMut(&mut ShardCtx) + 'static,
    ) -> TimerHandle {
        self.timers.repeat(interval, RepeatFn::Shard(Box::new(f)))
    }

    /// Cancels a timer set on this shard; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, handle: TimerHandle) -> bool {
        self.timers.cancel(handle)
    }

    /// Queues `work`; `cb` is called when its result is back.
    pub(crate) fn submit_deferred<T, W>(&mut self, work: W, cb: DeferredCallback)
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        let key = self.next_deferred;
        self.next_deferred += 1;
        self.deferred.insert(key, cb);
        let run: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send> =
            Box::new(move || Box::new(Ok::<T, DeferError>(work())) as Box<dyn Any + Send>);
        if self.inline_deferred {
            // Unwind safety: the work owns everything it touches (it is `Send +
            // 'static`) and is consumed by the call; the panic becomes its result.
            let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                Ok(r) => r,
                Err(_) => Box::new(Err::<T, DeferError>(DeferError::Panicked(
                    "deferred work panicked".into(),
                ))) as Box<dyn Any + Send>,
            };
            self.local.push_back(Envelope::Deferred { key, result });
            return;
        }
        let outcome = match &self.workers {
            Some(p) => p.submit(Job {
                run,
                home: Some((self.index, key)),
            }),
            None => Err(DeferError::Unavailable),
        };
        if let Err(e) = outcome {
            self.local.push_back(Envelope::Deferred {
                key,
                result: Box::new(Err::<T, DeferError>(e)),
            });
        }
    }

    /// A shard-local singleton of type `T`, created on first use: shard-owned
    /// state (a registry of local connections, a cache partition) with no lock.
    ///
    /// ```no_run
    /// # use shardloop::ShardCtx;
    /// #[derive(Default)]
    /// struct Room { members: Vec<shardloop::ConnId> }
    /// fn join(ctx: &mut ShardCtx, id: shardloop::ConnId) {
    ///     ctx.service::<Room>().members.push(id);
    /// }
    /// ```
    pub fn service<T: Default + 'static>(&mut self) -> &mut T {
        self.services
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("service map is keyed by type")
    }

    /// Takes a slot in `shard`'s inbox for one request (none for this
    /// shard: its local queue is its own loop's business).
    fn reserve(&mut self, shard: usize) -> Result<(), Error> {
        if shard >= self.shards {
            return Err(Error::NoSuchShard {
                index: shard,
                shards: self.shards,
            });
        }
        if shard == self.index {
            return Ok(());
        }
        self.inboxes[shard]
            .capacity
            .take()
            .map_err(|_| Error::Overloaded { shard })
    }

    /// Queues an envelope for `shard` (a request must hold its slot).
    /// Sends a request on to `shard` (a message for a connection that
    /// moved there), taking a slot of its inbox like any request.
    pub(crate) fn forward_request(&mut self, shard: usize, env: Envelope) -> Result<(), Error> {
        self.reserve(shard)?;
        self.route(shard, env);
        Ok(())
    }

    /// Sends control traffic to `shard` (no inbox slot: never refused).
    pub(crate) fn route_control(&mut self, shard: usize, env: Envelope) {
        self.route(shard, env);
    }

    fn route(&mut self, shard: usize, env: Envelope) {
        if shard == self.index {
            self.local.push_back(env);
        } else {
            self.outbox[shard].push(env);
        }
    }

    /// Sends every shard's pending batch (one channel send per target).
    pub(crate) fn flush_outbox(&mut self) {
        for (shard, pending) in self.outbox.iter_mut().enumerate() {
            match pending.len() {
                0 => continue,
                1 => {
                    self.counters.bus_sent += 1;
                    let env = pending.pop().expect("one envelope");
                    self.inboxes[shard].send(env);
                }
                n => {
                    self.counters.bus_sent += n as u64;
                    let batch = std::mem::replace(pending, Vec::with_capacity(n));
                    self.inboxes[shard].send(Envelope::Batch(batch));
                }
            }
        }
    }

    pub(crate) fn mark_dirty(&mut self, core: &mut ConnCore) {
        if core.state.mark_dirty() {
            self.dirty.push(core.id.slot());
        }
    }

    /// (Re)schedules the connection's idle check for `last_read_tick +
    /// idle_ticks`, or removes it when the connection has no idle timeout.
    pub(crate) fn arm_idle(&mut self, core: &mut ConnCore) {
        if let Some(old) = core.idle_timer.take() {
            self.timers.cancel_id(old);
        }
        if let Some(ticks) = core.idle_ticks {
            let at = core.last_read_tick.saturating_add(ticks);
            core.idle_timer = Some(self.timers.insert_at(at, TimerTask::Idle(core.id)));
        }
    }

    pub(crate) fn update_clock(&mut self) {
        self.now = self.timers.clock();
        self.now_tick = self.timers.ticks_since_origin(self.now);
        let now = self.now;
        super::exec::local::with(|l| l.now = now);
    }

    /// Runs `future` as a task on this shard (never `Send`, never moved to
    /// another thread). It starts in this loop iteration. Inside a task,
    /// where no `ShardCtx` is at hand, [`task::spawn_local`](crate::task::spawn_local)
    /// does the same; a task tied to a connection is [`Conn::spawn`](crate::Conn::spawn).
    ///
    /// ```no_run
    /// # use shardloop::ShardCtx;
    /// fn on_shard(ctx: &mut ShardCtx) {
    ///     let answer = ctx.call_on(0, |ctx| ctx.index() * 10);
    ///     ctx.spawn_local(async move {
    ///         println!("shard 0 says {:?}", answer.await);
    ///     });
    /// }
    /// ```
    pub fn spawn_local(&mut self, future: impl std::future::Future<Output = ()> + 'static) {
        self.counters.tasks_spawned += 1;
        self.tasks.spawn(Box::pin(future), None);
    }

    /// Tasks alive on this shard.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Runs `f` on shard `shard` (this one included) and gives its result
    /// back as a promise (Seastar's `submit_to`). If that shard has stopped,
    /// or `f` panics there, the promise resolves with an error, never hangs;
    /// if its inbox is full, at once with [`PromiseError::Overloaded`](crate::task::PromiseError::Overloaded)
    /// (`f` never runs).
    pub fn call_on<T: Send + 'static>(
        &mut self,
        shard: usize,
        f: impl FnOnce(&mut ShardCtx) -> T + Send + 'static,
    ) -> Promise<T> {
        match self.reserve(shard) {
            Ok(()) => {
                let (p, r) = promise();
                self.route(shard, Envelope::Run(Box::new(move |ctx| r.resolve(f(ctx)))));
                p
            }
            Err(Error::Overloaded { .. }) => failed(PromiseError::Overloaded),
            Err(_) => failed(PromiseError::Dropped),
        }
    }

    /// [`call_on`](ShardCtx::call_on) every shard; the promises are in shard
    /// order (await them together with [`task::join_all`](crate::task::join_all)).
    pub fn call_on_all<T: Send + 'static>(
        &mut self,
        f: impl Fn(&mut ShardCtx) -> T + Send + Sync + 'static,
    ) -> Vec<Promise<T>> {
        let f = Arc::new(f);
        (0..self.shards)
            .map(|shard| {
                let f = f.clone();
                self.call_on(shard, move |ctx| f(ctx))
            })
            .collect()
    }

    /// Runs `work` on the worker pool; the promise gets its result
    /// (Twisted's `deferToThread` returning a Deferred). A panic arrives as
    /// [`DeferError::Panicked`], a full queue as `Overloaded`.
    pub fn defer<T, W>(&mut self, work: W) -> Promise<Result<T, DeferError>>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        let (p, r) = promise();
        // Shared so that a refused job (queue full) can still be answered here.
        let slot = Arc::new(std::sync::Mutex::new(Some(r)));
        let in_job = slot.clone();
        let run: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send> = Box::new(move || {
            // Unwind safety: `work` is consumed; the panic becomes its result.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .map_err(|p| DeferError::Panicked(worker::panic_message(p.as_ref())));
            if let Some(r) = in_job.lock().unwrap_or_else(|e| e.into_inner()).take() {
                r.resolve(result);
            }
            Box::new(())
        });
        let outcome = if self.inline_deferred {
            run();
            Ok(())
        } else {
            match &self.workers {
                Some(pool) => pool.submit(Job { run, home: None }),
                None => Err(DeferError::Unavailable),
            }
        };
        if let Err(e) = outcome {
            if let Some(r) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                r.resolve(Err(e));
            }
        }
        p
    }
}
