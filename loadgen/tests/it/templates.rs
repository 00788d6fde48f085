//! Request templates end to end against the RESP example: users from a CSV
//! file stored in order (every row's values arrive whole, as drawn), and
//! counters hit with Zipf-distributed keys (the first ranks take most).

use crate::common::load;
use shardloop_devtools::{build, Spawned, Target};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;

fn resp_kv() -> Spawned {
    let mut cmd = Command::new(build("shardloop", Target::Example("resp_kv")));
    cmd.args(["--shards", "1", "--port", "0"]);
    Spawned::start(cmd).expect("start resp_kv")
}

/// GET `key`: the value, or None.
fn get(addr: std::net::SocketAddr, key: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).unwrap();
    if head.starts_with("$-1") {
        return None;
    }
    let mut value = String::new();
    r.read_line(&mut value).unwrap();
    Some(value.trim_end().to_string())
}

/// Runs the load generator; it must succeed.
fn load_ok(args: &[&str]) -> String {
    let (code, text) = load(args);
    assert!(code == 0, "{args:?}: {text}");
    text
}

#[test]
fn csv_rows_and_zipf_keys_reach_the_server_as_drawn() {
    let kv = resp_kv();
    let addr = kv.addr.to_string();
    let dir = std::env::temp_dir().join(format!("sl-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.csv");
    std::fs::write(
        &users,
        "id,email\n1,ada@example.com\n2,\"bob, jr@example.com\"\n3,cy@example.com\n",
    )
    .unwrap();
    let var = format!("u=csv:{}", users.display());
    load_ok(&[
        &addr,
        "-t",
        "1",
        "-c",
        "1",
        "-d",
        "500ms",
        "-w",
        "resp",
        "--command",
        "SET user:{{u.id}} {{u.email}}",
        "--var",
        &var,
    ]);
    assert_eq!(get(kv.addr, "user:1").as_deref(), Some("ada@example.com"));
    assert_eq!(
        get(kv.addr, "user:2").as_deref(),
        Some("bob, jr@example.com")
    );
    assert_eq!(get(kv.addr, "user:3").as_deref(), Some("cy@example.com"));
    assert_eq!(get(kv.addr, "user:4"), None, "only the file's rows");
    // Zipf over 1..=1000 with s = 1.2: key 1 is hit far more than key 50.
    load_ok(&[
        &addr,
        "-t",
        "1",
        "-c",
        "2",
        "-d",
        "1s",
        "-w",
        "resp",
        "--command",
        "INCR hits:{{k}}",
        "--var",
        "k=int:1..1000:zipf:1.2",
    ]);
    let hits =
        |k: u32| -> u64 { get(kv.addr, &format!("hits:{k}")).map_or(0, |v| v.parse().unwrap()) };
    let (first, fiftieth) = (hits(1), hits(50));
    assert!(first > 1000, "key 1: {first}");
    // P(1)/P(50) = 50^1.2 ≈ 109.
    assert!(
        first > 30 * fiftieth.max(1),
        "key 1: {first}, key 50: {fiftieth}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_line_template_against_the_line_echo_example() {
    let mut cmd = Command::new(build("shardloop", Target::Example("line_echo")));
    cmd.args(["--shards", "1", "--port", "0"]);
    let server = Spawned::start(cmd).expect("start line_echo");
    let addr = server.addr.to_string();
    let json = std::env::temp_dir().join(format!("sl-line-tpl-{}.json", std::process::id()));
    let text = load_ok(&[
        &addr,
        "--line",
        "SET user:{{n}} {{v}}",
        "--var",
        "n=seq:1",
        "--var",
        "v=str:12",
        "-c",
        "2",
        "-t",
        "1",
        "-d",
        "500ms",
        "--json",
        json.to_str().unwrap(),
    ]);
    let r: shardloop_loadgen::Report =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(r.workload, "line", "{text}");
    assert!(r.responses_ok > 100, "{text}");
    assert_eq!(r.errors.total(), 0, "{text}");
}
