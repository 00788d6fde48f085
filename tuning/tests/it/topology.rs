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

/// Runs the tuner's command line; its output (stdout, stderr) and success.
fn tune(args: &[&str]) -> (String, String, bool) {
    use shardloop_devtools::{build, Target};
    let out = std::process::Command::new(build("shardloop-tune", Target::Bin("shardloop-tune")))
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn topology_writes_the_plan_and_moves_the_network_interrupts_off_the_shards() {
    // 6 cores; eth0's two queues interrupt CPU 0, the disk CPU 1.
    let cpus: Vec<_> = (0..6).map(|id| (id, 0, id, 0)).collect();
    let interrupts = "           CPU0       CPU1       CPU2       CPU3       CPU4       CPU5\n\
  24:    9000000        100          0          0          0          0   PCI-MSI 1-edge      eth0-TxRx-0\n\
  25:         10    5000000          0          0          0          0   PCI-MSI 2-edge      nvme0q1\n\
  26:    8000000          0          0          0          0          0   PCI-MSI 3-edge      eth0-TxRx-1\n";
    let root = fixture(
        "irq",
        &cpus,
        &[
            ("proc/interrupts", interrupts),
            ("proc/irq/24/smp_affinity_list", "0-5\n"),
            ("proc/irq/25/smp_affinity_list", "0-5\n"),
            ("proc/irq/26/smp_affinity_list", "0-5\n"),
        ],
    );
    let file = root.join("placement.toml");
    let (r, f) = (root.to_str().unwrap(), file.to_str().unwrap());
    // Dry run: the plan written, the commands printed, nothing moved.
    let (out, err, ok) = tune(&[
        "topology",
        "--root",
        r,
        "--loadgen-cores",
        "1",
        "--write",
        f,
    ]);
    assert!(ok, "{out}{err}");
    let plan = shardloop::Placement::load(&file).unwrap();
    assert_eq!(plan.irq_cpus, [0], "{out}");
    assert_eq!(plan.acceptor, Some(0));
    assert_eq!(plan.loadgen, [5]);
    assert_eq!(
        plan.shards,
        [1, 2, 3, 4],
        "off the interrupt and load generator CPUs"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# Written by shardloop-tune"), "{text}");
    for irq in [24, 26] {
        assert!(
            out.contains(&format!("echo 0 > /proc/irq/{irq}/smp_affinity_list")),
            "{out}"
        );
    }
    assert!(
        !out.contains("/proc/irq/25/"),
        "the disk's interrupts stay: {out}"
    );
    let affinity = |irq: u32| {
        std::fs::read_to_string(root.join(format!("proc/irq/{irq}/smp_affinity_list"))).unwrap()
    };
    assert_eq!(affinity(24), "0-5\n", "a dry run moves nothing");
    // Applied (to the fixture tree): the network lines point at CPU 0.
    let (out, err, ok) = tune(&[
        "topology",
        "--root",
        r,
        "--loadgen-cores",
        "1",
        "--apply-irq",
    ]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        (affinity(24), affinity(25), affinity(26)),
        ("0\n".into(), "0-5\n".into(), "0\n".into())
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_plan_written_for_this_machine_fits_it_and_a_foreign_plan_is_refused() {
    let dir = std::env::temp_dir().join(format!("sl-place-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("here.toml");
    let (out, err, ok) = tune(&["topology", "--write", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let plan = shardloop::Placement::load(&file).unwrap();
    plan.check().expect("this machine's own plan fits it");
    // A sweep refuses a plan for CPUs this machine does not have.
    let foreign = dir.join("foreign.toml");
    std::fs::write(&foreign, "shards = [4000, 4001]\n").unwrap();
    let (out, err, ok) = tune(&["--placement", foreign.to_str().unwrap(), "--shards", "1"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("CPU 4000") && err.contains("another machine"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
