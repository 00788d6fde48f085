//! The connect phase is bounded and reported on its own, never part of the
//! measured time: a closed-loop run measures from when its last connection
//! is up (or failed), for exactly the duration asked.

use crate::common::{server, Echo};
use shardloop_loadgen::{run, Config, Mode, Workload};
use std::time::Duration;

#[test]
fn a_slow_connect_phase_is_reported_and_not_measured() {
    let server = server(|| Echo);
    let mut cfg = Config::new(server.tcp_addr(0));
    cfg.threads = 1;
    cfg.connections = 20;
    // The connections come up over 600 ms.
    cfg.ramp_up = Duration::from_millis(600);
    cfg.duration = Duration::from_millis(500);
    cfg.mode = Mode::Closed { pipeline: 1 };
    cfg.workload = Workload::Echo { size: 64 };
    let r = run(&cfg, |_| {}).unwrap();
    let phase = r.connect_phase_s.expect("every connection came up");
    assert!(phase >= 0.5, "the ramp-up is the connect phase: {phase}");
    assert_eq!(r.connected_at_start, 20, "{}", r.summary());
    assert!(
        (r.duration_s - 0.5).abs() < 0.05,
        "measured exactly the duration asked, not the connect phase: {}",
        r.duration_s
    );
    assert!(r
        .warnings
        .iter()
        .all(|w| !w.contains("connections were up")));
    assert!(
        r.summary().contains("20 of 20 up when measuring began"),
        "{}",
        r.summary()
    );
    server.shutdown();
}

#[test]
fn connections_that_cannot_connect_bound_the_phase_and_are_reported() {
    // A port nobody listens on: every connect is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = Config::new(closed);
    cfg.threads = 1;
    cfg.connections = 4;
    cfg.duration = Duration::from_millis(200);
    cfg.workload = Workload::Echo { size: 8 };
    let started = std::time::Instant::now();
    let err = run(&cfg, |_| {});
    assert!(err.is_err(), "no connection: the run fails with the reason");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");
}
