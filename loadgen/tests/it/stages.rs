//! Open-loop rate stages and arrivals, end to end: the requests sent follow
//! the plan (its integral), evenly or as a Poisson process, and a bad plan
//! is refused with the reason.

use crate::common::{echo_example, loadgen_bin};
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, Option<shardloop_loadgen::Report>) {
    let json = std::env::temp_dir().join(format!(
        "sl-stages-{}-{}.json",
        std::process::id(),
        args.join("_").len()
    ));
    let _ = std::fs::remove_file(&json);
    let out = Command::new(loadgen_bin())
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    (out.status.code().unwrap_or(-1), text, report)
}

#[test]
fn stages_ramp_and_the_sent_count_is_the_plans_integral() {
    let server = echo_example();
    let addr = server.addr.to_string();
    // 400/s for 1 s, then a ramp to 1200/s over 1 s: 400 + 800 = 1200 requests.
    for arrivals in ["uniform", "poisson"] {
        let (code, text, r) = run(&[
            &addr,
            "-t",
            "1",
            "-c",
            "8",
            "-R",
            "400:1s,1200:1s",
            "--arrivals",
            arrivals,
        ]);
        assert_eq!(code, 0, "{text}");
        let r = r.unwrap();
        let sent = (r.requests + r.unsent) as f64;
        // Uniform is exact but for the run's edges; Poisson's count has an
        // sd of about √1200 ≈ 35.
        let tolerance = if arrivals == "uniform" { 20.0 } else { 150.0 };
        assert!(
            (sent - 1200.0).abs() <= tolerance,
            "{arrivals}: {sent} sent\n{text}"
        );
        assert!((r.duration_s - 2.0).abs() < 0.2, "{}", r.duration_s);
        assert!(
            r.requested_rate.is_some_and(|x| (x - 600.0).abs() < 1.0),
            "{:?}",
            r.requested_rate
        );
        assert!(text.contains("2 stages up to 1200 req/s"), "{text}");
    }
}

#[test]
fn bad_plans_are_refused_with_the_reason() {
    let server = echo_example();
    let addr = server.addr.to_string();
    for (plan, why) in [
        ("10k:0s", "positive duration"),
        ("fast", "not a rate"),
        ("0:1s", "above zero"),
    ] {
        let (code, text, _) = run(&[&addr, "-R", plan]);
        assert_eq!(code, 1, "{plan}: {text}");
        assert!(text.contains(why), "{plan}: {text}");
    }
}
