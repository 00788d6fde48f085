//! Requests that vary: `{{name}}` in an HTTP method, path, header value or
//! body, or in a RESP command's arguments, is replaced per request by a
//! variable's value (`--var NAME=SPEC`): a sequence number, a random
//! integer in a range (uniform, Zipfian, Gaussian), a random string, or a
//! row of a CSV or JSON data file in order or at random (`{{row.email}}`
//! names a column). A variable used twice in one request has one value
//! there, as k6's per-iteration data.
//!
//! Templates compile once, when the run is configured, into literal runs
//! and variable slots; building a request appends them to the
//! connection's buffers (reused, so no allocation once warm) and parses
//! nothing.
//!
//! ```
//! use shardloop_loadgen::template::{Draws, Template, Vars};
//! let vars = Vars::parse(&["user=int:1..1000:zipf:1.1".into(), "n=seq".into()], &|_| unreachable!()).unwrap();
//! let t = Template::compile("/users/{{user}}?req={{n}}", &vars).unwrap();
//! let mut draws = Draws::new(&vars, 7);
//! let mut out = Vec::new();
//! draws.next_request();
//! t.render(&vars, &mut draws, &mut out);
//! assert!(out.starts_with(b"/users/") && out.ends_with(b"?req=0"));
//! ```

mod data;
#[cfg(test)]
mod tests;
mod vars;
mod zipf;

use vars::{Drawn, Var};

/// Appends `n` in decimal (without the formatting machinery: this runs
/// for every variable of every request).
pub(crate) fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// Variables one run may declare.
pub const MAX_VARS: usize = 256;

/// A run's variables, by name (`--var NAME=SPEC`).
#[derive(Debug, Default)]
pub struct Vars {
    names: Vec<String>,
    vars: Vec<Var>,
}

impl Vars {
    /// Parses `NAME=SPEC` declarations; `read` loads a data file by path.
    ///
    /// Specs: `seq[:START]`, `int:LO..HI` (uniform), `int:LO..HI:zipf:S`,
    /// `int:LO..HI:gaussian:MEAN:SD`, `str:LEN`, `csv:PATH[:random]`,
    /// `json:PATH[:random]` (rows in order unless `random`).
    pub fn parse(
        decls: &[String],
        read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Vars, String> {
        if decls.len() > MAX_VARS {
            return Err(format!("{} variables: at most {MAX_VARS}", decls.len()));
        }
        let mut v = Vars::default();
        for d in decls {
            let (name, spec) = d
                .split_once('=')
                .ok_or_else(|| format!("--var {d:?}: expected NAME=SPEC, e.g. user=int:1..1000"))?;
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("--var {d:?}: a name is letters, digits and '_'"));
            }
            if v.names.iter().any(|n| n == name) {
                return Err(format!("--var {name}: declared twice"));
            }
            let var = Var::parse(spec.trim(), read).map_err(|e| format!("--var {name}: {e}"))?;
            v.names.push(name.to_string());
            v.vars.push(var);
        }
        Ok(v)
    }

    /// True when no variable is declared.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

/// What a connection draws with: its generator, this request's values,
/// and buffers reused from request to request.
#[derive(Debug)]
pub struct Draws {
    rng: fastrand::Rng,
    drawn: Vec<Option<Drawn>>,
    strings: Vec<u8>,
    /// A rendered piece whose length must be known before it is written
    /// (an HTTP body, a RESP argument).
    pub(crate) piece: Vec<u8>,
}

impl Default for Draws {
    /// Draws for no variable.
    fn default() -> Self {
        Draws::new(&Vars::default(), 0)
    }
}

impl Draws {
    /// A connection's draws for `vars`, from `seed`.
    pub fn new(vars: &Vars, seed: u64) -> Draws {
        Draws {
            rng: fastrand::Rng::with_seed(seed),
            drawn: vec![None; vars.vars.len()],
            strings: Vec::new(),
            piece: Vec::new(),
        }
    }

    /// Starts a new request: every variable draws afresh.
    pub fn next_request(&mut self) {
        self.drawn.iter_mut().for_each(|d| *d = None);
        self.strings.clear();
    }
}

#[derive(Debug, Clone)]
enum Part {
    /// `lits[from..to]`.
    Lit(usize, usize),
    /// Variable `var`, column `col` (data files).
    Var(usize, usize),
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    lits: Vec<u8>,
    parts: Vec<Part>,
}

impl Template {
    /// Compiles `text`: `{{name}}` or `{{name.column}}` name a variable of
    /// `vars` (and a data file's column); anything else is literal.
    pub fn compile(text: &str, vars: &Vars) -> Result<Template, String> {
        let mut t = Template {
            lits: Vec::new(),
            parts: Vec::new(),
        };
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            t.literal(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("{text:?}: '{{{{' without '}}}}'"))?;
            let inner = after[..close].trim();
            let (name, column) = match inner.split_once('.') {
                Some((n, c)) => (n, Some(c)),
                None => (inner, None),
            };
            let var = vars.names.iter().position(|n| n == name).ok_or_else(|| {
                format!("{text:?}: no variable {name:?} (declare it with --var {name}=...)")
            })?;
            let col = match (&vars.vars[var], column) {
                (Var::Data { table, .. }, Some(c)) => table.column(c).ok_or_else(|| {
                    format!(
                        "{text:?}: {name} has no column {c:?} ({})",
                        table.columns.join(", ")
                    )
                })?,
                (Var::Data { table, .. }, None) if table.columns.len() == 1 => 0,
                (Var::Data { table, .. }, None) => {
                    return Err(format!(
                        "{text:?}: {name} is a row: name a column, {{{{{name}.{}}}}}",
                        table.columns[0]
                    ))
                }
                (_, Some(c)) => return Err(format!("{text:?}: {name} has no columns (.{c})")),
                (_, None) => 0,
            };
            t.parts.push(Part::Var(var, col));
            rest = &after[close + 2..];
        }
        t.literal(rest);
        Ok(t)
    }

    /// A template of these bytes, with no variable.
    pub(crate) fn literal_bytes(bytes: &[u8]) -> Template {
        Template {
            lits: bytes.to_vec(),
            parts: if bytes.is_empty() {
                Vec::new()
            } else {
                vec![Part::Lit(0, bytes.len())]
            },
        }
    }

    fn literal(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let from = self.lits.len();
        self.lits.extend_from_slice(s.as_bytes());
        self.parts.push(Part::Lit(from, self.lits.len()));
    }

    /// True when it names no variable (the same bytes every request).
    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(..)))
    }

    /// The longest text it renders to.
    pub fn max_len(&self, vars: &Vars) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Lit(a, b) => b - a,
                Part::Var(v, _) => vars.vars[*v].max_len(),
            })
            .sum()
    }

    /// Appends this request's text to `out` (variables drawn on first use
    /// since [`Draws::next_request`]).
    pub fn render(&self, vars: &Vars, draws: &mut Draws, out: &mut Vec<u8>) {
        for p in &self.parts {
            match *p {
                Part::Lit(a, b) => out.extend_from_slice(&self.lits[a..b]),
                Part::Var(v, col) => {
                    let drawn = match draws.drawn[v] {
                        Some(d) => d,
                        None => {
                            let d = vars.vars[v].draw(&mut draws.rng, &mut draws.strings);
                            draws.drawn[v] = Some(d);
                            d
                        }
                    };
                    match drawn {
                        Drawn::Int(n) => push_int(out, n),
                        Drawn::Str(at, len) => out.extend_from_slice(&draws.strings[at..at + len]),
                        Drawn::Row(r) => {
                            if let Var::Data { table, .. } = &vars.vars[v] {
                                out.extend_from_slice(&table.rows[r][col]);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Draws a table of message sizes takes.
const SIZE_TABLE: usize = 4096;

/// Message sizes from a distribution (`--sizes`): a table of 4,096 draws
/// from a fixed seed, picked by a hash of each request's sequence number,
/// so the echo check knows every reply's length with nothing stored per
/// request.
#[derive(Debug)]
pub struct Sizes {
    table: Box<[usize]>,
    /// As given.
    pub spec: String,
}

/// What a run's message sizes are: percentiles of the table, bytes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SizeSummary {
    /// As given (`16..4096:zipf:1.1`).
    pub spec: String,
    /// Smallest.
    pub min: usize,
    /// Median.
    pub p50: usize,
    /// 90th percentile.
    pub p90: usize,
    /// 99th percentile.
    pub p99: usize,
    /// Largest.
    pub max: usize,
    /// Mean.
    pub mean: f64,
}

impl Sizes {
    /// `LO..HI` (uniform), `LO..HI:zipf:S` or `LO..HI:gaussian:MEAN:SD`,
    /// bytes, at least `min`.
    pub fn parse(spec: &str, min: usize) -> Result<Sizes, String> {
        let var = Var::parse(&format!("int:{spec}"), &|_| Err("no files".into()))
            .map_err(|e| format!("--sizes {spec:?}: {}", e.trim_start_matches("int: ")))?;
        let Var::Int { lo, .. } = &var else {
            return Err(format!(
                "--sizes {spec:?}: expected LO..HI[:zipf:S|:gaussian:MEAN:SD]"
            ));
        };
        if *lo < min as i64 {
            return Err(format!(
                "--sizes {spec:?}: every size must be at least {min}"
            ));
        }
        let mut rng = fastrand::Rng::with_seed(0x5123_5eed);
        let mut unused = Vec::new();
        let table = (0..SIZE_TABLE)
            .map(|_| match var.draw(&mut rng, &mut unused) {
                Drawn::Int(n) => n as usize,
                _ => unreachable!("an integer variable draws integers"),
            })
            .collect();
        Ok(Sizes {
            table,
            spec: spec.to_string(),
        })
    }

    /// The size of request `seq`.
    pub fn of(&self, seq: u64) -> usize {
        let i = (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize;
        self.table[i % self.table.len()]
    }

    /// The smallest.
    pub fn min(&self) -> usize {
        self.table.iter().copied().min().unwrap_or(0)
    }

    /// The largest.
    pub fn max(&self) -> usize {
        self.table.iter().copied().max().unwrap_or(0)
    }

    /// Percentiles of the table.
    pub fn summary(&self) -> SizeSummary {
        let mut t = self.table.to_vec();
        t.sort_unstable();
        let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
        SizeSummary {
            spec: self.spec.clone(),
            min: t[0],
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: t[t.len() - 1],
            mean: t.iter().sum::<usize>() as f64 / t.len() as f64,
        }
    }
}
