//! Connecting by host name: a resolver hook in place of DNS, Happy
//! Eyeballs over an address that never answers and one that does, every
//! address failing, a name with no address, the per-shard cache (one
//! question for many connects, answers and failures expiring), the shard
//! kept running while the resolver blocks, and the system resolver with
//! `localhost` through an endpoint string.
use crate::common::{self, on_shard};

use shardloop::client::ClientStream;
use shardloop::endpoint::Connect;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An address whose SYNs are dropped: a listener with a backlog of 0
/// whose accept queue is already full (the connect neither succeeds nor
/// fails; its attempt is overtaken, as an unreachable address's would be).
fn black_hole() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue: connects that completed but are never accepted.
    let mut fillers = Vec::new();
    for _ in 0..2 {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(c);
        }
    }
    (s, fillers, addr)
}

/// A server on 127.0.0.1 answering each connection with "hi".
fn greeter() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"hi");
        }
    });
    addr
}

/// A port nothing listens on.
fn refused() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

type Table = Vec<(&'static str, io::Result<Vec<SocketAddr>>)>;

/// A server whose resolver answers from `table` (the port asked is
/// ignored: the table's addresses carry theirs), counting questions.
fn server_with(table: Table, delay: Duration) -> (shardloop::Handle, Arc<AtomicUsize>) {
    server_racing(table, delay, Duration::from_millis(250))
}

/// `server_with`, Happy Eyeballs starting each attempt `attempt_delay`
/// after the one before.
fn server_racing(
    table: Table,
    delay: Duration,
    attempt_delay: Duration,
) -> (shardloop::Handle, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let table: Vec<(String, Result<Vec<SocketAddr>, io::ErrorKind>)> = table
        .into_iter()
        .map(|(h, r)| (h.to_string(), r.map_err(|e| e.kind())))
        .collect();
    let b = common::builder(1)
        .resolver(move |host: &str, _port: u16| {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(delay);
            match table.iter().find(|(h, _)| h == host) {
                Some((_, Ok(a))) => Ok(a.clone()),
                Some((_, Err(k))) => Err(io::Error::new(*k, "refused by the table")),
                None => Err(io::Error::new(io::ErrorKind::NotFound, "unknown name")),
            }
        })
        .name_ttl(Duration::from_secs(2), Duration::from_secs(2))
        .connection_attempt_delay(attempt_delay);
    let (h, _) = common::started(common::with_echo(b));
    (h, asked)
}

async fn read_hi(name: &str, port: u16) -> io::Result<(Vec<u8>, Duration)> {
    let t = Instant::now();
    let c = Connect::host(name, port).timeout(Duration::from_secs(5));
    let mut s = ClientStream::connect(c).await?;
    let took = t.elapsed();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).await?;
    Ok((buf.to_vec(), took))
}

#[test]
fn happy_eyeballs_overtakes_an_address_that_never_answers() {
    let (_hole, _fillers, hole) = black_hole();
    let good = greeter();
    let (h, asked) = server_with(vec![("db.test", Ok(vec![hole, good]))], Duration::ZERO);
    let (hi, took) = on_shard(&h, || read_hi("db.test", 1)).unwrap();
    assert_eq!(hi, b"hi");
    // The second attempt starts 250 ms after the first (the first neither
    // connects nor fails), and wins.
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

#[test]
fn a_refused_address_moves_on_at_once_and_all_failing_names_each() {
    let (a, b, good) = (refused(), refused(), greeter());
    // Attempts 30 s apart: only a refusal moving on at once connects soon.
    let (h, _) = server_racing(
        vec![
            ("mixed.test", Ok(vec![a, good])),
            ("dead.test", Ok(vec![a, b])),
        ],
        Duration::ZERO,
        Duration::from_secs(30),
    );
    let (hi, took) = on_shard(&h, || read_hi("mixed.test", 1)).unwrap();
    assert_eq!(hi, b"hi");
    // A refusal does not wait out the attempt delay (30 s).
    assert!(took < Duration::from_secs(15), "{took:?}");
    let e = on_shard(&h, || read_hi("dead.test", 1)).unwrap_err();
    let text = e.to_string();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{text}");
    assert!(text.contains("dead.test"), "{text}");
    assert!(
        text.contains(&a.to_string()) && text.contains(&b.to_string()),
        "{text}"
    );
}

#[test]
fn names_without_addresses_fail_clearly_and_are_cached_as_failures() {
    let (h, asked) = server_with(
        vec![
            ("empty.test", Ok(vec![])),
            ("gone.test", Err(io::ErrorKind::NotFound.into())),
        ],
        Duration::ZERO,
    );
    let e = on_shard(&h, || read_hi("nxdomain.test", 1)).unwrap_err();
    assert!(
        e.to_string().contains("cannot resolve nxdomain.test"),
        "{e}"
    );
    let e = on_shard(&h, || read_hi("empty.test", 1)).unwrap_err();
    assert!(e.to_string().contains("cannot resolve empty.test"), "{e}");
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    // Within the negative TTL the failure is reused; past it, asked again.
    let _ = on_shard(&h, || read_hi("nxdomain.test", 1));
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    std::thread::sleep(Duration::from_millis(2200));
    let _ = on_shard(&h, || read_hi("nxdomain.test", 1));
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

/// A resolver's gate: answers wait until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, cv) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }

    fn open(&self) {
        let (open, cv) = &*self.0;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// Runs `f` as a task on shard 0 of `h` without waiting; its result comes
/// on the receiver.
fn start_on_shard<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    h: &shardloop::Handle,
    f: impl FnOnce() -> F + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    h.post_to(0, move |ctx| {
        ctx.spawn_local(async move {
            let _ = tx.send(f().await);
        });
    })
    .unwrap();
    rx
}

/// The shard answers an echo while its resolutions are held at the gate:
/// resolving never blocks it (not a timing claim: the echo could not
/// come back from a blocked shard at all).
fn shard_answers(echo: SocketAddr) {
    let mut s = common::connect(echo);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
}

#[test]
fn many_connects_ask_once_and_the_shard_runs_while_the_resolver_blocks() {
    let good = greeter();
    let gate = Gate::default();
    let asked = Arc::new(AtomicUsize::new(0));
    let (g, count) = (gate.clone(), asked.clone());
    let b = common::builder(1)
        .resolver(move |_host: &str, _port: u16| {
            count.fetch_add(1, Ordering::SeqCst);
            g.wait();
            Ok(vec![good])
        })
        .name_ttl(Duration::from_secs(2), Duration::from_secs(2));
    let (h, echo) = common::started(common::with_echo(b));
    // 50 connects to one name wait for one answer ...
    let results = start_on_shard(&h, || async {
        let connects = (0..50).map(|_| read_hi("slow.test", 1));
        shardloop::task::join_all(connects).await
    });
    common::wait_for("the question", || asked.load(Ordering::SeqCst) == 1);
    // ... while the shard goes on serving.
    shard_answers(echo);
    gate.open();
    let results = results.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok((hi, _)) if hi == b"hi")));
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "one question for 50 connects"
    );
    // Past the TTL (2 s) the name is asked again.
    std::thread::sleep(Duration::from_millis(2200));
    on_shard(&h, || read_hi("slow.test", 1)).unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

#[test]
fn a_thousand_names_resolve_while_the_shard_serves() {
    let good = greeter();
    let gate = Gate::default();
    let asked = Arc::new(AtomicUsize::new(0));
    let (g, count) = (gate.clone(), asked.clone());
    // Every name is the greeter, once the gate opens, on 4 worker threads.
    let b = common::builder(1)
        .workers(4, 2048)
        .resolver(move |_host: &str, _port: u16| {
            count.fetch_add(1, Ordering::SeqCst);
            g.wait();
            Ok(vec![good])
        });
    let (h, echo) = common::started(common::with_echo(b));
    let ok = start_on_shard(&h, || async {
        let connects = (0..1000).map(|i| async move {
            let c = Connect::host(format!("n{i}.test"), 1).timeout(Duration::from_secs(20));
            ClientStream::connect(c).await.is_ok()
        });
        let results = shardloop::task::join_all(connects).await;
        results.iter().filter(|ok| **ok).count()
    });
    // Every worker holds a question, 996 wait in the queue, and the shard
    // still serves.
    common::wait_for("four questions", || asked.load(Ordering::SeqCst) == 4);
    shard_answers(echo);
    gate.open();
    assert_eq!(ok.recv_timeout(Duration::from_secs(60)).unwrap(), 1000);
    assert_eq!(asked.load(Ordering::SeqCst), 1000);
}

#[test]
fn an_overloaded_worker_pool_fails_connects_without_caching_the_failure() {
    let good = greeter();
    let b = common::builder(1)
        .workers(1, 1)
        .resolver(move |_host: &str, _port: u16| {
            std::thread::sleep(Duration::from_millis(100));
            Ok(vec![good])
        });
    let (h, _) = common::started(common::with_echo(b));
    let errors = on_shard(&h, || async {
        let connects =
            (0..6).map(|i| ClientStream::connect(Connect::host(format!("o{i}.test"), 1)));
        let results = shardloop::task::join_all(connects).await;
        results
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect::<Vec<_>>()
    });
    // One thread and one queued job: the rest of the names were refused.
    assert!(!errors.is_empty());
    assert!(
        errors.iter().all(|e| e.contains("queue is full")),
        "{errors:?}"
    );
    // Not cached: asked again once the pool is free, the name resolves.
    let again = on_shard(&h, || async {
        ClientStream::connect(Connect::host("o5.test", 1))
            .await
            .is_ok()
    });
    assert!(again);
}

#[test]
fn the_system_resolver_finds_localhost_from_an_endpoint_string() {
    let good = greeter();
    let (h, _) = common::echo_server(1);
    let text = format!("tcp:host=localhost:port={}:timeout=5", good.port());
    let mut hi = on_shard(&h, move || async move {
        let c: Connect = text.parse().unwrap();
        let mut s = ClientStream::connect(c).await?;
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await?;
        io::Result::Ok(buf)
    })
    .unwrap()
    .to_vec();
    assert_eq!(hi, b"hi");
    hi.clear();
    // The greeter is plain std: check it is what answered.
    let mut direct = TcpStream::connect(good).unwrap();
    direct.read_to_end(&mut hi).unwrap();
    assert_eq!(hi, b"hi");
}

/// Says "hi", passes the echo on, and closes (so a reconnecting client
/// connects again).
struct Hi(std::sync::mpsc::Sender<Vec<u8>>);

impl shardloop::Protocol for Hi {
    type Message = ();
    fn connection_made(&mut self, conn: &mut shardloop::Conn<'_, Self>) {
        conn.write(b"hi");
    }
    fn data_received(&mut self, conn: &mut shardloop::Conn<'_, Self>, data: &[u8]) {
        let _ = self.0.send(data.to_vec());
        conn.close();
    }
}

#[test]
fn a_reconnecting_client_asks_the_resolver_again_on_each_attempt() {
    let (a, a_addr) = common::echo_server(1);
    let (b, b_addr) = common::echo_server(1);
    let target = Arc::new(std::sync::Mutex::new(a_addr));
    let asked = Arc::new(AtomicUsize::new(0));
    let (t, count) = (target.clone(), asked.clone());
    // The name moves from one server to the other; answers are cached for
    // a minute, which a reconnect must not wait out.
    let builder = common::builder(1)
        .resolver(move |_host: &str, _port: u16| {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(vec![*t.lock().unwrap()])
        })
        .name_ttl(Duration::from_secs(60), Duration::from_secs(60));
    let (clients, _) = common::started(common::with_echo(builder));
    let (tx, rx) = std::sync::mpsc::channel();
    clients
        .post_to(0, move |ctx| {
            let policy = shardloop::client::reconnect::ReconnectPolicy {
                initial_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(40),
                factor: 2.0,
                jitter: 0.1,
                max_retries: None,
                connect_timeout: Some(Duration::from_secs(5)),
            };
            let _r = ctx
                .connect_reconnecting(Connect::host("svc.test", 1), policy, move || Hi(tx.clone()));
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"hi");
    *target.lock().unwrap() = b_addr;
    common::wait_for("a reconnect to reach the name's new address", || {
        b.stats().total().connections_accepted >= 1
    });
    assert!(asked.load(Ordering::SeqCst) >= 2);
    assert!(a.stats().total().connections_accepted >= 1);
    clients.shutdown();
}
