//! The examples over TLS (`--tls-cert/--tls-key`), driven by real clients:
//! `openssl s_client`, `curl`, `redis-cli --tls`. Prerequisites of the test
//! suite (`.ci/run` installs them); a missing one fails with that hint.
use crate::common;

use shardloop_devtools::pki::{PkiFiles, TestPki};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn files() -> &'static PkiFiles {
    static FILES: OnceLock<PkiFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("shardloop-tls-clients-{}", std::process::id()));
        TestPki::new().write(&dir).unwrap()
    })
}

fn start_tls(name: &str, extra: &[&str]) -> shardloop_devtools::Spawned {
    let f = files();
    let (cert, key) = (f.cert.to_str().unwrap(), f.key.to_str().unwrap());
    let mut args = vec![
        "--port",
        "0",
        "--shards",
        "2",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ];
    args.extend_from_slice(extra);
    common::start_example(name, &args)
}

fn tool(name: &str) -> Command {
    Command::new(name)
}

fn run(mut cmd: Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?} failed to start ({e}); apt-get install -y curl openssl redis-tools")
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn openssl_s_client_verifies_the_certificate_and_echo_echoes() {
    let ex = start_tls("echo", &["--no-pin"]);
    let mut s_client = tool("openssl")
        .args([
            "s_client",
            "-connect",
            &ex.addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args([
            "-CAfile",
            files().ca.to_str().unwrap(),
            "-verify_return_error",
            "-quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is needed by this test: apt-get install -y openssl");
    let mut stdin = s_client.stdin.take().unwrap();
    stdin.write_all(b"hello over TLS\n").unwrap();
    let mut lines = BufReader::new(s_client.stdout.take().unwrap()).lines();
    let echoed = lines.next().expect("a line back").unwrap();
    assert_eq!(echoed, "hello over TLS");
    drop(stdin);
    let _ = s_client.kill();
    let out = s_client.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(err.contains("verify return:1"), "{err}");
}

#[test]
fn openssl_s_client_negotiates_alpn_with_http_hello() {
    let ex = start_tls("http_hello", &["--no-pin", "--tls-alpn", "h2,http/1.1"]);
    let out = run({
        let mut c = tool("openssl");
        c.args([
            "s_client",
            "-connect",
            &ex.addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args(["-CAfile", files().ca.to_str().unwrap(), "-alpn", "http/1.1"])
        .stdin(Stdio::null());
        c
    });
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ALPN protocol: http/1.1"), "{stdout}");
    assert!(stdout.contains("Verify return code: 0 (ok)"), "{stdout}");
    assert!(stdout.contains("TLSv1.3"), "{stdout}");
}

#[test]
fn curl_gets_http_hello_over_tls_with_keep_alive() {
    let ex = start_tls("http_hello", &["--no-pin", "--tls-alpn", "http/1.1"]);
    let port = ex.addr.port();
    let url = format!("https://localhost:{port}/");
    let out = run({
        let mut c = tool("curl");
        c.args(["-sS", "-v", "--cacert", files().ca.to_str().unwrap()])
            .args([
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
                &url,
                &url,
            ]);
        c
    });
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "Hello, World!Hello, World!");
    let verbose = text(&out.stderr);
    assert!(
        verbose.contains("SSL certificate verify ok")
            || verbose.contains("SSL connection using TLSv1.3"),
        "{verbose}"
    );
    assert!(
        verbose.contains("Re-using existing connection") || verbose.contains("Reusing existing"),
        "{verbose}"
    );
}

#[test]
fn curl_with_and_without_a_client_certificate_under_mtls() {
    let f = files();
    let ex = start_tls(
        "http_hello",
        &["--no-pin", "--tls-client-ca", f.ca.to_str().unwrap()],
    );
    let port = ex.addr.port();
    let url = format!("https://localhost:{port}/");
    let curl = |with_cert: bool| {
        let mut c = tool("curl");
        c.args(["-sS", "--cacert", f.ca.to_str().unwrap()])
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")]);
        if with_cert {
            c.args([
                "--cert",
                f.client_cert.to_str().unwrap(),
                "--key",
                f.client_key.to_str().unwrap(),
            ]);
        }
        c.arg(&url);
        run(c)
    };
    let ok = curl(true);
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(text(&ok.stdout), "Hello, World!");
    let refused = curl(false);
    assert!(
        !refused.status.success(),
        "no certificate, no answer: {refused:?}"
    );
    assert!(text(&refused.stdout).is_empty());
}

#[test]
fn redis_cli_speaks_tls_to_resp_kv() {
    let ex = start_tls("resp_kv", &[]);
    let port = ex.addr.port().to_string();
    let cli = |args: &[&str]| {
        let mut c = tool("redis-cli");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--tls",
            "--sni",
            "localhost",
        ])
        .args(["--cacert", files().ca.to_str().unwrap()])
        .args(args);
        run(c)
    };
    assert_eq!(text(&cli(&["PING"]).stdout), "PONG\n");
    assert_eq!(text(&cli(&["SET", "k", "over tls"]).stdout), "OK\n");
    assert_eq!(text(&cli(&["GET", "k"]).stdout), "over tls\n");
}
