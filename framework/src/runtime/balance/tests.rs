//! Placement decisions on synthetic loads and a fake clock.

use super::load::{LoadTracker, PERIOD};
use super::*;
use std::time::{Duration, Instant};

fn loads(open: &[u64]) -> Vec<ShardLoad> {
    open.iter()
        .enumerate()
        .map(|(shard, &n)| ShardLoad::new(shard, n))
        .collect()
}

fn with_busy(open: &[u64], busy: &[f64]) -> Vec<ShardLoad> {
    let mut l = loads(open);
    for (l, &b) in l.iter_mut().zip(busy) {
        l.busy = b;
    }
    l
}

#[test]
fn round_robin_cycles() {
    let mut rr = RoundRobin::default();
    let l = loads(&[5, 0, 9]);
    let picks: Vec<_> = (0..7).map(|_| rr.pick(&l)).collect();
    assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0]);
}

#[test]
fn least_connections_picks_minimum() {
    let mut lc = LeastConnections;
    assert_eq!(lc.pick(&loads(&[5, 2, 9, 2])), 1);
    assert_eq!(lc.pick(&loads(&[0, 0])), 0);
}

#[test]
fn load_aware_avoids_a_hot_shard_and_is_least_connections_within_the_band() {
    let mut p = LoadAware::default();
    // Clearly hotter: avoided whatever its connection count.
    assert_eq!(p.pick(&with_busy(&[1, 50], &[0.8, 0.3])), 1);
    // Within the band (0.05 apart): the fewer connections win.
    assert_eq!(p.pick(&with_busy(&[10, 20], &[0.35, 0.30])), 0);
    // Ties: lowest index.
    assert_eq!(p.pick(&with_busy(&[3, 3, 3], &[0.2, 0.2, 0.2])), 0);
}

#[test]
fn load_aware_leaves_out_saturated_shards_while_another_can_take_work() {
    let mut p = LoadAware::default();
    let mut l = with_busy(&[0, 100], &[0.1, 0.5]);
    l[0].inbox_depth = 10_000;
    assert_eq!(p.pick(&l), 1, "a full inbox is left out");
    let l = with_busy(&[0, 100], &[0.97, 0.99]);
    assert_eq!(p.pick(&l), 0, "all hot: the coolest, by the same rules");
}

/// A burst of new connections against two equally cool shards alternates
/// (as the connection counts grow) instead of herding onto one.
#[test]
fn a_burst_spreads_over_the_cool_shards() {
    let mut p = LoadAware::default();
    let mut open = [0u64, 0, 0];
    let busy = [0.20, 0.25, 0.90];
    for _ in 0..100 {
        let i = p.pick(&with_busy(&open, &busy));
        open[i] += 1;
    }
    assert_eq!(open, [50, 50, 0]);
}

/// The tracker on a fake clock: a shard going from idle to fully busy is
/// followed with the time constant, not at once, and a shard that
/// publishes nothing keeps its figure.
#[test]
fn the_tracker_smooths_busy_fractions_on_its_time_constant() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(2);
    // Published counters: shard 0 all busy from now on, shard 1 all idle.
    let mut published = [(0u64, 0u64, 0u64, 0u64); 2];
    let busy_of = |t: &LoadTracker, shard: usize| {
        let mut l = ShardLoad::new(shard, 0);
        t.fill(&mut l);
        l.busy
    };
    t.sample(t0, |i| published[i]);
    let mut now = t0;
    let mut trace = Vec::new();
    for step in 1..=40u32 {
        now += PERIOD;
        let ns = PERIOD.as_nanos() as u64;
        published[0].0 += ns;
        published[1].1 += ns;
        published[0].2 = u64::from(step);
        t.sample(now, |i| published[i]);
        trace.push(busy_of(&t, 0));
        assert_eq!(busy_of(&t, 1), 0.0);
    }
    // After one time constant (10 periods of 25 ms): 1 - 1/e of the way.
    assert!(
        (trace[9] - (1.0 - (-1.0f64).exp())).abs() < 0.01,
        "{trace:?}"
    );
    assert!(trace.windows(2).all(|w| w[1] > w[0]), "rising steadily");
    assert!(trace[39] > 0.98);
    // Samples closer than the period are ignored.
    t.sample(now + Duration::from_millis(1), |_| (0, 0, 0, 0));
    assert_eq!(busy_of(&t, 0), trace[39]);
    // No news (a shard stuck in one iteration): the figure stays.
    now += PERIOD * 4;
    t.sample(now, |i| published[i]);
    assert_eq!(busy_of(&t, 0), trace[39]);
    let mut l = ShardLoad::new(0, 0);
    t.fill(&mut l);
    assert_eq!(l.inbox_depth, 40);
}

/// Two shards, one made hot by its existing connections: the tracker and
/// the policy together send new connections to the cool one, and back to
/// both once the load evens out, without flapping in between.
#[test]
fn placement_follows_the_load_with_hysteresis() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(2);
    let mut p = LoadAware::default();
    let mut published = [(0u64, 0u64, 0u64, 0u64); 2];
    t.sample(t0, |i| published[i]);
    let mut now = t0;
    let mut picks = Vec::new();
    // Phase 1: shard 0 at 90 %, shard 1 at 20 %; phase 2: both at 50 %.
    for step in 0..80 {
        let (b0, b1) = if step < 40 { (0.9, 0.2) } else { (0.5, 0.5) };
        let ns = PERIOD.as_nanos() as f64;
        for (i, b) in [b0, b1].into_iter().enumerate() {
            published[i].0 += (ns * b) as u64;
            published[i].1 += (ns * (1.0 - b)) as u64;
        }
        now += PERIOD;
        t.sample(now, |i| published[i]);
        let mut l = [ShardLoad::new(0, 10), ShardLoad::new(1, 10)];
        for l in &mut l {
            t.fill(l);
        }
        picks.push(l[p.pick(&l)].shard);
    }
    // Once the average has moved past the band, shard 1 gets everything.
    assert!(picks[5..40].iter().all(|&s| s == 1), "{picks:?}");
    // After the load evens out, the choice goes back to connection counts
    // (equal here: shard 0) once the averages are within the band, and
    // does not flap on the way.
    let back = picks[40..]
        .iter()
        .position(|&s| s == 0)
        .expect("comes back")
        + 40;
    assert!(picks[back..].iter().all(|&s| s == 0), "{picks:?}");
}
