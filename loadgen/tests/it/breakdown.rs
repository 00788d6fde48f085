//! Latency broken down: a server that answers each request's first half
//! after 5 ms and the rest after 10 ms shows it in the time to first byte
//! and the time to last byte. And think time, which spaces a closed-loop
//! connection's requests.

use crate::common::server;
use shardloop::{Conn, Protocol};
use shardloop_loadgen::{run, Config, Mode, ResponseFrame, Workload};
use std::time::Duration;

/// Answers each 4-byte request with 10 bytes: 5 after 5 ms, 5 after 10 ms.
struct Slow;
impl Protocol for Slow {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        for _ in 0..data.len() / 4 {
            conn.call_later(Duration::from_millis(5), |_, c| c.write(b"first"));
            conn.call_later(Duration::from_millis(10), |_, c| c.write(b"last."));
        }
    }
}

#[test]
fn time_to_first_byte_and_to_last_byte_show_where_the_server_waited() {
    let h = server(|| Slow);
    let mut cfg = Config::new(h.tcp_addr(0));
    cfg.connections = 2;
    cfg.mode = Mode::Closed { pipeline: 1 };
    cfg.duration = Duration::from_secs(1);
    cfg.workload = Workload::Custom {
        payload: b"req\n".to_vec(),
        response: ResponseFrame::Length(10),
    };
    let r = run(&cfg, |_| {}).unwrap();
    h.shutdown();
    assert!(r.responses_ok > 20, "{}", r.summary());
    let first = r.time_to_first_byte_us.clone().expect("measured");
    let last = r.time_to_last_byte_us.clone().expect("measured");
    // Never earlier than the server's waits; the halves 5 ms apart.
    assert!(first.p50 >= 5_000.0 && first.p50 < 9_000.0, "{first:?}");
    assert!(last.p50 >= 10_000.0 && last.p50 < 14_000.0, "{last:?}");
    assert!(
        (last.p50 - first.p50 - 5_000.0).abs() < 2_000.0,
        "{first:?} {last:?}"
    );
    assert_eq!(first.count, r.responses_ok);
    let text = r.summary();
    assert!(
        text.contains("Time to first byte") && text.contains("Time to last byte"),
        "{text}"
    );
}

#[test]
fn think_time_paces_a_closed_loop_connection() {
    let h = crate::common::server(|| crate::common::Echo);
    let mut cfg = Config::new(h.tcp_addr(0));
    cfg.connections = 1;
    cfg.threads = 1;
    cfg.duration = Duration::from_secs(1);
    cfg.think = Duration::from_millis(20);
    let r = run(&cfg, |_| {}).unwrap();
    // At most one request per 20 ms (plus its round trip), at least most of them.
    assert!(
        r.responses_ok <= 51 && r.responses_ok >= 35,
        "{}",
        r.summary()
    );
    cfg.mode = Mode::Open {
        rate: 100.0,
        max_in_flight: 1,
    };
    let e = run(&cfg, |_| {}).unwrap_err().to_string();
    assert!(e.contains("think time"), "{e}");
    h.shutdown();
}
