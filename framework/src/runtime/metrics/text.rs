//! The Prometheus text exposition format (0.0.4): one writer and one
//! strict parser, shared by the server's `/metrics`, the load generator's
//! and the tuner's `advise`.
//!
//! ```
//! use shardloop::metrics::text::{family, parse, sample};
//! let mut out = String::new();
//! family(&mut out, "app_jobs_total", "counter", "Jobs done.");
//! sample(&mut out, "app_jobs_total", &[("queue", "mail")], 3.0);
//! let samples = parse(&out)?;
//! assert_eq!(samples[0].label("queue"), Some("mail"));
//! assert_eq!(samples[0].value, 3.0);
//! # Ok::<(), shardloop::metrics::text::ParseError>(())
//! ```

use std::collections::HashSet;
use std::fmt::Write;

/// Writes a family's `# HELP` and `# TYPE` lines (`kind`: `counter`,
/// `gauge`, `histogram`, `summary` or `untyped`).
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample, its label values escaped.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_value(value));
}

/// A value as the format writes it: integers without a fraction, `+Inf`,
/// `-Inf`, `NaN`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (`x_bucket`, `x_sum` for a histogram's parts).
    pub name: String,
    /// Label pairs, unescaped, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `name{k="v",…}` as written (labels in their order), a series key.
    pub fn series(&self) -> String {
        let mut out = String::new();
        let labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        sample(&mut out, &self.name, &labels, 0.0);
        out.truncate(out.rfind(' ').unwrap_or(out.len()));
        out
    }
}

/// Why a text is not a valid exposition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metrics line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// A valid metric or label name.
pub fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses an exposition strictly: valid names, quoted and escaped label
/// values, a number (or `±Inf`/`NaN`) per sample, and a `# TYPE` before a
/// typed family's samples, given once. Untyped samples are accepted (the
/// format allows them). Optional timestamps are ignored.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut typed: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |reason: String| ParseError {
            line: i + 1,
            reason,
        };
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE needs a name and a kind".into()))?;
            if !valid_name(name) {
                return Err(err(format!("bad metric name {name:?}")));
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind.trim()) {
                return Err(err(format!("unknown type {kind:?}")));
            }
            if seen.contains(name) {
                return Err(err(format!("TYPE of {name} after its samples")));
            }
            if !typed.insert(name.to_string()) {
                return Err(err(format!("{name} typed twice")));
            }
            continue;
        }
        if line.starts_with('#') {
            continue; // HELP and comments
        }
        let s = parse_sample(line).map_err(err)?;
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| s.name.strip_suffix(suffix).filter(|f| typed.contains(*f)))
            .unwrap_or(&s.name);
        seen.insert(family.to_string());
        out.push(s);
    }
    Ok(out)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err(format!("trailing fields in {line:?}"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Label pairs as parsed.
type Labels = Vec<(String, String)>;

/// Parses `k="v",…}` and returns the pairs and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(tail) = s.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let eq = s.find('=').ok_or("label without =")?;
        let key = s[..eq].trim();
        if !valid_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let after = s[eq + 1..].trim_start();
        let mut chars = after.char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {key} is not quoted"));
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((j, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(j + 1);
                    break;
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    other => return Err(format!("bad escape \\{other:?} in label {key}")),
                },
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("label {key}'s value is not closed"))?;
        labels.push((key.to_string(), value));
        s = after[end..].trim_start();
        if let Some(tail) = s.strip_prefix(',') {
            s = tail;
        } else if !s.starts_with('}') {
            return Err("labels must be separated by ,".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_parses_back_with_escapes() {
        let mut out = String::new();
        family(&mut out, "x_total", "counter", "An x.\nTwo lines.");
        sample(
            &mut out,
            "x_total",
            &[("a", "q\"uo\\te"), ("b", "line\nbreak")],
            1.5,
        );
        sample(&mut out, "x_total", &[], f64::INFINITY);
        let s = parse(&out).unwrap();
        assert_eq!(s[0].label("a"), Some("q\"uo\\te"));
        assert_eq!(s[0].label("b"), Some("line\nbreak"));
        assert_eq!(s[0].value, 1.5);
        assert_eq!(s[1].value, f64::INFINITY);
        assert_eq!(
            s[0].series(),
            "x_total{a=\"q\\\"uo\\\\te\",b=\"line\\nbreak\"}"
        );
    }

    #[test]
    fn malformed_lines_are_named() {
        let bad = [
            ("1x 3", "bad metric name"),
            ("x{1a=\"v\"} 3", "bad label name"),
            ("x{a=v} 3", "not quoted"),
            ("x{a=\"v} 3", "not closed"),
            ("x 3 4 5", "trailing"),
            ("x three", "bad value"),
            ("# TYPE x gauge\n# TYPE x gauge", "typed twice"),
            ("x 1\n# TYPE x gauge", "after its samples"),
            ("# TYPE x weird", "unknown type"),
        ];
        for (text, why) in bad {
            let e = parse(text).unwrap_err();
            assert!(e.reason.contains(why), "{text:?}: {e}");
        }
        // Timestamps and untyped samples are allowed.
        assert_eq!(parse("x{a=\"1\"} 2 1700000000000\n").unwrap()[0].value, 2.0);
    }
}
