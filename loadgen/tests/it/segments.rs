//! Scale-out on one machine: two processes each run a segment of one test
//! (one by `--segment`, one by `--segments` and JOB_COMPLETION_INDEX as in a
//! Kubernetes Indexed Job), start together with `--start-at`, and their
//! interval logs merge on one time grid.

use crate::common::{echo_example, loadgen_bin};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

#[test]
fn two_segments_start_together_share_the_load_and_merge() {
    let server = echo_example();
    let bin = loadgen_bin();
    let dir = std::env::temp_dir().join(format!("sl-seg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let start =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3)).to_string();
    let common = |cmd: &mut Command, i: usize| {
        cmd.arg(server.addr.to_string())
            .args([
                "-t",
                "1",
                "-c",
                "5",
                "-R",
                "600",
                "-d",
                "2s",
                "--start-at",
                &start,
            ])
            .arg("--json")
            .arg(dir.join(format!("seg{i}.json")))
            .arg("--hlog")
            .arg(dir.join(format!("seg{i}.hlog")))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    };
    let mut a = Command::new(&bin);
    common(&mut a, 0);
    a.args(["--segment", "0/2"]);
    let mut b = Command::new(&bin);
    common(&mut b, 1);
    b.args(["--segments", "2"]).env("JOB_COMPLETION_INDEX", "1");
    let (a, b) = (a.spawn().unwrap(), b.spawn().unwrap());
    let mut reports = Vec::new();
    for (i, child) in [a, b].into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&format!("Segment {i}/2")), "{text}");
        let r: shardloop_loadgen::Report =
            serde_json::from_slice(&std::fs::read(dir.join(format!("seg{i}.json"))).unwrap())
                .unwrap();
        reports.push(r);
    }
    // 5 connections: 2 and 3; 600 req/s: 240 and 360 req/s.
    assert_eq!((reports[0].connections, reports[1].connections), (2, 3));
    let sent = |r: &shardloop_loadgen::Report| (r.requests + r.unsent) as f64;
    assert!(
        (sent(&reports[0]) - 480.0).abs() < 15.0,
        "{}",
        sent(&reports[0])
    );
    assert!(
        (sent(&reports[1]) - 720.0).abs() < 15.0,
        "{}",
        sent(&reports[1])
    );
    // They started together.
    assert!((reports[0].start_time_s - reports[1].start_time_s).abs() < 0.25);
    let merged =
        shardloop_loadgen::hlog::merge_files(&[dir.join("seg0.hlog"), dir.join("seg1.hlog")])
            .unwrap();
    assert_eq!(
        merged.latency.len(),
        reports[0].latency_us.count + reports[1].latency_us.count
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_start_time_already_past_or_a_bad_segment_is_refused() {
    let bin = loadgen_bin();
    for (args, why) in [
        (
            vec!["127.0.0.1:1", "--start-at", "2001-01-01T00:00:00Z"],
            "ago",
        ),
        (vec!["127.0.0.1:1", "--segment", "3/3"], "not below"),
        (
            vec!["127.0.0.1:1", "-c", "2", "--segment", "0/3"],
            "gets none",
        ),
    ] {
        let out = Command::new(&bin)
            .args(&args)
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let out = Command::new(&bin)
        .args(["127.0.0.1:1", "--segments", "2"])
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("JOB_COMPLETION_INDEX"));
}
