//! A server that stops halfway through a response: the half never counts
//! as a success, and the failure is named (a timeout when it stalls, a read
//! error when it closes).

use shardloop::{Conn, Handle, Protocol};
use shardloop_loadgen::{run, Config, Mode, Workload};
use std::time::Duration;

/// Echoes the first half of what it receives, then stalls or closes.
struct Halfway {
    close: bool,
}

impl Protocol for Halfway {
    type Message = ();
    fn data_received(&mut self, conn: &mut Conn<'_, Self>, data: &[u8]) {
        conn.write(&data[..data.len() / 2]);
        if self.close {
            conn.close();
        }
    }
}

fn server(close: bool) -> Handle {
    crate::common::server(move || Halfway { close })
}

fn config(h: &Handle) -> Config {
    let mut cfg = Config::new(h.tcp_addr(0));
    cfg.threads = 1;
    cfg.connections = 2;
    cfg.duration = Duration::from_millis(1000);
    cfg.timeout = Duration::from_millis(300);
    cfg.mode = Mode::Closed { pipeline: 1 };
    cfg.workload = Workload::Echo { size: 100 };
    cfg
}

#[test]
fn a_server_that_stalls_halfway_gives_timeouts() {
    let h = server(false);
    let r = run(&config(&h), |_| {}).unwrap();
    assert_eq!(r.responses_ok, 0, "{}", r.summary());
    assert!(r.errors.timeout >= 2, "{}", r.summary());
    assert_eq!(r.errors.protocol, 0, "half a response is not a wrong one");
    assert_eq!(r.requests, r.errors.request_errors(), "{}", r.summary());
    h.shutdown();
}

#[test]
fn a_server_that_closes_halfway_gives_read_errors() {
    let h = server(true);
    let r = run(&config(&h), |_| {}).unwrap();
    assert_eq!(r.responses_ok, 0, "{}", r.summary());
    assert!(r.errors.read >= 2, "{}", r.summary());
    assert_eq!(r.errors.timeout, 0, "{}", r.summary());
    assert_eq!(r.requests, r.errors.request_errors(), "{}", r.summary());
    h.shutdown();
}
