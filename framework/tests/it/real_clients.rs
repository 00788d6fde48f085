//! The examples, driven by real unmodified clients: curl, wrk, redis-cli,
//! redis-benchmark, bash. These tools are prerequisites of the test suite
//! (`.ci/run` installs them: `apt-get install -y curl wrk redis-tools redis-server`); a
//! missing one fails the test with that hint rather than skipping it.
use crate::common;

use std::io::{Read, Write};
use std::process::{Command, Output};

/// An example started with `--port 0 --shards 2` plus `args`.
struct Example;

impl Example {
    fn start(name: &str, args: &[&str]) -> shardloop_devtools::Spawned {
        let mut all = vec!["--port", "0", "--shards", "2"];
        all.extend_from_slice(args);
        common::start_example(name, &all)
    }
}

fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} is needed by this test ({e}); install it: apt-get install -y curl wrk redis-tools redis-server")
    })
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn http_hello_with_curl_and_wrk() {
    let ex = Example::start("http_hello", &["--no-pin"]);
    let url = format!("http://{}/", ex.addr);
    // Two URLs in one curl: the second reuses the keep-alive connection.
    let o = tool("curl", &["-sS", "-v", &url, &url]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "Hello, World!Hello, World!");
    let verbose = String::from_utf8_lossy(&o.stderr);
    assert!(
        verbose.contains("Re-using existing connection")
            || verbose.contains("Reusing existing connection"),
        "{verbose}"
    );
    let o = tool("wrk", &["-t1", "-c8", "-d1s", &url]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("Requests/sec:"), "{out}");
    assert!(
        !out.contains("Non-2xx") && !out.contains("Socket errors"),
        "{out}"
    );
    // Pipelining: three requests in one write, three answers in order.
    let mut s = std::net::TcpStream::connect(ex.addr).unwrap();
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let mut a = vec!["-p".to_string(), port.to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let o = tool("redis-cli", &a);
    assert!(o.status.success(), "{o:?}");
    stdout(&o).trim_end().to_string()
}

#[test]
fn resp_kv_with_redis_cli_and_redis_benchmark() {
    let ex = Example::start("resp_kv", &[]);
    let port = ex.addr.port();
    assert_eq!(redis_cli(port, &["PING"]), "PONG");
    // Enough keys that both shards own some: MGET gathers across shards.
    for i in 0..20 {
        assert_eq!(
            redis_cli(port, &["SET", &format!("k{i}"), &format!("v{i}")]),
            "OK"
        );
    }
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(|s| s.as_str()));
    let got = redis_cli(port, &args);
    let expected: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    assert_eq!(got.lines().collect::<Vec<_>>(), expected);
    // A missing key is nil (an empty line in redis-cli's output).
    assert_eq!(redis_cli(port, &["MGET", "missing", "k0"]), "\nv0");
    assert_eq!(redis_cli(port, &["INCR", "counter"]), "1");
    assert_eq!(redis_cli(port, &["INCR", "counter"]), "2");
    assert!(redis_cli(port, &["INCR", "k1"]).contains("not an integer"));
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(|s| s.as_str()));
    assert_eq!(redis_cli(port, &del), "20");
    assert_eq!(redis_cli(port, &["GET", "k3"]), "");
    assert!(redis_cli(port, &["NOPE"]).contains("unknown command"));

    let o = tool(
        "redis-benchmark",
        &[
            "-p",
            &port.to_string(),
            "-t",
            "ping,set,get,incr",
            "-P",
            "16",
            "-n",
            "20000",
            "-q",
        ],
    );
    let out = stdout(&o).replace('\r', "\n");
    assert!(o.status.success(), "{out}");
    for t in ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR"] {
        assert!(out.contains(&format!("{t}: ")), "{t} missing in {out}");
    }
    assert!(!out.to_lowercase().contains("error"), "{out}");
}

#[test]
fn proxy_in_front_of_http_hello_and_echo() {
    let backend = Example::start("http_hello", &["--no-pin"]);
    let proxy = Example::start("proxy", &["--backend", &backend.addr.to_string()]);
    let url = format!("http://{}/", proxy.addr);
    let o = tool("curl", &["-sS", &url]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "Hello, World!");

    // A large echo through the proxy: every byte, in order, both ways.
    let echo = Example::start("echo", &["--no-pin"]);
    let proxy = Example::start("proxy", &["--backend", &echo.addr.to_string()]);
    let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
    let data: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "proxied bytes differ");

    // A backend that is down: the client is closed, not left hanging.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Example::start("proxy", &["--backend", &dead.to_string()]);
    let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

#[test]
fn line_echo_with_bash_and_an_oversized_line() {
    let ex = Example::start("line_echo", &[]);
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{}; printf 'hello\\r\\nworld\\n' >&3; head -2 <&3",
        ex.addr.port()
    );
    let o = tool("bash", &["-c", &script]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "hello\r\nworld\r\n");
    // 1 MiB + 1 bytes without a newline: reported, then closed.
    let mut s = std::net::TcpStream::connect(ex.addr).unwrap();
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = w.write_all(&vec![b'a'; 1024 * 1024 + 64]);
    });
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("-ERR frame of") && reply.contains("exceeds the maximum of 1048576"),
        "{reply}"
    );
}
