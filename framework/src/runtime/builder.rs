//! Configuring a server: `ServerBuilder`, validated and bound by `build`.

use super::balance::{BalancingPolicy, RoundRobin};
use super::server::Server;
use crate::api::Settings;
use crate::endpoint::ServerEndpoint;
use crate::error::{Error, Result};
use crate::net::SocketOptions;
use crate::reactor::{ErasedFactory, Factory, FactoryMaker};
use crate::tls::TlsServerConfig;
use std::fmt;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

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

pub(super) struct ListenerSpec {
    pub(super) addr: String,
    pub(super) resolved: Result<ServerEndpoint>,
    pub(super) make: FactoryMaker,
    pub(super) tls: Option<TlsServerConfig>,
    /// Socket options given for this listener by `socket_options`.
    pub(super) options: SocketOptions,
    /// Connections start with a PROXY protocol header.
    pub(super) proxy_protocol: bool,
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
    keep_running_on_shard_death: bool,
    systemd_activation: bool,
    triggers: Vec<(super::lifecycle::Phase, super::lifecycle::Trigger)>,
    drain_delay: Duration,
    handle_signals: bool,
    reuse_port: bool,
    outbound_options: SocketOptions,
    udp: Vec<UdpSpec>,
    udp_max_datagram: usize,
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
            keep_running_on_shard_death: false,
            systemd_activation: false,
            triggers: Vec::new(),
            drain_delay: Duration::ZERO,
            handle_signals: false,
            reuse_port: false,
            outbound_options: SocketOptions::default(),
            udp: Vec::new(),
            udp_max_datagram: 65536,
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
                options: SocketOptions::default(),
                proxy_protocol: false,
            })
            .map_err(|source| Error::Resolve {
                addr: desc.clone(),
                source,
            });
        self.push_listener(desc, resolved, make_factory)
    }

    /// Adds a listener from an endpoint description: `tcp:8080`,
    /// `tcp:port=8080:interface=127.0.0.1:backlog=1024`, `tcp6:port=8080:interface=\:\:1`,
    /// `unix:/run/app.sock`, or TLS:
    /// `tls:port=8443:privateKey=key.pem:certKey=cert.pem` (`ssl:` too) with
    /// optional `interface=`, `backlog=`, `alpn=h2,http/1.1`, and
    /// `caCerts=clients.pem` (with `clientAuth=required|optional`) for mTLS. A malformed description fails [`build`](ServerBuilder::build)
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
            tls: None,
            options: SocketOptions::default(),
            proxy_protocol: false,
        });
        self
    }

    /// Adds a TLS listener: like [`listen`](ServerBuilder::listen), and every
    /// connection runs its protocol over TLS with `tls` (the protocol is
    /// unchanged; `connection_made` follows the handshake).
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol, Server};
    /// # use shardloop::tls::TlsServerConfig;
    /// # struct Echo;
    /// # impl Protocol for Echo { type Message = ();
    /// #     fn data_received(&mut self, c: &mut Conn<'_, Self>, d: &[u8]) { c.write(d) } }
    /// let tls = TlsServerConfig::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// Server::builder()
    ///     .listen_tls("0.0.0.0:8443", tls, |_| |_| Echo)
    ///     .build()?
    ///     .run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tls<A, M, F>(self, addr: A, tls: TlsServerConfig, make_factory: M) -> Self
    where
        A: ToSocketAddrs + fmt::Debug,
        M: Fn(usize) -> F + Send + Sync + 'static,
        F: Factory,
    {
        self.listen(addr, make_factory).tls(tls)
    }

    /// Socket options for the listener added last (its connections inherit
    /// them): keep-alive, buffer sizes, `TCP_USER_TIMEOUT`, Fast Open,
    /// `IPV6_V6ONLY`, backlog, `SO_REUSEPORT`. What they leave unset comes
    /// from the endpoint string, then from the server's defaults.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Protocol, Server, SocketOptions, Keepalive};
    /// # use std::time::Duration;
    /// # struct Echo;
    /// # impl Protocol for Echo { type Message = ();
    /// #     fn data_received(&mut self, c: &mut Conn<'_, Self>, d: &[u8]) { c.write(d) } }
    /// let mut opts = SocketOptions::default();
    /// opts.keepalive = Some(Keepalive { idle: Duration::from_secs(60), interval: None, count: None });
    /// opts.user_timeout = Some(Duration::from_secs(30));
    /// Server::builder()
    ///     .listen("0.0.0.0:7000", |_| |_| Echo)
    ///     .socket_options(opts)
    ///     .build()?;
    /// # Ok::<(), shardloop::Error>(())
    /// ```
    pub fn socket_options(mut self, options: SocketOptions) -> Self {
        if let Some(last) = self.listeners.last_mut() {
            last.options = options;
        }
        self
    }

    /// Socket options for every outbound connection the shards open
    /// (`connect_tcp`, clients, the reconnecting client), set before the
    /// connect; [`ShardCtx::connect_with_options`](crate::ShardCtx::connect_with_options)
    /// overrides them for one connection.
    pub fn outbound_socket_options(mut self, options: SocketOptions) -> Self {
        self.outbound_options = options;
        self
    }

    /// Requires a PROXY protocol header (v1 or v2) at the start of every
    /// connection of the listener added last: servers behind HAProxy or a
    /// load balancer see the real client in `Conn::peer_addr` (see
    /// [`proxy`](crate::proxy)). Only for listeners no one but the proxy
    /// can reach: the header is trusted.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        if let Some(last) = self.listeners.last_mut() {
            last.proxy_protocol = on;
        }
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

    /// The largest UDP datagram delivered whole (default 65536, any
    /// datagram); a longer one is dropped and reported to
    /// `error_received`. Smaller values save memory (16 receive slots per
    /// shard).
    pub fn udp_max_datagram(mut self, bytes: usize) -> Self {
        self.udp_max_datagram = bytes;
        self
    }

    /// Serves TLS with `tls` on the listener added last (by `listen` or
    /// `listen_on`); any protocol runs over it unchanged.
    pub fn tls(mut self, tls: TlsServerConfig) -> Self {
        if let Some(last) = self.listeners.last_mut() {
            last.tls = Some(tls);
        }
        self
    }

    /// Per-shard listeners: each TCP listener is bound once per shard with
    /// `SO_REUSEPORT` and every shard accepts on its own socket in its own
    /// loop, so a connection never crosses threads and no acceptor thread
    /// wakes up for it (the kernel spreads connections over the sockets by
    /// a hash of the addresses). Cheapest for short-lived connections; the
    /// default acceptor balances long-lived ones better (it sees every
    /// shard's load; the kernel's hash does not). Unix-domain listeners
    /// and sockets from systemd stay with the acceptor. The global
    /// `max_connections` becomes a per-shard share of it.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
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
    /// use shardloop::{Phase, Server};
    /// # use shardloop::{Conn, Protocol};
    /// # struct Echo;
    /// # impl Protocol for Echo { type Message = ();
    /// #     fn data_received(&mut self, c: &mut Conn<'_, Self>, d: &[u8]) { c.write(d) } }
    /// let server = Server::builder()
    ///     .listen("127.0.0.1:7000", |_| |_| Echo)
    ///     .on(Phase::BeforeShutdown, |_| println!("deregistering from the load balancer"))
    ///     .on(Phase::AfterShutdown, |h| println!("served {}", h.stats().total().connections_accepted))
    ///     .build()?;
    /// # Ok::<(), shardloop::Error>(())
    /// ```
    pub fn on(
        mut self,
        phase: super::lifecycle::Phase,
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
        let bound = super::bind::bind_all(
            self.listeners,
            &super::bind::BindOptions {
                defaults: SocketOptions {
                    backlog: Some(self.backlog),
                    nodelay: Some(self.nodelay),
                    reuse_port: Some(self.reuse_port),
                    ..SocketOptions::default()
                },
                shards,
                systemd_activation: self.systemd_activation,
            },
        )?;
        if self.udp_max_datagram == 0 {
            return Err(Error::Config("udp_max_datagram must be at least 1".into()));
        }
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
            udp_max_datagram: self.udp_max_datagram,
            shards,
            pinning: self.pinning,
            listeners: bound.acceptor,
            shard_listeners: bound.per_shard,
            local_addrs: bound.local_addrs,
            makers: bound.makers,
            listener_layers: bound.layers,
            outbound_options: self.outbound_options,
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
            keep_running_on_shard_death: self.keep_running_on_shard_death,
            triggers: self.triggers,
            drain_delay: self.drain_delay,
            handle_signals: self.handle_signals,
        })
    }
}
