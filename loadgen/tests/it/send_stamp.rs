//! Send times are stamped when a request's bytes reach the kernel, not when
//! they are queued, and the queueing delay is reported on its own.

use shardloop::{Conn, Handle, Protocol};
use shardloop_loadgen::{run, Config, Mode, Workload};
use std::time::Duration;

use crate::common;

/// Echoes, but reads nothing for its first `hold`: a slow consumer.
struct SlowStart {
    hold: Duration,
}

impl Protocol for SlowStart {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        conn.pause_reading();
        conn.call_later(self.hold, |_p: &mut SlowStart, conn| conn.resume_reading());
    }
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(data);
    }
}

fn slow_server(hold: Duration) -> (Handle, std::net::SocketAddr) {
    let handle = common::server(move || SlowStart { hold });
    let addr = handle.tcp_addr(0);
    (handle, addr)
}

#[test]
fn requests_held_in_our_queue_count_as_queueing_not_as_service_time() {
    let hold = Duration::from_millis(600);
    let (server, addr) = slow_server(hold);
    let mut cfg = Config::new(addr);
    cfg.threads = 1;
    cfg.connections = 1;
    cfg.duration = Duration::from_millis(2500);
    // 8 × 4 MiB in flight: far more than the kernel's buffers take, so some
    // requests wait in the load generator's own queue while the server
    // does not read.
    cfg.mode = Mode::Closed { pipeline: 8 };
    cfg.workload = Workload::Echo {
        size: 4 * 1024 * 1024,
    };
    let r = run(&cfg, |_| {}).unwrap();
    assert_eq!(r.errors.total(), 0, "{}", r.summary());
    assert!(r.responses_ok >= 4, "{}", r.summary());
    let q = r.send_lag_us.as_ref().expect("queueing is reported");
    assert!(
        q.count >= r.responses_ok,
        "every answered request was stamped"
    );
    assert!(
        q.max >= 300_000.0,
        "a request queued behind a server that did not read waited before leaving: {}",
        r.summary()
    );
    assert!(
        r.summary().contains("Queueing (write to kernel)"),
        "{}",
        r.summary()
    );
    server.shutdown();
}

#[test]
fn closed_loop_queueing_is_small_next_to_the_round_trip() {
    let server = common::echo_example();
    let mut cfg = Config::new(server.addr);
    cfg.threads = 1;
    cfg.connections = 4;
    cfg.duration = Duration::from_millis(1000);
    cfg.mode = Mode::Closed { pipeline: 1 };
    cfg.workload = Workload::Echo { size: 64 };
    let r = run(&cfg, |_| {}).unwrap();
    assert!(r.responses_ok > 100, "{}", r.summary());
    let q = r.send_lag_us.as_ref().expect("queueing is reported");
    assert!(q.count >= r.responses_ok);
    // Queueing is the time from the write to the end of the same loop
    // iteration; the latency is a whole round trip through another process.
    assert!(q.p50 < r.latency_us.p50, "{}", r.summary());
    // Sub-microsecond precision survives into the report.
    assert!(r.latency_us.p50.fract() != 0.0 || q.p50.fract() != 0.0);
}
