//! The rebalancer's decisions, from figures alone (no clock, no sockets).

use super::rebalance::{plan, Candidate, Rebalance};

fn heavy(slots: &[(usize, f64)]) -> Vec<Candidate> {
    slots
        .iter()
        .map(|&(slot, share)| Candidate { slot, share })
        .collect()
}

#[test]
fn a_hot_shard_sends_its_heavy_connections_to_the_cool_one_without_overshooting() {
    // 8 heavy connections of 0.106 each on shard 0 (busy 0.9); shard 1 at 0.07.
    let c = heavy(&(0..8).map(|s| (s, 0.106)).collect::<Vec<_>>());
    let rule = Rebalance {
        max_moves: 8,
        ..Rebalance::default()
    };
    let moves = plan(0, &[Some(0.9), Some(0.07)], &c, &rule);
    assert!(moves.iter().all(|&(_, to)| to == 1));
    // Each move narrows the gap by at least half the band; it stops when
    // the gap is below the band or the next move would not narrow it.
    let after = 0.9 - 0.106 * moves.len() as f64;
    let there = 0.07 + 0.106 * moves.len() as f64;
    assert_eq!(moves.len(), 4, "{moves:?}");
    assert!((after - there).abs() < 0.1, "{after} vs {there}");
}

#[test]
fn the_cool_shard_and_a_balanced_pair_do_nothing() {
    let c = heavy(&[(0, 0.2), (1, 0.1)]);
    let rule = Rebalance::default();
    assert!(
        plan(1, &[Some(0.9), Some(0.2)], &c, &rule).is_empty(),
        "cool"
    );
    assert!(
        plan(0, &[Some(0.85), Some(0.8)], &c, &rule).is_empty(),
        "inside the band"
    );
    assert!(
        plan(0, &[Some(0.45), Some(0.0)], &c, &rule).is_empty(),
        "below min_busy"
    );
}

#[test]
fn a_connection_bigger_than_the_gap_stays() {
    // Moving 0.58 from 0.9 to 0.3 would only swap which shard is hot
    // (0.32 against 0.88).
    let c = heavy(&[(7, 0.58), (8, 0.15)]);
    let moves = plan(0, &[Some(0.9), Some(0.3)], &c, &Rebalance::default());
    assert_eq!(moves, vec![(8, 1)], "the one that fits moves");
}

#[test]
fn moves_never_oscillate_between_two_shards() {
    // Iterate the plan on a static workload: loads must settle, not swap.
    let mut conns: Vec<(usize, f64, usize)> = (0..8).map(|i| (i, 0.1, 0)).collect();
    conns.extend((8..40).map(|i| (i, 0.002, i % 2)));
    let rule = Rebalance::default();
    let mut history = Vec::new();
    for _ in 0..10 {
        let busy: Vec<f64> = (0..2)
            .map(|s| conns.iter().filter(|c| c.2 == s).map(|c| c.1).sum())
            .collect();
        history.push(busy.clone());
        let busy: Vec<Option<f64>> = busy.into_iter().map(Some).collect();
        for me in 0..2 {
            let mut mine: Vec<Candidate> = conns
                .iter()
                .filter(|c| c.2 == me)
                .map(|c| Candidate {
                    slot: c.0,
                    share: c.1,
                })
                .collect();
            mine.sort_by(|a, b| b.share.total_cmp(&a.share));
            for (slot, to) in plan(me, &busy, &mine, &rule) {
                conns[slot].2 = to;
            }
        }
    }
    let last = history.last().unwrap();
    assert!((last[0] - last[1]).abs() <= 0.1, "{history:?}");
    let n = history.len();
    assert_eq!(history[n - 1], history[n - 2], "settled: {history:?}");
}

#[test]
fn with_four_shards_each_hot_shard_has_its_own_partner() {
    let c = heavy(&[(0, 0.1), (1, 0.1)]);
    let busy = [Some(0.95), Some(0.2), Some(0.9), Some(0.3)];
    let rule = Rebalance::default();
    // Hottest (0) pairs with coolest (1); second hottest (2) with 3.
    assert!(plan(0, &busy, &c, &rule).iter().all(|m| m.1 == 1));
    assert!(plan(2, &busy, &c, &rule).iter().all(|m| m.1 == 3));
    assert!(!plan(2, &busy, &c, &rule).is_empty());
    // A dead shard is nobody's partner.
    let busy = [Some(0.95), None, Some(0.5)];
    assert!(plan(0, &busy, &c, &rule).iter().all(|m| m.1 == 2));
}

#[test]
fn rule_ranges_are_checked() {
    assert!(Rebalance::default().validate().is_ok());
    let no_gap = Rebalance {
        gap: 0.0,
        ..Rebalance::default()
    };
    assert!(no_gap.validate().is_err());
    let too_busy = Rebalance {
        min_busy: 1.5,
        ..Rebalance::default()
    };
    assert!(too_busy.validate().is_err());
}
