//! A placement file applied: each shard thread and the acceptor run on the
//! CPUs the plan gives them (read back from the kernel, thread by thread),
//! and a plan for another machine is refused at build with the reason.

use crate::common::*;
use shardloop::{Conn, Placement, Protocol, Server};
use std::io::{BufRead, BufReader};

/// Says which thread runs it and where that thread may run.
struct WhereAmI;
impl Protocol for WhereAmI {
    type Message = ();
    fn connection_made(&mut self, conn: &mut Conn<'_, Self>) {
        let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("?")
            .trim();
        conn.write(format!("{} {cpus}\n", comm.trim()).as_bytes());
    }
    fn data_received(&mut self, _: &mut Conn<'_, Self>, _: &[u8]) {}
}

/// The CPUs each of this process's threads whose name starts with
/// `prefix` may run on (`Cpus_allowed_list`), by thread name.
fn affinities(prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        let name = name.trim().to_string();
        if !name.starts_with(prefix) {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
            out.push((name, l.split_once(':').unwrap().1.trim().to_string()));
        }
    }
    out.sort();
    out
}

fn cpus_here() -> Vec<usize> {
    let mut v: Vec<usize> = core_affinity::get_core_ids()
        .expect("this process's CPUs")
        .into_iter()
        .map(|c| c.id)
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn shard_threads_and_the_acceptor_run_where_the_plan_says() {
    let cpus = cpus_here();
    // The last CPU for the one shard, the first for the acceptor (one CPU
    // only: both there is refused, so the shard takes it alone).
    let plan = if cpus.len() >= 2 {
        format!(
            "shards = [{}]\nacceptor = {}\n",
            cpus[cpus.len() - 1],
            cpus[0]
        )
    } else {
        format!("shards = [{}]\n", cpus[0])
    };
    let dir = std::env::temp_dir().join(format!("placement-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("placement.toml");
    std::fs::write(&file, &plan).unwrap();
    let placement = Placement::load(&file).unwrap();
    let (h, addr) = started(
        Server::builder()
            .placement(placement.clone())
            // An acceptor thread even for one shard (it holds connections
            // back while the shard is saturated).
            .admission(shardloop::Admission::default())
            .listen("127.0.0.1:0", |_| |_| WhereAmI),
    );
    // The shard thread says where it runs.
    let mut line = String::new();
    BufReader::new(connect(addr)).read_line(&mut line).unwrap();
    let (thread, cpus) = line.trim().split_once(' ').expect("name and CPUs");
    assert!(thread.ends_with("-shard0"), "{line}");
    assert_eq!(cpus, placement.shards[0].to_string(), "{plan}");
    // Its server's acceptor, found by the same name prefix.
    let prefix = thread.strip_suffix("shard0").unwrap();
    let got = affinities(prefix);
    if let Some(a) = placement.acceptor {
        assert!(
            got.contains(&(format!("{prefix}acceptor"), a.to_string())),
            "{plan}: {got:?}"
        );
    }
    assert_eq!(h.shards(), 1);
    h.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_plan_for_another_machine_is_refused_at_build_with_the_reason() {
    let beyond = cpus_here().last().unwrap() + 1000;
    let plan: Placement = format!("shards = [{beyond}]").parse().unwrap();
    let e = Server::builder()
        .placement(plan)
        .listen("127.0.0.1:0", |_| |_| Echo)
        .build()
        .err()
        .expect("refused");
    let e = e.to_string();
    assert!(
        e.contains(&format!("CPU {beyond}")) && e.contains("another machine"),
        "{e}"
    );
}
