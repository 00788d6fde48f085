//! The machine's CPU topology as Linux shows it (physical cores, SMT
//! siblings, NUMA nodes, the cgroup's CPU quota and cpuset, the cores that
//! service network interrupts), and where to pin shards, the acceptor and
//! the load generator. Everything is read under a root directory, so tests
//! run on fixture `/proc` and `/sys` trees.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// One logical CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// Its number.
    pub id: usize,
    /// Package (socket).
    pub package: usize,
    /// Core id within the package; SMT siblings share it.
    pub core: usize,
    /// NUMA node.
    pub node: usize,
}

/// What the machine offers this process.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// Online CPUs this process may use (cpuset applied).
    pub cpus: Vec<Cpu>,
    /// The cgroup's CPU quota in CPUs (`cpu.max`), if limited.
    pub quota: Option<f64>,
    /// Network interrupts serviced per CPU (from `/proc/interrupts`).
    pub net_irqs: BTreeMap<usize, u64>,
    /// The network devices' interrupt lines (IRQ numbers).
    pub net_irq_lines: Vec<u32>,
}

/// Where to run what.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    /// One CPU per shard, each on its own physical core.
    pub shards: Vec<usize>,
    /// For the acceptor thread (and network interrupts), if a core is left.
    pub acceptor: Option<usize>,
    /// For the load generator, when it runs on this machine.
    pub loadgen: Vec<usize>,
    /// Kept for network interrupts: the cores they land on most (no shard
    /// there).
    pub irq_cpus: Vec<usize>,
    /// What limits the plan.
    pub notes: Vec<String>,
}

impl Placement {
    /// The plan as the framework reads it (`ServerBuilder::placement`,
    /// the examples' `--placement FILE`).
    pub fn to_framework(&self) -> shardloop::Placement {
        shardloop::Placement {
            shards: self.shards.clone(),
            acceptor: self.acceptor,
            loadgen: self.loadgen.clone(),
            irq_cpus: self.irq_cpus.clone(),
        }
    }

    /// The placement file's text: the notes as comments, then the plan.
    pub fn file_text(&self) -> String {
        let mut s = String::from("# Written by shardloop-tune topology --write.\n");
        for n in &self.notes {
            let _ = writeln!(s, "# {n}");
        }
        s.push_str(&self.to_framework().to_string());
        s
    }
}

/// One IRQ-affinity change: an interrupt line and the CPUs it should
/// interrupt (`/proc/irq/N/smp_affinity_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IrqMove {
    /// The interrupt line.
    pub irq: u32,
    /// The CPUs it is pointed at.
    pub cpus: Vec<usize>,
}

impl IrqMove {
    /// The shell command that makes it.
    pub fn command(&self) -> String {
        format!(
            "echo {} > /proc/irq/{}/smp_affinity_list",
            cpu_list(&self.cpus),
            self.irq
        )
    }
}

/// A CPU list as Linux writes it (`0,1,4`).
fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a Linux CPU list (`0-3,8,10-11`).
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.trim().is_empty()) {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.parse().map_err(|_| format!("bad CPU list {s:?}"))?;
        let b: usize = b.parse().map_err(|_| format!("bad CPU list {s:?}"))?;
        if b < a || b - a > 65_536 {
            return Err(format!("bad CPU range {part:?}"));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

fn read_num(root: &Path, rel: &str) -> Option<usize> {
    read(root, rel)?.trim().parse().ok()
}

/// Network devices' interrupt lines, by the usual driver and device names.
fn is_network_irq(line: &str) -> bool {
    const NAMES: &[&str] = &[
        "eth",
        "ens",
        "enp",
        "eno",
        "mlx",
        "ixgbe",
        "i40e",
        "ice",
        "ena",
        "virtio",
        "bnxt",
        "igb",
        "e1000",
        "nfp",
        "gve",
        "hv_netvsc",
    ];
    let l = line.to_ascii_lowercase();
    // virtio block devices are not network: keep virtio only with "input"/"output" queues.
    if l.contains("virtio") && !(l.contains("input") || l.contains("output")) {
        return false;
    }
    NAMES.iter().any(|n| l.contains(n))
}

/// Network interrupts per CPU, and the network interrupt lines.
fn parse_interrupts(text: &str) -> (BTreeMap<usize, u64>, Vec<u32>) {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Default::default();
    };
    let mut irqs = Vec::new();
    let cols: Vec<usize> = header
        .split_whitespace()
        .filter_map(|c| c.strip_prefix("CPU")?.parse().ok())
        .collect();
    let mut per_cpu = BTreeMap::new();
    for line in lines.filter(|l| is_network_irq(l)) {
        let mut fields = line.split_whitespace();
        if let Some(irq) = fields
            .next()
            .and_then(|f| f.strip_suffix(':')?.parse().ok())
        {
            irqs.push(irq);
        }
        for (cpu, v) in cols.iter().zip(fields) {
            if let Ok(n) = v.parse::<u64>() {
                *per_cpu.entry(*cpu).or_insert(0) += n;
            }
        }
    }
    per_cpu.retain(|_, n| *n > 0);
    (per_cpu, irqs)
}

impl Topology {
    /// Reads the topology under `root` (`/` for this machine).
    pub fn read(root: &Path) -> Result<Topology, String> {
        let online = read(root, "sys/devices/system/cpu/online").ok_or_else(|| {
            format!(
                "cannot read {}/sys/devices/system/cpu/online",
                root.display()
            )
        })?;
        let mut ids = parse_cpu_list(&online)?;
        // The cgroup's cpuset, if it narrows them.
        if let Some(set) =
            read(root, "sys/fs/cgroup/cpuset.cpus.effective").filter(|s| !s.trim().is_empty())
        {
            let allowed: BTreeSet<usize> = parse_cpu_list(&set)?.into_iter().collect();
            ids.retain(|c| allowed.contains(c));
        }
        let mut node_of = BTreeMap::new();
        for node in 0..1024 {
            let Some(list) = read(root, &format!("sys/devices/system/node/node{node}/cpulist"))
            else {
                if node > 0 {
                    break;
                }
                continue;
            };
            for c in parse_cpu_list(&list)? {
                node_of.insert(c, node);
            }
        }
        let cpus = ids
            .iter()
            .map(|&id| {
                let t = format!("sys/devices/system/cpu/cpu{id}/topology");
                Cpu {
                    id,
                    package: read_num(root, &format!("{t}/physical_package_id")).unwrap_or(0),
                    // Without topology files every CPU is its own core.
                    core: read_num(root, &format!("{t}/core_id")).unwrap_or(id),
                    node: node_of.get(&id).copied().unwrap_or(0),
                }
            })
            .collect();
        let quota = read(root, "sys/fs/cgroup/cpu.max").and_then(|s| {
            let mut f = s.split_whitespace();
            let (q, p) = (f.next()?, f.next()?);
            let (q, p): (f64, f64) = (q.parse().ok()?, p.parse().ok()?);
            (p > 0.0).then_some(q / p)
        });
        let (net_irqs, net_irq_lines) = read(root, "proc/interrupts")
            .map(|t| parse_interrupts(&t))
            .unwrap_or_default();
        Ok(Topology {
            cpus,
            quota,
            net_irqs,
            net_irq_lines,
        })
    }

    /// Physical cores: (package, core) → their logical CPUs, in order.
    pub fn physical_cores(&self) -> Vec<Vec<usize>> {
        let mut cores: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for c in &self.cpus {
            cores.entry((c.package, c.core)).or_default().push(c.id);
        }
        let mut v: Vec<Vec<usize>> = cores.into_values().collect();
        v.sort_by_key(|c| c[0]);
        v
    }

    /// NUMA nodes in use.
    pub fn nodes(&self) -> BTreeSet<usize> {
        self.cpus.iter().map(|c| c.node).collect()
    }

    /// Plans shards, the acceptor and `loadgen_cores` cores for a load
    /// generator on this machine: one shard per physical core (an SMT
    /// sibling shares the core's execution units, so it adds little), the
    /// cores busiest with network interrupts left to them and the acceptor,
    /// the load generator on cores of its own, shards capped by the cgroup
    /// quota.
    pub fn plan(&self, loadgen_cores: usize) -> Placement {
        let mut notes = Vec::new();
        let mut cores = self.physical_cores();
        let smt = cores.iter().any(|c| c.len() > 1);
        if smt {
            notes.push(format!(
                "{} logical CPUs on {} physical cores (SMT): one shard per physical core",
                self.cpus.len(),
                cores.len()
            ));
        }
        // The load generator takes whole cores from the end (the highest
        // numbers, usually away from the interrupt cores).
        let mut loadgen = Vec::new();
        if loadgen_cores > 0 {
            if cores.len() <= loadgen_cores {
                notes.push(format!(
                    "this box cannot give the load generator its own cores ({} physical cores, {loadgen_cores} asked): it will compete with the server, so measure from another machine",
                    cores.len()
                ));
            } else {
                for core in cores.split_off(cores.len() - loadgen_cores) {
                    loadgen.extend(core);
                }
            }
        }
        // Interrupt-heavy cores: those with more than a fair share of the
        // network interrupts, kept for interrupts and the acceptor while
        // enough cores remain for shards.
        let total: u64 = self.net_irqs.values().sum();
        let mut acceptor = None;
        let mut irq_cpus = Vec::new();
        if total > 0 && cores.len() > 2 {
            let fair = total as f64 / self.cpus.len().max(1) as f64;
            let hot: Vec<usize> = cores
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.iter()
                        .map(|id| self.net_irqs.get(id).copied().unwrap_or(0))
                        .sum::<u64>() as f64
                        > 2.0 * fair
                })
                .map(|(i, _)| i)
                .collect();
            if !hot.is_empty() && hot.len() < cores.len() / 2 {
                let first = cores[hot[0]][0];
                notes.push(format!(
                    "network interrupts land on CPUs {:?}: shards stay off them; the acceptor runs on CPU {first}",
                    hot.iter().flat_map(|&i| cores[i].clone()).collect::<Vec<_>>()
                ));
                acceptor = Some(first);
                for i in hot.into_iter().rev() {
                    irq_cpus.extend(cores.remove(i));
                }
                irq_cpus.sort_unstable();
            }
        }
        let mut shards: Vec<usize> = cores.iter().map(|c| c[0]).collect();
        if let Some(q) = self.quota {
            let allowed = (q.floor() as usize).max(1);
            if allowed < shards.len() {
                notes.push(format!(
                    "the cgroup's CPU quota is {q:.2} CPUs: at most {allowed} shards (more would be throttled)"
                ));
                shards.truncate(allowed);
            }
        }
        if self.nodes().len() > 1 {
            notes.push(format!(
                "{} NUMA nodes: keep a shard's memory on its node (pinning does that for the shard's allocations)",
                self.nodes().len()
            ));
        }
        if acceptor.is_none() {
            acceptor = shards.first().copied();
        }
        Placement {
            shards,
            acceptor,
            loadgen,
            irq_cpus,
            notes,
        }
    }

    /// Where the network interrupts should go so that no shard services
    /// them: the plan's interrupt CPUs, else the CPUs no shard and no load
    /// generator uses; nothing to move when every CPU runs a shard.
    pub fn irq_moves(&self, p: &Placement) -> Vec<IrqMove> {
        let target: Vec<usize> = if p.irq_cpus.is_empty() {
            self.cpus
                .iter()
                .map(|c| c.id)
                .filter(|c| !p.shards.contains(c) && !p.loadgen.contains(c))
                .collect()
        } else {
            p.irq_cpus.clone()
        };
        if target.is_empty() {
            return Vec::new();
        }
        self.net_irq_lines
            .iter()
            .map(|&irq| IrqMove {
                irq,
                cpus: target.clone(),
            })
            .collect()
    }

    /// A Markdown summary with the plan.
    pub fn markdown(&self, p: &Placement) -> String {
        let mut s = String::new();
        let cores = self.physical_cores();
        let _ = writeln!(s, "## CPU topology\n");
        let _ = writeln!(
            s,
            "- {} logical CPUs, {} physical cores, {} NUMA node(s){}",
            self.cpus.len(),
            cores.len(),
            self.nodes().len(),
            self.quota
                .map_or(String::new(), |q| format!(", cgroup quota {q:.2} CPUs"))
        );
        if !self.net_irqs.is_empty() {
            let _ = writeln!(s, "- network interrupts per CPU: {:?}", self.net_irqs);
        }
        let list = |v: &[usize]| {
            v.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = writeln!(s, "\n## Placement\n");
        let _ = writeln!(
            s,
            "- shards ({}): `--cores {}`",
            p.shards.len(),
            list(&p.shards)
        );
        if !p.irq_cpus.is_empty() {
            let _ = writeln!(
                s,
                "- kept for network interrupts: CPUs {}",
                list(&p.irq_cpus)
            );
        }
        if let Some(a) = p.acceptor {
            let _ = writeln!(s, "- acceptor: CPU {a}");
        }
        if !p.loadgen.is_empty() {
            let _ = writeln!(
                s,
                "- load generator: `taskset -c {}` (or `--cores {}`)",
                list(&p.loadgen),
                list(&p.loadgen)
            );
        }
        for n in &p.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }
}

/// This process's effective user id, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Points each interrupt line where `moves` says, under `root` (`/` for
/// this machine, which takes root). Every move is tried; the error lists
/// those the kernel refused (a managed IRQ's affinity cannot be set).
pub fn apply_irq_moves(root: &Path, moves: &[IrqMove]) -> Result<(), String> {
    if root == Path::new("/") && effective_uid() != Some(0) {
        return Err(
            "--apply-irq writes /proc/irq/*/smp_affinity_list: run it as root (without it, the commands are printed)"
                .into(),
        );
    }
    let mut refused = Vec::new();
    for m in moves {
        let path = root.join(format!("proc/irq/{}/smp_affinity_list", m.irq));
        if let Err(e) = std::fs::write(&path, format!("{}\n", cpu_list(&m.cpus))) {
            refused.push(format!("IRQ {}: {e}", m.irq));
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} interrupt lines not moved: {}",
            refused.len(),
            moves.len(),
            refused.join("; ")
        ))
    }
}
