//! Building, starting and controlling a server: `ServerBuilder`, `Server`, `Handle`.

use crate::acceptor::{Acceptor, ACCEPTOR_WAKER};
use crate::balance::{BalancingPolicy, RoundRobin};
use crate::bus::{Envelope, Inbox, Inboxes};
use crate::conn_id::ConnId;
use crate::context::ShardCtx;
use crate::endpoint::ServerEndpoint;
use crate::error::{Error, Result};
use crate::listener::{bind_tcp, bind_unix};
use crate::protocol::{ErasedFactory, Factory, FactoryMaker};
use crate::settings::Settings;
use crate::shard::{Shard, ShardInit, WAKER_TOKEN};
use crate::stats::{ServerStats, StatsBoard};
use crate::transport::{Addr, Listener};
use arc_swap::ArcSwap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static NEXT_SERVER_ID: AtomicUsize = AtomicUsize::new(0);

/// Which cores shard threads are pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinning {
    /// No pinning: the OS schedules shard threads freely.
    Off,
    /// Shard `i` on core `i mod cores` (the default).
    Auto,
    /// Shard `i` on `cores[i mod len]`: e.g. keep the load generator's cores free.
    Cores(Vec<usize>),
}

struct ListenerSpec {
    addr: String,
    resolved: Result<ServerEndpoint>,
    make: FactoryMaker,
}

/// Configures a [`Server`]. Obtain with [`Server::builder`].
///
/// ```no_run
/// use shardloop::{Conn, Protocol, Server};
/// struct Echo;
/// impl Protocol for Echo {
///     type Message = ();
///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
///         conn.write(data);
///     }
/// }
/// let server = Server::builder()
///     .shards(4)
///     .listen("127.0.0.1:7000", |_shard| |_peer| Echo)
///     .build()?;
/// server.run()?;
/// # Ok::<(), shardloop::Error>(())
/// ```
pub struct ServerBuilder {
    shards: Option<usize>,
    pinning: Pinning,
    listeners: Vec<ListenerSpec>,
    backlog: i32,
    max_connections: usize,
    settings: Settings,
    read_buffer_size: usize,
    events_capacity: usize,
    policy: Box<dyn BalancingPolicy>,
    nodelay: bool,
    stop_timeout: Duration,
    timer_tick: Duration,
    worker_threads: usize,
    worker_queue: usize,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            shards: None,
            pinning: Pinning::Auto,
            listeners: Vec::new(),
            backlog: 1024,
            max_connections: 1 << 20,
            settings: Settings::default(),
            read_buffer_size: 64 * 1024,
            events_capacity: 1024,
            policy: Box::new(RoundRobin::default()),
            nodelay: true,
            stop_timeout: Duration::from_secs(5),
            timer_tick: Duration::from_millis(1),
            worker_threads: 4,
            worker_queue: 1024,
        }
    }
}

impl ServerBuilder {
    /// Number of shards (default: the number of cores).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }

    /// Pins shard `i` to core `i mod cores` when true (the default); no pinning when false.
    pub fn pin(mut self, on: bool) -> Self {
        self.pinning = if on { Pinning::Auto } else { Pinning::Off };
        self
    }

    /// Pins shards to these cores, round-robin.
    pub fn pin_to_cores(mut self, cores: Vec<usize>) -> Self {
        self.pinning = Pinning::Cores(cores);
        self
    }

    /// Adds a listener. `make_factory` runs once on each shard thread and
    /// returns that shard's [`Factory`] for this listener (any
    /// `FnMut(Addr) -> P` is one). Several listeners with different
    /// protocols can share one server.
    pub fn listen<A, M, F>(self, addr: A, make_factory: M) -> Self
    where
        A: ToSocketAddrs + fmt::Debug,
        M: Fn(usize) -> F + Send + Sync + 'static,
        F: Factory,
    {
        let desc = format!("{addr:?}");
        let resolved = addr
            .to_socket_addrs()
            .and_then(|mut it| {
                it.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address found")
                })
            })
            .map(|addr| ServerEndpoint::Tcp {
                addr,
                backlog: None,
            })
            .map_err(|source| Error::Resolve {
                addr: desc.clone(),
                source,
            });
        self.push_listener(desc, resolved, make_factory)
    }

    /// Adds a listener from an endpoint description: `tcp:8080`,
    /// `tcp:port=8080:interface=127.0.0.1:backlog=1024`, `tcp6:port=8080:interface=\:\:1`,
    /// `unix:/run/app.sock`. A malformed description fails [`build`](ServerBuilder::build)
    /// with an error naming the bad field.
    pub fn listen_on<M, F>(self, endpoint: &str, make_factory: M) -> Self
    where
        M: Fn(usize) -> F + Send + Sync + 'static,
        F: Factory,
    {
        let resolved = endpoint.parse::<ServerEndpoint>().map_err(Error::from);
        self.push_listener(endpoint.to_string(), resolved, make_factory)
    }

    fn push_listener<M, F>(
        mut self,
        desc: String,
        resolved: Result<ServerEndpoint>,
        make_factory: M,
    ) -> Self
    where
        M: Fn(usize) -> F + Send + Sync + 'static,
        F: Factory,
    {
        let make: FactoryMaker =
            Arc::new(move |shard| Box::new(make_factory(shard)) as Box<dyn ErasedFactory>);
        self.listeners.push(ListenerSpec {
            addr: desc,
            resolved,
            make,
        });
        self
    }

    /// Listen backlog (default 1024; the kernel caps it at `net.core.somaxconn`).
    pub fn backlog(mut self, n: i32) -> Self {
        self.backlog = n;
        self
    }

    /// Open connections the whole server holds at most; the acceptor closes
    /// further ones at once and counts them (default 2^20).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Connections one shard holds at most.
    pub fn max_connections_per_shard(mut self, n: usize) -> Self {
        self.settings.max_connections_per_shard = n;
        self
    }

    /// Closes connections that receive nothing for `timeout`.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = Some(timeout);
        self
    }

    /// Output-buffer marks driving `pause_producing` / `resume_producing`.
    pub fn water_marks(mut self, low: usize, high: usize) -> Self {
        self.settings.low_water_mark = low;
        self.settings.high_water_mark = high;
        self
    }

    /// Replaces all hot-reloadable settings at once.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Size of each shard's shared read buffer (default 64 KiB).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// Events taken from one poll call (default 1024).
    pub fn events_per_poll(mut self, n: usize) -> Self {
        self.events_capacity = n;
        self
    }

    /// How the acceptor picks a shard (default [`RoundRobin`]).
    pub fn balancing(mut self, policy: impl BalancingPolicy) -> Self {
        self.policy = Box::new(policy);
        self
    }

    /// Sets `TCP_NODELAY` on accepted connections (default true).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Resolution of the shards' timer wheels (default 1 ms; 10 µs to 1 s).
    /// Finer than 1 ms, each shard sleeps on a timerfd (Linux) so timers
    /// fire on time instead of on epoll's millisecond boundaries: for load
    /// generators and pacing, at the cost of one extra syscall per new deadline.
    pub fn timer_tick(mut self, tick: Duration) -> Self {
        self.timer_tick = tick;
        self
    }

    /// Threads for [`Conn::defer_to_thread`](crate::Conn::defer_to_thread)
    /// (default 4; 0 disables it: deferred work then fails with `Unavailable`).
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n;
        self
    }

    /// Jobs that may wait for a worker (default 1024); past that,
    /// `defer_to_thread` fails at once with `Overloaded` instead of blocking a shard.
    pub fn worker_queue(mut self, n: usize) -> Self {
        self.worker_queue = n;
        self
    }

    /// Deadline of [`Handle::stop`] (default 5 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Validates the configuration and binds every listener (so
    /// [`Server::local_addrs`] is known, with port 0 resolved).
    pub fn build(self) -> Result<Server> {
        let shards = self
            .shards
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if shards == 0 || shards > u16::MAX as usize {
            return Err(Error::Config(format!(
                "shards must be between 1 and {}, got {shards}",
                u16::MAX
            )));
        }
        if self.read_buffer_size < 512 {
            return Err(Error::Config(format!(
                "read_buffer_size must be at least 512 bytes, got {}",
                self.read_buffer_size
            )));
        }
        if self.timer_tick < Duration::from_micros(10) || self.timer_tick > Duration::from_secs(1) {
            return Err(Error::Config(format!(
                "timer_tick must be between 10µs and 1s, got {:?}",
                self.timer_tick
            )));
        }
        if self.events_capacity == 0 {
            return Err(Error::Config("events_per_poll must be at least 1".into()));
        }
        if let Pinning::Cores(c) = &self.pinning {
            if c.is_empty() {
                return Err(Error::Config("pin_to_cores needs at least one core".into()));
            }
        }
        self.settings.validate().map_err(Error::Config)?;
        let mut listeners = Vec::new();
        let mut local_addrs = Vec::new();
        let mut makers = Vec::new();
        for spec in self.listeners {
            let listener = match spec.resolved? {
                ServerEndpoint::Tcp { addr, backlog } => {
                    bind_tcp(addr, backlog.unwrap_or(self.backlog))
                        .map(|l| Listener::Tcp(mio::net::TcpListener::from_std(l)))
                }
                ServerEndpoint::Unix { path, backlog } => {
                    bind_unix(&path, backlog.unwrap_or(self.backlog)).map(Listener::Unix)
                }
            }
            .map_err(|source| Error::Bind {
                addr: spec.addr.clone(),
                source,
            })?;
            local_addrs.push(listener.local_addr()?);
            listeners.push(listener);
            makers.push(spec.make);
        }
        Ok(Server {
            shards,
            pinning: self.pinning,
            listeners,
            local_addrs,
            makers,
            max_connections: self.max_connections,
            settings: self.settings,
            read_buffer_size: self.read_buffer_size,
            events_capacity: self.events_capacity,
            policy: self.policy,
            nodelay: self.nodelay,
            stop_timeout: self.stop_timeout,
            timer_tick: self.timer_tick,
            worker_threads: self.worker_threads,
            worker_queue: self.worker_queue,
        })
    }
}

/// A configured server with its listeners bound. [`run`](Server::run) it, or
/// [`start`](Server::start) it and keep the [`Handle`].
pub struct Server {
    shards: usize,
    pinning: Pinning,
    listeners: Vec<Listener>,
    local_addrs: Vec<Addr>,
    makers: Vec<FactoryMaker>,
    max_connections: usize,
    settings: Settings,
    read_buffer_size: usize,
    events_capacity: usize,
    policy: Box<dyn BalancingPolicy>,
    nodelay: bool,
    stop_timeout: Duration,
    timer_tick: Duration,
    worker_threads: usize,
    worker_queue: usize,
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
    /// [`Handle`] obtained inside it, e.g. from [`ShardCtx::handle`]).
    pub fn run(self) -> Result<()> {
        self.start()?.wait();
        Ok(())
    }

    /// Starts the acceptor and shard threads and returns at once.
    pub fn start(self) -> Result<Handle> {
        let id = NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed);
        let mut polls = Vec::with_capacity(self.shards);
        let mut inboxes = Vec::with_capacity(self.shards);
        let mut receivers = Vec::with_capacity(self.shards);
        for _ in 0..self.shards {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
            let (inbox, rx) = Inbox::new(waker);
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
        let inboxes: Inboxes = inboxes.into();
        let inner = Arc::new(ServerInner {
            id,
            inboxes,
            stats: StatsBoard::new(self.shards),
            settings: ArcSwap::from_pointee(self.settings),
            open_total: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            acceptor_waker,
            factory_makers: self.makers,
            local_addrs: self.local_addrs,
            stop_timeout: self.stop_timeout,
            threads: Mutex::new(Vec::new()),
            done: (Mutex::new(false), Condvar::new()),
        });
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
            let (tx, rx) = crate::worker::queue(self.worker_queue);
            for w in 0..self.worker_threads {
                let rx = rx.clone();
                let inboxes = inner.inboxes.clone();
                match std::thread::Builder::new()
                    .name(format!("sl{id}-worker{w}"))
                    .spawn(move || crate::worker::work(rx, inboxes))
                {
                    Ok(t) => threads.push(t),
                    Err(e) => return Err(Error::Io(e)),
                }
            }
            Some(tx)
        } else {
            None
        };
        for (index, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            let init = ShardInit {
                index,
                poll,
                rx,
                handle: handle.clone(),
                read_buffer_size: self.read_buffer_size,
                events_capacity: self.events_capacity,
                nodelay: self.nodelay,
                timer_tick: self.timer_tick,
                pool: pool.clone(),
            };
            let core = cores.as_ref().map(|c| c[index % c.len()]);
            let spawned = std::thread::Builder::new()
                .name(format!("sl{id}-shard{index}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core) {
                            tracing::warn!(
                                shard = index,
                                core = core.id,
                                "could not pin shard to core"
                            );
                        }
                    }
                    Shard::new(init).run();
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    handle.stop();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(Error::Io(e));
                }
            }
        }
        if let Some(poll) = acceptor_poll {
            let acceptor = Acceptor {
                poll,
                listeners: self.listeners,
                inner: inner.clone(),
                policy: self.policy,
                max_connections: self.max_connections,
            };
            match std::thread::Builder::new()
                .name(format!("sl{id}-acceptor"))
                .spawn(move || acceptor.run())
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    handle.stop();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(Error::Io(e));
                }
            }
        }
        *inner.threads.lock().expect("thread list lock") = threads;
        Ok(handle)
    }
}

pub(crate) struct ServerInner {
    pub(crate) id: usize,
    pub(crate) inboxes: Inboxes,
    pub(crate) stats: StatsBoard,
    pub(crate) settings: ArcSwap<Settings>,
    pub(crate) open_total: AtomicUsize,
    pub(crate) stopping: AtomicBool,
    acceptor_waker: Option<mio::Waker>,
    pub(crate) factory_makers: Vec<FactoryMaker>,
    local_addrs: Vec<Addr>,
    stop_timeout: Duration,
    /// Only touched by `start` and `wait`, never on the hot path.
    threads: Mutex<Vec<JoinHandle<()>>>,
    done: (Mutex<bool>, Condvar),
}

impl ServerInner {
    /// A one-shard server with no threads, for the testing kit's detached
    /// shard: real inbox and poller, driven by hand.
    pub(crate) fn detached(
        settings: Settings,
    ) -> Result<(
        Arc<ServerInner>,
        mio::Poll,
        crossbeam_channel::Receiver<Envelope>,
    )> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let (inbox, rx) = Inbox::new(waker);
        let inner = Arc::new(ServerInner {
            id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
            inboxes: vec![inbox].into(),
            stats: StatsBoard::new(1),
            settings: ArcSwap::from_pointee(settings),
            open_total: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            acceptor_waker: None,
            factory_makers: Vec::new(),
            local_addrs: Vec::new(),
            stop_timeout: Duration::from_secs(5),
            threads: Mutex::new(Vec::new()),
            done: (Mutex::new(true), Condvar::new()),
        });
        Ok((inner, poll, rx))
    }
}

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
            .field("server", &self.inner.id)
            .field("shards", &self.shards())
            .field("local_addrs", &self.inner.local_addrs)
            .finish()
    }
}

impl Handle {
    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inner.inboxes.len()
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

    /// Prefix of this server's thread names (`sl{N}-`), to tell them apart.
    pub fn thread_name_prefix(&self) -> String {
        format!("sl{}-", self.inner.id)
    }

    /// Runs `f` on shard `shard`.
    pub fn submit_to(
        &self,
        shard: usize,
        f: impl FnOnce(&mut ShardCtx) + Send + 'static,
    ) -> Result<()> {
        let inbox = self.inner.inboxes.get(shard).ok_or(Error::NoSuchShard {
            index: shard,
            shards: self.shards(),
        })?;
        if inbox.send(Envelope::Run(Box::new(f))) {
            Ok(())
        } else {
            Err(Error::Stopped)
        }
    }

    /// Runs `f` once on every shard.
    pub fn broadcast(&self, f: impl Fn(&mut ShardCtx) + Send + Sync + 'static) -> Result<()> {
        let f: crate::bus::SharedTask = Arc::new(f);
        let mut any = false;
        for inbox in self.inner.inboxes.iter() {
            any |= inbox.send(Envelope::Broadcast(f.clone()));
        }
        if any {
            Ok(())
        } else {
            Err(Error::Stopped)
        }
    }

    /// Sends a typed message to a connection (see [`ShardCtx::send`]).
    pub fn send<M: Send + 'static>(&self, to: ConnId, msg: M) -> Result<()> {
        let inbox = self
            .inner
            .inboxes
            .get(to.shard())
            .ok_or(Error::NoSuchShard {
                index: to.shard(),
                shards: self.shards(),
            })?;
        if inbox.send(Envelope::ToConn {
            to,
            msg: Box::new(msg),
        }) {
            Ok(())
        } else {
            Err(Error::Stopped)
        }
    }

    /// Every shard's counters, read without locks.
    pub fn stats(&self) -> ServerStats {
        self.inner.stats.snapshot()
    }

    /// Current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.settings.load_full()
    }

    /// Changes settings; shards pick them up on their next loop iteration.
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) -> Result<()> {
        let mut s = Settings::clone(&self.inner.settings.load());
        f(&mut s);
        s.validate().map_err(Error::Config)?;
        self.inner.settings.store(Arc::new(s));
        for inbox in self.inner.inboxes.iter() {
            inbox.wake();
        }
        Ok(())
    }

    /// Stops gracefully with the builder's stop timeout (see [`Handle::stop_within`]).
    pub fn stop(&self) {
        self.stop_within(self.inner.stop_timeout);
    }

    /// Stops accepting, asks every protocol to finish
    /// ([`Protocol::server_stopping`](crate::Protocol::server_stopping), which
    /// closes after flushing by default) and aborts what is left after
    /// `deadline`. Returns at once; [`wait`](Handle::wait) joins the threads.
    pub fn stop_within(&self, deadline: Duration) {
        if self.inner.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(w) = &self.inner.acceptor_waker {
            let _ = w.wake();
        }
        let deadline = Instant::now() + deadline;
        for inbox in self.inner.inboxes.iter() {
            inbox.send(Envelope::Stop { deadline });
        }
    }

    /// True once stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
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
        *lock.lock().expect("done lock") = true;
        cvar.notify_all();
    }

    /// Stops and waits.
    pub fn shutdown(&self) {
        self.stop();
        self.wait();
    }
}
