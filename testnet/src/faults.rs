//! Network faults between nodes that run as hosts (`--hosts netns`): partitions (groups,
//! one-way, isolation, a bridge) and random packet loss per link, as iptables rules inside
//! each node's namespace; `heal` removes them. Delay needs the kernel's `netem` queueing
//! discipline, which not every kernel has: [`netem_available`] asks the kernel itself.
//!
//! Each namespace gets two chains hooked into INPUT: `CAIRN_PART` (the partition) and
//! `CAIRN_LOSS` (loss), so a new partition leaves the loss as it is and the other way round.
//! A rule drops packets *arriving* from a peer's address, so cutting both directions of a link
//! puts a rule on each side. The API, reached from this machine's end of the bridge, is never
//! cut: the testnet tool and clients still see every node.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::State;
use crate::hosts::Hosts;

/// A directed link: packets from `from` to `to` (node indices).
pub type Link = (usize, usize);

/// The faults in force, kept in `DIR/faults.json` for `status` and `heal`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// What the partition is, for people (`None`: whole).
    pub partition: Option<String>,
    /// Cut directed links.
    pub cut: BTreeSet<Link>,
    /// Loss per directed link, as a probability in (0, 1].
    pub loss: Vec<(Link, f64)>,
}

/// Parses a comma-separated list of node names (`node0,node2`) into indices.
pub fn parse_group(names: &[String], group: &str) -> anyhow::Result<Vec<usize>> {
    group
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            names
                .iter()
                .position(|n| n == s)
                .with_context(|| format!("no node {s:?}; nodes are {}", names.join(", ")))
        })
        .collect()
}

/// Every directed link between different groups; each node must be in exactly one group.
pub fn groups_cut(n: usize, groups: &[Vec<usize>]) -> anyhow::Result<BTreeSet<Link>> {
    let mut of = vec![None; n];
    for (g, members) in groups.iter().enumerate() {
        for &m in members {
            if of[m].replace(g).is_some() {
                bail!("node{m} is in two groups");
            }
        }
    }
    if let Some(m) = of.iter().position(Option::is_none) {
        bail!("node{m} is in no group: name every node once (or use --isolate)");
    }
    let mut cut = BTreeSet::new();
    for a in 0..n {
        for b in 0..n {
            if of[a] != of[b] {
                cut.insert((a, b));
            }
        }
    }
    Ok(cut)
}

/// `node` cut off from every other node, both ways.
pub fn isolate_cut(n: usize, node: usize) -> BTreeSet<Link> {
    (0..n)
        .filter(|&o| o != node)
        .flat_map(|o| [(o, node), (node, o)])
        .collect()
}

/// The others split into two halves (by index) that cannot reach each other; `bridge` reaches
/// both (Jepsen's "bridge": each half can reach a majority through it).
pub fn bridge_cut(n: usize, bridge: usize) -> BTreeSet<Link> {
    let others: Vec<usize> = (0..n).filter(|&o| o != bridge).collect();
    let (left, right) = others.split_at(others.len() / 2);
    let mut cut = BTreeSet::new();
    for &a in left {
        for &b in right {
            cut.insert((a, b));
            cut.insert((b, a));
        }
    }
    cut
}

/// How `partition` was asked to cut.
pub struct Shape {
    pub groups: Vec<String>,
    pub isolate: Option<String>,
    pub one_way: Option<Vec<String>>,
    pub bridge: Option<String>,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("faults.json")
}

/// The faults in force, as the commands recorded them.
pub fn load(dir: &Path) -> Faults {
    std::fs::read_to_string(path(dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save(dir: &Path, f: &Faults) -> anyhow::Result<()> {
    std::fs::write(path(dir), serde_json::to_string_pretty(f)?)?;
    Ok(())
}

/// Forgets the faults in force (after `heal` or `down`).
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_file(path(dir));
}

/// `cairn-testnet partition`.
pub fn partition_cmd(dir: &Path, st: &State, shape: &Shape) -> anyhow::Result<()> {
    let names: Vec<String> = st.nodes.iter().map(|n| n.name.clone()).collect();
    let n = names.len();
    let one = |name: &str| -> anyhow::Result<usize> {
        parse_group(&names, name)?
            .first()
            .copied()
            .ok_or_else(|| anyhow!("name a node"))
    };
    let (what, cut) = if let Some(node) = &shape.isolate {
        (format!("{node} isolated"), isolate_cut(n, one(node)?))
    } else if let Some(pair) = &shape.one_way {
        let (a, b) = (one(&pair[0])?, one(&pair[1])?);
        (
            format!("{} -/-> {}", pair[0], pair[1]),
            [(a, b)].into_iter().collect(),
        )
    } else if let Some(node) = &shape.bridge {
        (format!("bridge through {node}"), bridge_cut(n, one(node)?))
    } else {
        if shape.groups.len() < 2 {
            bail!(
                "name at least two groups (partition node0,node1 node2,node3), or use --isolate, --one-way or --bridge"
            );
        }
        let parsed = shape
            .groups
            .iter()
            .map(|g| parse_group(&names, g))
            .collect::<anyhow::Result<Vec<_>>>()?;
        (shape.groups.join(" | "), groups_cut(n, &parsed)?)
    };
    apply_cut(&st.hosts, n, &cut)?;
    let mut f = load(dir);
    f.partition = Some(what.clone());
    f.cut = cut;
    save(dir, &f)?;
    println!("partition in force: {what} (`cairn-testnet heal` removes it)");
    Ok(())
}

/// `cairn-testnet loss`.
pub fn loss_cmd(dir: &Path, st: &State, percent: f64, nodes: &[String]) -> anyhow::Result<()> {
    let names: Vec<String> = st.nodes.iter().map(|n| n.name.clone()).collect();
    if !(0.0..=100.0).contains(&percent) {
        bail!("--percent must be within 0..=100");
    }
    let among = if nodes.is_empty() {
        (0..names.len()).collect()
    } else {
        parse_group(&names, &nodes.join(","))?
    };
    let mut loss = Vec::new();
    if percent > 0.0 {
        for &a in &among {
            for &b in among.iter().filter(|&&b| b != a) {
                loss.push(((a, b), percent / 100.0));
            }
        }
    }
    apply_loss(&st.hosts, names.len(), &loss)?;
    let mut f = load(dir);
    f.loss = loss;
    save(dir, &f)?;
    println!(
        "{percent}% packet loss on the links among {} node(s)",
        among.len()
    );
    Ok(())
}

/// `cairn-testnet delay`.
pub fn delay_cmd(st: &State, ms: u64) -> anyhow::Result<()> {
    if !netem_available() {
        bail!(
            "this kernel has no netem queueing discipline (`tc qdisc … netem` fails), so delay cannot be added here; partitions and loss work"
        );
    }
    apply_delay(&st.hosts, st.nodes.len(), ms)?;
    println!("{ms} ms delay on every node's link");
    Ok(())
}

/// `cairn-testnet heal`.
pub fn heal_cmd(dir: &Path, st: &State) -> anyhow::Result<()> {
    let n = st.nodes.len();
    apply_cut(&st.hosts, n, &BTreeSet::new())?;
    apply_loss(&st.hosts, n, &[])?;
    if netem_available() {
        apply_delay(&st.hosts, n, 0)?;
    }
    forget(dir);
    println!("healed: no partition, loss or delay in force");
    Ok(())
}

/// Sets the partition to `cut` (replacing the previous one), in every namespace.
pub fn apply_cut(hosts: &Hosts, n: usize, cut: &BTreeSet<Link>) -> anyhow::Result<()> {
    for to in 0..n {
        let ns = namespace(hosts, to)?;
        chain(&ns, "CAIRN_PART")?;
        for &(from, _) in cut.iter().filter(|(_, t)| *t == to) {
            iptables(
                &ns,
                &["-A", "CAIRN_PART", "-s", &hosts.address(from), "-j", "DROP"],
            )?;
        }
    }
    Ok(())
}

/// Sets the loss to `loss` (replacing the previous one), in every namespace.
pub fn apply_loss(hosts: &Hosts, n: usize, loss: &[(Link, f64)]) -> anyhow::Result<()> {
    for to in 0..n {
        let ns = namespace(hosts, to)?;
        chain(&ns, "CAIRN_LOSS")?;
        for &((from, _), p) in loss.iter().filter(|((_, t), _)| *t == to) {
            iptables(
                &ns,
                &[
                    "-A",
                    "CAIRN_LOSS",
                    "-s",
                    &hosts.address(from),
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &format!("{p:.4}"),
                    "-j",
                    "DROP",
                ],
            )?;
        }
    }
    Ok(())
}

/// Sets a delay of `ms` on every node's link (0: none). Needs netem ([`netem_available`]).
pub fn apply_delay(hosts: &Hosts, n: usize, ms: u64) -> anyhow::Result<()> {
    for i in 0..n {
        let ns = namespace(hosts, i)?;
        let tc = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &ns, "tc", "qdisc"])
                .args(args)
                .output()
        };
        // Whatever was there goes; "no such qdisc" is fine.
        let _ = tc(&["del", "dev", "eth0", "root"]);
        if ms > 0 {
            let o = tc(&[
                "add",
                "dev",
                "eth0",
                "root",
                "netem",
                "delay",
                &format!("{ms}ms"),
            ])
            .context("running tc")?;
            if !o.status.success() {
                bail!(
                    "tc netem in {ns}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
        }
    }
    Ok(())
}

/// Whether this kernel offers `netem` (delay): tried on a throwaway namespace's loopback.
pub fn netem_available() -> bool {
    let ns = format!("cairn-netem-probe-{}", std::process::id());
    if crate::hosts::ip(&["netns", "add", &ns]).is_err() {
        return false;
    }
    let ok = Command::new("ip")
        .args([
            "netns", "exec", &ns, "tc", "qdisc", "add", "dev", "lo", "root",
        ])
        .args(["netem", "delay", "1ms"])
        .output()
        .is_ok_and(|o| o.status.success());
    let _ = crate::hosts::ip(&["netns", "del", &ns]);
    ok
}

/// Whether `iptables` can be run here.
pub fn iptables_available() -> bool {
    Command::new("iptables")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn namespace(hosts: &Hosts, i: usize) -> anyhow::Result<String> {
    hosts.namespace(i).with_context(|| {
        "network faults need nodes that run as hosts: `cairn-testnet init --hosts netns` \
         (as root); on 127.0.0.1 every node shares one network"
    })
}

/// Makes `name` in `ns`, hooked into INPUT once (also when an interrupted run made the chain
/// but not the hook), and empties it.
fn chain(ns: &str, name: &str) -> anyhow::Result<()> {
    if iptables(ns, &["-n", "-L", name]).is_err() {
        iptables(ns, &["-N", name])?;
    }
    if iptables(ns, &["-C", "INPUT", "-j", name]).is_err() {
        iptables(ns, &["-I", "INPUT", "-j", name])?;
    }
    iptables(ns, &["-F", name])
}

fn iptables(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "iptables", "-w"])
        .args(args)
        .output()
        .context("running iptables")?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("No such file") && err.contains("iptables") || !iptables_available() {
            bail!("iptables is not installed (Debian: apt-get install iptables)");
        }
        bail!("iptables {} in {ns}: {}", args.join(" "), err.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cut_every_link_between_groups_and_none_inside() {
        let cut = groups_cut(4, &[vec![0, 1], vec![2, 3]]).expect("valid");
        assert_eq!(cut.len(), 8);
        assert!(cut.contains(&(0, 2)) && cut.contains(&(3, 1)));
        assert!(!cut.contains(&(0, 1)) && !cut.contains(&(2, 3)));
        assert!(
            groups_cut(4, &[vec![0, 1], vec![2]]).is_err(),
            "node3 missing"
        );
        assert!(
            groups_cut(4, &[vec![0, 1], vec![1, 2, 3]]).is_err(),
            "node1 twice"
        );
    }

    #[test]
    fn isolation_and_bridge_cut_what_they_say() {
        let iso = isolate_cut(4, 2);
        assert_eq!(iso.len(), 6);
        assert!(iso.iter().all(|&(a, b)| a == 2 || b == 2));
        let br = bridge_cut(5, 2);
        // Halves {0,1} and {3,4}; node2 reaches everyone.
        assert_eq!(br.len(), 8);
        assert!(br.iter().all(|&(a, b)| a != 2 && b != 2));
        assert!(br.contains(&(0, 3)) && !br.contains(&(0, 1)));
    }
}
