//! Variables a request template draws from, declared once per run
//! (`--var NAME=SPEC`) and shared read-only by every connection; each
//! connection draws with its own generator.

use super::data::Table;
use super::zipf::Zipf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How an integer variable is distributed over its range.
#[derive(Debug, Clone)]
pub(crate) enum Dist {
    Uniform,
    /// Rank 1 (the range's low end) the most frequent.
    Zipf(Zipf),
    /// Rounded and clamped to the range.
    Gaussian {
        mean: f64,
        sd: f64,
    },
}

/// One variable.
#[derive(Debug)]
pub(crate) enum Var {
    /// 0, 1, 2… (from a start) across the scenario's connections.
    Seq(AtomicU64),
    /// An integer in `lo..=hi`.
    Int { lo: i64, hi: i64, dist: Dist },
    /// A random string of letters and digits of this length.
    Str(usize),
    /// A row of a data file: in order (a cursor shared by the
    /// connections) or at random.
    Data {
        table: Table,
        cursor: Option<AtomicU64>,
    },
}

/// Letters and digits random strings are made of.
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// What a variable drew for the request being built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Drawn {
    Int(i64),
    /// A range of the per-connection string buffer.
    Str(usize, usize),
    Row(usize),
}

fn int(s: &str, what: &str) -> Result<i64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what}: {s:?} is not an integer"))
}

fn float(s: &str, what: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("{what}: {s:?} is not a number"))
}

impl Var {
    /// Parses a specification: `seq[:START]`, `int:LO..HI[:zipf:S |
    /// :gaussian:MEAN:SD]`, `str:LEN`, `csv:PATH[:random]`,
    /// `json:PATH[:random]` (`read` loads a data file).
    pub(crate) fn parse(
        spec: &str,
        read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Var, String> {
        let mut parts = spec.split(':');
        let kind = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        match (kind, rest.as_slice()) {
            ("seq", []) => Ok(Var::Seq(AtomicU64::new(0))),
            ("seq", [start]) => {
                let s = int(start, "seq start")?;
                let s = u64::try_from(s).map_err(|_| "seq start: at least 0".to_string())?;
                Ok(Var::Seq(AtomicU64::new(s)))
            }
            ("int", [range, dist @ ..]) => {
                let (lo, hi) = range
                    .split_once("..")
                    .ok_or_else(|| format!("int: {range:?} is not LO..HI"))?;
                let (lo, hi) = (int(lo, "int")?, int(hi, "int")?);
                if hi < lo {
                    return Err(format!("int: {lo}..{hi} is empty"));
                }
                let n = (hi as i128 - lo as i128 + 1).min(u64::MAX as i128) as u64;
                let dist = match dist {
                    [] | ["uniform"] => Dist::Uniform,
                    ["zipf", s] => {
                        let s = float(s, "zipf exponent")?;
                        if !(s > 0.0 && s <= 10.0) {
                            return Err(format!("zipf exponent {s}: in (0, 10]"));
                        }
                        Dist::Zipf(Zipf::new(n, s))
                    }
                    ["gaussian", mean, sd] => {
                        let (mean, sd) = (float(mean, "gaussian mean")?, float(sd, "gaussian sd")?);
                        if sd < 0.0 {
                            return Err("gaussian sd: at least 0".into());
                        }
                        Dist::Gaussian { mean, sd }
                    }
                    other => {
                        return Err(format!(
                            "int: {:?} is not a distribution (uniform, zipf:S, gaussian:MEAN:SD)",
                            other.join(":")
                        ))
                    }
                };
                Ok(Var::Int { lo, hi, dist })
            }
            ("str", [len]) => {
                let len = int(len, "str length")?;
                match usize::try_from(len) {
                    Ok(l) if (1..=1 << 20).contains(&l) => Ok(Var::Str(l)),
                    _ => Err(format!("str length {len}: 1 to 1048576")),
                }
            }
            ("csv" | "json", [path, order @ ..]) => {
                let bytes = read(path)?;
                let table = if kind == "csv" {
                    Table::csv(&bytes)
                } else {
                    Table::json(&bytes)
                }
                .map_err(|e| format!("{path}: {e}"))?;
                let cursor = match order {
                    [] | ["order"] => Some(AtomicU64::new(0)),
                    ["random"] => None,
                    other => {
                        return Err(format!(
                            "{kind}: {:?} is not an order (order, random)",
                            other.join(":")
                        ))
                    }
                };
                Ok(Var::Data { table, cursor })
            }
            _ => Err(format!(
                "{spec:?}: expected seq[:START], int:LO..HI[:zipf:S|:gaussian:MEAN:SD], str:LEN, csv:PATH[:random] or json:PATH[:random]"
            )),
        }
    }

    /// Draws a value (a string's bytes go to `strings`).
    pub(crate) fn draw(&self, rng: &mut fastrand::Rng, strings: &mut Vec<u8>) -> Drawn {
        match self {
            Var::Seq(next) => Drawn::Int(next.fetch_add(1, Relaxed) as i64),
            Var::Int { lo, hi, dist } => Drawn::Int(match dist {
                Dist::Uniform => rng.i64(*lo..=*hi),
                Dist::Zipf(z) => lo.saturating_add(z.sample(rng) as i64 - 1),
                Dist::Gaussian { mean, sd } => {
                    // Box–Muller: two uniforms, one normal.
                    let (u1, u2) = (1.0 - rng.f64(), rng.f64());
                    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    let v = (mean + sd * z).round();
                    (v.clamp(*lo as f64, *hi as f64)) as i64
                }
            }),
            Var::Str(len) => {
                let start = strings.len();
                strings.extend((0..*len).map(|_| ALNUM[rng.usize(..ALNUM.len())]));
                Drawn::Str(start, *len)
            }
            Var::Data { table, cursor } => {
                let n = table.rows.len();
                Drawn::Row(match cursor {
                    Some(c) => (c.fetch_add(1, Relaxed) % n as u64) as usize,
                    None => rng.usize(..n),
                })
            }
        }
    }

    /// The longest text a value may have.
    pub(crate) fn max_len(&self) -> usize {
        match self {
            Var::Seq(_) | Var::Int { .. } => 20,
            Var::Str(len) => *len,
            Var::Data { table, .. } => table.max_len(),
        }
    }
}
