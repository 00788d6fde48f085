//! Lifecycle triggers, the drain delay, and signals.

use crate::common::*;
use shardloop::LifecyclePhase;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn triggers_run_in_phase_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut b = builder(2).listen("127.0.0.1:0", |_| |_| Echo);
    for (phase, name) in [
        (LifecyclePhase::AfterShutdown, "after shutdown"),
        (LifecyclePhase::BeforeShutdown, "before shutdown"),
        (LifecyclePhase::AfterStartup, "after startup"),
        (LifecyclePhase::DuringShutdown, "during shutdown"),
        (LifecyclePhase::BeforeShutdown, "before shutdown, second"),
    ] {
        let log = log.clone();
        b = b.on(phase, move |h| {
            let stopping = h.is_stopping();
            log.lock()
                .unwrap()
                .push(format!("{name} (stopping: {stopping})"));
        });
    }
    let (h, _) = started(b);
    assert_eq!(*log.lock().unwrap(), ["after startup (stopping: false)"]);
    h.shutdown();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "after startup (stopping: false)",
            "before shutdown (stopping: false)",
            "before shutdown, second (stopping: false)",
            "during shutdown (stopping: true)",
            "after shutdown (stopping: true)",
        ]
    );
}

#[test]
fn the_drain_delay_keeps_serving_open_connections_but_accepts_no_new_ones() {
    let (h, addr) = started(
        builder(1)
            .drain_delay(Duration::from_millis(600))
            .listen("127.0.0.1:0", |_| |_| Echo),
    );
    let mut s = connect(addr);
    s.write_all(b"a").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let stopped_at = Instant::now();
    h.stop();
    wait_for("the acceptor stopped", || {
        std::net::TcpStream::connect(addr).is_err()
    });
    // Still served during the drain.
    s.write_all(b"b").unwrap();
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"b");
    assert!(
        stopped_at.elapsed() < Duration::from_millis(600),
        "checked inside the drain"
    );
    // Then closed gracefully.
    let (rest, err) = read_to_end_lossy(&mut s);
    assert!(rest.is_empty() && err.is_none());
    assert!(stopped_at.elapsed() >= Duration::from_millis(600));
    h.wait();
}

#[test]
fn sigterm_stops_an_example_gracefully_with_exit_0_and_no_lost_bytes() {
    let mut srv = start_example("echo", &["--port", "0", "--shards", "1", "--no-pin"]);
    let mut s = connect(srv.addr);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&data).unwrap();
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, data);
    // More bytes in flight when the signal lands: they still come back.
    s.write_all(b"last words").unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (rest, err) = read_to_end_lossy(&mut s);
    assert_eq!(err, None, "a clean close, not a reset");
    assert_eq!(rest, b"last words");
    drop(s);
    let exit = srv.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}
