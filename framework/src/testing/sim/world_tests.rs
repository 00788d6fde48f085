//! The simulated world: hosts that find each other by name, refusals and
//! lost SYNs, a reconnecting client following a name that moves, flow
//! control with a reader that stops, the bus between a host's shards, and
//! a seed that replays the whole run.

use super::{Arrival, LinkEvent, Network, World};
use crate::client::reconnect::ReconnectPolicy;
use crate::endpoint::Connect;
use crate::{CloseReason, Conn, ConnId, Protocol, Settings, ShardCtx};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

/// What a client saw, kept outside it (its protocol is gone once closed).
#[derive(Default, Debug)]
struct Seen {
    made: usize,
    failed: Vec<io::ErrorKind>,
    lost: Vec<CloseReason>,
    got: Vec<u8>,
}

/// Writes `greeting` when connected; records everything.
struct Client {
    seen: Rc<RefCell<Seen>>,
    greeting: Vec<u8>,
}

impl Protocol for Client {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        self.seen.borrow_mut().made += 1;
        conn.write(&self.greeting);
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.seen.borrow_mut().got.extend_from_slice(data);
    }
    fn connection_lost(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.seen.borrow_mut().lost.push(reason.clone());
    }
    fn connect_failed(&mut self, _ctx: &mut ShardCtx, error: &io::Error) {
        self.seen.borrow_mut().failed.push(error.kind());
    }
}

fn client(seen: &Rc<RefCell<Seen>>, greeting: &[u8]) -> Client {
    Client {
        seen: seen.clone(),
        greeting: greeting.to_vec(),
    }
}

/// Answers with the name of its host and shard, then echoes.
struct Named(&'static str);

impl Protocol for Named {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let hello = format!("{}/{};", self.0, conn.shard().index());
        conn.write(hello.as_bytes());
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
}

fn to(endpoint: &str) -> Connect {
    Connect::parse(endpoint).expect("a valid endpoint")
}

/// A client host connecting by name to a server of 3 shards, 20 times.
fn busy_world(seed: u64) -> (World, Vec<Rc<RefCell<Seen>>>) {
    let mut w = World::new(seed, Network::default());
    let server = w.host("api.internal", 3, Settings::default());
    let clients = w.host("clients", 2, Settings::default());
    w.listen(server, 80, || Named("api"));
    let seen: Vec<_> = (0..20).map(|_| Rc::default()).collect();
    for (i, s) in seen.iter().enumerate() {
        let c = client(s, format!("hello {i}|").as_bytes());
        w.on_shard(clients, i % 2, |ctx| {
            ctx.connect(to("tcp:host=api.internal:port=80"), c)
        });
    }
    w.run_for(Duration::from_millis(300));
    (w, seen)
}

#[test]
fn hosts_find_each_other_by_name_and_a_seed_replays_the_world() {
    let (a, seen) = busy_world(11);
    let mut shards = std::collections::BTreeSet::new();
    for (i, s) in seen.iter().enumerate() {
        let s = s.borrow();
        assert_eq!(s.made, 1);
        let got = String::from_utf8(s.got.clone()).unwrap();
        let (hello, echo) = got.split_once(';').expect("the greeting");
        assert_eq!(echo, format!("hello {i}|"));
        shards.insert(hello.strip_prefix("api/").expect("from api").to_string());
    }
    assert_eq!(shards.len(), 3, "connections spread over the shards");
    let (b, _) = busy_world(11);
    assert_eq!(a.trace(), b.trace(), "the same seed, the same world");
    let (c, _) = busy_world(12);
    assert_ne!(a.trace(), c.trace(), "another seed, another world");
}

#[test]
fn no_listener_is_refused_no_host_times_out_no_name_is_unresolved() {
    let mut w = World::new(1, Network::default());
    let server = w.host("db", 1, Settings::default());
    let app = w.host("app", 1, Settings::default());
    let seen = Rc::new(RefCell::new(Seen::default()));
    let (a, b) = (client(&seen, b""), client(&seen, b""));
    w.on_shard(app, 0, |ctx| ctx.connect(to("tcp:host=db:port=5432"), a));
    w.run_for(Duration::from_millis(100));
    assert_eq!(seen.borrow().failed, [io::ErrorKind::ConnectionRefused]);
    assert!(w.trace().iter().any(|e| e.what == LinkEvent::Refused));
    // An address no host has: the SYN is lost, the connect times out on
    // the virtual clock.
    w.on_shard(app, 0, |ctx| {
        ctx.connect(to("tcp:host=10.9.9.9:port=5432:timeout=2"), b)
    });
    w.run_for(Duration::from_millis(1900));
    assert_eq!(seen.borrow().failed.len(), 1, "still waiting");
    w.run_for(Duration::from_millis(200));
    assert_eq!(seen.borrow().failed[1], io::ErrorKind::TimedOut);
    let c = client(&seen, b"");
    w.on_shard(app, 0, |ctx| ctx.connect(to("tcp:host=nowhere:port=1"), c));
    w.run_for(Duration::from_millis(10));
    assert_eq!(seen.borrow().failed[2], io::ErrorKind::NotFound);
    // Listening now: accepted.
    w.listen(server, 5432, || Named("db"));
    let d = client(&seen, b"");
    w.on_shard(app, 0, |ctx| ctx.connect(to("tcp:host=db:port=5432"), d));
    w.run_for(Duration::from_millis(100));
    assert_eq!(seen.borrow().made, 1);
    assert_eq!(seen.borrow().got, b"db/0;");
}

#[test]
fn a_reconnecting_client_follows_a_name_that_moves() {
    let mut w = World::new(5, Network::default());
    let old = w.host("primary", 1, Settings::default());
    let new = w.host("standby", 1, Settings::default());
    let app = w.host("app", 1, Settings::default());
    w.listen(old, 6379, || Named("primary"));
    w.listen(new, 6379, || Named("standby"));
    w.point("redis.service", &[old]);
    let seen = Rc::new(RefCell::new(Seen::default()));
    let s = seen.clone();
    let policy = ReconnectPolicy {
        initial_delay: Duration::from_millis(50),
        ..ReconnectPolicy::default()
    };
    w.on_shard(app, 0, |ctx| {
        let target = to("tcp:host=redis.service:port=6379");
        drop(ctx.connect_reconnecting(target, policy, move || client(&s, b"")))
    });
    w.run_for(Duration::from_millis(100));
    assert_eq!(seen.borrow().got, b"primary/0;");
    // Failover: the name moves, the old primary goes away.
    w.point("redis.service", &[new]);
    w.unlisten(old, 6379);
    w.reset_host(old);
    w.run_for(Duration::from_secs(2));
    let seen = seen.borrow();
    assert!(
        matches!(&seen.lost[0], CloseReason::Io { kind, .. } if *kind == io::ErrorKind::ConnectionReset),
        "{:?}",
        seen.lost
    );
    assert_eq!(
        seen.got, b"primary/0;standby/0;",
        "asked the resolver again"
    );
}

/// Sends `total` bytes as fast as its connection takes them, pausing
/// when asked; counts the pauses.
struct Firehose {
    total: usize,
    sent: usize,
    paused: bool,
    pauses: Rc<RefCell<usize>>,
}

impl Firehose {
    fn pour(&mut self, conn: &mut Conn<'_, Self>) {
        while !self.paused && self.sent < self.total {
            let n = 4096.min(self.total - self.sent);
            let chunk: Vec<u8> = (self.sent..self.sent + n).map(|i| i as u8).collect();
            self.sent += n;
            conn.write(&chunk);
        }
        if self.sent == self.total {
            conn.close();
        }
    }
}

impl Protocol for Firehose {
    type Message = ();
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {}
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        self.pour(conn);
    }
    fn pause_producing(&mut self, _conn: &mut Conn<'_, Self>) {
        self.paused = true;
        *self.pauses.borrow_mut() += 1;
    }
    fn resume_producing(&mut self, conn: &mut Conn<'_, Self>) {
        self.paused = false;
        self.pour(conn);
    }
}

/// Reads nothing until told to (pausing its reads), then everything.
struct Sleeper(Rc<RefCell<Vec<u8>>>);

impl Protocol for Sleeper {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.pause_reading();
        conn.call_later(Duration::from_secs(1), |_, conn| conn.resume_reading());
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, Self>, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
    }
}

#[test]
fn a_reader_that_stops_fills_the_window_then_the_sender_pauses() {
    let net = Network {
        max_piece: 1500,
        window: 64 * 1024,
        ..Network::default()
    };
    let mut w = World::new(3, net);
    let settings = Settings {
        high_water_mark: 256 * 1024,
        low_water_mark: 16 * 1024,
        ..Settings::default()
    };
    let source = w.host("source", 1, settings);
    let sink = w.host("sink", 1, Settings::default());
    let pauses = Rc::new(RefCell::new(0));
    let p = pauses.clone();
    let total = 4 << 20;
    w.listen(source, 9, move || Firehose {
        total,
        sent: 0,
        paused: false,
        pauses: p.clone(),
    });
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    w.on_shard(sink, 0, |ctx| {
        ctx.connect(to("tcp:host=source:port=9"), Sleeper(g))
    });
    w.run_for(Duration::from_millis(500));
    assert!(got.borrow().is_empty(), "nothing read while paused");
    assert_eq!(*pauses.borrow(), 1, "the sender was told to stop");
    let held = w.connections(source);
    assert_eq!(held.len(), 1);
    w.run_for(Duration::from_secs(30));
    let got = got.borrow();
    assert_eq!(got.len(), total, "every byte, after the reader woke");
    assert!(
        got.iter().enumerate().all(|(i, b)| *b == i as u8),
        "in order"
    );
    assert!(
        w.connections(source).is_empty(),
        "closed after the last byte"
    );
}

/// Relays each line to every other connection on every shard of its host,
/// through the bus.
struct Relay;

#[derive(Default)]
struct Members(Vec<ConnId>);

impl Protocol for Relay {
    type Message = Vec<u8>;
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let id = conn.id();
        conn.shard().service::<Members>().0.push(id);
        conn.write(b"joined\n");
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        let (from, data) = (conn.id(), data.to_vec());
        conn.shard()
            .post_to_all(move |ctx| {
                for to in ctx.service::<Members>().0.clone() {
                    if to != from {
                        let _ = ctx.send(to, data.clone());
                    }
                }
            })
            .expect("room in the inboxes");
    }
    fn message(&mut self, conn: &mut Conn<'_, Self>, msg: Vec<u8>) {
        conn.write(&msg);
    }
    fn connection_lost(&mut self, conn: &mut Conn<'_, Self>, _reason: &CloseReason) {
        let id = conn.id();
        conn.shard().service::<Members>().0.retain(|m| *m != id);
    }
}

#[test]
fn the_bus_carries_messages_between_a_hosts_shards() {
    let mut w = World::new(9, Network::default());
    let hub = w.host("hub", 4, Settings::default());
    let users = w.host("users", 1, Settings::default());
    w.listen(hub, 1, || Relay);
    let seen: Vec<_> = (0..6)
        .map(|_| Rc::new(RefCell::new(Seen::default())))
        .collect();
    for s in &seen {
        let c = client(s, b"");
        w.on_shard(users, 0, |ctx| ctx.connect(to("tcp:host=hub:port=1"), c));
    }
    w.run_for(Duration::from_millis(100));
    let spread: std::collections::BTreeSet<usize> = (0..4)
        .filter(|&i| w.on_shard(hub, i, |ctx| !ctx.service::<Members>().0.is_empty()))
        .collect();
    assert!(spread.len() > 1, "members on several shards: {spread:?}");
    // A seventh user joins and says something at once.
    w.on_shard(users, 0, |ctx| {
        ctx.connect(
            to("tcp:host=hub:port=1"),
            Client {
                seen: Rc::new(RefCell::new(Seen::default())),
                greeting: b"news\n".to_vec(),
            },
        )
    });
    w.run_for(Duration::from_millis(100));
    for s in &seen {
        assert_eq!(s.borrow().got, b"joined\nnews\n");
    }
}

#[test]
fn bytes_sent_to_a_closed_connection_are_answered_with_a_reset() {
    /// Closes at once.
    struct Rude;
    impl Protocol for Rude {
        type Message = ();
        fn data_received(&mut self, _conn: &mut Conn<'_, Self>, _data: &[u8]) {}
        fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
            conn.close();
        }
    }
    let mut w = World::new(2, Network::default());
    let server = w.host("rude", 1, Settings::default());
    let app = w.host("app", 1, Settings::default());
    w.listen(server, 1, || Rude);
    let seen = Rc::new(RefCell::new(Seen::default()));
    let c = client(&seen, b"are you there?");
    w.on_shard(app, 0, |ctx| ctx.connect(to("tcp:host=rude:port=1"), c));
    w.run_for(Duration::from_millis(200));
    assert!(w
        .trace()
        .iter()
        .any(|e| e.what == LinkEvent::Arrived(super::Side::Client, Arrival::Reset)));
    let seen = seen.borrow();
    assert_eq!(seen.made, 1);
    assert_eq!(seen.lost.len(), 1);
}

#[test]
fn tasks_use_client_streams_and_a_pool_by_name_inside_the_world() {
    use crate::client::{ClientStream, Pool, PoolOptions};
    /// Answers each line with its length.
    struct Counter;
    impl Protocol for Counter {
        type Message = ();
        fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                conn.write(format!("{}\n", line.len()).as_bytes());
            }
        }
    }
    let net = Network {
        max_piece: 1 << 20,
        ..Network::default()
    };
    let mut w = World::new(4, net);
    let backend = w.host("count.internal", 1, Settings::default());
    let app = w.host("app", 1, Settings::default());
    w.listen(backend, 9000, || Counter);
    let answers = Rc::new(RefCell::new(Vec::new()));
    let a = answers.clone();
    w.on_shard(app, 0, |ctx| {
        ctx.spawn_local(async move {
            let pool: Pool<&str, ClientStream> = Pool::new(PoolOptions::default());
            let open = || ClientStream::connect(to("tcp:host=count.internal:port=9000"));
            for word in ["a", "bb", "ccc"] {
                let mut s = pool.checkout("count", open).await.expect("connected");
                s.write_all(format!("{word}\n").as_bytes()).await.unwrap();
                let line = s.read_line(16).await.unwrap().expect("a line");
                a.borrow_mut()
                    .push((String::from_utf8(line).unwrap(), s.is_reused()));
                s.release();
            }
            let stats = pool.stats();
            a.borrow_mut()
                .push((format!("opened {}", stats.opened), false));
        })
    });
    w.run_for(Duration::from_millis(200));
    let got = answers.borrow();
    assert_eq!(
        *got,
        [
            ("1".to_string(), false),
            ("2".to_string(), true),
            ("3".to_string(), true),
            ("opened 1".to_string(), false),
        ]
    );
}
