//! SIGHUP never kills a server: every example survives it and still
//! answers (the TLS ones reload their certificate on it; the others have
//! nothing to reload and say so); `Handle::reload` runs the reload hooks.

use crate::common::*;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

fn sighup(pid: u32) {
    // Our own child, by PID.
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP {pid}");
}

#[test]
fn sighup_leaves_every_example_running() {
    let kv = start_example("resp_kv", &["--port", "0", "--shards", "1"]);
    let echo = start_example("echo", &["--port", "0", "--shards", "1"]);
    let (kv_addr, echo_addr) = (kv.addr.to_string(), echo.addr.to_string());
    let mut servers = vec![
        ("resp_kv", kv),
        ("echo", echo),
        (
            "line_echo",
            start_example("line_echo", &["--port", "0", "--shards", "1"]),
        ),
        (
            "http_hello",
            start_example("http_hello", &["--port", "0", "--shards", "1"]),
        ),
        (
            "chat",
            start_example("chat", &["--port", "0", "--shards", "1"]),
        ),
        (
            "proxy",
            start_example(
                "proxy",
                &["--port", "0", "--shards", "1", "--backend", &echo_addr],
            ),
        ),
        (
            "gateway",
            start_example(
                "gateway",
                &["--port", "0", "--shards", "1", "--backend", &kv_addr],
            ),
        ),
        (
            "udp_echo",
            start_example("udp_echo", &["--port", "0", "--shards", "1", "--no-pin"]),
        ),
    ];
    for (_, s) in &servers {
        sighup(s.pid());
    }
    std::thread::sleep(Duration::from_millis(300));
    for (name, s) in &mut servers {
        assert!(
            matches!(s.child.try_wait(), Ok(None)),
            "{name} died of SIGHUP"
        );
        if *name == "udp_echo" {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.send_to(b"still here", s.addr).unwrap();
            let mut buf = [0u8; 32];
            let (n, _) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"still here");
        } else {
            connect(s.addr);
        }
    }
    // And the echo answers through the proxy after both got SIGHUP.
    let proxy = servers.iter().find(|(n, _)| *n == "proxy").unwrap().1.addr;
    let mut c = connect(proxy);
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
}

#[test]
fn reload_runs_every_hook_in_order_and_survives_a_panicking_one() {
    let (h, _) = echo_server(1);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for k in 0..3 {
        let seen = seen.clone();
        h.on_reload(move |_| {
            seen.lock().unwrap().push(k);
            assert_ne!(k, 1, "a hook that panics");
        });
    }
    h.reload();
    h.reload();
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 0, 1, 2]);
    h.shutdown();
}
