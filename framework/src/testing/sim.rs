//! A client protocol and a server protocol connected through a simulated
//! network, in one thread, on one virtual clock, every choice drawn from a
//! seed (Twisted's `iosim.connectedServerAndClient` with a hostile wire).
//!
//! Each side is a real connection of a real shard driven by hand (the
//! testing kit's [`FakeTransport`]): the protocols run unchanged. What one
//! side flushes is cut into pieces of random sizes and delivered after a
//! random latency, in order (TCP never reorders; loss shows as delay). A
//! FIN follows the side's last byte; an abort arrives as a reset; the
//! network may reset the connection itself at a random moment. The same
//! seed gives the same run, byte for byte and tick for tick, and
//! [`SimPair::trace`] records it so a failure can be replayed and shown.
//!
//! ```
//! use shardloop::testing::sim::{connected, Network};
//! use shardloop::{Conn, Protocol};
//! use std::time::Duration;
//!
//! /// Echoes.
//! struct Echo;
//! impl Protocol for Echo {
//!     type Message = ();
//!     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
//!         conn.write(data);
//!     }
//! }
//! /// Sends a greeting, keeps what comes back, closes when it is all back.
//! struct Client(Vec<u8>);
//! impl Protocol for Client {
//!     type Message = ();
//!     fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
//!         conn.write(b"hello, simulated world");
//!     }
//!     fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
//!         self.0.extend_from_slice(data);
//!         if self.0.len() == 22 {
//!             conn.close();
//!         }
//!     }
//! }
//!
//! for seed in 0..50 {
//!     let mut sim = connected(seed, Client(Vec::new()), Echo, Network::default());
//!     sim.run_for(Duration::from_secs(5));
//!     assert!(sim.client().fin_sent(), "seed {seed}");
//!     assert!(!sim.server().is_open(), "seed {seed}: the echo closed after the FIN");
//! }
//! ```

use super::FakeTransport;
use crate::reactor::Protocol;
use std::collections::VecDeque;
use std::time::Duration;

/// How the simulated wire behaves; every draw comes from the seed.
#[derive(Debug, Clone)]
pub struct Network {
    /// Flushed bytes are cut into pieces of 1 to this many bytes.
    pub max_piece: usize,
    /// Each piece arrives after a latency drawn in this range (never
    /// before a piece sent earlier the same way).
    pub latency: (Duration, Duration),
    /// The chance, per piece delivered, that the network resets the
    /// connection there (both sides get a reset; nothing more arrives).
    pub reset_chance: f64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            max_piece: 7,
            latency: (Duration::from_micros(50), Duration::from_millis(5)),
            reset_chance: 0.0,
        }
    }
}

/// Which side an event concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The connecting side.
    Client,
    /// The accepting side.
    Server,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// What arrived at a side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// A piece of the other side's bytes.
    Data(Vec<u8>),
    /// The other side's FIN.
    Fin,
    /// A reset (the other side aborted, or the network cut it).
    Reset,
}

/// One delivery of a run: when (virtual time since the start), to whom,
/// and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Virtual time since the run began.
    pub at: Duration,
    /// The side it arrived at.
    pub to: Side,
    /// What arrived.
    pub what: Arrival,
}

struct InFlight {
    at: Duration,
    to: Side,
    what: Arrival,
}

/// A client and a server protocol connected through a [`Network`].
pub struct SimPair<C: Protocol, S: Protocol> {
    client: FakeTransport<C>,
    server: FakeTransport<S>,
    net: Network,
    rng: fastrand::Rng,
    now: Duration,
    /// Deliveries in flight, each way in order of arrival.
    wire: VecDeque<InFlight>,
    /// When the last piece each way arrives (nothing may overtake it).
    last_at: [Duration; 2],
    /// A FIN (or reset) was sent each way: nothing follows it.
    ended: [bool; 2],
    /// The network cut the connection.
    cut: bool,
    trace: Vec<Event>,
}

/// Connects `client` and `server` through `net`, every draw from `seed`;
/// both `connection_made` have run. Nothing moves until
/// [`SimPair::run_for`] (or [`SimPair::step`]).
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
        wire: VecDeque::new(),
        last_at: [Duration::ZERO; 2],
        ended: [false; 2],
        cut: false,
        trace: Vec::new(),
    }
}

fn index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
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
        let next = self.wire.front().map_or(tick, |f| f.at.min(tick));
        let to = next.min(limit).max(self.now);
        let by = to - self.now;
        self.now = to;
        self.client.advance(by);
        self.server.advance(by);
        while self.wire.front().is_some_and(|f| f.at <= self.now) {
            let f = self.wire.pop_front().expect("checked");
            self.deliver(f);
            self.send_pending();
        }
    }

    /// Puts what each side flushed on the wire, and its FIN or reset.
    fn send_pending(&mut self) {
        for side in [Side::Client, Side::Server] {
            if self.cut || self.ended[index(side)] {
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
                let n = self
                    .rng
                    .usize(1..=self.net.max_piece.max(1))
                    .min(rest.len());
                self.put(side.other(), Arrival::Data(rest[..n].to_vec()));
                rest = &rest[n..];
            }
            if aborted {
                self.put(side.other(), Arrival::Reset);
                self.ended[index(side)] = true;
            } else if fin {
                self.put(side.other(), Arrival::Fin);
                self.ended[index(side)] = true;
            }
        }
    }

    /// Schedules `what` for `to`, after a drawn latency and after
    /// everything sent the same way before it.
    fn put(&mut self, to: Side, what: Arrival) {
        let (lo, hi) = self.net.latency;
        let span = hi.saturating_sub(lo).as_nanos() as u64;
        let latency = lo + Duration::from_nanos(self.rng.u64(0..=span));
        let i = index(to);
        let at = (self.now + latency).max(self.last_at[i]);
        self.last_at[i] = at;
        // Both directions share one queue kept in order of arrival.
        let pos = self
            .wire
            .iter()
            .position(|f| f.at > at)
            .unwrap_or(self.wire.len());
        self.wire.insert(pos, InFlight { at, to, what });
    }

    fn deliver(&mut self, f: InFlight) {
        if self.cut {
            return;
        }
        let cut_here = matches!(f.what, Arrival::Data(_))
            && self.net.reset_chance > 0.0
            && self.rng.f64() < self.net.reset_chance;
        let what = if cut_here { Arrival::Reset } else { f.what };
        self.trace.push(Event {
            at: self.now,
            to: f.to,
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
        match (f.to, what) {
            (Side::Client, Arrival::Data(d)) => self.client.receive(&d),
            (Side::Server, Arrival::Data(d)) => self.server.receive(&d),
            (Side::Client, Arrival::Fin) => self.client.peer_close(),
            (Side::Server, Arrival::Fin) => self.server.peer_close(),
            (Side::Client, Arrival::Reset) => self.client.peer_reset(),
            (Side::Server, Arrival::Reset) => self.server.peer_reset(),
        }
    }
}
