//! HdrHistogram interval logs (V2 compressed, the format of HdrHistogram's
//! `HistogramLogWriter`), and merging logs and JSON reports from several runs.

use crate::recorder::new_histogram;
use crate::report::{decode_histogram, micros_to_nanos, Report};
use crate::LoadError;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tag of the uncorrected (service time) histograms in an open-loop log.
pub const UNCORRECTED_TAG: &str = "uncorrected";

/// One interval histogram with absolute timing.
#[derive(Debug, Clone)]
pub struct LogInterval {
    /// Start, seconds since the epoch.
    pub start_s: f64,
    /// Length in seconds.
    pub length_s: f64,
    /// `None` for latency, `Some("uncorrected")` for service time.
    pub tag: Option<String>,
    /// The histogram, in nanoseconds.
    pub histogram: Histogram<u64>,
}

/// Writes `intervals` as an interval log. Values are ns; the log's max-value
/// divisor is 1e6 so tools show milliseconds.
pub fn write_log<W: Write>(
    out: W,
    comment: &str,
    start: SystemTime,
    intervals: &[LogInterval],
) -> Result<(), LoadError> {
    let mut out = out;
    let mut ser = V2DeflateSerializer::new();
    let base = start
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(comment)
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut out, &mut ser)
        .map_err(|e| LoadError::Hlog(format!("cannot write log header: {e}")))?;
    for iv in intervals {
        let tag = iv.tag.as_deref().and_then(Tag::new);
        writer
            .write_histogram(
                &iv.histogram,
                Duration::from_secs_f64((iv.start_s - base).max(0.0)),
                Duration::from_secs_f64(iv.length_s.max(0.0)),
                tag,
            )
            .map_err(|e| LoadError::Hlog(format!("cannot write interval: {e:?}")))?;
    }
    drop(writer);
    out.flush()?;
    Ok(())
}

/// The intervals of a finished run, with absolute times.
pub fn report_intervals(report: &Report) -> Vec<LogInterval> {
    let mut v = Vec::new();
    for iv in &report.intervals {
        let start_s = report.start_time_s + iv.start.as_secs_f64();
        v.push(LogInterval {
            start_s,
            length_s: iv.length.as_secs_f64(),
            tag: None,
            histogram: iv.latency.clone(),
        });
        if report.mode == "open" {
            v.push(LogInterval {
                start_s,
                length_s: iv.length.as_secs_f64(),
                tag: Some(UNCORRECTED_TAG.into()),
                histogram: iv.service.clone(),
            });
        }
    }
    v
}

/// Writes a run's interval log.
pub fn write_report_log<W: Write>(out: W, report: &Report) -> Result<(), LoadError> {
    let start = UNIX_EPOCH + Duration::from_secs_f64(report.start_time_s);
    let comment = format!(
        "shardloop-load {} {} loop against {}, {} connections; values in nanoseconds",
        report.workload, report.mode, report.target, report.connections
    );
    write_log(out, &comment, start, &report_intervals(report))
}

/// Reads an interval log; times are made absolute with its StartTime/BaseTime.
pub fn read_log(bytes: &[u8]) -> Result<Vec<LogInterval>, LoadError> {
    let mut base = 0.0;
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(bytes) {
        match entry.map_err(|e| LoadError::Hlog(format!("malformed interval log: {e:?}")))? {
            LogEntry::BaseTime(t) => base = t.as_secs_f64(),
            LogEntry::StartTime(t) => {
                if base == 0.0 {
                    base = t.as_secs_f64();
                }
            }
            LogEntry::Interval(iv) => {
                let histogram =
                    decode_histogram(iv.encoded_histogram()).map_err(LoadError::Hlog)?;
                out.push(LogInterval {
                    start_s: base + iv.start_timestamp().as_secs_f64(),
                    length_s: iv.duration().as_secs_f64(),
                    tag: iv.tag().map(|t| t.as_str().to_string()),
                    histogram,
                });
            }
        }
    }
    Ok(out)
}

/// What `merge` produces from several inputs.
#[derive(Debug)]
pub struct Merged {
    /// Latency (corrected) over all inputs.
    pub latency: Histogram<u64>,
    /// Uncorrected latency over all inputs (open-loop inputs only).
    pub uncorrected: Histogram<u64>,
    /// Every interval of every log input, by start time.
    pub intervals: Vec<LogInterval>,
    /// Sum of the JSON inputs' counts and rates (absent for log-only inputs).
    pub requests: u64,
    /// Correct responses over JSON inputs.
    pub responses_ok: u64,
    /// Errors over JSON inputs.
    pub errors: crate::ErrorCounts,
    /// Sum of throughputs of JSON inputs (runs on several machines at once).
    pub throughput_rps: f64,
    /// Inputs read.
    pub inputs: usize,
}

/// Merges JSON reports (`.json`) and interval logs (anything else). Logs
/// are aligned on one time grid (interval i of the result adds up what
/// every input measured in that slot) and must overlap in time.
pub fn merge_files(paths: &[std::path::PathBuf]) -> Result<Merged, LoadError> {
    let mut m = Merged {
        latency: new_histogram(),
        uncorrected: new_histogram(),
        intervals: Vec::new(),
        requests: 0,
        responses_ok: 0,
        errors: Default::default(),
        throughput_rps: 0.0,
        inputs: 0,
    };
    let mut spans = Vec::new();
    let mut logs = Vec::new();
    for p in paths {
        let bytes = std::fs::read(p).map_err(|e| LoadError::Input {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        let is_json = p.extension().is_some_and(|e| e == "json");
        if is_json {
            let r: Report = serde_json::from_slice(&bytes).map_err(|e| LoadError::Input {
                path: p.display().to_string(),
                reason: format!("not a shardloop-load JSON report: {e}"),
            })?;
            decode_histogram(&r.histogram).map_err(|e| LoadError::Input {
                path: p.display().to_string(),
                reason: e,
            })?;
            let lat = r.latency_histogram();
            m.latency
                .add(&lat)
                .map_err(|e| LoadError::Hlog(format!("{e:?}")))?;
            if r.mode == "open" {
                decode_histogram(&r.uncorrected_histogram).map_err(|e| LoadError::Input {
                    path: p.display().to_string(),
                    reason: e,
                })?;
                let un = r.uncorrected_histogram();
                m.uncorrected
                    .add(&un)
                    .map_err(|e| LoadError::Hlog(format!("{e:?}")))?;
            }
            m.requests += r.requests;
            m.responses_ok += r.responses_ok;
            m.errors.merge(&r.errors);
            m.throughput_rps += r.throughput_rps;
        } else {
            let mut ivs = read_log(&bytes).map_err(|e| LoadError::Input {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?;
            if is_microsecond_log(&bytes) {
                for iv in &mut ivs {
                    iv.histogram = micros_to_nanos(&iv.histogram);
                }
            }
            for iv in &ivs {
                let target = if iv.tag.as_deref() == Some(UNCORRECTED_TAG) {
                    &mut m.uncorrected
                } else {
                    &mut m.latency
                };
                target
                    .add(&iv.histogram)
                    .map_err(|e| LoadError::Hlog(format!("{e:?}")))?;
            }
            spans.push((p.display().to_string(), span_of(&ivs)));
            logs.push(ivs);
        }
        m.inputs += 1;
    }
    check_overlap(&spans)?;
    m.intervals = align(logs);
    Ok(m)
}

/// Logs written before nanosecond recording say so in their header.
fn is_microsecond_log(bytes: &[u8]) -> bool {
    const OLD: &[u8] = b"values in microseconds";
    let head = &bytes[..bytes.len().min(4096)];
    head.windows(OLD.len()).any(|w| w == OLD)
}

/// The time an interval log covers, seconds since the epoch.
fn span_of(ivs: &[LogInterval]) -> Option<(f64, f64)> {
    let start = ivs.iter().map(|i| i.start_s).reduce(f64::min)?;
    let end = ivs
        .iter()
        .map(|i| i.start_s + i.length_s)
        .reduce(f64::max)?;
    Some((start, end))
}

/// Logs from runs that were not running at the same time cannot be added
/// up as one load: refuse them, naming the spans.
fn check_overlap(spans: &[(String, Option<(f64, f64)>)]) -> Result<(), LoadError> {
    let known: Vec<(&String, (f64, f64))> = spans
        .iter()
        .filter_map(|(n, s)| s.map(|s| (n, s)))
        .collect();
    let latest_start = known.iter().map(|(_, s)| s.0).fold(f64::MIN, f64::max);
    let earliest_end = known.iter().map(|(_, s)| s.1).fold(f64::MAX, f64::min);
    if known.len() > 1 && latest_start >= earliest_end {
        let list: Vec<String> = known
            .iter()
            .map(|(n, (a, b))| format!("{n} [{a:.3}, {b:.3}]"))
            .collect();
        return Err(LoadError::Hlog(format!(
            "the interval logs do not overlap in time (seconds since the epoch: {}); merge runs that ran together",
            list.join(", ")
        )));
    }
    Ok(())
}

/// Puts every log's intervals on one grid (the longest interval length,
/// from the earliest start), adding up the histograms that fall in each
/// slot, so interval i of the result is the whole load during that second.
fn align(logs: Vec<Vec<LogInterval>>) -> Vec<LogInterval> {
    let all: Vec<&LogInterval> = logs.iter().flatten().collect();
    let Some(t0) = all.iter().map(|i| i.start_s).reduce(f64::min) else {
        return Vec::new();
    };
    let step = all.iter().map(|i| i.length_s).fold(0.0, f64::max).max(1e-3);
    let mut slots: std::collections::BTreeMap<(u64, Option<String>), Histogram<u64>> =
        Default::default();
    for iv in all {
        // The slot its midpoint falls in.
        let mid = iv.start_s + iv.length_s / 2.0 - t0;
        let k = (mid / step).floor().max(0.0) as u64;
        let h = slots
            .entry((k, iv.tag.clone()))
            .or_insert_with(new_histogram);
        // Same bounds everywhere: adding cannot fail.
        let _ = h.add(&iv.histogram);
    }
    let mut out: Vec<LogInterval> = slots
        .into_iter()
        .map(|((k, tag), histogram)| LogInterval {
            start_s: t0 + k as f64 * step,
            length_s: step,
            tag,
            histogram,
        })
        .collect();
    out.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn log_round_trips_with_tags_and_absolute_times() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ivs = vec![
            LogInterval {
                start_s: 1_700_000_000.0,
                length_s: 1.0,
                tag: None,
                histogram: hist(&[10, 20, 30]),
            },
            LogInterval {
                start_s: 1_700_000_001.0,
                length_s: 1.0,
                tag: Some(UNCORRECTED_TAG.into()),
                histogram: hist(&[5]),
            },
        ];
        let mut buf = Vec::new();
        write_log(&mut buf, "test", start, &ivs).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.contains("#[StartTime: 1700000000"), "{text}");
        let back = read_log(&buf).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].histogram.len(), 3);
        assert!((back[1].start_s - 1_700_000_001.0).abs() < 0.01);
        assert_eq!(back[1].tag.as_deref(), Some(UNCORRECTED_TAG));
    }

    #[test]
    fn malformed_log_is_an_error_not_a_panic() {
        assert!(read_log(b"Tag=x,not,a,log\n1,2,3,@@@\n").is_err());
    }

    #[test]
    fn logs_from_before_nanoseconds_are_scaled_when_merged() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let iv = |h| LogInterval {
            start_s: 1_700_000_000.0,
            length_s: 1.0,
            tag: None,
            histogram: h,
        };
        let dir = std::env::temp_dir().join(format!("hlog-units-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("old.hlog");
        let new = dir.join("new.hlog");
        let mut buf = Vec::new();
        let old_comment = "shardloop-load 0.1 closed loop; values in microseconds";
        write_log(&mut buf, old_comment, start, &[iv(hist(&[250]))]).unwrap();
        std::fs::write(&old, &buf).unwrap();
        buf.clear();
        write_log(
            &mut buf,
            "values in nanoseconds",
            start,
            &[iv(hist(&[250_000]))],
        )
        .unwrap();
        std::fs::write(&new, &buf).unwrap();
        let m = merge_files(&[old, new]).unwrap();
        assert_eq!(m.latency.len(), 2);
        // 250 µs from the old log and 250,000 ns from the new are one value.
        assert!(m.latency.equivalent(m.latency.min(), m.latency.max()));
        assert!(m.latency.equivalent(m.latency.max(), 250_000));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
