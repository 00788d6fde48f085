//! Where a server's threads run: one core per shard, the acceptor's core,
//! the cores kept for a load generator and for network interrupts. The
//! tuner plans it for a machine (`shardloop-tune topology --write
//! placement.toml`); a server reads it (`ServerBuilder::placement`, the
//! examples' `--placement FILE`) and refuses a plan that does not fit the
//! machine it starts on, as Seastar's perftune applies its plan instead of
//! printing it.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Where a server's threads run.
///
/// ```
/// use shardloop::Placement;
/// let p: Placement = "shards = [2, 3]\nacceptor = 1\nirq_cpus = [0, 1]\n".parse().unwrap();
/// assert_eq!((p.shards.as_slice(), p.acceptor), (&[2, 3][..], Some(1)));
/// // Written back, it reads the same.
/// assert_eq!(p.to_string().parse::<Placement>().unwrap(), p);
/// // Shards on the interrupt cores are refused, with the reason.
/// let bad: Result<Placement, _> = "shards = [0, 1]\nirq_cpus = [1]\n".parse();
/// assert!(bad.unwrap_err().to_string().contains("CPU 1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// One CPU per shard, in shard order (a shard's thread is pinned there).
    pub shards: Vec<usize>,
    /// The acceptor thread's CPU, if it is pinned.
    pub acceptor: Option<usize>,
    /// CPUs left to a load generator on the same machine (no shard there).
    pub loadgen: Vec<usize>,
    /// CPUs that service network interrupts (no shard there).
    pub irq_cpus: Vec<usize>,
}

/// Why a placement cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The file could not be read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Not a placement: bad TOML, a wrong type, an unknown key.
    #[error("placement: {0}")]
    Syntax(String),
    /// The plan contradicts itself (a CPU given twice, a shard on a CPU
    /// kept for something else).
    #[error("placement: {0}")]
    Inconsistent(String),
    /// The plan names CPUs this process may not run on (another machine's
    /// plan, a narrower cpuset).
    #[error("placement does not fit this machine: {0}")]
    DoesNotFit(String),
}

const KEYS: [&str; 4] = ["shards", "acceptor", "loadgen", "irq_cpus"];

fn cpu(v: &toml::Value, key: &str) -> Result<usize, PlacementError> {
    v.as_integer()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n < 1 << 16)
        .ok_or_else(|| PlacementError::Syntax(format!("{key}: {v:?} is not a CPU number")))
}

fn cpus(t: &toml::Table, key: &str) -> Result<Vec<usize>, PlacementError> {
    match t.get(key) {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a.iter().map(|v| cpu(v, key)).collect(),
        Some(v) => Err(PlacementError::Syntax(format!(
            "{key}: expected a list of CPU numbers, found {v:?}"
        ))),
    }
}

impl FromStr for Placement {
    type Err = PlacementError;

    /// Reads a placement file's text and checks it is consistent.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t: toml::Table = s
            .parse()
            .map_err(|e: toml::de::Error| PlacementError::Syntax(e.to_string()))?;
        if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(PlacementError::Syntax(format!(
                "unknown key {k:?} (known: {})",
                KEYS.join(", ")
            )));
        }
        let p = Placement {
            shards: cpus(&t, "shards")?,
            acceptor: t.get("acceptor").map(|v| cpu(v, "acceptor")).transpose()?,
            loadgen: cpus(&t, "loadgen")?,
            irq_cpus: cpus(&t, "irq_cpus")?,
        };
        p.consistent()?;
        Ok(p)
    }
}

fn list(cpus: &[usize]) -> String {
    let items: Vec<String> = cpus.iter().map(usize::to_string).collect();
    format!("[{}]", items.join(", "))
}

impl fmt::Display for Placement {
    /// The placement file's text (TOML).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# One CPU per shard, in shard order.")?;
        writeln!(f, "shards = {}", list(&self.shards))?;
        if let Some(a) = self.acceptor {
            writeln!(f, "# The acceptor thread.")?;
            writeln!(f, "acceptor = {a}")?;
        }
        writeln!(f, "# Left to a load generator on this machine.")?;
        writeln!(f, "loadgen = {}", list(&self.loadgen))?;
        writeln!(f, "# Servicing network interrupts: no shard runs there.")?;
        writeln!(f, "irq_cpus = {}", list(&self.irq_cpus))
    }
}

impl Placement {
    /// Reads and checks a placement file.
    pub fn load(path: impl AsRef<Path>) -> Result<Placement, PlacementError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| PlacementError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        text.parse().map_err(|e| match e {
            PlacementError::Syntax(reason) | PlacementError::Inconsistent(reason) => {
                PlacementError::File {
                    path: path.display().to_string(),
                    reason,
                }
            }
            other => other,
        })
    }

    /// At least one shard; no CPU given to two shards; no shard on the
    /// load generator's or an interrupt CPU; the acceptor off the load
    /// generator's.
    fn consistent(&self) -> Result<(), PlacementError> {
        let bad = |m: String| Err(PlacementError::Inconsistent(m));
        if self.shards.is_empty() {
            return bad("no shard CPU (shards = [...])".into());
        }
        let mut seen = BTreeSet::new();
        for &c in &self.shards {
            if !seen.insert(c) {
                return bad(format!("CPU {c} is given to two shards"));
            }
        }
        for (what, set) in [
            ("the load generator", &self.loadgen),
            ("network interrupts", &self.irq_cpus),
        ] {
            if let Some(c) = set.iter().find(|c| seen.contains(c)) {
                return bad(format!("CPU {c} runs a shard and is kept for {what}"));
            }
        }
        // The acceptor may share a shard's CPU (it is light; the tuner
        // puts it on the first shard's when no CPU is spare), not the load
        // generator's.
        if let Some(a) = self.acceptor.filter(|a| self.loadgen.contains(a)) {
            return bad(format!("the acceptor's CPU {a} runs the load generator"));
        }
        Ok(())
    }

    /// Checks the plan against the CPUs this process may run on (its
    /// affinity mask: the machine's online CPUs narrowed by any cpuset).
    pub fn check(&self) -> Result<(), PlacementError> {
        let allowed: Option<BTreeSet<usize>> =
            core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|c| c.id).collect());
        match allowed {
            Some(a) => self.fits(&a),
            None => Err(PlacementError::DoesNotFit(
                "cannot read the CPUs this process may use".into(),
            )),
        }
    }

    /// Checks the plan against `allowed` CPUs.
    fn fits(&self, allowed: &BTreeSet<usize>) -> Result<(), PlacementError> {
        self.consistent()?;
        let named = self
            .shards
            .iter()
            .map(|c| ("shard", c))
            .chain(self.acceptor.iter().map(|c| ("acceptor", c)))
            .chain(self.loadgen.iter().map(|c| ("load generator", c)));
        for (what, c) in named {
            if !allowed.contains(c) {
                let mine: Vec<usize> = allowed.iter().copied().collect();
                return Err(PlacementError::DoesNotFit(format!(
                    "the {what} CPU {c} is not one this process may use ({}): a plan for another machine?",
                    list(&mine)
                )));
            }
        }
        Ok(())
    }
}

impl super::ServerBuilder {
    /// Runs the server as `placement` plans: one shard per CPU in
    /// `placement.shards` (the shard count and pinning; a later `shards`
    /// or `pinning` call overrides them), the acceptor on its CPU.
    /// `build` refuses a plan that does not fit this machine, saying why.
    ///
    /// ```no_run
    /// # use shardloop::{Conn, Placement, Protocol, Server};
    /// # struct Echo;
    /// # impl Protocol for Echo { type Message = ();
    /// #     fn data_received(&mut self, c: &mut Conn<'_, Self>, d: &[u8]) { c.write(d) } }
    /// // shardloop-tune topology --write placement.toml
    /// let plan = Placement::load("placement.toml")?;
    /// let server = Server::builder()
    ///     .placement(plan)
    ///     .listen("127.0.0.1:7000", |_| |_| Echo)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn placement(mut self, placement: Placement) -> Self {
        self.shards = Some(placement.shards.len());
        self.pinning = super::Pinning::Cores(placement.shards.clone());
        self.acceptor_core = placement.acceptor;
        self.placement = Some(placement);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Placement, PlacementError> {
        s.parse()
    }

    #[test]
    fn a_written_plan_reads_back_and_checks() {
        let plan = Placement {
            shards: vec![2, 4, 6],
            acceptor: Some(0),
            loadgen: vec![7],
            irq_cpus: vec![0, 1],
        };
        let back = p(&plan.to_string()).unwrap();
        assert_eq!(back, plan);
        let machine: BTreeSet<usize> = (0..8).collect();
        back.fits(&machine).unwrap();
        let small: BTreeSet<usize> = (0..4).collect();
        let e = back.fits(&small).unwrap_err().to_string();
        assert!(
            e.contains("shard CPU 4") && e.contains("[0, 1, 2, 3]"),
            "{e}"
        );
    }

    #[test]
    fn contradictions_and_typos_are_refused_with_the_reason() {
        assert_eq!(
            p("shards = [65535]").unwrap().shards,
            [65535],
            "the last CPU number taken"
        );
        for (text, says) in [
            ("shards = []", "no shard"),
            ("acceptor = 1", "no shard"),
            ("shards = [1, 1]", "two shards"),
            ("shards = [1]\nloadgen = [1]", "load generator"),
            ("shards = [1]\nirq_cpus = [0, 1]", "network interrupts"),
            ("shards = [1]\nloadgen = [2]\nacceptor = 2", "acceptor"),
            ("shards = [1]\nshard = [2]", "unknown key"),
            ("shards = [-1]", "not a CPU"),
            ("shards = [65536]", "not a CPU"),
            ("shards = [99999999999999999999]", "placement"),
            ("shards = [\"a\"]", "not a CPU"),
            ("shards = 3", "list of CPU"),
            ("shards = [1", "placement"),
        ] {
            let e = p(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
