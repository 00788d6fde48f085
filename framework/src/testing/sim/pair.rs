//! One client protocol and one server protocol connected through the
//! simulated network (Twisted's `iosim.connectedServerAndClient` with a
//! hostile wire). Each end is a real connection of a real shard driven by
//! hand (the testing kit's [`FakeTransport`], whose checks it keeps).

use super::{Arrival, Event, Network, Side, Timeline};
use crate::reactor::Protocol;
use crate::testing::FakeTransport;
use std::time::Duration;

/// A client and a server protocol connected through a [`Network`].
pub struct SimPair<C: Protocol, S: Protocol> {
    client: FakeTransport<C>,
    server: FakeTransport<S>,
    net: Network,
    rng: fastrand::Rng,
    now: Duration,
    /// Deliveries in flight, each way in order of arrival.
    wire: Timeline<(Side, Arrival)>,
    /// A FIN (or reset) was sent each way: nothing follows it.
    ended: [bool; 2],
    /// The network cut the connection.
    cut: bool,
    trace: Vec<Event>,
}

/// Connects `client` and `server` through `net`, every draw from `seed`;
/// both `connection_made` have run. Nothing moves until
/// [`SimPair::run_for`] (or [`SimPair::step`]).
///
/// ```
/// use shardloop::testing::sim::{connected, Network};
/// use shardloop::{Conn, Protocol};
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
/// /// Sends a greeting, keeps what comes back, closes when it is all back.
/// struct Client(Vec<u8>);
/// impl Protocol for Client {
///     type Message = ();
///     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
///         conn.write(b"hello, simulated world");
///     }
///     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
///         self.0.extend_from_slice(data);
///         if self.0.len() == 22 {
///             conn.close();
///         }
///     }
/// }
///
/// for seed in 0..50 {
///     let mut sim = connected(seed, Client(Vec::new()), Echo, Network::default());
///     sim.run_for(Duration::from_secs(5));
///     assert!(sim.client().fin_sent(), "seed {seed}");
///     assert!(!sim.server().is_open(), "seed {seed}: the echo closed after the FIN");
/// }
/// ```
pub fn connected<C: Protocol, S: Protocol>(
    seed: u64,
    client: C,
    server: S,
    net: Network,
) -> SimPair<C, S> {
    SimPair {
        client: FakeTransport::new(client),
        server: FakeTransport::new(server),
        net,
        rng: fastrand::Rng::with_seed(seed),
        now: Duration::ZERO,
        wire: Timeline::new(),
        ended: [false; 2],
        cut: false,
        trace: Vec::new(),
    }
}

impl<C: Protocol, S: Protocol> SimPair<C, S> {
    /// The client's end (its protocol, what it wrote, whether it is open).
    pub fn client(&mut self) -> &mut FakeTransport<C> {
        &mut self.client
    }

    /// The server's end.
    pub fn server(&mut self) -> &mut FakeTransport<S> {
        &mut self.server
    }

    /// Virtual time since the run began.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Every delivery so far, in order: the run, to compare or print.
    pub fn trace(&self) -> &[Event] {
        &self.trace
    }

    /// Runs for `d` of virtual time: deliveries as they fall due, and
    /// each side's timers.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step(end);
        }
    }

    /// True when nothing is in flight and neither side has output left.
    pub fn is_quiet(&mut self) -> bool {
        self.send_pending();
        self.wire.is_empty()
    }

    /// Moves to the next delivery (or 1 ms on, or `limit`, whichever comes
    /// first, so timers fire in between), delivering what falls due.
    pub fn step(&mut self, limit: Duration) {
        self.send_pending();
        let tick = self.now + Duration::from_millis(1);
        let next = self.wire.next_at().map_or(tick, |at| at.min(tick));
        let to = next.min(limit).max(self.now);
        let by = to - self.now;
        self.now = to;
        self.client.advance(by);
        self.server.advance(by);
        while let Some((to, what)) = self.wire.arrived(self.now) {
            self.deliver(to, what);
            self.send_pending();
        }
    }

    /// Puts what each side flushed on the wire, and its FIN or reset.
    fn send_pending(&mut self) {
        for side in [Side::Client, Side::Server] {
            if self.cut || self.ended[side.index()] {
                continue;
            }
            let (bytes, fin, aborted) = match side {
                Side::Client => (
                    self.client.take_written(),
                    self.client.fin_sent(),
                    self.client.aborted(),
                ),
                Side::Server => (
                    self.server.take_written(),
                    self.server.fin_sent(),
                    self.server.aborted(),
                ),
            };
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = self.net.piece(&mut self.rng, rest.len());
                self.put(side.other(), Arrival::Data(rest[..n].to_vec()));
                rest = &rest[n..];
            }
            if aborted {
                self.put(side.other(), Arrival::Reset);
                self.ended[side.index()] = true;
            } else if fin {
                self.put(side.other(), Arrival::Fin);
                self.ended[side.index()] = true;
            }
        }
    }

    /// Schedules `what` for `to`, after a drawn latency and after
    /// everything sent the same way before it.
    fn put(&mut self, to: Side, what: Arrival) {
        let at = self.now + self.net.latency(&mut self.rng);
        self.wire.send((0, to), at, (to, what));
    }

    fn deliver(&mut self, to: Side, what: Arrival) {
        if self.cut {
            return;
        }
        let cut_here = matches!(what, Arrival::Data(_)) && self.net.cuts(&mut self.rng);
        let what = if cut_here { Arrival::Reset } else { what };
        self.trace.push(Event {
            at: self.now,
            to,
            what: what.clone(),
        });
        if cut_here {
            // The network resets both ends; what was in flight is lost.
            self.cut = true;
            self.wire.clear();
            self.client.peer_reset();
            self.server.peer_reset();
            return;
        }
        match (to, what) {
            (Side::Client, Arrival::Data(d)) => self.client.receive(&d),
            (Side::Server, Arrival::Data(d)) => self.server.receive(&d),
            (Side::Client, Arrival::Fin) => self.client.peer_close(),
            (Side::Server, Arrival::Fin) => self.server.peer_close(),
            (Side::Client, Arrival::Reset) => self.client.peer_reset(),
            (Side::Server, Arrival::Reset) => self.server.peer_reset(),
        }
    }
}
