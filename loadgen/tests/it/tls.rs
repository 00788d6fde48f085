//! The load generator over TLS: https:// targets, `--tls` for every
//! workload, certificate checks, and churn with `--reconnect-every`, against
//! the framework's examples serving TLS.

use shardloop_devtools::pki::{PkiFiles, TestPki};
use shardloop_devtools::{build, Spawned, Target};

use crate::common::loadgen_bin;
use std::process::{Command, Output};

fn pki(tag: &str) -> PkiFiles {
    let dir = std::env::temp_dir().join(format!("sl-load-tls-{tag}-{}", std::process::id()));
    TestPki::new().write(&dir).unwrap()
}

fn example(name: &str, f: &PkiFiles) -> Spawned {
    let mut cmd = Command::new(build("shardloop", Target::Example(name)));
    cmd.args(["--shards", "1", "--port", "0", "--tls-cert"])
        .arg(&f.cert)
        .arg("--tls-key")
        .arg(&f.key);
    Spawned::start(cmd).expect("start the example")
}

fn load(args: &[&str], json: &std::path::Path) -> (Output, shardloop_loadgen::Report) {
    let out = Command::new(loadgen_bin())
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&std::fs::read(json).unwrap_or_default())
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&out.stderr)));
    (out, report)
}

#[test]
fn https_keep_alive_and_a_handshake_per_request() {
    let f = pki("http");
    let server = example("http_hello", &f);
    let url = format!("https://localhost:{}/", server.addr.port());
    let json = f.ca.with_file_name("r.json");
    let ca = f.ca.to_str().unwrap();
    // localhost may resolve to ::1 first; the example listens on 127.0.0.1.
    let (out, r) = load(
        &[
            &url.replace("localhost", "127.0.0.1"),
            "--sni",
            "localhost",
            "--tls-ca",
            ca,
        ],
        &json,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        r.tls && r.responses_ok > 0 && r.errors.total() == 0,
        "{text}"
    );
    assert!(text.contains("Connect (TCP + TLS handshake)"), "{text}");

    let (out, r) = load(
        &[
            &url.replace("localhost", "127.0.0.1"),
            "--sni",
            "localhost",
            "--tls-ca",
            ca,
        ]
        .iter()
        .copied()
        .chain(["-c", "4", "-t", "1", "-d", "1s", "--reconnect-every", "1"])
        .collect::<Vec<_>>(),
        &json,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(r.errors.total(), 0, "{text}");
    // One connection per request: every answer after the first of each
    // connection came on a new one (give or take the run's edges).
    assert!(r.reconnects + 8 >= r.responses_ok, "{text}");
    assert!(
        r.connects + 8 >= r.responses_ok && r.connect_us.is_some(),
        "{text}"
    );
    // Connect time broken down: TCP and the handshake, both measured, the
    // handshake a real part of it (a local TLS 1.3 handshake is tens of
    // microseconds to milliseconds; a TCP connect on loopback less).
    let (all, tcp, tls) = (
        r.connect_us.unwrap(),
        r.tcp_connect_us.expect("TCP connect"),
        r.tls_handshake_us.expect("TLS handshake"),
    );
    assert_eq!(tls.count, all.count, "{text}");
    assert!(
        tls.p50 > 10.0 && tls.p50 <= all.p50 && tcp.p50 <= all.p50,
        "{all:?} {tcp:?} {tls:?}"
    );
    assert!(
        text.contains("TLS handshake") && text.contains("Time to first byte"),
        "{text}"
    );
}

#[test]
fn tls_echo_and_certificate_checks() {
    let f = pki("echo");
    let server = example("echo", &f);
    let addr = server.addr.to_string();
    let json = f.ca.with_file_name("e.json");
    let base = [
        addr.as_str(),
        "--tls",
        "-c",
        "4",
        "-t",
        "1",
        "-d",
        "1s",
        "-s",
        "200",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        load(&args, &json)
    };
    let (out, r) = run(with(&["--tls-ca", f.ca.to_str().unwrap()]));
    assert!(out.status.success() && r.responses_ok > 0, "{out:?}");
    assert_eq!(r.bytes_in, r.responses_ok * 200, "every echo byte checked");
    let (out, r) = run(with(&["--insecure"]));
    assert!(out.status.success() && r.responses_ok > 0, "{out:?}");

    // A CA that did not sign the server's certificate: nothing succeeds.
    let _ = std::fs::remove_file(&json);
    let out = Command::new(loadgen_bin())
        .args(with(&["--tls-ca", f.other_ca.to_str().unwrap()]))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn client_certificates_for_servers_that_ask_for_them() {
    let f = pki("mtls");
    let mut cmd = Command::new(build("shardloop", Target::Example("echo")));
    cmd.args(["--shards", "1", "--port", "0", "--tls-cert"])
        .arg(&f.cert)
        .arg("--tls-key")
        .arg(&f.key)
        .arg("--tls-client-ca")
        .arg(&f.ca);
    let server = Spawned::start(cmd).expect("start the echo example with mTLS");
    let addr = server.addr.to_string();
    let json = f.ca.with_file_name("m.json");
    let ca = f.ca.to_str().unwrap();
    let base = [
        addr.as_str(),
        "--tls",
        "--tls-ca",
        ca,
        "-c",
        "2",
        "-t",
        "1",
        "-d",
        "500ms",
    ];
    // With the certificate: served.
    let with_cert: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--tls-cert", f.client_cert.to_str().unwrap()])
        .chain(["--tls-key", f.client_key.to_str().unwrap()])
        .collect();
    let (out, r) = load(&with_cert, &json);
    assert!(
        out.status.success() && r.responses_ok > 0 && r.errors.total() == 0,
        "{out:?}"
    );
    // Without it: the server refuses every connection.
    let _ = std::fs::remove_file(&json);
    let out = Command::new(loadgen_bin()).args(base).output().unwrap();
    assert!(!out.status.success(), "{out:?}");
}

/// Full handshakes, one per connection, timed by `openssl s_time -new` and
/// by the load generator against the same server: the breakdown's
/// handshake histogram is there and of the same order as OpenSSL's own
/// count (connections over wall time); no session is resumed unless
/// `--tls-resume` asks, and then every connection after the first resumes.
#[test]
fn handshake_times_agree_with_openssl_s_time() {
    let f = pki("s_time");
    let server = example("http_hello", &f);
    let port = server.addr.port();
    let started = std::time::Instant::now();
    let out = Command::new("openssl")
        .args([
            "s_time",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-new",
            "-time",
            "1",
        ])
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let made: f64 = text
        .lines()
        .find_map(|l| l.split(" connections in ").next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in s_time's output: {text}"));
    assert!(made > 10.0, "{text}");
    let openssl_us = wall.as_secs_f64() * 1e6 / made;

    let url = format!("https://127.0.0.1:{port}/");
    let json = f.ca.with_file_name("s_time.json");
    let args = [
        "--insecure",
        "--reconnect-every",
        "1",
        "-c",
        "1",
        "-t",
        "1",
        "-d",
        "1s",
    ];
    let (out, full) = load(&[&[url.as_str()], &args[..]].concat(), &json);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let hs = full
        .tls_handshake_us
        .clone()
        .expect("a handshake histogram");
    let connect = full.connect_us.clone().expect("a connect histogram");
    assert!(
        full.connects > 10 && hs.mean > 0.0,
        "{} connects",
        full.connects
    );
    // The same work (a TCP connect and a full handshake, client and server
    // on this machine) within a factor of ten of OpenSSL's figure.
    assert!(
        connect.mean > openssl_us / 10.0 && connect.mean < openssl_us * 10.0,
        "ours {:.0} us per connection, openssl s_time {openssl_us:.0} us ({made} in {wall:?})",
        connect.mean
    );
    assert!(hs.mean < connect.mean, "{hs:?} {connect:?}");

    let (out, resumed) = load(
        &[&[url.as_str(), "--tls-resume"], &args[..]].concat(),
        &json,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(full.tls_resumed, 0, "full handshakes by default");
    assert!(
        resumed.connects > 10 && resumed.tls_resumed >= resumed.connects - 1,
        "{} of {} resumed",
        resumed.tls_resumed,
        resumed.connects
    );
}
