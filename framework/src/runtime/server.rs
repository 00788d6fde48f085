//! A built server and its start: threads for the shards, the acceptor and
//! the worker pool, and the state they share (`ServerInner`).

use super::acceptor::{Acceptor, ACCEPTOR_WAKER};
use super::balance::BalancingPolicy;
use super::builder::{Pinning, ServerBuilder};
use super::handle::Handle;
use super::supervisor::{self, ShardDeath};
use super::worker;
use crate::api::Settings;
use crate::error::{Error, Result};
use crate::net::{Addr, Listener};
use crate::reactor::{
    Envelope, FactoryMaker, LayerMaker, ListenerMakers, Outbound, ShardInit, Shared, WAKER_TOKEN,
};

/// A detached shard's poller and inbox.
pub(crate) type DetachedShard = (mio::Poll, crossbeam_channel::Receiver<Envelope>);
use crate::sync::bus::Inbox;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A configured server with its listeners bound. [`run`](Server::run) it, or
/// [`start`](Server::start) it and keep the [`Handle`].
pub struct Server {
    pub(super) shards: usize,
    pub(super) pinning: Pinning,
    pub(super) acceptor_core: Option<usize>,
    /// Listeners the acceptor thread serves, by listener index.
    pub(super) listeners: Vec<(usize, Listener)>,
    /// Each shard's own `SO_REUSEPORT` listeners (`reuse_port` mode).
    pub(super) shard_listeners: Vec<Vec<(usize, mio::net::TcpListener)>>,
    pub(super) local_addrs: Vec<Addr>,
    /// Each shard's `listen_udp` sockets with their protocol makers.
    pub(super) udp_sockets: Vec<Vec<(std::net::UdpSocket, crate::reactor::udp::UdpMaker)>>,
    pub(super) udp_addrs: Vec<std::net::SocketAddr>,
    pub(super) udp_max_datagram: usize,
    pub(super) makers: Vec<FactoryMaker>,
    /// Each listener's transport layers (TLS, PROXY), by listener index.
    pub(super) listener_layers: Vec<Option<LayerMaker>>,
    /// What a reload (SIGHUP) does for the listeners: TLS files read again.
    pub(super) reload_hooks: Vec<ReloadHook>,
    pub(super) outbound: crate::reactor::Outbound,
    pub(super) max_connections: usize,
    pub(super) settings: Settings,
    pub(super) read_buffer_size: usize,
    pub(super) events_capacity: usize,
    pub(super) inbox_capacity: usize,
    /// The backend asked for (the one run is decided at start).
    pub(super) backend: crate::Backend,
    pub(super) policy: Box<dyn BalancingPolicy>,
    pub(super) admission: Option<super::balance::Admission>,
    pub(super) rebalance: Option<crate::reactor::Rebalance>,
    pub(super) stop_timeout: Duration,
    pub(super) timer_tick: Duration,
    pub(super) worker_threads: usize,
    pub(super) worker_queue: usize,
    pub(super) keep_running_on_shard_death: bool,
    pub(super) triggers: Vec<(super::triggers::LifecyclePhase, super::triggers::Trigger)>,
    pub(super) drain_delay: Duration,
    pub(super) handle_signals: bool,
}

impl Server {
    /// A builder with defaults.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Bound addresses, in the order listeners were added.
    pub fn local_addrs(&self) -> &[Addr] {
        &self.local_addrs
    }

    /// Starts the server and blocks until it has stopped (through a
    /// [`Handle`] obtained inside it, e.g. from [`ShardCtx::handle`](crate::ShardCtx::handle)).
    ///
    /// If a shard thread dies (see [`Handle::shard_deaths`]) the server stops
    /// gracefully and this returns [`Error::ShardDied`], unless
    /// [`ServerBuilder::keep_running_on_shard_death`] asked it to carry on
    /// with the other shards.
    pub fn run(self) -> Result<()> {
        let handle = self.start()?;
        handle.wait();
        match handle.shard_deaths().into_iter().next() {
            Some(d) => Err(Error::ShardDied {
                shard: d.shard,
                message: d.message,
            }),
            None => Ok(()),
        }
    }

    /// Starts the acceptor and shard threads and returns at once.
    pub fn start(self) -> Result<Handle> {
        let mut polls = Vec::with_capacity(self.shards);
        let mut inboxes = Vec::with_capacity(self.shards);
        let mut receivers = Vec::with_capacity(self.shards);
        for _ in 0..self.shards {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
            let (inbox, rx) = Inbox::new(waker, self.inbox_capacity);
            polls.push(poll);
            inboxes.push(inbox);
            receivers.push(rx);
        }
        let acceptor_poll = if self.listeners.is_empty() {
            None
        } else {
            Some(mio::Poll::new()?)
        };
        let acceptor_waker = match &acceptor_poll {
            Some(p) => Some(mio::Waker::new(p.registry(), ACCEPTOR_WAKER)?),
            None => None,
        };
        let mut shared = Shared::new(
            inboxes.into(),
            self.settings,
            ListenerMakers {
                factories: self.makers,
                layers: self.listener_layers,
            },
            self.outbound,
        );
        shared.rebalance = self.rebalance;
        let inner = Arc::new(ServerInner {
            acceptor_waker,
            local_addrs: self.local_addrs,
            udp_addrs: self.udp_addrs,
            stop_timeout: self.stop_timeout,
            keep_running_on_shard_death: self.keep_running_on_shard_death,
            triggers: super::triggers::Triggers::new(self.triggers),
            drain_delay: self.drain_delay,
            reload_hooks: Mutex::new(self.reload_hooks),
            ..ServerInner::new(shared, false)
        });
        let id = inner.shared.id;
        let handle = Handle {
            inner: inner.clone(),
        };
        let cores = match &self.pinning {
            Pinning::Off => None,
            Pinning::Auto => core_affinity::get_core_ids().filter(|c| !c.is_empty()),
            Pinning::Cores(list) => Some(
                list.iter()
                    .map(|&id| core_affinity::CoreId { id })
                    .collect(),
            ),
        };
        if self.pinning != Pinning::Off && cores.is_none() {
            tracing::warn!("cannot read this machine's cores; shards run unpinned");
        }
        let mut threads = Vec::new();
        // Shards hold the only senders: when they exit, the workers' queue
        // disconnects and the workers end too.
        let pool = if self.worker_threads > 0 {
            let (tx, rx) = crate::sync::worker::queue(self.worker_queue);
            for w in 0..self.worker_threads {
                let rx = rx.clone();
                let inboxes = inner.shared.inboxes.clone();
                match std::thread::Builder::new()
                    .name(format!("sl{id}-worker{w}"))
                    .spawn(move || worker::work(rx, inboxes))
                {
                    Ok(t) => threads.push(t),
                    Err(e) => return Err(Error::Io(e)),
                }
            }
            Some(tx)
        } else {
            None
        };
        let backend = effective_backend(self.backend);
        inner.shared.uring.store(
            backend == crate::Backend::IoUring,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut own = self.shard_listeners.into_iter();
        let mut own_udp = self.udp_sockets.into_iter();
        let share = self.max_connections.div_ceil(self.shards.max(1));
        for (index, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            let init = ShardInit {
                listeners: own.next().unwrap_or_default(),
                udp: own_udp.next().unwrap_or_default(),
                udp_max_datagram: self.udp_max_datagram,
                connection_share: share,
                index,
                poll,
                rx,
                shared: inner.shared.clone(),
                handle: Arc::new(handle.clone()),
                read_buffer_size: self.read_buffer_size,
                events_capacity: self.events_capacity,
                nodelay: true,
                timer_tick: self.timer_tick,
                pool: pool.clone(),
                uring: backend == crate::Backend::IoUring,
            };
            let core = cores.as_ref().map(|c| c[index % c.len()]);
            let inner = inner.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sl{id}-shard{index}"))
                .spawn(move || supervisor::run_shard(inner, init, core));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => return Err(abandon_start(&handle, threads, e)),
            }
        }
        if let Some(poll) = acceptor_poll {
            let acceptor = Acceptor {
                poll,
                listeners: self.listeners,
                inner: inner.clone(),
                policy: self.policy,
                max_connections: self.max_connections,
                log_limits: Default::default(),
                tracker: super::balance::LoadTracker::new(self.shards),
                gate: self.admission.map(super::balance::Gate::new),
            };
            let core = self.acceptor_core.map(|id| core_affinity::CoreId { id });
            match std::thread::Builder::new()
                .name(format!("sl{id}-acceptor"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core) {
                            tracing::warn!(
                                core = core.id,
                                "could not pin the acceptor to its core"
                            );
                        }
                    }
                    acceptor.run()
                }) {
                Ok(t) => threads.push(t),
                Err(e) => return Err(abandon_start(&handle, threads, e)),
            }
        }
        {
            let inner = inner.clone();
            match std::thread::Builder::new()
                .name(format!("sl{id}-watchdog"))
                .spawn(move || super::watchdog::watch(inner))
            {
                Ok(t) => threads.push(t),
                Err(e) => return Err(abandon_start(&handle, threads, e)),
            }
        }
        *inner.threads.lock().expect("thread list lock") = threads;
        if self.handle_signals {
            let watch = super::triggers::SignalWatch::start(handle.clone())?;
            *inner.signals.lock().unwrap_or_else(|e| e.into_inner()) = Some(watch);
        }
        inner
            .triggers
            .fire(super::triggers::LifecyclePhase::AfterStartup, &handle);
        super::systemd::notify("READY=1");
        Ok(handle)
    }
}

/// A thread could not be spawned: stop and join what started, and say why.
/// The backend the shards run: io_uring when asked for and this kernel
/// (and sandbox) gives what it needs; otherwise epoll, said once.
fn effective_backend(asked: crate::Backend) -> crate::Backend {
    if asked != crate::Backend::IoUring {
        return crate::Backend::Epoll;
    }
    #[cfg(target_os = "linux")]
    match crate::reactor::uring_probe() {
        Ok(_) => crate::Backend::IoUring,
        Err(missing) => {
            tracing::warn!(%missing, "the io_uring backend is not available here; running on epoll");
            crate::Backend::Epoll
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        tracing::warn!("the io_uring backend is Linux's; running on epoll");
        crate::Backend::Epoll
    }
}

fn abandon_start(handle: &Handle, started: Vec<JoinHandle<()>>, e: std::io::Error) -> Error {
    handle.stop();
    for t in started {
        let _ = t.join();
    }
    Error::Io(e)
}

/// The runtime's part of a running server: the shards' [`Shared`] state
/// and what only the runtime's threads and the [`Handle`] use.
pub(crate) struct ServerInner {
    pub(crate) shared: Arc<Shared>,
    pub(super) acceptor_waker: Option<mio::Waker>,
    pub(super) local_addrs: Vec<Addr>,
    pub(super) udp_addrs: Vec<std::net::SocketAddr>,
    pub(super) stop_timeout: Duration,
    /// Only touched by `start` and `wait`, never on the hot path.
    pub(super) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(super) done: (Mutex<bool>, Condvar),
    pub(super) deaths: Mutex<Vec<ShardDeath>>,
    pub(super) keep_running_on_shard_death: bool,
    /// Serialises `update_settings` (read-modify-write); readers never lock.
    pub(super) settings_writer: Mutex<()>,
    pub(super) triggers: super::triggers::Triggers,
    pub(super) drain_delay: Duration,
    pub(super) signals: Mutex<Option<super::triggers::SignalWatch>>,
    pub(super) stall_log: Mutex<std::collections::VecDeque<super::watchdog::StallReport>>,
    /// Run in order by `Handle::reload` (SIGHUP with `handle_signals`).
    pub(super) reload_hooks: Mutex<Vec<ReloadHook>>,
}

/// Something a reload does (`Handle::on_reload`).
pub(crate) type ReloadHook = Arc<dyn Fn(&Handle) + Send + Sync>;

impl ServerInner {
    /// The runtime's state around `shared`, with no acceptor and no threads yet.
    fn new(shared: Shared, done: bool) -> Self {
        ServerInner {
            shared: Arc::new(shared),
            acceptor_waker: None,
            local_addrs: Vec::new(),
            udp_addrs: Vec::new(),
            stop_timeout: Duration::from_secs(5),
            threads: Mutex::new(Vec::new()),
            done: (Mutex::new(done), Condvar::new()),
            deaths: Mutex::new(Vec::new()),
            keep_running_on_shard_death: false,
            settings_writer: Mutex::new(()),
            triggers: Default::default(),
            drain_delay: Duration::ZERO,
            signals: Mutex::new(None),
            stall_log: Mutex::new(Default::default()),
            reload_hooks: Mutex::new(Vec::new()),
        }
    }

    /// A server of `shards` shards with no threads, for the testing kit's
    /// detached shards: real inboxes and pollers, driven by hand; each
    /// shard's poller and inbox, in order.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub(crate) fn detached(
        settings: Settings,
        shards: usize,
        outbound: Outbound,
    ) -> Result<(Arc<ServerInner>, Vec<DetachedShard>)> {
        let mut inboxes = Vec::with_capacity(shards);
        let mut parts = Vec::with_capacity(shards);
        for _ in 0..shards.max(1) {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
            let (inbox, rx) = Inbox::new(waker, super::builder::DEFAULT_INBOX_CAPACITY);
            inboxes.push(inbox);
            parts.push((poll, rx));
        }
        let shared = Shared::new(inboxes.into(), settings, Default::default(), outbound);
        Ok((Arc::new(ServerInner::new(shared, true)), parts))
    }
}
