//! `Handle`: control of a running server from any thread.

use super::server::ServerInner;
use super::supervisor::ShardDeath;
use crate::api::{ConnId, ServerStats, Settings};
use crate::error::{Error, Result};
use crate::net::Addr;
use crate::reactor::{Envelope, ShardCtx, SharedTask};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Controls a running server from any thread: `Send + Clone`. Submit work to
/// shards (Twisted's `callFromThread`), message connections, read stats,
/// change settings, stop.
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Arc<ServerInner>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("server", &self.inner.shared.id)
            .field("shards", &self.shards())
            .field("local_addrs", &self.inner.local_addrs)
            .finish()
    }
}

impl Handle {
    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inner.shared.inboxes.len()
    }

    /// The I/O backend the shards run: the one asked for with
    /// [`ServerBuilder::backend`](crate::ServerBuilder::backend), or epoll
    /// where io_uring was asked for and is not available (said in the log).
    pub fn backend(&self) -> crate::Backend {
        if self.inner.shared.uring.load(Ordering::Relaxed) {
            crate::Backend::IoUring
        } else {
            crate::Backend::Epoll
        }
    }

    /// Bound listener addresses, in the order they were added.
    pub fn local_addrs(&self) -> &[Addr] {
        &self.inner.local_addrs
    }

    /// The bound address of listener `index`, which must be TCP (the
    /// common case: `handle.tcp_addr(0)` after listening on port 0).
    ///
    /// # Panics
    /// If there is no such listener or it is a Unix-domain one.
    pub fn tcp_addr(&self, index: usize) -> SocketAddr {
        self.inner.local_addrs[index]
            .as_tcp()
            .unwrap_or_else(|| panic!("listener {index} is not TCP"))
    }

    /// The bound address of UDP socket `index` (in `listen_udp` order).
    ///
    /// # Panics
    /// If there is no such UDP listener.
    pub fn udp_addr(&self, index: usize) -> SocketAddr {
        self.inner.udp_addrs[index]
    }

    /// Prefix of this server's thread names (`sl{N}-`), to tell them apart.
    pub fn thread_name_prefix(&self) -> String {
        format!("sl{}-", self.inner.shared.id)
    }

    /// Runs `f` on shard `shard`, fire and forget (Twisted's
    /// `callFromThread`); [`call_on`](Handle::call_on) gives a result back.
    /// Fails for a shard index out of range, once the server stopped, and
    /// with [`Error::Overloaded`] while that shard's inbox is full (`f` is
    /// dropped unrun; [`post_to_within`](Handle::post_to_within) waits).
    pub fn post_to(
        &self,
        shard: usize,
        f: impl FnOnce(&mut ShardCtx) + Send + 'static,
    ) -> Result<()> {
        self.request(shard, Envelope::Run(Box::new(f)))
    }

    /// [`post_to`](Handle::post_to), waiting up to `wait` for room in a
    /// full inbox (for threads outside the shards: a shard must never
    /// wait, it gets `Overloaded` from `post_to`). Fails with
    /// [`Error::Overloaded`] if the inbox stayed full.
    ///
    /// ```no_run
    /// # fn f(handle: shardloop::Handle) -> shardloop::Result<()> {
    /// use std::time::Duration;
    /// handle.post_to_within(0, |ctx| println!("on shard {}", ctx.index()), Duration::from_secs(1))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn post_to_within(
        &self,
        shard: usize,
        f: impl FnOnce(&mut ShardCtx) + Send + 'static,
        wait: Duration,
    ) -> Result<()> {
        let inbox = self.inbox(shard)?;
        let until = Instant::now() + wait;
        let mut pause = Duration::from_micros(20);
        // The slot first, the closure after: nothing is built or dropped
        // while waiting. Polling with backoff: the receiving shard's drain
        // stays free of any wake-up for waiters.
        while inbox.capacity.take().is_err() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Overloaded { shard });
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(5));
        }
        inbox
            .send_taken(Envelope::Run(Box::new(f)))
            .map_err(|_| Error::Stopped)
    }

    /// Runs `f` on shard `shard` and gives its result back as a promise,
    /// awaitable from any thread or executor (the resolver wakes it). The
    /// promise fails, never hangs: if the shard has stopped or `f` panics
    /// there, and at once with [`PromiseError::Overloaded`](crate::task::PromiseError::Overloaded)
    /// while its inbox is full.
    ///
    /// ```no_run
    /// # fn f(handle: shardloop::Handle) {
    /// let open = handle.call_on(0, |ctx| ctx.task_count());
    /// # let _ = open;
    /// # }
    /// ```
    pub fn call_on<T: Send + 'static>(
        &self,
        shard: usize,
        f: impl FnOnce(&mut ShardCtx) -> T + Send + 'static,
    ) -> crate::task::Promise<T> {
        use crate::sync::promise::{failed, promise, PromiseError};
        let Ok(inbox) = self.inbox(shard) else {
            return failed(PromiseError::Dropped);
        };
        if inbox.capacity.take().is_err() {
            return failed(PromiseError::Overloaded);
        }
        let (p, r) = promise();
        // A refused send (stopped) drops the closure, and with it the
        // resolver: the promise fails with `Dropped`.
        let _ = inbox.send_taken(Envelope::Run(Box::new(move |ctx| r.resolve(f(ctx)))));
        p
    }

    /// Runs `f` once on every shard, fire and forget. Shards whose inbox is
    /// full are skipped: the error ([`Error::Overloaded`]) names the first,
    /// and every other shard still runs `f`. Fails once the server stopped.
    pub fn post_to_all(&self, f: impl Fn(&mut ShardCtx) + Send + Sync + 'static) -> Result<()> {
        let f: SharedTask = Arc::new(f);
        let mut first_error = None;
        let mut any = false;
        for shard in 0..self.shards() {
            match self.request(shard, Envelope::Broadcast(f.clone())) {
                Ok(()) => any = true,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(Error::Stopped) if !any => Err(Error::Stopped),
            Some(Error::Stopped) => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Sends a typed message to a connection (see [`ShardCtx::send`]);
    /// [`Error::Overloaded`] while its shard's inbox is full.
    pub fn send<M: Send + 'static>(&self, to: ConnId, msg: M) -> Result<()> {
        self.request(
            to.shard(),
            Envelope::ToConn {
                to,
                msg: Box::new(msg),
            },
        )
    }

    fn inbox(&self, shard: usize) -> Result<&crate::sync::bus::Inbox<Envelope>> {
        self.inner
            .shared
            .inboxes
            .get(shard)
            .ok_or(Error::NoSuchShard {
                index: shard,
                shards: self.shards(),
            })
    }

    /// Queues a request if `shard`'s inbox has room.
    fn request(&self, shard: usize, env: Envelope) -> Result<()> {
        use crate::sync::bus::Refused;
        self.inbox(shard)?
            .send_request(env)
            .map_err(|refused| match refused {
                Refused::Full => Error::Overloaded { shard },
                Refused::Stopped => Error::Stopped,
            })
    }

    /// Every shard's counters, read without locks.
    pub fn stats(&self) -> ServerStats {
        let shared = &self.inner.shared;
        let mut stats = shared.stats.snapshot();
        let now = Instant::now();
        // Figures other threads keep (the watchdog, the inboxes' senders):
        // read here, not copied by the shard every iteration.
        for ((s, a), inbox) in stats
            .shards
            .iter_mut()
            .zip(shared.activity.iter())
            .zip(shared.inboxes.iter())
        {
            s.stalls = a.stalls.load(Ordering::Relaxed);
            s.bus_rejected = inbox.capacity.rejected();
            s.inbox_full_ns = inbox.capacity.full_ns_at(now);
        }
        stats.dead_shards = (0..self.shards())
            .filter(|&i| self.inner.shared.dead[i].load(Ordering::Acquire))
            .collect();
        stats
    }

    /// Current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.shared.settings.load_full()
    }

    /// Loop stalls the watchdog saw while they happened (the latest 64).
    pub fn stalls(&self) -> Vec<super::watchdog::StallReport> {
        super::watchdog::reports(&self.inner.stall_log)
    }

    /// Shard threads that died, in order (empty for a healthy server).
    pub fn shard_deaths(&self) -> Vec<ShardDeath> {
        self.inner
            .deaths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes settings; shards pick them up on their next loop iteration.
    /// Concurrent updates apply one after the other: none is lost.
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) -> Result<()> {
        let _writer = self
            .inner
            .settings_writer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut s = Settings::clone(&self.inner.shared.settings.load());
        f(&mut s);
        s.validate().map_err(Error::Config)?;
        self.inner.shared.settings.store(Arc::new(s));
        for inbox in self.inner.shared.inboxes.iter() {
            inbox.wake();
        }
        Ok(())
    }

    /// Stops gracefully with the builder's stop timeout (see [`Handle::stop_within`]).
    pub fn stop(&self) {
        self.stop_within(self.inner.stop_timeout);
    }

    /// Adds something [`reload`](Handle::reload) does (and SIGHUP, with
    /// [`ServerBuilder::handle_signals`](crate::ServerBuilder::handle_signals)):
    /// reread a configuration file, rotate a log. TLS listeners given by
    /// endpoint string reload their certificate and key by themselves.
    ///
    /// ```no_run
    /// # fn main() -> shardloop::Result<()> {
    /// let handle = shardloop::Server::builder().handle_signals(true).build()?.start()?;
    /// handle.on_reload(|h| {
    ///     let _ = h.update_settings(|s| s.idle_timeout = Some(std::time::Duration::from_secs(30)));
    /// });
    /// # Ok(()) }
    /// ```
    pub fn on_reload(&self, f: impl Fn(&Handle) + Send + Sync + 'static) {
        let mut hooks = self
            .inner
            .reload_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        hooks.push(std::sync::Arc::new(f));
    }

    /// Runs every reload hook, in the order they were added (SIGHUP does
    /// this with `handle_signals`). A panicking hook is logged; the others
    /// still run.
    pub fn reload(&self) {
        let hooks = self
            .inner
            .reload_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        tracing::info!(hooks = hooks.len(), "reloading");
        for hook in hooks {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(self))).is_err() {
                tracing::error!("a reload hook panicked");
            }
        }
    }

    /// Stops accepting, asks every protocol to finish
    /// ([`Protocol::server_stopping`](crate::Protocol::server_stopping), which
    /// closes after flushing by default) and aborts what is left after
    /// `deadline`. Returns at once; [`wait`](Handle::wait) joins the threads.
    ///
    /// With a drain delay ([`ServerBuilder::drain_delay`](crate::ServerBuilder::drain_delay))
    /// the acceptor stops at once but the shards keep serving for that long
    /// before closing (what a load balancer needs to notice), and `deadline`
    /// counts from the end of the drain. Lifecycle triggers run for
    /// `BeforeShutdown` and `DuringShutdown`.
    pub fn stop_within(&self, deadline: Duration) {
        if self.inner.shared.stopping.load(Ordering::Acquire) {
            return;
        }
        self.inner
            .triggers
            .fire(super::triggers::LifecyclePhase::BeforeShutdown, self);
        if self.inner.shared.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(w) = &self.inner.acceptor_waker {
            let _ = w.wake();
        }
        super::systemd::notify("STOPPING=1");
        let drain = self.inner.drain_delay;
        let deadline = Instant::now() + drain + deadline;
        for inbox in self.inner.shared.inboxes.iter() {
            inbox.send(Envelope::Stop { deadline, drain });
        }
        self.inner
            .triggers
            .fire(super::triggers::LifecyclePhase::DuringShutdown, self);
    }

    /// Stops now: no drain, and connections still open are aborted (a
    /// second SIGINT/SIGTERM does this).
    pub fn stop_now(&self) {
        self.inner.shared.stopping.store(true, Ordering::Release);
        if let Some(w) = &self.inner.acceptor_waker {
            let _ = w.wake();
        }
        let deadline = Instant::now();
        for inbox in self.inner.shared.inboxes.iter() {
            inbox.send(Envelope::Stop {
                deadline,
                drain: Duration::ZERO,
            });
        }
    }

    /// True once stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.inner.shared.stopping.load(Ordering::Acquire)
    }

    /// Blocks until every server thread has exited.
    pub fn wait(&self) {
        let threads = std::mem::take(&mut *self.inner.threads.lock().expect("thread list lock"));
        let (lock, cvar) = &self.inner.done;
        if threads.is_empty() {
            let mut done = lock.lock().expect("done lock");
            while !*done {
                done = cvar.wait(done).expect("done lock");
            }
            return;
        }
        for t in threads {
            let name = t.thread().name().unwrap_or("?").to_string();
            if t.join().is_err() {
                tracing::error!(thread = name, "server thread panicked");
            }
        }
        let signals = self
            .inner
            .signals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(s) = signals {
            s.finish();
        }
        self.inner
            .triggers
            .fire(super::triggers::LifecyclePhase::AfterShutdown, self);
        *lock.lock().expect("done lock") = true;
        cvar.notify_all();
    }

    /// Stops and waits.
    pub fn shutdown(&self) {
        self.stop();
        self.wait();
    }
}

impl crate::reactor::ShardCtx {
    /// A handle to the whole server (stop it, read stats, reach other shards).
    pub fn handle(&self) -> &Handle {
        // The runtime gave every shard its `Handle` (server.rs, and the
        // testing kit's detached shard); the reactor keeps it opaque so
        // that it names nothing above itself.
        self.handle
            .downcast_ref::<Handle>()
            .expect("a shard's server handle is the runtime's Handle")
    }
}
