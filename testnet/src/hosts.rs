//! Where the nodes run: all on 127.0.0.1 (the default), or each in a network namespace of
//! its own, with its own address on a private bridge (`init --hosts netns`), so that one
//! machine runs a network that behaves like separate hosts: traffic between two nodes crosses
//! a link that `partition` and `loss` can cut or thin (`faults.rs`).
//!
//! The namespaces, links and bridge are made by `up` (and again by `restart`, if gone) and
//! removed by `down`, which works from `testnet.json` alone: after a crash of this tool, or
//! of the machine's shell, `down` still finds and removes everything the testnet made.

use std::collections::HashSet;
use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// How the nodes are placed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hosts {
    /// Every node on 127.0.0.1, each on its own ports.
    #[default]
    Loopback,
    /// Every node in its own network namespace, on the bridge `cb-TAG`, at `PREFIX.(i+1)`;
    /// this machine is `PREFIX.254` on the bridge.
    Netns {
        /// Names this testnet's namespaces and links apart from any other's.
        tag: String,
        /// The first three octets of the /24 the bridge carries.
        prefix: [u8; 3],
    },
}

impl Hosts {
    /// A fresh plan for `--hosts netns`: needs root and `ip`; picks a tag and a /24 no
    /// interface here uses.
    pub fn plan_netns() -> anyhow::Result<Hosts> {
        if !is_root() {
            bail!(
                "--hosts netns makes network namespaces, a bridge and firewall rules: run as root \
                 (or use the default --hosts loopback)"
            );
        }
        if Command::new("ip").arg("-V").output().is_err() {
            bail!("--hosts netns needs the `ip` command (Debian: apt-get install iproute2)");
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        let mut x = seed;
        let used = addresses_in_use()?;
        for _ in 0..256 {
            x = splitmix(x);
            let prefix = [10, 200 + (x % 50) as u8, (x >> 8) as u8];
            if !used.contains(&prefix) {
                let tag = format!("{:06x}", (x >> 16) & 0xff_ffff);
                return Ok(Hosts::Netns { tag, prefix });
            }
        }
        bail!("found no free 10.x.y.0/24 for the testnet's bridge")
    }

    /// Node `i`'s address.
    pub fn address(&self, i: usize) -> String {
        match self {
            Hosts::Loopback => "127.0.0.1".into(),
            Hosts::Netns {
                prefix: [a, b, c], ..
            } => format!("{a}.{b}.{c}.{}", i + 1),
        }
    }

    /// The namespace node `i` runs in, if any.
    pub fn namespace(&self, i: usize) -> Option<String> {
        match self {
            Hosts::Loopback => None,
            Hosts::Netns { tag, .. } => Some(format!("cairn-{tag}-{i}")),
        }
    }

    /// Makes whatever of node `i`'s namespace, link and the bridge is missing.
    pub fn set_up(&self, i: usize) -> anyhow::Result<()> {
        let Hosts::Netns {
            tag,
            prefix: [a, b, c],
        } = self
        else {
            return Ok(());
        };
        let bridge = format!("cb-{tag}");
        if !link_exists(&bridge) {
            ip(&["link", "add", &bridge, "type", "bridge"])?;
            ip(&[
                "addr",
                "add",
                &format!("{a}.{b}.{c}.254/24"),
                "dev",
                &bridge,
            ])?;
            ip(&["link", "set", &bridge, "up"])?;
        }
        let ns = format!("cairn-{tag}-{i}");
        let exists = namespaces()?.contains(&ns);
        if exists && ns_has_link(&ns, "eth0") {
            return Ok(());
        }
        let (outside, inside) = (format!("cv{tag}{i}"), format!("cp{tag}{i}"));
        // Whatever an interrupted run half made goes first.
        if exists {
            ip(&["netns", "del", &ns])?;
        }
        del_link(&outside)?;
        ip(&["netns", "add", &ns])?;
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ])?;
        ip(&["link", "set", &inside, "netns", &ns])?;
        ip(&["link", "set", &outside, "master", &bridge, "up"])?;
        ip(&["-n", &ns, "link", "set", &inside, "name", "eth0"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", self.address(i)),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Removes every namespace, link and the bridge of this testnet, first killing any
    /// process still inside a namespace (the nodes were stopped by PID before). Whatever is
    /// already gone is skipped.
    pub fn tear_down(&self, nodes: usize) -> anyhow::Result<usize> {
        let Hosts::Netns { tag, .. } = self else {
            return Ok(0);
        };
        let present = namespaces()?;
        let mut removed = 0;
        for i in 0..nodes {
            let ns = format!("cairn-{tag}-{i}");
            if !present.contains(&ns) {
                continue;
            }
            if let Ok(o) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            // The link first: a deleted namespace's devices go away in the background.
            del_link(&format!("cv{tag}{i}"))?;
            ip(&["netns", "del", &ns])?;
            removed += 1;
        }
        for i in 0..nodes {
            del_link(&format!("cv{tag}{i}"))?;
        }
        del_link(&format!("cb-{tag}"))?;
        Ok(removed)
    }

    /// The command that runs `program` as node `i`: itself, or `ip netns exec NS program`
    /// (which execs it, so the PID is the program's).
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        match self.namespace(i) {
            None => Command::new(program),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns]).arg(program);
                c
            }
        }
    }
}

/// Runs `ip ARGS`, failing with what it printed.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !o.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

/// Deletes the link `name` if it is there; one that vanishes meanwhile is gone all the same.
fn del_link(name: &str) -> anyhow::Result<()> {
    if !link_exists(name) {
        return Ok(());
    }
    match ip(&["link", "del", name]) {
        Err(_) if !link_exists(name) => Ok(()),
        r => r,
    }
}

/// Whether `link` exists inside the namespace `ns`.
fn ns_has_link(ns: &str, link: &str) -> bool {
    Command::new("ip")
        .args(["-n", ns, "link", "show", link])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn namespaces() -> anyhow::Result<HashSet<String>> {
    let o = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("running ip netns list")?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The /24 prefixes of every IPv4 address on this machine's interfaces.
fn addresses_in_use() -> anyhow::Result<HashSet<[u8; 3]>> {
    let o = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .context("running ip addr")?;
    let mut used = HashSet::new();
    for word in String::from_utf8_lossy(&o.stdout).split_whitespace() {
        let addr = word.split('/').next().unwrap_or("");
        let octets: Vec<u8> = addr.split('.').filter_map(|p| p.parse().ok()).collect();
        if octets.len() == 4 && word.contains('/') {
            used.insert([octets[0], octets[1], octets[2]]);
        }
    }
    Ok(used)
}

/// Whether this process runs as root (`Uid:` in `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// One step of SplitMix64: a well-mixed 64-bit sequence from any seed.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
