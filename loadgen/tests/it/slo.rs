//! SLOs (`--slo`, exit code 99 on a miss) and the open-loop requests that
//! were due but never sent (they no longer vanish from the report).

use shardloop::{Conn, Protocol};

use crate::common::{echo_example, load, server};
use shardloop_loadgen::slo::Slo;
use shardloop_loadgen::{run, Config, Mode, Workload};
use std::time::Duration;

#[test]
fn slos_print_pass_and_fail_lines_and_a_miss_exits_99() {
    let server = echo_example();
    let addr = server.addr.to_string();
    let base = [addr.as_str(), "-t", "1", "-c", "4", "-d", "1s"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };

    let (code, text) = load(with(&[
        "--slo",
        "p99=10s",
        "--slo",
        "errors=0%",
        "--slo",
        "rps=1",
    ]));
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches(" PASS ").count(), 3, "{text}");

    let (code, text) = load(with(&["--slo", "p99=1us", "--slo", "errors=1%"]));
    assert_eq!(code, 99, "{text}");
    assert!(
        text.contains("SLO p99=1us") && text.contains("FAIL"),
        "{text}"
    );
    assert!(
        text.contains("SLO errors=1%") && text.contains("PASS"),
        "{text}"
    );

    let (code, text) = load(with(&["--slo", "rps=1000000000"]));
    assert_eq!(code, 99, "{text}");

    let (code, text) = load(with(&["--slo", "p101=1ms"]));
    assert_eq!(code, 2, "a bad objective is a usage error: {text}");
}

/// Reads requests and never answers.
struct Silent;
impl Protocol for Silent {
    type Message = ();
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

#[test]
fn open_loop_requests_due_but_never_sent_are_counted() {
    let h = server(|| Silent);
    let mut cfg = Config::new(h.tcp_addr(0));
    cfg.connections = 2;
    cfg.mode = Mode::Open {
        rate: 1000.0,
        max_in_flight: 1,
    };
    cfg.workload = Workload::Echo { size: 16 };
    cfg.duration = Duration::from_secs(1);
    cfg.timeout = Duration::from_millis(1500);
    cfg.slos = vec!["errors=0%".parse::<Slo>().unwrap()];
    let r = run(&cfg, |_| {}).unwrap();
    // Each connection sent one request, then sat at its in-flight limit.
    assert_eq!(r.requests, 2, "{}", r.summary());
    let due = r.requests + r.unsent;
    assert!(
        (990..=1010).contains(&due),
        "1000 were due: {}",
        r.summary()
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("never sent")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.errors.timeout, 2, "{}", r.summary());
    assert!(r.slo_failed());
    h.shutdown();
}
