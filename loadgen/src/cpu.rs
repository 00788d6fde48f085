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
        if let Some(ticks) = std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| stat_ticks(&s))
        {
            out.insert(name, ticks);
        }
    }
    out
}

/// utime + stime from the text of a `/proc/.../stat` file.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The name is parenthesised and may hold spaces: split after its ')'.
    // From there, utime and stime are the 12th and 13th fields.
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace().skip(11);
    Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
}

/// CPU time (utime + stime) of a whole process, in clock ticks (1/100 s).
pub fn process_cpu_ticks(pid: u32) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat_ticks(&stat).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "unreadable /proc stat")
    })
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
    fn parses_stat_lines_with_spaces_in_the_name() {
        let line = "42 (a b) S 1 1 1 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        assert_eq!(stat_ticks(line), Some(10));
        assert_eq!(stat_ticks("garbage"), None);
        assert!(process_cpu_ticks(std::process::id()).is_ok());
    }

    #[test]
    fn usage_is_percent_of_a_core() {
        let before = HashMap::from([("a".to_string(), 100u64)]);
        let after = HashMap::from([("a".to_string(), 150u64)]);
        let u = usage(&before, &after, 1.0);
        assert_eq!(u, vec![("a".to_string(), 50.0)]);
    }
}
