//! `cairn-testnet`: a local Cairn network of real `cairn-node` processes.
//!
//! Everything lives in one directory (`--dir`, default `./testnet`): node homes, the genesis,
//! demo account keys, PIDs and logs. Every command reads its state from there, so they work
//! from any shell.

mod bench;
mod chaos;
mod faults;
mod hosts;
mod init;
mod procs;
mod procstat;
mod readers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use cairn_api::StatusView;
use cairn_cli::keystore::Keystore;
use clap::{Parser, Subcommand, ValueEnum};
use hosts::Hosts;
use procs::{client, find, home_of, pid_of, signal, start, stop, tail, wait_gone, wait_ready};
use serde::{Deserialize, Serialize};

/// The version with the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CAIRN_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(version = VERSION, verbatim_doc_comment)]
/// Run a local Cairn network: real node processes, on 127.0.0.1 or as hosts in network
/// namespaces, with state in one directory.
///
/// Typical session:
///   cairn-testnet init --nodes 4 --consensus pbft
///   cairn-testnet up
///   cairn-testnet status
///   cairn --node http://127.0.0.1:27100 --keystore testnet/accounts transfer --from account1 --to <id> --amount 5 --wait
///   cairn-testnet kill node0 && cairn-testnet restart node0
///   cairn-testnet down
///
/// Nodes as separate hosts (root): `init --hosts netns` puts each node in its own network
/// namespace; then `partition`, `loss` and `heal` cut and thin the links between them, and
/// `chaos` runs load under seeded faults and checks every node's chain afterwards.
struct Cli {
    /// The testnet directory.
    #[arg(
        long,
        global = true,
        default_value = "testnet",
        env = "CAIRN_TESTNET_DIR"
    )]
    dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum HostsArg {
    /// Every node on 127.0.0.1.
    Loopback,
    /// Every node in its own network namespace (root).
    Netns,
}

#[derive(Clone, Copy, ValueEnum, Serialize, Deserialize, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum Engine {
    Raft,
    Pbft,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create keys, a genesis with funded demo accounts, and a home per node.
    Init {
        /// Validators.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Consensus engine.
        #[arg(long, value_enum, default_value = "pbft")]
        consensus: Engine,
        /// First port: node i listens for peers on BASE+i and serves its API on BASE+100+i
        /// (0: any free ports).
        #[arg(long, default_value_t = 27000)]
        base_port: u16,
        /// Demo accounts (written unencrypted to DIR/accounts; account0 is an admin).
        #[arg(long, default_value_t = 4)]
        accounts: usize,
        /// Balance of each demo account.
        #[arg(long, default_value_t = 1_000_000_000)]
        balance: u64,
        /// Replace an existing testnet directory (it must be down).
        #[arg(long)]
        force: bool,
        /// The chain id: names the chain in every signature, 1..=64 of [A-Za-z0-9._-].
        #[arg(long, default_value = "cairn-local")]
        chain_id: String,
        /// Where nodes run: all on 127.0.0.1, or each in its own network namespace with its own
        /// address on a private bridge, like separate hosts (needs root; what `partition` and
        /// `loss` need). `up` makes the namespaces, `down` removes them.
        #[arg(long, value_enum, default_value = "loopback")]
        hosts: HostsArg,
    },
    /// Start every node in the background and wait until all are ready.
    Up {
        /// How long to wait for readiness, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// A table of the nodes: height, head, role, round, peers, mempool.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a node's log.
    Logs {
        /// Node name (node0, node1, …).
        node: String,
        /// Last lines to show.
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
    },
    /// SIGKILL a node (a crash).
    Kill {
        /// Node name.
        node: String,
    },
    /// Start a node again (stopping it first if it runs) and wait until it is ready.
    Restart {
        /// Node name.
        node: String,
        /// How long to wait for readiness, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// SIGSTOP a node (it freezes: a partition from everyone's point of view).
    Pause {
        /// Node name.
        node: String,
    },
    /// SIGCONT a paused node.
    Resume {
        /// Node name.
        node: String,
    },
    /// Stop every node (SIGTERM, then SIGKILL after 10 s); with `--hosts netns`, remove the
    /// namespaces, links and bridge too.
    Down,
    /// Cut links between nodes (needs `init --hosts netns`). Replaces the partition in force.
    ///   partition node0,node1 node2,node3   two groups that cannot reach each other
    ///   partition --isolate node2           node2 alone
    ///   partition --one-way node0 node1     node0's packets never reach node1 (a TCP
    ///                                       connection needs both ways: none forms)
    ///   partition --bridge node2            the others in two halves that only node2 joins
    #[command(verbatim_doc_comment)]
    Partition {
        /// Groups, each a comma-separated list of node names; every node in one.
        groups: Vec<String>,
        /// Cut this node off from all others.
        #[arg(long, conflicts_with_all = ["groups", "one_way", "bridge"])]
        isolate: Option<String>,
        /// FROM TO: drop FROM's packets at TO.
        #[arg(long, num_args = 2, value_names = ["FROM", "TO"], conflicts_with_all = ["groups", "bridge"])]
        one_way: Option<Vec<String>>,
        /// Split the others in two halves joined only through this node.
        #[arg(long, conflicts_with = "groups")]
        bridge: Option<String>,
    },
    /// Drop a share of packets at random on links (needs `init --hosts netns`): between the
    /// nodes named, or on every link. Replaces the loss in force; `--percent 0` removes it.
    Loss {
        /// Percent of packets dropped, each way.
        #[arg(long)]
        percent: f64,
        /// Nodes whose links to each other lose packets (default: every node).
        nodes: Vec<String>,
    },
    /// Add delay to links (needs the kernel's netem; says so where it is missing).
    Delay {
        /// Milliseconds.
        #[arg(long)]
        ms: u64,
    },
    /// Remove every partition and loss: the network is whole again.
    Heal,
    /// Run load under seeded faults, heal, wait for the nodes to agree, then check every
    /// node's whole chain against what the clients were told and an independent model of the
    /// state. Prints the figures; exits 1 on any violation. `--seed` replays the schedule.
    Chaos(chaos::Settings),
    /// Load the running network and measure it: committed tx/s, commit latency, rejections,
    /// and this machine's signature-verification bound. Funds fresh accounts from account0.
    /// With `--soak N`: N transactions in rounds of `--round`, each round's rate, latency and
    /// every node's memory, and a failure when the last round's rate is more than 10% below
    /// the first's or a node's memory keeps growing after the first half.
    Bench {
        /// Sending accounts.
        #[arg(long, default_value_t = 200)]
        accounts: usize,
        /// Transactions to send.
        #[arg(long, default_value_t = 20_000)]
        txs: usize,
        /// Target rate in tx/s (0: as fast as the network takes them).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Transactions per request, through `POST /api/v1/txs/batch` (1: one `POST
        /// /api/v1/txs` each, the single-transaction path). With `--rate`, a request goes at
        /// least every 10 ms, so batches are smaller at low rates.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1024))]
        batch: u64,
        /// Explorer clients reading while the load runs (account histories, block pages,
        /// blocks, event replays from height 1): compare the commit rate with and without.
        #[arg(long, default_value_t = 0)]
        readers: usize,
        /// A long run: this many transactions in all, in rounds (`--txs` is then ignored).
        #[arg(long)]
        soak: Option<usize>,
        /// Most transactions sent and not yet committed at any time; a sender waits for
        /// commits before it sends more. Default: no limit for a plain bench (the mempools
        /// take the whole load at once, and hold up to `mempool.txs_max`), 20,000 for a soak
        /// (a steady stream, as from clients that wait for their answers).
        #[arg(long)]
        window: Option<usize>,
        /// Transactions per soak round.
        #[arg(long, default_value_t = 100_000, requires = "soak")]
        round: usize,
        /// Fail the soak when a node's resident memory goes above this many MB.
        #[arg(long, requires = "soak")]
        max_rss_mb: Option<f64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `init` records.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    chain_id: String,
    consensus: Engine,
    /// Where the nodes run (a testnet made before hosts existed ran on loopback).
    #[serde(default)]
    hosts: Hosts,
    nodes: Vec<NodeInfo>,
    accounts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeInfo {
    name: String,
    public_key: String,
    /// Its address: 127.0.0.1, or its own on the testnet's bridge.
    #[serde(default = "loopback")]
    host: String,
    p2p_port: u16,
    api_port: u16,
}

fn loopback() -> String {
    "127.0.0.1".into()
}

impl NodeInfo {
    fn api(&self) -> String {
        format!("http://{}:{}", self.host, self.api_port)
    }

    /// Its index: `nodeI`.
    fn index(&self) -> usize {
        self.name
            .strip_prefix("node")
            .and_then(|i| i.parse().ok())
            .unwrap_or(0)
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("testnet.json")
}

fn load_state(dir: &Path) -> anyhow::Result<State> {
    let p = state_path(dir);
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "no testnet in {} (run `cairn-testnet --dir {} init` first)",
            dir.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", p.display()))
}

/// One row of `cairn-testnet status`.
#[derive(serde::Serialize)]
struct NodeRow {
    node: String,
    process: &'static str,
    pid: Option<u32>,
    api: String,
    status: Option<StatusView>,
}

async fn status(dir: &Path, st: &State, json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for n in &st.nodes {
        let pid = pid_of(dir, &n.name);
        let status = match pid {
            None => None,
            Some(_) => client(n)?.status().await.ok(),
        };
        let process = match (pid, &status) {
            (None, _) => "down",
            (Some(_), None) => "unresponsive",
            (Some(_), Some(_)) => "up",
        };
        rows.push(NodeRow {
            node: n.name.clone(),
            process,
            pid,
            api: n.api(),
            status,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<8} {:<13} {:>7} {:<14} {:<10} {:>6} {:>6} {:>8}  API",
        "NODE", "PROCESS", "HEIGHT", "HEAD", "ROLE", "ROUND", "PEERS", "MEMPOOL"
    );
    let dash = || "-".to_string();
    for r in rows {
        let s = r.status.as_ref();
        println!(
            "{:<8} {:<13} {:>7} {:<14} {:<10} {:>6} {:>6} {:>8}  {}",
            r.node,
            r.process,
            s.map_or_else(dash, |s| s.height.to_string()),
            s.map_or_else(dash, |s| s.head_hash.to_string()[..12].to_string()),
            s.map_or_else(dash, |s| s.role.to_string()),
            s.map_or_else(dash, |s| s.round.to_string()),
            s.map_or_else(dash, |s| s.peers.to_string()),
            s.map_or_else(dash, |s| s.mempool_txs.to_string()),
            r.api,
        );
    }
    let f = faults::load(dir);
    if let Some(p) = &f.partition {
        println!("partition in force: {p}");
    }
    if !f.loss.is_empty() {
        println!("packet loss in force on {} directed link(s)", f.loss.len());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dir = cli.dir;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Init {
            nodes,
            consensus,
            base_port,
            accounts,
            balance,
            force,
            chain_id,
            hosts,
        } => init::init(
            &dir,
            &init::Layout {
                hosts: match hosts {
                    HostsArg::Loopback => Hosts::Loopback,
                    HostsArg::Netns => Hosts::plan_netns()?,
                },
                nodes,
                engine: consensus,
                base: base_port,
                accounts,
                balance,
                chain_id,
            },
            force,
        ),
        Cmd::Up { timeout } => {
            let st = load_state(&dir)?;
            for n in &st.nodes {
                let pid = start(&dir, &st.hosts, n, &[])?;
                println!("started {} (pid {pid})", n.name);
            }
            rt.block_on(wait_ready(&dir, &st.nodes, Duration::from_secs(timeout)))?;
            println!("all {} nodes are ready:", st.nodes.len());
            for n in &st.nodes {
                println!("  {}  {}", n.name, n.api());
            }
            println!("next: cairn-testnet --dir {} status", dir.display());
            Ok(())
        }
        Cmd::Status { json } => {
            let st = load_state(&dir)?;
            rt.block_on(status(&dir, &st, json))
        }
        Cmd::Logs { node, lines } => {
            let st = load_state(&dir)?;
            let n = find(&st, &node)?;
            println!("{}", tail(&dir.join(&n.name).join("node.log"), lines));
            Ok(())
        }
        Cmd::Kill { node } => {
            let st = load_state(&dir)?;
            let n = find(&st, &node)?;
            let pid = pid_of(&dir, &n.name).ok_or_else(|| anyhow!("{node} is not running"))?;
            signal(pid, "KILL")?;
            // Gone before we say so: a restart right after must not meet its ports or store.
            wait_gone(pid, &home_of(&dir, &n.name));
            let _ = std::fs::remove_file(dir.join(&n.name).join("pid"));
            println!("killed {node} (pid {pid})");
            Ok(())
        }
        Cmd::Restart { node, timeout } => {
            let st = load_state(&dir)?;
            let n = find(&st, &node)?.clone();
            stop(&dir, &n)?;
            let pid = start(&dir, &st.hosts, &n, &[])?;
            rt.block_on(wait_ready(
                &dir,
                std::slice::from_ref(&n),
                Duration::from_secs(timeout),
            ))?;
            println!("restarted {node} (pid {pid}); it is ready");
            Ok(())
        }
        Cmd::Pause { node } => {
            let st = load_state(&dir)?;
            let n = find(&st, &node)?;
            let pid = pid_of(&dir, &n.name).ok_or_else(|| anyhow!("{node} is not running"))?;
            signal(pid, "STOP")?;
            println!("paused {node} (pid {pid}); `cairn-testnet resume {node}` continues it");
            Ok(())
        }
        Cmd::Resume { node } => {
            let st = load_state(&dir)?;
            let n = find(&st, &node)?;
            let pid = pid_of(&dir, &n.name).ok_or_else(|| anyhow!("{node} is not running"))?;
            signal(pid, "CONT")?;
            println!("resumed {node} (pid {pid})");
            Ok(())
        }
        Cmd::Bench {
            accounts,
            txs,
            rate,
            concurrency,
            batch,
            readers,
            window,
            soak,
            round,
            max_rss_mb,
            json,
        } => {
            let st = load_state(&dir)?;
            let admin = Keystore::new(dir.join("accounts"))
                .load("account0")?
                .open(|| Err("account0 must be the unencrypted demo admin".into()))?;
            let apis: Vec<String> = st.nodes.iter().map(NodeInfo::api).collect();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let settings = bench::Settings {
                accounts,
                txs,
                rate,
                concurrency,
                batch: batch as usize,
                nodes: st
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), pid_of(&dir, &n.name)))
                    .collect(),
                readers,
                window: window.unwrap_or(if soak.is_some() { 20_000 } else { 0 }),
                json,
            };
            match soak {
                None => rt.block_on(bench::run(&apis, admin, settings)),
                Some(total) => rt.block_on(bench::soak::soak(
                    &apis,
                    admin,
                    settings,
                    bench::soak::Soak {
                        total,
                        round,
                        max_rss_mb,
                    },
                )),
            }
        }
        Cmd::Down => {
            let st = load_state(&dir)?;
            // Every node gets its stop, whatever happens to the others.
            let mut stopped = 0;
            let mut errors = Vec::new();
            for n in &st.nodes {
                match stop(&dir, n) {
                    Ok(true) => stopped += 1,
                    Ok(false) => {}
                    Err(e) => errors.push(format!("{}: {e:#}", n.name)),
                }
            }
            if !errors.is_empty() {
                bail!("could not stop every node: {}", errors.join("; "));
            }
            let removed = st.hosts.tear_down(st.nodes.len())?;
            faults::forget(&dir);
            println!(
                "stopped {stopped} node(s){}; state stays in {}",
                if removed > 0 {
                    format!(", removed {removed} network namespace(s) and the bridge")
                } else {
                    String::new()
                },
                dir.display()
            );
            Ok(())
        }
        Cmd::Partition {
            groups,
            isolate,
            one_way,
            bridge,
        } => faults::partition_cmd(
            &dir,
            &load_state(&dir)?,
            &faults::Shape {
                groups,
                isolate,
                one_way,
                bridge,
            },
        ),
        Cmd::Loss { percent, nodes } => faults::loss_cmd(&dir, &load_state(&dir)?, percent, &nodes),
        Cmd::Delay { ms } => faults::delay_cmd(&load_state(&dir)?, ms),
        Cmd::Heal => faults::heal_cmd(&dir, &load_state(&dir)?),
        Cmd::Chaos(settings) => {
            let st = load_state(&dir)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let ok = rt.block_on(chaos::run(&dir, &st, settings))?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
