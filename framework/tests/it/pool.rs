//! `client::Pool` of `ClientStream`s under load from several tasks while
//! the backend restarts: every task finishes its exchanges (a dead
//! connection is found on checkout or fails its exchange and is dropped,
//! never reused), the per-key cap holds, and when the pool goes every
//! connection the shard opened is closed (no leak).
use crate::common::{self, on_shard};

use shardloop::client::{ClientStream, Pool, PoolOptions};
use shardloop::endpoint::Connect;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A line echo backend on a std thread; `restart` drops every connection
/// and the listener, then listens again on the same port.
struct Backend {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    listener: Arc<Mutex<Option<TcpListener>>>,
}

impl Backend {
    fn start() -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = Backend {
            addr: l.local_addr().unwrap(),
            conns: Arc::default(),
            listener: Arc::default(),
        };
        b.serve(l);
        b
    }

    fn serve(&self, l: TcpListener) {
        *self.listener.lock().unwrap() = Some(l.try_clone().unwrap());
        let conns = self.conns.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                conns.lock().unwrap().push(s.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    for line in BufReader::new(s).lines() {
                        let Ok(line) = line else { return };
                        if w.write_all(format!("{line}\n").as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }

    fn restart(&self) {
        if let Some(l) = self.listener.lock().unwrap().take() {
            // Unblocks the accept loop (it ends on the error).
            let _ = unblock_accept(&l);
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        std::thread::sleep(Duration::from_millis(50));
        let l = TcpListener::bind(self.addr).expect("the same port again");
        self.serve(l);
    }
}

/// Shuts a listening socket down so a thread blocked in `accept` returns.
fn unblock_accept(l: &TcpListener) -> std::io::Result<()> {
    socket2::SockRef::from(l).shutdown(Shutdown::Both)
}

#[test]
fn a_pool_rides_out_a_backend_restart_and_leaks_nothing() {
    let backend = Arc::new(Backend::start());
    let addr = backend.addr;
    let (h, _) = common::echo_server(1);
    let restarter = backend.clone();
    let (done, stats, max_open) = on_shard(&h, move || async move {
        let pool: Pool<SocketAddr, ClientStream> = Pool::new(PoolOptions {
            max_per_key: 4,
            wait_timeout: Duration::from_secs(10),
            ..PoolOptions::default()
        });
        let max_open = Arc::new(Mutex::new(0u64));
        let restarted = std::rc::Rc::new(std::cell::Cell::new(false));
        let tasks = (0..8).map(|t| {
            let pool = pool.clone();
            let max_open = max_open.clone();
            let restarted = restarted.clone();
            async move {
                let mut done = 0;
                let mut failures = 0;
                // 40 exchanges each, and on until the restart is over.
                while done < 40 || !restarted.get() {
                    let got = pool
                        .checkout(addr, || ClientStream::connect(Connect::tcp(addr)))
                        .await;
                    {
                        let open = pool.stats().open;
                        let mut m = max_open.lock().unwrap();
                        *m = (*m).max(open);
                    }
                    let Ok(mut conn) = got else {
                        failures += 1;
                        shardloop::task::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let msg = format!("task {t} ping {done}");
                    let sent = conn.write_all(format!("{msg}\n").as_bytes()).await;
                    let answer = match sent {
                        Ok(()) => conn.read_line(256).await,
                        Err(e) => Err(e),
                    };
                    match answer {
                        Ok(Some(line)) if line == msg.as_bytes() => {
                            conn.release();
                            done += 1;
                        }
                        // The restart cut it: dropped (closed), tried again.
                        _ => failures += 1,
                    }
                    shardloop::task::sleep(Duration::from_millis(1)).await;
                }
                (done, failures)
            }
        });
        let restart = async {
            shardloop::task::sleep(Duration::from_millis(60)).await;
            let (done, tx) = shardloop::task::promise();
            std::thread::spawn(move || {
                restarter.restart();
                tx.resolve(());
            });
            let _ = done.await;
            restarted.set(true);
        };
        let all = shardloop::task::join_all(tasks);
        let (results, ()) = common::join2(all, restart).await;
        let stats = pool.stats();
        drop(pool);
        let max_open = *max_open.lock().unwrap();
        (results, stats, max_open)
    });
    for (i, (done, _)) in done.iter().enumerate() {
        assert!(*done >= 40, "task {i}: {done}");
    }
    assert!(max_open <= 4, "the per-key cap: {max_open}");
    // Connections were opened again after the restart, and the dead ones
    // closed rather than reused.
    assert!(stats.opened > 4, "{stats:?}");
    assert!(stats.closed >= 1, "{stats:?}");
    // The pool dropped: every outbound connection of the shard closes.
    common::wait_for("the pool's connections to close", || {
        h.stats().total().connections_open == 0
    });
}

thread_local! {
    /// Pools kept alive on the shard's thread between tasks.
    static KEPT: std::cell::RefCell<Vec<Pool<SocketAddr, ClientStream>>> = Default::default();
}

#[test]
fn a_shards_pools_are_in_its_stats_and_in_metrics_by_name() {
    let metrics = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (h, addr) = common::started(common::with_echo(common::builder(1)).metrics(metrics));
    // Two checkouts at once (two connections), one of them released for
    // reuse, the other dropped (closed); then a reuse.
    on_shard(&h, move || async move {
        let pool: Pool<SocketAddr, ClientStream> = Pool::new(PoolOptions {
            name: "echo".to_string(),
            ..PoolOptions::default()
        });
        let open = || ClientStream::connect(Connect::tcp(addr));
        let a = pool.checkout(addr, open).await.unwrap();
        let b = pool.checkout(addr, open).await.unwrap();
        a.release();
        drop(b);
        let again = pool.checkout(addr, open).await.unwrap();
        assert!(again.is_reused());
        again.release();
        KEPT.with(|k| k.borrow_mut().push(pool));
    });
    common::wait_for("the pool's figures published", || {
        !h.stats().pools.is_empty()
    });
    let p = &h.stats().pools[0];
    assert_eq!((p.shard, p.pool.as_str()), (0, "echo"));
    let s = p.stats;
    assert_eq!(
        (s.opened, s.reused, s.closed, s.open, s.idle),
        (2, 1, 1, 1, 1),
        "{s:?}"
    );
    let body = common::scrape_metrics(metrics);
    for line in [
        "shardloop_pool_connections{shard=\"0\",pool=\"echo\",state=\"idle\"} 1",
        "shardloop_pool_connections{shard=\"0\",pool=\"echo\",state=\"in_use\"} 0",
        "shardloop_pool_opened_total{shard=\"0\",pool=\"echo\"} 2",
        "shardloop_pool_reused_total{shard=\"0\",pool=\"echo\"} 1",
        "shardloop_pool_closed_total{shard=\"0\",pool=\"echo\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
    }
    shardloop::metrics::text::parse(&body).expect("valid exposition");
    // The pool goes: so do its series.
    h.post_to(0, |_| KEPT.with(|k| k.borrow_mut().clear()))
        .unwrap();
    common::wait_for("the dropped pool forgotten", || h.stats().pools.is_empty());
    h.shutdown();
}
