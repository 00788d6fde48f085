//! Topology parsing and placement on fixture /proc and /sys trees: SMT
//! siblings, NUMA nodes, a cgroup quota and cpuset, network interrupts, and
//! a box too small to give the load generator its own cores.

use shardloop_tune::topology::{parse_cpu_list, Topology};
use std::path::{Path, PathBuf};

/// Writes a fixture tree: `cpus` as (id, package, core, node).
fn fixture(name: &str, cpus: &[(usize, usize, usize, usize)], extra: &[(&str, &str)]) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sl-topo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let put = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let ids: Vec<String> = cpus.iter().map(|c| c.0.to_string()).collect();
    put("sys/devices/system/cpu/online", &ids.join(","));
    let mut nodes: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    for &(id, pkg, core, node) in cpus {
        let t = format!("sys/devices/system/cpu/cpu{id}/topology");
        put(&format!("{t}/physical_package_id"), &format!("{pkg}\n"));
        put(&format!("{t}/core_id"), &format!("{core}\n"));
        nodes.entry(node).or_default().push(id.to_string());
    }
    for (node, list) in nodes {
        put(
            &format!("sys/devices/system/node/node{node}/cpulist"),
            &list.join(","),
        );
    }
    for (rel, text) in extra {
        put(rel, text);
    }
    root
}

fn read(root: &Path) -> Topology {
    Topology::read(root).unwrap()
}

#[test]
fn cpu_lists_parse() {
    assert_eq!(
        parse_cpu_list("0-3,8,10-11\n").unwrap(),
        vec![0, 1, 2, 3, 8, 10, 11]
    );
    assert!(parse_cpu_list("3-1").is_err());
    assert!(parse_cpu_list("a").is_err());
}

#[test]
fn smt_siblings_get_one_shard_per_physical_core_and_the_loadgen_its_own() {
    // 4 cores × 2 threads: siblings are n and n+4, as on most x86 boxes.
    let cpus: Vec<_> = (0..8).map(|id| (id, 0, id % 4, 0)).collect();
    let root = fixture("smt", &cpus, &[]);
    let t = read(&root);
    assert_eq!(t.physical_cores().len(), 4);
    let p = t.plan(1);
    assert_eq!(p.shards, vec![0, 1, 2]);
    assert_eq!(
        p.loadgen,
        vec![3, 7],
        "the last physical core, both threads"
    );
    assert!(p.notes.iter().any(|n| n.contains("SMT")), "{:?}", p.notes);
    let md = t.markdown(&p);
    assert!(
        md.contains("`--cores 0,1,2`") && md.contains("taskset -c 3,7"),
        "{md}"
    );
}

#[test]
fn numa_quota_cpuset_and_interrupts_shape_the_plan() {
    // 2 sockets × 4 cores, one NUMA node each; the cgroup allows CPUs 0-6
    // and 5.5 CPUs of time; eth0's queues interrupt CPU 0 mostly.
    let cpus: Vec<_> = (0..8).map(|id| (id, id / 4, id % 4, id / 4)).collect();
    let interrupts = "           CPU0       CPU1       CPU2       CPU3       CPU4       CPU5       CPU6       CPU7\n\
  24:    9000000        100          0          0          0          0          0          0   PCI-MSI 1-edge      eth0-TxRx-0\n\
  25:         10         20          0          0          0          0          0          0   PCI-MSI 2-edge      nvme0q1\n\
  26:    8000000          0          0          0          0          0          0          0   PCI-MSI 3-edge      eth0-TxRx-1\n";
    let root = fixture(
        "numa",
        &cpus,
        &[
            ("sys/fs/cgroup/cpuset.cpus.effective", "0-6\n"),
            ("sys/fs/cgroup/cpu.max", "550000 100000\n"),
            ("proc/interrupts", interrupts),
        ],
    );
    let t = read(&root);
    assert_eq!(t.cpus.len(), 7, "the cpuset leaves 7 CPUs");
    assert_eq!(t.nodes().len(), 2);
    assert_eq!(t.quota, Some(5.5));
    assert_eq!(t.net_irqs.get(&0), Some(&17_000_000), "nvme is not network");
    let p = t.plan(0);
    assert_eq!(p.acceptor, Some(0), "the interrupt core takes the acceptor");
    assert!(!p.shards.contains(&0), "{:?}", p.shards);
    assert_eq!(
        p.shards.len(),
        5,
        "5.5 CPUs of quota: 5 shards: {:?}",
        p.shards
    );
    assert!(p.notes.iter().any(|n| n.contains("quota")));
    assert!(p.notes.iter().any(|n| n.contains("NUMA")));
    assert!(p.notes.iter().any(|n| n.contains("interrupts")));
}

#[test]
fn a_two_core_box_cannot_spare_cores_for_the_load_generator() {
    let root = fixture(
        "small",
        &[(0, 0, 0, 0), (1, 0, 1, 0)],
        &[("sys/fs/cgroup/cpu.max", "max 100000\n")],
    );
    let t = read(&root);
    assert_eq!(t.quota, None, "\"max\" is no limit");
    let p = t.plan(2);
    assert!(p.loadgen.is_empty());
    assert_eq!(p.shards, vec![0, 1]);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("cannot give the load generator its own cores")),
        "{:?}",
        p.notes
    );
}

#[test]
fn this_machine_reads() {
    let t = Topology::read(Path::new("/")).unwrap();
    assert!(!t.cpus.is_empty());
    let p = t.plan(0);
    assert!(!p.shards.is_empty());
}
