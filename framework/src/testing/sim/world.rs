//! Hosts with names, each one server of several shards, listening and
//! connecting to each other through the simulated network.

use super::{Arrival, Network, Side, Timeline};
use crate::api::{ConnId, Settings};
use crate::net::{Addr, Resolve, VirtualStream};
use crate::reactor::{ErasedProto, Outbound, Protocol, ShardCtx, VirtualDial};
use crate::testing::fake_socket::{Connecting, FakeSocket, ReadStep};
use crate::testing::Driver;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A host of a [`World`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostId(usize);

/// What happened to one connection of a [`World`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The client's SYN reached the address it dialed.
    Syn,
    /// The server's answer reached the client: connected.
    Accepted,
    /// Nothing listened there: the client's connect was refused.
    Refused,
    /// Something arrived at one end.
    Arrived(Side, Arrival),
    /// The network reset the connection (both ends hear a reset).
    Cut,
}

/// One event of a [`World`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldEvent {
    /// Virtual time since the world began.
    pub at: Duration,
    /// The connection, numbered in the order connects were dialed.
    pub link: usize,
    /// What happened.
    pub what: LinkEvent,
}

/// Hosts, their listeners and the connections between them, on one
/// virtual clock, every draw from one seed. See the [module docs](super).
///
/// ```
/// use shardloop::endpoint::Connect;
/// use shardloop::testing::sim::{Network, World};
/// use shardloop::{Conn, Protocol, Settings};
/// use std::time::Duration;
///
/// /// Echoes.
/// struct Echo;
/// impl Protocol for Echo {
///     type Message = ();
///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
///         conn.write(data);
///     }
/// }
/// /// Sends a greeting, keeps what comes back.
/// #[derive(Default)]
/// struct Client(Vec<u8>);
/// impl Protocol for Client {
///     type Message = ();
///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
///         conn.write(b"hello");
///     }
///     fn data_received(&mut self, _conn: &mut Conn<'_, Self>, data: &[u8]) {
///         self.0.extend_from_slice(data);
///     }
/// }
///
/// let mut world = World::new(7, Network::default());
/// let server = world.host("echo.internal", 2, Settings::default());
/// let client = world.host("client", 1, Settings::default());
/// world.listen(server, 7000, || Echo);
/// let to = Connect::parse("tcp:host=echo.internal:port=7000").unwrap();
/// world.on_shard(client, 0, |ctx| ctx.connect(to, Client::default()));
/// world.run_for(Duration::from_millis(200));
/// let id = world.connections(client)[0];
/// assert_eq!(world.protocol::<Client>(client, id).unwrap().0, b"hello");
/// ```
pub struct World {
    net: Network,
    rng: fastrand::Rng,
    now: Duration,
    hosts: Vec<Host>,
    by_ip: HashMap<IpAddr, usize>,
    names: NameTable,
    dialed: Arc<Mutex<Vec<Dialed>>>,
    listeners: HashMap<(usize, u16), Factory>,
    links: Vec<Link>,
    wire: Timeline<(usize, Delivery)>,
    trace: Vec<WorldEvent>,
}

type Factory = Box<dyn FnMut() -> Box<dyn ErasedProto>>;

struct Host {
    addrs: Vec<IpAddr>,
    shards: Vec<Driver>,
}

/// One end of a connection: a shard's connection over a fake socket.
struct End {
    host: usize,
    id: ConnId,
    socket: FakeSocket,
    /// Its FIN or reset is on the wire: nothing more leaves this end.
    done: bool,
}

struct Link {
    to: SocketAddr,
    /// Client, server (the server's once the SYN arrived).
    ends: [Option<End>; 2],
    /// Reset, by the network or by an end: nothing more is delivered.
    cut: bool,
    /// Bytes on their way to each end.
    in_flight: [usize; 2],
}

enum Delivery {
    Syn,
    SynAck,
    Refused,
    To(Side, Arrival),
}

/// Rounds of settling one step allows before calling the world stuck.
const MAX_SETTLE_ROUNDS: usize = 100_000;

impl World {
    /// An empty world on `net`, every draw from `seed`. The thread's
    /// `fastrand` generator is seeded from it too, so what the framework
    /// draws there (a reconnecting client's jitter) replays as well.
    pub fn new(seed: u64, net: Network) -> World {
        fastrand::seed(seed ^ 0x51u64.rotate_left(56));
        World {
            net,
            rng: fastrand::Rng::with_seed(seed),
            now: Duration::ZERO,
            hosts: Vec::new(),
            by_ip: HashMap::new(),
            names: NameTable::default(),
            dialed: Arc::default(),
            listeners: HashMap::new(),
            links: Vec::new(),
            wire: Timeline::new(),
            trace: Vec::new(),
        }
    }

    /// Adds a host called `name`: a server of `shards` shards with these
    /// settings, at an IPv6 and an IPv4 address (the name resolves to
    /// both, IPv6 first, so connects race them as Happy Eyeballs says).
    ///
    /// # Panics
    /// If the settings are inconsistent, or the OS refuses a poller.
    pub fn host(&mut self, name: &str, shards: usize, settings: Settings) -> HostId {
        settings.validate().expect("valid settings");
        let index = self.hosts.len();
        let n = u16::try_from(index + 1).expect("fewer than 65,535 hosts");
        let [hi, lo] = n.to_be_bytes();
        let addrs = vec![
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n)),
            IpAddr::V4(Ipv4Addr::new(10, 0, hi, lo)),
        ];
        let outbound = Outbound {
            resolver: Arc::new(self.names.clone()),
            virtual_dial: Some(Arc::new(Dialer {
                host: index,
                addrs: addrs.clone(),
                next_port: Mutex::new(40000),
                window: self.net.window,
                dialed: self.dialed.clone(),
            })),
            ..Outbound::default()
        };
        let drivers = Driver::server(
            settings,
            shards.max(1),
            outbound,
            Duration::from_millis(1),
            64 * 1024,
        )
        .expect("detached shards for the simulation");
        for ip in &addrs {
            self.by_ip.insert(*ip, index);
        }
        self.names.set(name, addrs.clone());
        self.hosts.push(Host {
            addrs,
            shards: drivers,
        });
        HostId(index)
    }

    /// Makes `name` resolve to these hosts' addresses (all of them, in
    /// order): a record that moves (failover), or several backends behind
    /// one name. No hosts: the name has no address (NXDOMAIN).
    pub fn point(&mut self, name: &str, hosts: &[HostId]) {
        let addrs = hosts
            .iter()
            .flat_map(|h| self.hosts[h.0].addrs.clone())
            .collect();
        self.names.set(name, addrs);
    }

    /// The host's addresses (IPv6, IPv4).
    pub fn addrs(&self, host: HostId) -> &[IpAddr] {
        &self.hosts[host.0].addrs
    }

    /// Accepts connections to `port` of `host`, each run by a protocol
    /// `factory` makes, on a shard of the host drawn from the seed (as
    /// `SO_REUSEPORT` spreads them). Replaces an earlier listener.
    pub fn listen<P: Protocol>(
        &mut self,
        host: HostId,
        port: u16,
        mut factory: impl FnMut() -> P + 'static,
    ) {
        let make: Factory = Box::new(move || Box::new(factory()));
        self.listeners.insert((host.0, port), make);
    }

    /// Stops accepting on `port` of `host`: later connects are refused
    /// (connections already made go on).
    pub fn unlisten(&mut self, host: HostId, port: u16) {
        self.listeners.remove(&(host.0, port));
    }

    /// Runs `f` on shard `shard` of `host` as if from one of its callbacks
    /// (connect from there, read its services), then lets the world
    /// settle.
    pub fn on_shard<R>(
        &mut self,
        host: HostId,
        shard: usize,
        f: impl FnOnce(&mut ShardCtx) -> R,
    ) -> R {
        let r = self.hosts[host.0].shards[shard].run(f);
        self.settle();
        r
    }

    /// The host's open connections (before `connection_lost`), shard by
    /// shard, in slot order.
    pub fn connections(&self, host: HostId) -> Vec<ConnId> {
        let mut out = Vec::new();
        for d in &self.hosts[host.0].shards {
            let shard = d.shard_ref();
            out.extend(
                shard
                    .connection_ids()
                    .into_iter()
                    .filter(|id| shard.is_open(*id)),
            );
        }
        out
    }

    /// The protocol of the open connection `id` of `host`, if it is a `P`.
    pub fn protocol<P: Protocol>(&mut self, host: HostId, id: ConnId) -> Option<&mut P> {
        self.hosts[host.0]
            .shards
            .get_mut(id.shard())?
            .shard()
            .protocol_any(id)?
            .downcast_mut::<P>()
    }

    /// The network resets every connection of `host` (its link went down
    /// and came back: both ends of each hear a reset).
    pub fn reset_host(&mut self, host: HostId) {
        for l in 0..self.links.len() {
            let touches = self.links[l]
                .ends
                .iter()
                .flatten()
                .any(|e| e.host == host.0);
            if touches && !self.links[l].cut {
                self.cut(l);
            }
        }
        self.settle();
    }

    /// Virtual time since the world began.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Every event so far, in order: the run, to compare or print.
    pub fn trace(&self) -> &[WorldEvent] {
        &self.trace
    }

    /// True when nothing is on the wire and no socket holds output.
    pub fn is_quiet(&mut self) -> bool {
        self.settle();
        self.wire.is_empty()
    }

    /// Runs for `d` of virtual time: deliveries as they fall due, and
    /// every shard's timers.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step(end);
        }
    }

    /// Moves to the next delivery (or 1 ms on, or `limit`, whichever comes
    /// first, so timers fire in between), delivering what falls due.
    pub fn step(&mut self, limit: Duration) {
        self.settle();
        let tick = self.now + Duration::from_millis(1);
        let next = self.wire.next_at().map_or(tick, |at| at.min(tick));
        let to = next.min(limit).max(self.now);
        let by = to - self.now;
        self.now = to;
        for host in &mut self.hosts {
            for d in &mut host.shards {
                d.advance(by);
            }
        }
        self.settle();
        while let Some((link, what)) = self.wire.arrived(self.now) {
            self.deliver(link, what);
            self.settle();
        }
    }

    /// Runs every shard, new connect and socket until nothing moves
    /// without the clock: shards' ready work (messages from other shards
    /// too), reads of what arrived, and what the sockets hold put on the
    /// wire as far as the window allows.
    fn settle(&mut self) {
        for _ in 0..MAX_SETTLE_ROUNDS {
            let mut moved = false;
            for host in &mut self.hosts {
                for d in &mut host.shards {
                    if d.has_work() {
                        d.settle();
                        moved = true;
                    }
                }
            }
            moved |= self.take_dials();
            moved |= self.read_arrivals();
            moved |= self.transmit();
            if !moved {
                return;
            }
        }
        panic!("the simulated world never settles: protocols keep each other busy without time passing");
    }

    fn driver(&mut self, host: usize, id: ConnId) -> &mut Driver {
        &mut self.hosts[host].shards[id.shard()]
    }

    /// Connects the shards dialed become links, their SYN on the wire.
    fn take_dials(&mut self) -> bool {
        let dialed =
            std::mem::take(&mut *self.dialed.lock().unwrap_or_else(PoisonError::into_inner));
        let moved = !dialed.is_empty();
        for d in dialed {
            let l = self.links.len();
            self.links.push(Link {
                to: d.to,
                ends: [
                    Some(End {
                        host: d.host,
                        id: d.id,
                        socket: d.socket,
                        done: false,
                    }),
                    None,
                ],
                cut: false,
                in_flight: [0; 2],
            });
            let at = self.now + self.net.latency(&mut self.rng);
            self.wire.send((l, Side::Server), at, (l, Delivery::Syn));
        }
        moved
    }

    /// Reads what arrived at connections that are reading.
    fn read_arrivals(&mut self) -> bool {
        let mut moved = false;
        for l in 0..self.links.len() {
            for side in [Side::Client, Side::Server] {
                let Some(end) = &self.links[l].ends[side.index()] else {
                    continue;
                };
                // A socket still connecting has nothing to read yet.
                if end.socket.lock().connect != Connecting::Done {
                    continue;
                }
                let (host, id, socket) = (end.host, end.id, end.socket.clone());
                moved |= self.driver(host, id).read_available(id, &socket);
            }
        }
        moved
    }

    /// Puts what the sockets hold on the wire, as far as each direction's
    /// window allows, then FINs and resets.
    fn transmit(&mut self) -> bool {
        let mut moved = false;
        for l in 0..self.links.len() {
            for side in [Side::Client, Side::Server] {
                moved |= self.transmit_from(l, side);
            }
        }
        moved
    }

    fn transmit_from(&mut self, l: usize, side: Side) -> bool {
        let link = &mut self.links[l];
        let to = side.other();
        let unread = link.ends[to.index()]
            .as_ref()
            .map_or(0, |e| unread(&e.socket));
        let Some(end) = &mut link.ends[side.index()] else {
            return false;
        };
        if end.done {
            return false;
        }
        let mut st = end.socket.lock();
        if link.cut {
            st.written.clear();
            return false;
        }
        if st.aborted {
            st.written.clear();
            drop(st);
            end.done = true;
            let at = self.now + self.net.latency(&mut self.rng);
            self.wire
                .send((l, to), at, (l, Delivery::To(to, Arrival::Reset)));
            return true;
        }
        let room = self
            .net
            .window
            .saturating_sub(link.in_flight[to.index()] + unread);
        let n = room.min(st.written.len());
        let bytes: Vec<u8> = st.written.drain(..n).collect();
        let fin = st.shutdown_write && st.written.is_empty();
        drop(st);
        let (host, id) = (end.host, end.id);
        if fin {
            end.done = true;
        }
        link.in_flight[to.index()] += n;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let k = self.net.piece(&mut self.rng, rest.len());
            let at = self.now + self.net.latency(&mut self.rng);
            let piece = Arrival::Data(rest[..k].to_vec());
            self.wire.send((l, to), at, (l, Delivery::To(to, piece)));
            rest = &rest[k..];
        }
        if fin {
            let at = self.now + self.net.latency(&mut self.rng);
            self.wire
                .send((l, to), at, (l, Delivery::To(to, Arrival::Fin)));
        }
        if n > 0 {
            // Room in its socket: the connection's queued output may go.
            let d = self.driver(host, id);
            if d.shard_ref().buffered(id) > 0 {
                d.ready(id, false, true);
            }
        }
        n > 0 || fin
    }

    fn record(&mut self, link: usize, what: LinkEvent) {
        self.trace.push(WorldEvent {
            at: self.now,
            link,
            what,
        });
    }

    fn deliver(&mut self, l: usize, what: Delivery) {
        if self.links[l].cut {
            return;
        }
        match what {
            Delivery::Syn => self.syn(l),
            Delivery::SynAck => self.syn_ack(l),
            Delivery::Refused => {
                self.record(l, LinkEvent::Refused);
                if let Some(end) = &self.links[l].ends[0] {
                    end.socket.lock().connect =
                        Connecting::Failed(io::ErrorKind::ConnectionRefused);
                    let (host, id) = (end.host, end.id);
                    self.driver(host, id).ready(id, false, true);
                }
            }
            Delivery::To(side, Arrival::Data(bytes)) => {
                self.links[l].in_flight[side.index()] -= bytes.len();
                if self.net.cuts(&mut self.rng) {
                    self.record(l, LinkEvent::Cut);
                    return self.cut(l);
                }
                self.record(l, LinkEvent::Arrived(side, Arrival::Data(bytes.clone())));
                self.arrive(l, side, ReadStep::Data(bytes));
            }
            Delivery::To(side, what) => {
                self.record(l, LinkEvent::Arrived(side, what.clone()));
                let step = match what {
                    Arrival::Reset => {
                        self.links[l].cut = true;
                        ReadStep::Error(io::ErrorKind::ConnectionReset)
                    }
                    _ => ReadStep::Eof,
                };
                self.arrive(l, side, step);
            }
        }
    }

    /// Something arrived at one end: its socket has it to read. Bytes for
    /// a connection that is gone are answered with a reset, as TCP does.
    fn arrive(&mut self, l: usize, side: Side, step: ReadStep) {
        let Some(end) = &self.links[l].ends[side.index()] else {
            return;
        };
        let (host, id, socket) = (end.host, end.id, end.socket.clone());
        if self.driver(host, id).shard_ref().is_open(id) {
            socket.lock().inbound.push_back(step);
        } else if matches!(step, ReadStep::Data(_)) {
            self.reset_from(l, side);
        }
    }

    /// End `side` of link `l` answers with a reset (once).
    fn reset_from(&mut self, l: usize, side: Side) {
        let Some(end) = &mut self.links[l].ends[side.index()] else {
            return;
        };
        if end.done && end.socket.lock().aborted {
            return;
        }
        end.done = true;
        end.socket.lock().aborted = true;
        let to = side.other();
        let at = self.now + self.net.latency(&mut self.rng);
        self.wire
            .send((l, to), at, (l, Delivery::To(to, Arrival::Reset)));
    }

    /// The SYN reached the dialed address: accepted by a listener there
    /// (on a shard drawn from the seed), refused if nothing listens, lost
    /// if no host has the address (the connect times out).
    fn syn(&mut self, l: usize) {
        self.record(l, LinkEvent::Syn);
        let to = self.links[l].to;
        let Some(&host) = self.by_ip.get(&to.ip()) else {
            return;
        };
        let at = self.now + self.net.latency(&mut self.rng);
        let Some(make) = self.listeners.get_mut(&(host, to.port())) else {
            self.wire
                .send((l, Side::Client), at, (l, Delivery::Refused));
            return;
        };
        let proto = make();
        let client = self.links[l].ends[0].as_ref().expect("a dialed link");
        let peer = client.socket.local_addr();
        let socket = FakeSocket::default();
        {
            let mut st = socket.lock();
            st.capacity = Some(self.net.window);
            st.addrs = Some((Addr::Tcp(to), peer.unwrap_or(Addr::Unix(None))));
        }
        let shards = self.hosts[host].shards.len();
        let shard = self.rng.usize(0..shards);
        let id = self.hosts[host].shards[shard].open(&socket, proto);
        self.links[l].ends[1] = Some(End {
            host,
            id,
            socket,
            done: false,
        });
        self.wire.send((l, Side::Client), at, (l, Delivery::SynAck));
    }

    /// The server's answer reached the client: connected, or answered
    /// with a reset if the client gave up meanwhile.
    fn syn_ack(&mut self, l: usize) {
        self.record(l, LinkEvent::Accepted);
        let end = self.links[l].ends[0].as_ref().expect("a dialed link");
        let (host, id, socket) = (end.host, end.id, end.socket.clone());
        let waiting = socket.lock().connect == Connecting::Waiting;
        if waiting && self.driver(host, id).shard_ref().live(id) {
            socket.lock().connect = Connecting::Done;
            self.driver(host, id).ready(id, false, true);
        } else {
            self.reset_from(l, Side::Client);
        }
    }

    /// The network resets link `l`: both ends hear it, nothing more of it
    /// is delivered.
    fn cut(&mut self, l: usize) {
        self.links[l].cut = true;
        for end in self.links[l].ends.iter_mut().flatten() {
            end.done = true;
            let mut st = end.socket.lock();
            st.written.clear();
            st.inbound
                .push_back(ReadStep::Error(io::ErrorKind::ConnectionReset));
        }
    }
}

/// Bytes that arrived at a socket and were not read yet.
fn unread(socket: &FakeSocket) -> usize {
    socket
        .lock()
        .inbound
        .iter()
        .map(|s| match s {
            ReadStep::Data(d) => d.len(),
            _ => 0,
        })
        .sum()
}

/// The world's names, shared by every host's resolver.
#[derive(Clone, Default)]
struct NameTable(Arc<Mutex<HashMap<String, Vec<IpAddr>>>>);

impl NameTable {
    fn set(&self, name: &str, addrs: Vec<IpAddr>) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        t.insert(name.to_ascii_lowercase(), addrs);
    }
}

impl Resolve for NameTable {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match t.get(&host.to_ascii_lowercase()) {
            Some(addrs) if !addrs.is_empty() => {
                Ok(addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host}: no such host in the simulated world"),
            )),
        }
    }
}

/// A shard's connect, handed to the world.
struct Dialed {
    host: usize,
    id: ConnId,
    socket: FakeSocket,
    to: SocketAddr,
}

/// A host's outbound connections: sockets the world connects.
struct Dialer {
    host: usize,
    addrs: Vec<IpAddr>,
    next_port: Mutex<u16>,
    /// The sockets' send buffers.
    window: usize,
    dialed: Arc<Mutex<Vec<Dialed>>>,
}

impl VirtualDial for Dialer {
    fn dial(&self, id: ConnId, to: &Addr) -> io::Result<Box<dyn VirtualStream>> {
        let Addr::Tcp(to) = to else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated network carries TCP only",
            ));
        };
        let local_ip = self
            .addrs
            .iter()
            .find(|ip| ip.is_ipv6() == to.is_ipv6())
            .copied()
            .unwrap_or(self.addrs[0]);
        let port = {
            let mut p = self
                .next_port
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *p = if *p == u16::MAX { 40000 } else { *p + 1 };
            *p
        };
        let socket = FakeSocket::default();
        {
            let mut st = socket.lock();
            st.connect = Connecting::Waiting;
            st.capacity = Some(self.window);
            st.addrs = Some((Addr::Tcp(SocketAddr::new(local_ip, port)), Addr::Tcp(*to)));
        }
        self.dialed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Dialed {
                host: self.host,
                id,
                socket: socket.clone(),
                to: *to,
            });
        Ok(Box::new(socket))
    }
}
