//! CPU time of the loadgen's own threads, from /proc, to tell when the load
//! generator rather than the server is the bottleneck.

use std::collections::HashMap;

/// Clock ticks per second of /proc's utime/stime (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// utime+stime ticks of each thread whose name starts with `prefix`.
pub(crate) fn thread_ticks(prefix: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in dir.flatten() {
        let Ok(name) = std::fs::read_to_string(t.path().join("comm")) else {
            continue;
        };
        let name = name.trim().to_string();
        if !name.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is 3rd; utime 14th, stime 15th.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(u), Some(s)) = (f.get(11), f.get(12)) {
            if let (Ok(u), Ok(s)) = (u.parse::<u64>(), s.parse::<u64>()) {
                out.insert(name, u + s);
            }
        }
    }
    out
}

/// Per-thread CPU use in percent of one core between two snapshots, sorted by name.
pub(crate) fn usage(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
    secs: f64,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = after
        .iter()
        .map(|(name, &a)| {
            let b = before.get(name).copied().unwrap_or(0);
            let pct = if secs > 0.0 {
                (a.saturating_sub(b)) as f64 / TICKS_PER_SEC / secs * 100.0
            } else {
                0.0
            };
            (name.clone(), pct)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_threads_ticks() {
        let name = "cputest-thr";
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(|| {
                let t = std::time::Instant::now();
                let mut x = 0u64;
                while t.elapsed() < std::time::Duration::from_millis(150) {
                    x = x.wrapping_add(1);
                }
                let ticks = thread_ticks("cputest");
                (x, ticks)
            })
            .unwrap();
        let (_, ticks) = h.join().unwrap();
        assert!(ticks.contains_key(name), "{ticks:?}");
    }

    #[test]
    fn usage_is_percent_of_a_core() {
        let before = HashMap::from([("a".to_string(), 100u64)]);
        let after = HashMap::from([("a".to_string(), 150u64)]);
        let u = usage(&before, &after, 1.0);
        assert_eq!(u, vec![("a".to_string(), 50.0)]);
    }
}
