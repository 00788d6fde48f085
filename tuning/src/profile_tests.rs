use super::*;

fn machine() -> Machine {
    Machine {
        hostname: "bench".into(),
        cpu_model: "Test CPU".into(),
        cpus: 16,
        kernel: "6.1".into(),
    }
}

fn profile(scaling: Option<Usl>) -> Profile {
    Profile {
        version: 1,
        machine: machine(),
        unix_s: 0,
        workload: "Echo { size: 64 }".into(),
        p99_target_us: 2000,
        points: vec![
            ProfilePoint {
                shards: 1,
                sustainable_rps: 100_000.0,
                saturation_rps: 120_000.0,
                valid: true,
            },
            ProfilePoint {
                shards: 2,
                sustainable_rps: 190_000.0,
                saturation_rps: 230_000.0,
                valid: true,
            },
            ProfilePoint {
                shards: 4,
                sustainable_rps: 300_000.0,
                saturation_rps: 400_000.0,
                valid: false,
            },
        ],
        scaling,
        scale: 1.0,
        calibrations: Vec::new(),
    }
}

#[test]
fn without_a_fit_it_predicts_only_valid_measured_counts() {
    let p = profile(None);
    assert_eq!(p.predict(1), Some(100_000.0));
    assert_eq!(p.predict(2), Some(190_000.0));
    assert_eq!(p.predict(3), None, "never extrapolated");
    assert_eq!(p.predict(4), None, "an invalid point is no evidence");
    assert_eq!(p.counts(), vec![1, 2]);
    // 150k with 20% free needs 187.5k: two shards.
    assert_eq!(p.shards_for(150_000.0, 0.2), Some(2));
    assert_eq!(p.shards_for(1e6, 0.2), None, "beyond what is known");
}

#[test]
fn with_a_fit_it_follows_the_usl_and_stops_at_the_peak() {
    let usl = Usl {
        lambda: 100_000.0,
        sigma: 0.05,
        kappa: 0.001,
    };
    let p = profile(Some(usl));
    assert!((p.predict(8).unwrap() - usl.predict(8.0)).abs() < 1e-6);
    let peak = usl.peak().unwrap();
    assert!(p.counts().iter().all(|&n| n as f64 <= peak.ceil()));
    let n = p.shards_for(500_000.0, 0.2).unwrap();
    assert!(p.predict(n).unwrap() * 0.8 >= 500_000.0);
    assert!(p.predict(n - 1).unwrap() * 0.8 < 500_000.0, "the fewest");
    // More than the peak can carry: no count does it.
    let most = usl.predict(peak);
    assert_eq!(p.shards_for(most * 1.01, 0.0), None);
}

#[test]
fn calibration_rescales_by_the_median_ratio_and_is_recorded() {
    let mut p = profile(None);
    // Production measures 30% less at 1 shard, 10% less at 2: median 0.9 (of 2, the upper).
    let f = p
        .calibrate("calibrate", &[(1, 70_000.0), (2, 171_000.0)])
        .unwrap();
    assert!((f - 0.9).abs() < 1e-9, "{f}");
    assert!((p.predict(1).unwrap() - 90_000.0).abs() < 1e-6);
    assert_eq!(p.calibrations.len(), 1);
    assert_eq!(p.calibrations[0].observed.len(), 2);
    // A count the profile knows nothing of is refused, with the reason.
    let err = p.calibrate("calibrate", &[(3, 1.0)]).unwrap_err();
    assert!(err.to_string().contains("predicts nothing"), "{err}");
    assert_eq!(
        p.calibrations.len(),
        1,
        "a refused calibration changes nothing"
    );
}

#[test]
fn profiles_round_trip_and_other_versions_are_refused() {
    let dir = std::env::temp_dir().join(format!("sl-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.json");
    let p = profile(None);
    p.save(&path).unwrap();
    assert_eq!(Profile::load(&path).unwrap(), p);
    let mut v2 = p.clone();
    v2.version = 2;
    v2.save(&path).unwrap();
    assert!(Profile::load(&path)
        .unwrap_err()
        .to_string()
        .contains("version 2"));
    std::fs::write(&path, "{}").unwrap();
    assert!(Profile::load(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_large_calibration_factor_is_called_out() {
    let mut p = profile(None);
    p.calibrate("calibrate", &[(1, 30_000.0)]).unwrap();
    let md = p.markdown();
    assert!(md.contains("changed the scale by 0.30×"), "{md}");
    assert!(md.contains("| 1 | 30000 |"), "{md}");
}
