//! Configuring a server: `ServerBuilder` holds only server-wide settings;
//! each listener is a [`Listen`] value. `build` validates and binds.

use super::balance::{BalancingPolicy, RoundRobin};
use super::server::Server;
use super::triggers::{LifecyclePhase, Trigger};
use crate::api::Settings;
use crate::endpoint::Listen;
use crate::error::{Error, Result};
use crate::net::SocketOptions;
use crate::reactor::{ErasedFactory, Factory, FactoryMaker};
use std::fmt;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

/// Which cores shard threads are pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pinning {
    /// No pinning: the OS schedules shard threads freely.
    Off,
    /// Shard `i` on core `i mod cores` (the default).
    Auto,
    /// Shard `i` on `cores[i mod len]`: e.g. keep the load generator's cores free.
    Cores(Vec<usize>),
}

/// How each shard's loop is sized: rarely changed, never hot-reloaded.
///
/// ```
/// use shardloop::{LoopOptions, Server};
/// use std::time::Duration;
/// let mut options = LoopOptions::default();
/// options.timer_tick = Duration::from_micros(100);
/// let builder = Server::builder().loop_options(options);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopOptions {
    /// Each shard's one read buffer, shared by its connections (default
    /// 64 KiB, at least 512 bytes): the most one read takes.
    pub read_buffer_size: usize,
    /// I/O events taken per poll (default 1024).
    pub events_per_poll: usize,
    /// The timer wheel's tick (default 1 ms, between 10 µs and 1 s); below
    /// 1 ms the shard wakes through a `timerfd`.
    pub timer_tick: Duration,
    /// The largest UDP datagram delivered whole (default 65536, any
    /// datagram); a longer one is dropped and reported to
    /// `error_received`. Smaller values save memory (16 receive slots per
    /// shard).
    pub udp_max_datagram: usize,
    /// Requests (closures, `call_on`, typed messages) that may wait in one
    /// shard's inbox (default 65,536, at least 1). A sender that finds it
    /// full gets [`Error::Overloaded`] at once and never blocks, so shards
    /// sending to each other at any rate cannot deadlock and a slow shard
    /// cannot make the others queue without bound. Wake-ups, replies,
    /// worker results and new connections take no slot.
    pub inbox_capacity: usize,
}

/// `LoopOptions::inbox_capacity` unless set.
pub(crate) const DEFAULT_INBOX_CAPACITY: usize = 65_536;

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            read_buffer_size: 64 * 1024,
            events_per_poll: 1024,
            timer_tick: Duration::from_millis(1),
            udp_max_datagram: 65536,
            inbox_capacity: DEFAULT_INBOX_CAPACITY,
        }
    }
}

pub(super) struct ListenerSpec {
    pub(super) listen: Listen,
    pub(super) make: FactoryMaker,
}

/// Configures a [`Server`]: server-wide settings here, each listener a
/// [`Listen`]. Obtain with [`Server::builder`].
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
    pub(super) shards: Option<usize>,
    pub(super) pinning: Pinning,
    /// The acceptor thread's core, and the plan to check at build
    /// (`placement`).
    pub(super) acceptor_core: Option<usize>,
    pub(super) placement: Option<super::Placement>,
    listeners: Vec<ListenerSpec>,
    max_connections: usize,
    settings: Settings,
    loop_options: LoopOptions,
    backend: Option<crate::Backend>,
    policy: Box<dyn BalancingPolicy>,
    admission: Option<super::balance::Admission>,
    rebalance: Option<crate::reactor::Rebalance>,
    stop_timeout: Duration,
    worker_threads: usize,
    worker_queue: usize,
    keep_running_on_shard_death: bool,
    systemd_activation: bool,
    triggers: Vec<(LifecyclePhase, Trigger)>,
    drain_delay: Duration,
    handle_signals: bool,
    outbound: crate::reactor::Outbound,
    udp: Vec<UdpSpec>,
}

struct UdpSpec {
    desc: String,
    resolved: Result<std::net::SocketAddr>,
    make: crate::reactor::udp::UdpMaker,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            shards: None,
            pinning: Pinning::Auto,
            acceptor_core: None,
            placement: None,
            listeners: Vec::new(),
            max_connections: 1 << 20,
            settings: Settings::default(),
            loop_options: LoopOptions::default(),
            backend: None,
            policy: Box::new(RoundRobin::default()),
            admission: None,
            rebalance: None,
            stop_timeout: Duration::from_secs(5),
            worker_threads: 4,
            worker_queue: 1024,
            keep_running_on_shard_death: false,
            systemd_activation: false,
            triggers: Vec::new(),
            drain_delay: Duration::ZERO,
            handle_signals: false,
            outbound: crate::reactor::Outbound::default(),
            udp: Vec::new(),
        }
    }
}

impl ServerBuilder {
    /// Number of shards (default: the number of cores).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }

    /// Which cores the shard threads are pinned to (default
    /// [`Pinning::Auto`]: shard `i` on core `i mod cores`).
    pub fn pinning(mut self, pinning: Pinning) -> Self {
        self.pinning = pinning;
        self
    }

    /// Adds a listener: an address (`"127.0.0.1:7000"`), an endpoint
    /// string (`"tcp:port=8080:backlog=1024"`, `"unix:/run/app.sock"`,
    /// `"tls:port=8443:privateKey=key.pem:certKey=cert.pem"`), or a
    /// [`Listen`] with its TLS, PROXY protocol and socket options.
    /// `make_factory` runs once on each shard thread and returns that
    /// shard's [`Factory`] for this listener (any `FnMut(Addr) -> P` is
    /// one). Several listeners with different protocols can share one
    /// server. A description that does not parse or resolve fails
    /// [`build`](ServerBuilder::build), naming the bad part.
    pub fn listen<M, F>(mut self, listen: impl Into<Listen>, make_factory: M) -> Self
    where
        M: Fn(usize) -> F + Send + Sync + 'static,
        F: Factory,
    {
        let make: FactoryMaker =
            Arc::new(move |shard| Box::new(make_factory(shard)) as Box<dyn ErasedFactory>);
        self.listeners.push(ListenerSpec {
            listen: listen.into(),
            make,
        });
        self
    }

    /// Serves UDP on `addr` with a [`DatagramProtocol`](crate::udp::DatagramProtocol)
    /// per shard (`make_protocol` runs once on each shard thread). Every
    /// shard gets its own `SO_REUSEPORT` socket on the address, so the
    /// kernel spreads flows over the shards; see [`udp`](crate::udp).
    pub fn listen_udp<A, M, P>(mut self, addr: A, make_protocol: M) -> Self
    where
        A: ToSocketAddrs + fmt::Debug,
        M: Fn(usize) -> P + Send + Sync + 'static,
        P: crate::udp::DatagramProtocol,
    {
        let desc = format!("udp {addr:?}");
        let resolved = addr
            .to_socket_addrs()
            .and_then(|mut it| {
                it.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address found")
                })
            })
            .map_err(|source| Error::Resolve {
                addr: desc.clone(),
                source,
            });
        let make: crate::reactor::udp::UdpMaker = Arc::new(move |shard| {
            Box::new(make_protocol(shard)) as Box<dyn crate::reactor::udp::DatagramProtocol>
        });
        self.udp.push(UdpSpec {
            desc,
            resolved,
            make,
        });
        self
    }

    /// Socket options for every outbound connection the shards open
    /// ([`ShardCtx::connect`](crate::ShardCtx::connect), the reconnecting
    /// client, `ClientStream`), set before the connect;
    /// [`Connect::socket_options`](crate::endpoint::Connect::socket_options)
    /// overrides them for one connection.
    pub fn outbound_socket_options(mut self, options: SocketOptions) -> Self {
        self.outbound.options = options;
        self
    }

    /// How host names in outbound connects ([`Connect::host`](crate::endpoint::Connect::host),
    /// `tcp:host=db.internal:port=5432`) become addresses: the system's
    /// resolver by default; a fixed table in tests, or a service-discovery
    /// client. It runs on the worker pool (on a thread of its own when
    /// the server has no workers), never on a shard.
    ///
    /// ```
    /// use shardloop::Server;
    /// use std::net::SocketAddr;
    /// let b = Server::builder().resolver(|host: &str, port: u16| match host {
    ///     "db.test" => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
    ///     _ => Err(std::io::ErrorKind::NotFound.into()),
    /// });
    /// # let _ = b;
    /// ```
    pub fn resolver(mut self, resolver: impl crate::endpoint::Resolve) -> Self {
        self.outbound.resolver = std::sync::Arc::new(resolver);
        self
    }

    /// How long each shard reuses a name's addresses (default 30 s) and a
    /// failure to resolve it (default 5 s) before asking again. The
    /// system resolver tells no record's TTL: these bound how stale an
    /// answer gets.
    pub fn name_ttl(mut self, answer: Duration, failure: Duration) -> Self {
        self.outbound.name_ttl = answer;
        self.outbound.negative_ttl = failure;
        self
    }

    /// Happy Eyeballs' connection attempt delay (RFC 8305 §5; default
    /// 250 ms): a name with several addresses is connected to one address
    /// after another, each started this long after the one before unless
    /// that one failed sooner, and the first to connect wins.
    pub fn connection_attempt_delay(mut self, delay: Duration) -> Self {
        self.outbound.attempt_delay = delay;
        self
    }

    /// Connections open over all shards at most (default 2^20); the
    /// acceptor closes new ones beyond it and counts them. The per-shard
    /// limit is [`Settings::max_connections_per_shard`].
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// The initial [`Settings`] (idle timeout, water marks, output cap,
    /// timeouts, per-shard limits); [`Handle::update_settings`](crate::Handle::update_settings)
    /// changes them while the server runs.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// How each shard's loop is sized ([`LoopOptions`]).
    pub fn loop_options(mut self, options: LoopOptions) -> Self {
        self.loop_options = options;
        self
    }

    /// The I/O backend the shards run (default: the `SHARDLOOP_BACKEND`
    /// environment variable, `epoll` or `io-uring`, else [`Backend::Epoll`](crate::Backend));
    /// [`Backend::IoUring`](crate::Backend) falls back to epoll, said in
    /// the log, where the kernel does not offer it
    /// ([`Handle::backend`](crate::Handle::backend) tells which runs).
    ///
    /// ```no_run
    /// use shardloop::{Backend, Conn, Protocol, Server};
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     type Message = ();
    ///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
    ///         conn.write(data);
    ///     }
    /// }
    /// let handle = Server::builder()
    ///     .backend(Backend::IoUring)
    ///     .listen("127.0.0.1:7000", |_| |_| Echo)
    ///     .build()?
    ///     .start()?;
    /// println!("running on {}", handle.backend());
    /// # Ok::<(), shardloop::Error>(())
    /// ```
    pub fn backend(mut self, backend: crate::Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// How the acceptor picks a shard for a new connection (default round-robin).
    pub fn balancing(mut self, policy: impl BalancingPolicy) -> Self {
        self.policy = Box::new(policy);
        self
    }

    /// Stops accepting new connections while every shard is saturated
    /// (the least busy one's smoothed busy fraction at or above
    /// `pause_above`) and resumes once one is at or below `resume_below`.
    /// Meanwhile connections wait in the kernel's accept queue. Acceptor
    /// mode only (with `reuse_port` the kernel places connections). Off by
    /// default; `/metrics` counts the pauses and the time paused.
    pub fn admission(mut self, rule: super::balance::Admission) -> Self {
        self.admission = Some(rule);
        self
    }

    /// Lets shards move busy connections among themselves (live
    /// migration): once a second a hot shard sends some of its busiest
    /// connections whose protocol allows it
    /// ([`Conn::set_migratable`](crate::Conn::set_migratable)) to a cool
    /// shard, as [`Rebalance`](crate::Rebalance) says. Works in acceptor
    /// and `reuse_port` modes alike. Off by default; `/metrics` counts
    /// the moves.
    pub fn rebalance(mut self, rule: crate::reactor::Rebalance) -> Self {
        self.rebalance = Some(rule);
        self
    }

    /// The worker pool for blocking work (`defer_to_thread`, `defer`):
    /// `threads` threads (default 4; 0: none, and deferring fails with
    /// `Unavailable`) and at most `queue` jobs waiting (default 1024; more
    /// fail with `Overloaded`).
    pub fn workers(mut self, threads: usize, queue: usize) -> Self {
        self.worker_threads = threads;
        self.worker_queue = queue;
        self
    }

    /// What to do when a shard thread dies (a panic outside the
    /// per-connection protection, e.g. in a factory maker). By default
    /// (false) the server stops gracefully and [`Server::run`] returns
    /// [`Error::ShardDied`]: a supervisor restarts a healthy process. With
    /// true, the other shards carry on and the acceptor stops routing to the
    /// dead one; [`Handle::shard_deaths`](crate::Handle::shard_deaths) reports it.
    pub fn keep_running_on_shard_death(mut self, on: bool) -> Self {
        self.keep_running_on_shard_death = on;
        self
    }

    /// Runs `f` when the server reaches `phase` (Twisted's
    /// `addSystemEventTrigger`); several run in the order they were added.
    ///
    /// ```no_run
    /// use shardloop::{LifecyclePhase, Server};
    /// # use shardloop::{Conn, Protocol};
    /// # struct Echo;
    /// # impl Protocol for Echo { type Message = ();
    /// #     fn data_received(&mut self, c: &mut Conn<'_, Self>, d: &[u8]) { c.write(d) } }
    /// let server = Server::builder()
    ///     .listen("127.0.0.1:7000", |_| |_| Echo)
    ///     .on(LifecyclePhase::BeforeShutdown, |_| println!("deregistering from the load balancer"))
    ///     .on(LifecyclePhase::AfterShutdown, |h| println!("served {}", h.stats().total().connections_accepted))
    ///     .build()?;
    /// # Ok::<(), shardloop::Error>(())
    /// ```
    pub fn on(
        mut self,
        phase: LifecyclePhase,
        f: impl FnOnce(&super::Handle) + Send + 'static,
    ) -> Self {
        self.triggers.push((phase, Box::new(f)));
        self
    }

    /// On stop, keep serving open connections this long after the acceptor
    /// stopped, before closing them (default none): load balancers see the
    /// listener gone and move traffic away first.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// Under systemd socket activation (`$LISTEN_FDS` for this process), the
    /// listeners take the passed sockets in order instead of binding (the
    /// addresses given to `listen` then only name them). Default off.
    pub fn systemd_activation(mut self, on: bool) -> Self {
        self.systemd_activation = on;
        self
    }

    /// Stops gracefully on SIGINT or SIGTERM, and at once on a second one
    /// (default off; the binaries of this workspace turn it on).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Deadline of [`Handle::stop`](crate::Handle::stop) (default 5 s).
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
        let lo = &self.loop_options;
        if lo.read_buffer_size < 512 {
            return Err(Error::Config(format!(
                "read_buffer_size must be at least 512 bytes, got {}",
                lo.read_buffer_size
            )));
        }
        if lo.timer_tick < Duration::from_micros(10) || lo.timer_tick > Duration::from_secs(1) {
            return Err(Error::Config(format!(
                "timer_tick must be between 10µs and 1s, got {:?}",
                lo.timer_tick
            )));
        }
        if lo.events_per_poll == 0 {
            return Err(Error::Config("events_per_poll must be at least 1".into()));
        }
        if lo.udp_max_datagram == 0 {
            return Err(Error::Config("udp_max_datagram must be at least 1".into()));
        }
        if let Some(a) = self.admission {
            if !(a.resume_below < a.pause_above && a.resume_below >= 0.0 && a.pause_above <= 1.0) {
                return Err(Error::Config(format!(
                    "admission: need 0 <= resume_below < pause_above <= 1, got {} and {}",
                    a.resume_below, a.pause_above
                )));
            }
        }
        if let Some(r) = &self.rebalance {
            r.validate().map_err(Error::Config)?;
        }
        if lo.inbox_capacity == 0 {
            return Err(Error::Config("inbox_capacity must be at least 1".into()));
        }
        if let Pinning::Cores(c) = &self.pinning {
            if c.is_empty() {
                return Err(Error::Config(
                    "Pinning::Cores needs at least one core".into(),
                ));
            }
        }
        if let Some(p) = &self.placement {
            p.check().map_err(|e| Error::Config(e.to_string()))?;
        }
        self.settings.validate().map_err(Error::Config)?;
        let bound = super::bind::bind_all(
            self.listeners,
            &super::bind::BindOptions {
                defaults: SocketOptions {
                    backlog: Some(1024),
                    nodelay: Some(true),
                    ..SocketOptions::default()
                },
                shards,
                systemd_activation: self.systemd_activation,
                single_shard_accepts: self.admission.is_none(),
            },
        )?;
        let mut udp_sockets: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
        let mut udp_addrs = Vec::new();
        for spec in self.udp {
            let addr = spec.resolved?;
            let bind_err = |source| Error::Bind {
                addr: spec.desc.clone(),
                source,
            };
            let first = crate::reactor::bind_udp(addr, true).map_err(bind_err)?;
            // Port 0: the other shards join the port the first one got.
            let actual = first.local_addr()?;
            udp_addrs.push(actual);
            udp_sockets[0].push((first, spec.make.clone()));
            for shard in udp_sockets.iter_mut().skip(1) {
                let s = crate::reactor::bind_udp(actual, true).map_err(bind_err)?;
                shard.push((s, spec.make.clone()));
            }
        }
        Ok(Server {
            udp_sockets,
            udp_addrs,
            udp_max_datagram: self.loop_options.udp_max_datagram,
            shards,
            pinning: self.pinning,
            acceptor_core: self.acceptor_core,
            listeners: bound.acceptor,
            shard_listeners: bound.per_shard,
            reload_hooks: bound.reloads,
            local_addrs: bound.local_addrs,
            makers: bound.makers,
            listener_layers: bound.layers,
            outbound: self.outbound,
            max_connections: self.max_connections,
            settings: self.settings,
            read_buffer_size: self.loop_options.read_buffer_size,
            events_capacity: self.loop_options.events_per_poll,
            inbox_capacity: self.loop_options.inbox_capacity,
            backend: self.backend.unwrap_or_else(backend_from_env),
            policy: self.policy,
            admission: self.admission,
            rebalance: self.rebalance,
            stop_timeout: self.stop_timeout,
            timer_tick: self.loop_options.timer_tick,
            worker_threads: self.worker_threads,
            worker_queue: self.worker_queue,
            keep_running_on_shard_death: self.keep_running_on_shard_death,
            triggers: self.triggers,
            drain_delay: self.drain_delay,
            handle_signals: self.handle_signals,
        })
    }
}

/// The backend `SHARDLOOP_BACKEND` names, for servers whose code does not
/// choose one: an operator (or a test run) picks it without a rebuild.
fn backend_from_env() -> crate::Backend {
    match std::env::var("SHARDLOOP_BACKEND") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|e: String| {
            tracing::warn!(error = %e, "SHARDLOOP_BACKEND ignored; running on epoll");
            crate::Backend::Epoll
        }),
        _ => crate::Backend::Epoll,
    }
}
