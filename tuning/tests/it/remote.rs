//! The tuner against a server at a fixed address (`--target`), started and
//! stopped by commands for each configuration, or already running; and
//! with a workload other than echo.

use shardloop_devtools::{build, Spawned, Target};
use shardloop_loadgen::Workload;
use shardloop_tune::{RemoteSpec, ServerSpec, TuneConfig, TuneError};
use std::net::TcpStream;
use std::time::Duration;

fn short(server: ServerSpec, shards: Vec<usize>, workload: Workload) -> TuneConfig {
    TuneConfig {
        server,
        shards,
        knobs: vec![],
        // Generous: this checks the plumbing, not the machine.
        p99_target_us: 50_000,
        steps: 1,
        fractions: vec![0.5],
        run_duration: Duration::from_millis(400),
        warmup: Duration::from_millis(100),
        connections: 8,
        loadgen_threads: 1,
        workload,
        tolerance: 0.05,
        headroom: 0.2,
        cores: vec![0, 1],
        repeats: 1,
        placement: None,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_target_started_and_stopped_by_commands_for_each_configuration() {
    let echo = build("shardloop", Target::Example("echo"));
    let port = free_port();
    let marks = std::env::temp_dir().join(format!("sl-tune-remote-{}", std::process::id()));
    let _ = std::fs::remove_file(&marks);
    let server = ServerSpec::Remote(RemoteSpec {
        target: format!("127.0.0.1:{port}"),
        start: Some(format!(
            "{} --shards {{shards}} --port {{port}} --no-pin",
            echo.display()
        )),
        // The stop command runs after each configuration (here it only
        // leaves a mark; the start command's process is interrupted too).
        stop: Some(format!(
            "echo {{shards}}@{{host}}:{{port}} >> {}",
            marks.display()
        )),
        cores: vec![],
    });
    let cfg = short(server, vec![1, 2], Workload::Echo { size: 64 });
    let report = shardloop_tune::run(&cfg, |_, _| {}).unwrap();
    assert_eq!(report.variants.len(), 2);
    for v in &report.variants {
        assert!(v.search.saturation.ok_rps > 0.0, "{v:?}");
    }
    let stops = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(
        stops,
        format!("1@127.0.0.1:{port}\n2@127.0.0.1:{port}\n"),
        "one stop per configuration, placeholders substituted"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the last server was stopped before the tuner returned"
    );
    let _ = std::fs::remove_file(&marks);
}

#[test]
fn a_running_http_server_is_measured_as_it_is() {
    let mut cmd = std::process::Command::new(build("shardloop", Target::Example("http_hello")));
    cmd.args(["--shards", "1", "--port", "0", "--no-pin"]);
    let http = Spawned::start(cmd).expect("start http_hello");
    let remote = |shards| {
        let server = ServerSpec::Remote(RemoteSpec {
            target: http.addr.to_string(),
            start: None,
            stop: None,
            cores: vec![],
        });
        let workload = Workload::Http {
            path: "/".into(),
            host: http.addr.to_string(),
            headers: vec![],
            method: "GET".into(),
            body: vec![],
        };
        short(server, shards, workload)
    };
    let report = shardloop_tune::run(&remote(vec![1]), |_, _| {}).unwrap();
    let v = &report.variants[0];
    assert!(v.search.saturation.ok_rps > 0.0, "{v:?}");
    assert_eq!(
        v.search.saturation.errors, 0,
        "HTTP responses counted as ok"
    );
    // It cannot be restarted with another count: refused, with the reason.
    match shardloop_tune::run(&remote(vec![1, 2]), |_, _| {}) {
        Err(TuneError::Config(why)) => assert!(why.contains("--shards N"), "{why}"),
        other => panic!(
            "expected a configuration error, got {:?}",
            other.map(|_| ())
        ),
    }
    // The server still runs: the tuner never stops what it did not start.
    assert!(TcpStream::connect(http.addr).is_ok());
}

#[test]
fn the_builtin_server_refuses_a_workload_it_does_not_speak() {
    let cfg = short(
        ServerSpec::BuiltinEcho,
        vec![1],
        Workload::Resp {
            commands: vec![vec!["PING".into()]],
        },
    );
    match shardloop_tune::run(&cfg, |_, _| {}) {
        Err(TuneError::Config(why)) => assert!(why.contains("--server-cmd"), "{why}"),
        other => panic!(
            "expected a configuration error, got {:?}",
            other.map(|_| ())
        ),
    }
}
