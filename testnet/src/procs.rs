//! The node processes of a testnet: finding them by PID (never mistaking another process for
//! one), starting them (in their namespace, when nodes run as hosts), signalling, stopping and
//! waiting for readiness.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use cairn_api::client::Client;

use crate::hosts::Hosts;
use crate::{NodeInfo, State};

pub fn find<'a>(st: &'a State, name: &str) -> anyhow::Result<&'a NodeInfo> {
    st.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
        let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
        anyhow!("no node {name:?}; nodes are {}", names.join(", "))
    })
}

pub fn node_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("CAIRN_NODE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("locating cairn-testnet")?;
    let sibling = me.with_file_name("cairn-node");
    if sibling.exists() {
        return Ok(sibling);
    }
    bail!(
        "cairn-node not found next to {} (build it with `cargo build --workspace`, or set CAIRN_NODE_BIN)",
        me.display()
    )
}

/// glibc malloc settings for every node started here (see `start`).
const MALLOC_TUNING: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
];

/// A node's home as the node was started with it (absolute), so that processes can be
/// recognised from any working directory.
pub fn home_of(dir: &Path, node: &str) -> PathBuf {
    let home = dir.join(node);
    home.canonicalize().unwrap_or(home)
}

pub fn pid_of(dir: &Path, node: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(node).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_node(pid, &home_of(dir, node)).then_some(pid)
}

/// Alive (not a zombie), and running `run --home HOME` for this very node: a PID reused by
/// anything else, another testnet's node included, is never taken for ours.
pub fn is_node(pid: u32, home: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let home = home.as_os_str().as_encoded_bytes();
    !zombie
        && args
            .windows(3)
            .any(|w| w[0] == b"run" && w[1] == b"--home" && w[2] == home)
}

/// Waits (up to 5 s) until `pid` no longer runs node `home`.
pub fn wait_gone(pid: u32, home: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_node(pid, home) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .context("running kill")?
        .success();
    if !ok {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// Starts node `n` (if it is not running) with `env` added to its environment.
pub fn start(
    dir: &Path,
    hosts: &Hosts,
    n: &NodeInfo,
    env: &[(&str, String)],
) -> anyhow::Result<u32> {
    if let Some(pid) = pid_of(dir, &n.name) {
        return Ok(pid);
    }
    let bin = node_binary()?;
    hosts
        .set_up(n.index())
        .with_context(|| format!("making {}'s network namespace", n.name))?;
    let home = home_of(dir, &n.name);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))?;
    use std::os::unix::process::CommandExt;
    let mut cmd = hosts.command(n.index(), &bin);
    // Each node's settings are in its home: a CAIRN_API_LISTEN (say) set in this shell would
    // give every node the same port, so no CAIRN_ variable reaches them.
    // (CAIRN_PLANTED_BUG, which only debug builds read, is for the chaos checker's test.)
    for (k, _) in std::env::vars_os() {
        if k.to_str()
            .is_some_and(|k| k.starts_with("CAIRN_") && k != "CAIRN_PLANTED_BUG")
        {
            cmd.env_remove(k);
        }
    }
    // glibc's malloc tuned as the systemd unit and the container image tune it: two arenas,
    // and allocations of 128 KiB and more always mapped on their own, so what is freed goes
    // back to the system. With glibc's defaults a node's RSS climbs with the chain
    // (ARCHITECTURE.md, "Storage"). One set in this shell wins.
    for (k, v) in MALLOC_TUNING {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let child = cmd
        .args(["run", "--home"])
        .arg(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own process group: a Ctrl-C in this shell does not reach the nodes.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    // Until the child has exec'd, /proc shows this program: wait for the switch.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_node(pid, &home) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(home.join("pid"), format!("{pid}\n"))?;
    Ok(pid)
}

pub async fn wait_ready(dir: &Path, nodes: &[NodeInfo], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for n in nodes {
            if pid_of(dir, &n.name).is_none() {
                bail!(
                    "{} exited; its log ends with:\n{}",
                    n.name,
                    tail(&dir.join(&n.name).join("node.log"), 15)
                );
            }
            let ok = client(n)?.ready().await.is_ok();
            if !ok {
                waiting.push(n.name.as_str());
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "not ready after {} s: {} (see `cairn-testnet logs NODE`)",
                timeout.as_secs(),
                waiting.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A client of `n`'s API that gives up quickly: a node that does not answer in 5 s is
/// reported as unresponsive.
pub fn client(n: &NodeInfo) -> anyhow::Result<Client> {
    Ok(Client::new(&n.api(), Duration::from_secs(5))?)
}

pub fn stop(dir: &Path, n: &NodeInfo) -> anyhow::Result<bool> {
    let Some(pid) = pid_of(dir, &n.name) else {
        return Ok(false);
    };
    // A paused node cannot act on SIGTERM. A process that is already gone is stopped.
    let _ = signal(pid, "CONT");
    let _ = signal(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_of(dir, &n.name).is_some() {
        if Instant::now() > deadline {
            let _ = signal(pid, "KILL");
            wait_gone(pid, &home_of(dir, &n.name));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(dir.join(&n.name).join("pid"));
    Ok(true)
}
