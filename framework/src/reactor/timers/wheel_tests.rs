//! The timer wheel against a binary heap, and its edge cases.

use super::wheel::*;
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Reference model: a heap keyed by (deadline, insertion sequence). A
/// cancel or reschedule bumps the key's version; stale heap entries are
/// skipped when popped.
#[derive(Default)]
struct Model {
    heap: BinaryHeap<Reverse<(u64, u64, usize, u32)>>,
    version: Vec<u32>,
    now: u64,
    seq: u64,
}

impl Model {
    fn push(&mut self, deadline: u64, key: usize) {
        let d = deadline.max(self.now);
        self.heap
            .push(Reverse((d, self.seq, key, self.version[key])));
        self.seq += 1;
    }
    fn advance(&mut self, now: u64) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(Reverse((d, _, k, v))) = self.heap.peek().copied() {
            if d > now {
                break;
            }
            self.heap.pop();
            if self.version[k] == v {
                self.version[k] += 1;
                out.push(k);
            }
        }
        self.now = now;
        out
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64),
    Cancel(usize),
    Reschedule(usize, u64),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let delay = prop_oneof![
        4 => 0u64..70,
        3 => 0u64..5_000,
        2 => 0u64..300_000,
        1 => 0u64..(WHEEL_SPAN * 3),
    ];
    let step = prop_oneof![
        4 => 0u64..70,
        3 => 0u64..5_000,
        1 => 0u64..(WHEEL_SPAN * 2),
    ];
    prop_oneof![
        5 => delay.clone().prop_map(Op::Insert),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => (any::<usize>(), delay).prop_map(|(k, d)| Op::Reschedule(k, d)),
        3 => step.prop_map(Op::Advance),
    ]
}

fn run(ops: Vec<Op>, start: u64) {
    let mut wheel = TimerWheel::new(start);
    let mut model = Model {
        now: start,
        ..Model::default()
    };
    let mut ids: Vec<TimerId> = Vec::new();
    let mut live: Vec<bool> = Vec::new();
    let mut deadline: Vec<u64> = Vec::new();
    for op in ops {
        match op {
            Op::Insert(delay) => {
                let key = ids.len();
                let d = wheel.now() + delay;
                ids.push(wheel.insert(d, key));
                live.push(true);
                deadline.push(d);
                model.version.push(0);
                model.push(d, key);
            }
            Op::Cancel(k) if !ids.is_empty() => {
                let k = k % ids.len();
                let got = wheel.cancel(ids[k]);
                assert_eq!(got, live[k].then_some(k), "cancel result for {k}");
                if live[k] {
                    model.version[k] += 1;
                    live[k] = false;
                }
            }
            Op::Reschedule(k, delay) if !ids.is_empty() => {
                let k = k % ids.len();
                let d = wheel.now() + delay;
                assert_eq!(wheel.reschedule(ids[k], d), live[k]);
                if live[k] {
                    model.version[k] += 1;
                    model.push(d, k);
                    deadline[k] = d;
                    assert_eq!(wheel.deadline(ids[k]), Some(d));
                }
            }
            Op::Cancel(_) | Op::Reschedule(..) => {}
            Op::Advance(step) => {
                let now = wheel.now() + step;
                let mut fired = Vec::new();
                let earliest = wheel.advance(now, &mut fired);
                let got: Vec<usize> = fired.iter().map(|(_, k)| *k).collect();
                assert_eq!(got, model.advance(now), "firing order at {now}");
                // The loop's lag figure: the earliest deadline it fired.
                let want = got.iter().map(|k| deadline[*k]).min();
                assert_eq!(earliest, want, "earliest fired deadline at {now}");
                for (id, k) in fired {
                    assert_eq!(id, ids[k]);
                    assert!(live[k]);
                    live[k] = false;
                    assert!(wheel.cancel(id).is_none(), "fired timer is gone");
                }
            }
        }
        assert_eq!(wheel.len(), live.iter().filter(|l| **l).count());
        if let Some(nd) = wheel.next_deadline() {
            // Never later than the model's earliest live deadline.
            let earliest = model
                .heap
                .iter()
                .filter(|Reverse((_, _, k, v))| model.version[*k] == *v)
                .map(|Reverse((d, ..))| *d)
                .min()
                .expect("wheel and model agree something is pending");
            assert!(nd <= earliest, "next_deadline {nd} > earliest {earliest}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn matches_binary_heap_model(ops in prop::collection::vec(op(), 1..200), start in prop_oneof![Just(0u64), 0u64..u64::from(u32::MAX), Just(WHEEL_SPAN - 3)]) {
        run(ops, start);
    }
}

#[test]
fn same_tick_fires_in_insertion_order_even_after_cascade() {
    let mut w = TimerWheel::new(0);
    w.insert(5000, 1); // goes to level 2, cascades later
    w.advance(4990, &mut Vec::new());
    w.insert(5000, 2); // level 0 directly
    let mut fired = Vec::new();
    w.advance(5000, &mut fired);
    assert_eq!(fired.iter().map(|f| f.1).collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn deadlines_beyond_the_span_fire_on_time() {
    let mut w = TimerWheel::new(7);
    let far = 7 + WHEEL_SPAN * 5 + 12345;
    w.insert(far, "far");
    w.insert(100, "near");
    let mut fired = Vec::new();
    w.advance(far - 1, &mut fired);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].1, "near");
    fired.clear();
    w.advance(far, &mut fired);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].1, "far");
    assert!(w.is_empty());
}

#[test]
fn stale_handle_does_not_cancel_reused_slot() {
    let mut w = TimerWheel::new(0);
    let a = w.insert(1, 'a');
    let mut fired = Vec::new();
    w.advance(1, &mut fired);
    let b = w.insert(10, 'b');
    assert_eq!(a.index, b.index, "slot reused");
    assert_eq!(w.cancel(a), None);
    assert!(!w.reschedule(a, 50));
    assert_eq!(w.cancel(b), Some('b'));
}

#[test]
fn next_deadline_is_a_lower_bound_and_exact_in_level_zero() {
    let mut w = TimerWheel::new(0);
    assert_eq!(w.next_deadline(), None);
    w.insert(40, ());
    assert_eq!(w.next_deadline(), Some(40));
    w.insert(3, ());
    assert_eq!(w.next_deadline(), Some(3));
    let mut w = TimerWheel::new(0);
    w.insert(1000, ());
    let nd = w.next_deadline().unwrap();
    assert!(nd <= 1000);
}
