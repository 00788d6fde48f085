//! resp_kv against a real `redis-server`: the same commands on both, the
//! replies compared byte for byte, for every command resp_kv implements
//! (SET and its options, INCR's integer rules, arity and unknown-command
//! errors, expiry). Needs `redis-server` (`.ci/run` installs it).
use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Redis(Child, SocketAddr);
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_server() -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("redis-server is needed by this test ({e}); apt-get install -y redis-server")
        });
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    common::wait_for("redis-server accepts", || TcpStream::connect(addr).is_ok());
    Redis(child, addr)
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one complete RESP reply, raw bytes included.
fn read_reply(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).unwrap();
    let mut out = line.clone();
    let n = || -> i64 {
        std::str::from_utf8(&line[1..line.len() - 2])
            .unwrap()
            .parse()
            .unwrap()
    };
    match line[0] {
        b'$' if n() >= 0 => {
            let mut body = vec![0u8; n() as usize + 2];
            r.read_exact(&mut body).unwrap();
            out.extend(body);
        }
        b'*' => {
            for _ in 0..n().max(0) {
                out.extend(read_reply(r));
            }
        }
        _ => {}
    }
    out
}

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }
    fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.w.write_all(&encode(args)).unwrap();
        read_reply(&mut self.r)
    }
}

#[test]
fn replies_are_byte_identical_to_redis_server() {
    let redis = redis_server();
    let kv = common::start_example("resp_kv", &["--port", "0", "--shards", "2"]);
    let mut a = Client::new(redis.1);
    let mut b = Client::new(kv.addr);
    let script: &[&[&[u8]]] = &[
        &[b"PING"],
        &[b"PING", b"hello"],
        &[b"PING", b"a", b"b"],
        &[b"ECHO", b"x\r\ny"],
        &[b"ECHO"],
        &[b"SET", b"k"],
        &[b"SET", b"k", b"v"],
        &[b"GET", b"k"],
        &[b"GET", b"missing"],
        &[b"GET"],
        &[b"SET", b"k", b"v2", b"NX"],
        &[b"SET", b"k", b"v2", b"XX"],
        &[b"SET", b"new", b"v", b"XX"],
        &[b"SET", b"k", b"v3", b"GET"],
        &[b"SET", b"k", b"v4", b"GET", b"NX"],
        &[b"SET", b"gone", b"v", b"GET"],
        &[b"SET", b"k", b"v", b"NX", b"XX"],
        &[b"SET", b"k", b"v", b"EX", b"0"],
        &[b"SET", b"k", b"v", b"EX", b"-1"],
        &[b"SET", b"k", b"v", b"EX", b"abc"],
        &[b"SET", b"k", b"v", b"EX", b"9999999999999999"],
        &[b"SET", b"k", b"v", b"PX", b"100", b"EX", b"5"],
        &[b"SET", b"k", b"v", b"EX"],
        &[b"SET", b"k", b"v", b"FOO"],
        &[b"SET", b"k", b"v", b"ex", b"100"],
        &[b"SET", b"k", b"v", b"KEEPTTL"],
        &[b"SET", b"k", b"v", b"KEEPTTL", b"EX", b"5"],
        &[b"SET", b"past", b"v", b"PXAT", b"1"],
        &[b"GET", b"past"],
        &[b"SET", b"n", b"+5"],
        &[b"INCR", b"n"],
        &[b"SET", b"n", b"05"],
        &[b"INCR", b"n"],
        &[b"SET", b"n", b"-0"],
        &[b"INCR", b"n"],
        &[b"SET", b"n", b" 5"],
        &[b"INCR", b"n"],
        &[b"SET", b"n", b"-5"],
        &[b"INCR", b"n"],
        &[b"SET", b"n", b"9223372036854775807"],
        &[b"INCR", b"n"],
        &[b"SET", b"n", b"-9223372036854775808"],
        &[b"INCR", b"n"],
        &[b"SET", b"n", b"99999999999999999999"],
        &[b"INCR", b"n"],
        &[b"INCR", b"fresh"],
        &[b"INCR", b"fresh"],
        &[b"INCR"],
        &[b"MGET", b"k", b"missing", b"fresh"],
        &[b"MGET"],
        &[b"DEL", b"k", b"missing", b"fresh"],
        &[b"DEL"],
        &[b"FOO"],
        &[b"foo", b"a", b"b"],
        &[b"FOO", b"line\r\nbreak"],
        &[b"DEBUG", b"SLEEP", b"0"],
    ];
    for cmd in script {
        let (want, got) = (a.call(cmd), b.call(cmd));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "command {:?}",
            cmd.iter()
                .map(|x| String::from_utf8_lossy(x))
                .collect::<Vec<_>>()
        );
    }
    // Expiry: a key set for 50 ms is gone after 200 ms on both.
    for c in [&mut a, &mut b] {
        assert_eq!(c.call(&[b"SET", b"t", b"v", b"PX", b"50"]), b"+OK\r\n");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(a.call(&[b"GET", b"t"]), b.call(&[b"GET", b"t"]));
    assert_eq!(b.call(&[b"GET", b"t"]), b"$-1\r\n");
}

/// Sends `input` and collects the answer until the server closes or stays
/// quiet for 400 ms; says which.
fn raw_exchange(addr: SocketAddr, input: &[u8]) -> (Vec<u8>, &'static str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    s.write_all(input).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, "closed"),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, "reset"),
            Err(_) => return (out, "open"),
        }
    }
}

#[test]
fn protocol_errors_inline_quoting_and_bulk_framing_match_redis_server_byte_for_byte() {
    let redis = redis_server();
    let kv = common::start_example("resp_kv", &["--port", "0", "--shards", "2"]);
    let cases: &[&[u8]] = &[
        // The two bytes after a bulk string are skipped unread.
        b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n",
        // Inline quoting, escapes, and what follows a closing quote.
        b"SET \"a b\" c\r\nGET \"a b\"\r\n",
        b"SET 'x y' \"1\\x41\\n\"\r\nGET 'x y'\r\n",
        b"ECHO 'it\\'s'\r\nECHO \"\\xzz\"\r\nECHO \"tab\\there\"\r\n",
        // Protocol errors: the error, then the connection closes, and
        // nothing after the bad request is run.
        b"SET \"a b c\r\nPING\r\n",
        b"SET \"a\"b c\r\nPING\r\n",
        b"ECHO \"a\\\"\r\nPING\r\n",
        b"PING\r\n*abc\r\nPING\r\n",
        b"*1\r\nPING\r\nPING\r\n",
        b"*1\r\n$-5\r\nPING\r\n",
        b"*2\r\n$4\r\nECHO\r\n$3\r\nhi\r\n*1\r\n$4\r\nPING\r\n",
        // A NUL in an inline request: the line never completes.
        b"PING\0 x\r\nPING\r\n",
    ];
    for input in cases {
        let want = raw_exchange(redis.1, input);
        let got = raw_exchange(kv.addr, input);
        assert_eq!(
            (String::from_utf8_lossy(&got.0), got.1),
            (String::from_utf8_lossy(&want.0), want.1),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}
