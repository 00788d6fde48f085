//! The bounded bus: a full inbox refuses requests at once (post, call,
//! message, from a shard or from outside), counts them and the time it
//! was full, and lets a thread outside wait with a timeout; shards
//! flooding each other never deadlock and every request accepted runs.

use crate::common::*;
use shardloop::task::PromiseError;
use shardloop::{Error, LoopOptions, ShardStats};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn server(shards: usize, capacity: usize) -> shardloop::Handle {
    let mut options = LoopOptions::default();
    options.inbox_capacity = capacity;
    started(
        builder(shards)
            .loop_options(options)
            .listen("127.0.0.1:0", |_| |_| Echo),
    )
    .0
}

/// Holds `shard` in a closure until `release` is set.
fn block(h: &shardloop::Handle, shard: usize) -> Arc<AtomicBool> {
    let release = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (r, s) = (release.clone(), started.clone());
    h.post_to(shard, move |_| {
        s.store(true, Ordering::SeqCst);
        while !r.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .unwrap();
    wait_for("the shard to block", || started.load(Ordering::SeqCst));
    release
}

/// Waits for a promise from a thread outside the shards.
fn settle<T>(mut p: shardloop::task::Promise<T>) -> Result<T, PromiseError> {
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = p.try_take() {
            return v;
        }
        assert!(Instant::now() < limit, "the promise never settled");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_full_inbox_refuses_at_once_from_outside_and_from_a_shard() {
    let h = server(2, 8);
    let release = block(&h, 1);
    let ran = Arc::new(AtomicU64::new(0));
    for _ in 0..8 {
        let ran = ran.clone();
        h.post_to(1, move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // From outside: every way in is refused, at once.
    let t = Instant::now();
    assert!(matches!(
        h.post_to(1, |_| {}),
        Err(Error::Overloaded { shard: 1 })
    ));
    assert!(matches!(
        h.send(shardloop::ConnId::new(1, 0, 0), ()),
        Err(Error::Overloaded { shard: 1 })
    ));
    assert_eq!(settle(h.call_on(1, |_| 1)), Err(PromiseError::Overloaded));
    assert!(t.elapsed() < Duration::from_secs(5), "refusals do not wait");
    let waited = Instant::now();
    let r = h.post_to_within(1, |_| {}, Duration::from_millis(60));
    assert!(matches!(r, Err(Error::Overloaded { shard: 1 })), "{r:?}");
    assert!(waited.elapsed() >= Duration::from_millis(60));
    // From shard 0: post_to, send and call_on, with their own errors.
    let from_shard = settle(h.call_on(0, |ctx| {
        let post = ctx.post_to(1, |_| {});
        let send = ctx.send(shardloop::ConnId::new(1, 0, 0), ());
        let mut call = ctx.call_on(1, |_| 1);
        let to_all = ctx.post_to_all(|_| {});
        (
            format!("{post:?}"),
            format!("{send:?}"),
            call.try_take(),
            format!("{to_all:?}"),
        )
    }))
    .unwrap();
    assert!(from_shard.0.contains("Overloaded"), "{from_shard:?}");
    assert!(from_shard.1.contains("Overloaded"), "{from_shard:?}");
    assert_eq!(from_shard.2, Some(Err(PromiseError::Overloaded)));
    assert!(
        from_shard.3.contains("Overloaded { shard: 1 }"),
        "{from_shard:?}"
    );

    // A waiter outside gets in once the shard drains.
    let ran2 = ran.clone();
    let waiter = {
        let h = h.clone();
        std::thread::spawn(move || {
            h.post_to_within(
                1,
                move |_| {
                    ran2.fetch_add(100, Ordering::SeqCst);
                },
                Duration::from_secs(30),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    release.store(true, Ordering::SeqCst);
    waiter.join().unwrap().unwrap();
    wait_for("every accepted request ran", || {
        ran.load(Ordering::SeqCst) == 108
    });
    let s: ShardStats = h.stats().shards[1].clone();
    // 1 post + 1 send + 1 call + the waits' tries + 4 from shard 0.
    assert!(s.bus_rejected >= 8, "{s:?}");
    assert!(
        s.inbox_full_ns >= 50_000_000,
        "full for the 50 ms before release: {s:?}"
    );
    assert!(s.inbox_full_ns < 60_000_000_000, "{s:?}");
    assert_eq!(h.stats().shards[0].bus_rejected, 0);
    h.shutdown();
}

/// Every shard posts to every other as fast as it can for a second while
/// one shard is slowed by a blocking timer: nothing deadlocks, the
/// refusals are counted on the receivers, and every accepted request runs.
#[test]
fn shards_flooding_each_other_never_deadlock_and_lose_nothing_accepted() {
    const SHARDS: usize = 4;
    let h = server(SHARDS, 64);
    let ran = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(1);
    // The slow shard: 5 ms of blocking every 10 ms.
    h.post_to(SHARDS - 1, |ctx| {
        ctx.call_every(Duration::from_millis(10), |_| {
            std::thread::sleep(Duration::from_millis(5))
        });
    })
    .unwrap();
    for shard in 0..SHARDS {
        let (ran, accepted, refused, done) =
            (ran.clone(), accepted.clone(), refused.clone(), done.clone());
        h.post_to(shard, move |ctx| {
            // Bursts from a timer every millisecond: 256 requests to each
            // other shard per burst, far more than any inbox holds.
            let mut finished = false;
            ctx.call_every(Duration::from_millis(1), move |ctx| {
                if finished {
                    return;
                }
                if Instant::now() >= until {
                    finished = true;
                    done.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                for _ in 0..256 {
                    for to in (0..SHARDS).filter(|&to| to != shard) {
                        let ran = ran.clone();
                        match ctx.post_to(to, move |_| {
                            ran.fetch_add(1, Ordering::Relaxed);
                        }) {
                            Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
                            Err(Error::Overloaded { .. }) => {
                                refused.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(e) => panic!("{e}"),
                        };
                    }
                }
            });
        })
        .unwrap();
    }
    wait_for("every sender to finish", || {
        done.load(Ordering::SeqCst) == SHARDS as u64
    });
    let accepted = accepted.load(Ordering::SeqCst);
    wait_for("every accepted request to run", || {
        ran.load(Ordering::Relaxed) == accepted
    });
    let refused = refused.load(Ordering::SeqCst);
    let stats = h.stats();
    let counted: u64 = stats.shards.iter().map(|s| s.bus_rejected).sum();
    println!(
        "{accepted} accepted, {refused} refused; by shard: {:?}",
        stats
            .shards
            .iter()
            .map(|s| s.bus_rejected)
            .collect::<Vec<_>>()
    );
    assert!(accepted > 1000, "{accepted}");
    assert!(refused > 0, "the inboxes filled: {refused}");
    assert_eq!(counted, refused, "each refusal counted once, on its target");
    h.shutdown();
}
