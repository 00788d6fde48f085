//! Scale-out: N load generators (machines, pods) each run one segment of
//! the test, k6's execution segments. Segment i of N gets its share of the
//! connections (the shares add up to exactly the total) and the same share
//! of the rate, so every connection sends at the rate one process would
//! give it. In a Kubernetes Indexed Job, i defaults to `JOB_COMPLETION_INDEX`.

use std::fmt;
use std::str::FromStr;

/// This instance's part of a test split over several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// 0-based index.
    pub index: usize,
    /// How many segments there are.
    pub count: usize,
}

impl FromStr for Segment {
    type Err = String;

    /// `i/N`, 0-based: `0/4` is the first of four.
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not INDEX/COUNT (e.g. 0/4)"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("{i:?} is not an index"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a count"))?;
        Segment::new(index, count)
    }
}

impl Segment {
    /// Segment `index` of `count`.
    pub fn new(index: usize, count: usize) -> Result<Self, String> {
        if count == 0 {
            return Err("the segment count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "segment index {index} is not below the count {count}"
            ));
        }
        Ok(Segment { index, count })
    }

    /// This segment's connections out of `total`: the ith slice of
    /// `total` split as evenly as possible (the slices add up to `total`).
    pub fn connections(&self, total: usize) -> usize {
        let (i, n, t) = (self.index as u128, self.count as u128, total as u128);
        ((t * (i + 1)) / n - (t * i) / n) as usize
    }

    /// This segment's share of the rate: its share of the connections.
    pub fn rate_share(&self, total_connections: usize) -> f64 {
        self.connections(total_connections) as f64 / total_connections.max(1) as f64
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole_for_any_split() {
        for total in [1usize, 7, 10, 64, 1000, 1001] {
            for count in 1..=12 {
                if count > total {
                    continue;
                }
                let parts: Vec<usize> = (0..count)
                    .map(|i| Segment::new(i, count).unwrap().connections(total))
                    .collect();
                assert_eq!(parts.iter().sum::<usize>(), total, "{total} over {count}");
                let (lo, hi) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
                assert!(hi - lo <= 1, "even split: {parts:?}");
                let rate: f64 = (0..count)
                    .map(|i| Segment::new(i, count).unwrap().rate_share(total))
                    .sum();
                assert!((rate - 1.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn segments_parse_and_bad_ones_say_why() {
        assert_eq!(
            "2/4".parse::<Segment>().unwrap(),
            Segment { index: 2, count: 4 }
        );
        for bad in ["4/4", "1/0", "x/2", "1", "-1/3"] {
            assert!(bad.parse::<Segment>().is_err(), "{bad}");
        }
    }
}
