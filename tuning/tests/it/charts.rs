//! The latency chart as a reader sees it: a real tuner report (a 1- and
//! 2-shard sweep) drawn again; the log axis is labelled at 1, 2 and 5 of
//! each decade only, the labels never crowd, and the p99 target and the
//! recommended point are marked.

use shardloop_tune::TuneReport;

/// Each text element of an SVG: its `y` and its content.
fn texts(svg: &str) -> Vec<(f64, String)> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let y = t.split("y=\"").nth(1)?.split('"').next()?.parse().ok()?;
            let body = t.split_once('>')?.1.split("</text>").next()?.trim();
            Some((y, body.to_string()))
        })
        .collect()
}

#[test]
fn latency_axis_labels_are_1_2_5_per_decade_and_never_crowd() {
    let json = include_str!("../fixtures/report.json");
    let report: TuneReport = serde_json::from_str(json).unwrap();
    let dir = std::env::temp_dir().join(format!("sl-tune-charts-{}", std::process::id()));
    report.write(&dir).unwrap();
    let svg = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
    let all = texts(&svg);
    // Axis labels: "<number> µs" or "<number> ms".
    let mut axis: Vec<(f64, f64)> = all
        .iter()
        .filter_map(|(y, t)| {
            let (n, unit) = t.split_once(' ')?;
            let n: f64 = n.parse().ok()?;
            match unit {
                "µs" => Some((*y, n)),
                "ms" => Some((*y, n * 1000.0)),
                _ => None,
            }
        })
        .collect();
    assert!(axis.len() >= 6, "{all:?}");
    for (_, us) in &axis {
        let mantissa = us / 10f64.powf(us.log10().floor());
        assert!(
            [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6),
            "{us} µs is labelled"
        );
    }
    axis.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in axis.windows(2) {
        assert!(w[1].0 - w[0].0 >= 14.0, "labels crowd: {w:?}");
    }
    assert!(all.iter().any(|(_, t)| t == "p99 target 2 ms"), "{all:?}");
    assert!(
        all.iter()
            .any(|(_, t)| t.starts_with("recommended: 2 shards")),
        "{all:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
