//! `--save-profile` after a sweep, then `calibrate` rescaling that profile
//! with a short run, through the command line. The server is a small
//! Python echo server taking 1 ms per request (at most 4,000 req/s over the
//! 4 connections), far slower than even a debug-built load generator, so
//! its points are valid evidence on a two-core machine.

use shardloop_devtools::{build, Target};
use shardloop_tune::profile::Profile;
use std::process::Command;

const PY_ECHO: &str = r#"
import asyncio, sys
async def echo(r, w):
    while data := await r.read(65536):
        await asyncio.sleep(0.001)
        w.write(data)
        await w.drain()
    w.close()
async def main():
    s = await asyncio.start_server(echo, '127.0.0.1', int(sys.argv[1]))
    async with s:
        await s.serve_forever()
asyncio.run(main())
"#;

fn tune(args: &[&str]) -> String {
    let out = Command::new(build("shardloop-tune", Target::Bin("shardloop-tune")))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn a_saved_profile_is_calibrated_by_a_short_run() {
    let dir = std::env::temp_dir().join(format!("sl-tune-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("echo.py");
    std::fs::write(&script, PY_ECHO).unwrap();
    let server = format!("python3 {} {{port}}", script.display());
    let profile = dir.join("profile.json");
    let calibrated = dir.join("calibrated.json");
    let out = dir.join("report");
    let common = [
        "--server-cmd",
        server.as_str(),
        "--shards",
        "1",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--fractions",
        "0.5",
        "--run-duration",
        "500ms",
        "--warmup",
        "100ms",
        "-c",
        "4",
        "--loadgen-threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut sweep = common.to_vec();
    sweep.extend(["--p99", "50ms", "--save-profile", profile.to_str().unwrap()]);
    let text = tune(&sweep);
    assert!(text.contains("Profile: "), "{text}");
    let p = Profile::load(&profile).unwrap();
    assert_eq!(p.points.len(), 1);
    assert!(p.points[0].valid, "{p:?}");
    assert!(p.points[0].sustainable_rps > 0.0);
    assert_eq!(p.p99_target_us, 50_000);
    assert!(p.scaling.is_none(), "one count is no basis for a fit");

    let mut cal = vec!["calibrate", "--profile", profile.to_str().unwrap()];
    cal.extend(common);
    cal.extend([
        "--rate",
        // Well inside what one shard sustains here (about 1200 req/s
        // alone, less while other tests share the two cores).
        "300",
        "--save-profile",
        calibrated.to_str().unwrap(),
    ]);
    let text = tune(&cal);
    assert!(text.contains("Calibration factor"), "{text}");
    assert!(text.contains("needs 1 shard(s) here"), "{text}");
    let c = Profile::load(&calibrated).unwrap();
    assert_eq!(c.calibrations.len(), 1);
    let f = c.calibrations[0].factor;
    assert!(
        f > 0.2 && f < 5.0,
        "the same server on the same machine: {f}"
    );
    assert!((c.scale - f).abs() < 1e-12);
    std::fs::remove_dir_all(&dir).unwrap();
}
