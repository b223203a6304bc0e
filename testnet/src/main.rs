//! `cairn-testnet`: a local Cairn network of real `cairn-node` processes.
//!
//! Everything lives in one directory (`--dir`, default `./testnet`): node homes, the genesis,
//! demo account keys, PIDs and logs. Every command reads its state from there, so they work
//! from any shell.

mod bench;
mod procstat;
mod readers;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use cairn_api::StatusView;
use cairn_api::client::Client;
use cairn_cli::keystore::{KeyFile, Keystore};
use cairn_crypto::SigningKey;
use cairn_ledger::{
    ConsensusConfig, Genesis, GenesisAccount, PbftParams, RaftParams, Role, Validator,
};
use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// Run a local Cairn network: real node processes on 127.0.0.1, state in one directory.
///
/// Typical session:
///   cairn-testnet init --nodes 4 --consensus pbft
///   cairn-testnet up
///   cairn-testnet status
///   cairn --node http://127.0.0.1:27100 --keystore testnet/accounts transfer --from account1 --to <id> --amount 5 --wait
///   cairn-testnet kill node0 && cairn-testnet restart node0
///   cairn-testnet down
/// The version with the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CAIRN_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(version = VERSION, verbatim_doc_comment)]
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
    /// Stop every node (SIGTERM, then SIGKILL after 10 s).
    Down,
    /// Load the running network and measure it: committed tx/s, commit latency, rejections,
    /// and this machine's signature-verification bound. Funds fresh accounts from account0.
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
    nodes: Vec<NodeInfo>,
    accounts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeInfo {
    name: String,
    public_key: String,
    p2p_port: u16,
    api_port: u16,
}

impl NodeInfo {
    fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
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

fn find<'a>(st: &'a State, name: &str) -> anyhow::Result<&'a NodeInfo> {
    st.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
        let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
        anyhow!("no node {name:?}; nodes are {}", names.join(", "))
    })
}

fn node_binary() -> anyhow::Result<PathBuf> {
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

/// A node's home as the node was started with it (absolute), so that processes can be
/// recognised from any working directory.
fn home_of(dir: &Path, node: &str) -> PathBuf {
    let home = dir.join(node);
    home.canonicalize().unwrap_or(home)
}

fn pid_of(dir: &Path, node: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(node).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_node(pid, &home_of(dir, node)).then_some(pid)
}

/// Alive (not a zombie), and running `run --home HOME` for this very node: a PID reused by
/// anything else, another testnet's node included, is never taken for ours.
fn is_node(pid: u32, home: &Path) -> bool {
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
fn wait_gone(pid: u32, home: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_node(pid, home) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
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

/// What `init` makes.
struct Layout {
    nodes: usize,
    engine: Engine,
    base: u16,
    accounts: usize,
    balance: u64,
    chain_id: String,
}

fn init(dir: &Path, layout: &Layout, force: bool) -> anyhow::Result<()> {
    let Layout {
        nodes,
        engine,
        base,
        accounts,
        balance,
        ..
    } = *layout;
    if !cairn_ledger::valid_chain_id(&layout.chain_id) {
        bail!(
            "--chain-id {:?} must be 1..=64 characters of [A-Za-z0-9._-]",
            layout.chain_id
        );
    }
    if nodes == 0 || nodes > 64 {
        bail!("--nodes must be in 1..=64");
    }
    if engine == Engine::Pbft && nodes < 4 {
        eprintln!("note: PBFT with {nodes} nodes tolerates no Byzantine fault (4 tolerate one)");
    }
    if base.checked_add(100 + nodes as u16).is_none() {
        bail!("--base-port too high");
    }
    // Free ports are held open until all are chosen, so no two nodes get the same one.
    let mut held = Vec::new();
    let mut free_port = || -> anyhow::Result<u16> {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        held.push(l);
        Ok(port)
    };
    if state_path(dir).exists() {
        if !force {
            bail!(
                "{} already holds a testnet (use --force to replace it, after `down`)",
                dir.display()
            );
        }
        let st = load_state(dir)?;
        if st.nodes.iter().any(|n| pid_of(dir, &n.name).is_some()) {
            bail!(
                "the testnet in {} is running: `cairn-testnet down` first",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let keys: Vec<SigningKey> = (0..nodes).map(|_| SigningKey::generate()).collect();
    let account_keys: Vec<SigningKey> = (0..accounts).map(|_| SigningKey::generate()).collect();
    let mut infos = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let (p2p_port, api_port) = if base == 0 {
            (free_port()?, free_port()?)
        } else {
            (base + i as u16, base + 100 + i as u16)
        };
        infos.push(NodeInfo {
            name: format!("node{i}"),
            public_key: k.public_key().to_string(),
            p2p_port,
            api_port,
        });
    }
    drop(held);
    let genesis = Genesis {
        chain_id: layout.chain_id.clone(),
        genesis_time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        consensus: match engine {
            Engine::Raft => ConsensusConfig::Raft(RaftParams {
                election_timeout_min_ms: 500,
                election_timeout_max_ms: 1000,
                heartbeat_interval_ms: 100,
                epoch_length: 50,
                ..RaftParams::default()
            }),
            Engine::Pbft => ConsensusConfig::Pbft(PbftParams {
                checkpoint_interval: 50,
                view_change_timeout_ms: 2000,
                ..PbftParams::default()
            }),
        },
        validators: keys
            .iter()
            .zip(&infos)
            .map(|(k, n)| Validator {
                name: n.name.clone(),
                public_key: k.public_key(),
            })
            .collect(),
        accounts: account_keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisAccount {
                public_key: k.public_key(),
                balance,
                role: Some(if i == 0 { Role::Admin } else { Role::User }),
            })
            .collect(),
    };
    genesis.validate().context("the generated genesis")?;
    std::fs::write(dir.join("genesis.json"), genesis.to_json())?;
    // Where each node runs is configuration, not genesis: every node dials all the others.
    let mut peers = Vec::new();
    for (k, n) in keys.iter().zip(&infos) {
        let peer = cairn_p2p::peer_id_of(&k.public_key())?;
        peers.push(format!("\"/ip4/127.0.0.1/tcp/{}/p2p/{peer}\"", n.p2p_port));
    }
    for (i, (k, n)) in keys.iter().zip(&infos).enumerate() {
        let bootstrap: Vec<&str> = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.as_str())
            .collect();
        let home = dir.join(&n.name);
        std::fs::create_dir_all(&home)?;
        cairn_node_key(&home.join("node_key"), k)?;
        std::fs::write(home.join("genesis.json"), genesis.to_json())?;
        std::fs::write(
            home.join("config.toml"),
            format!(
                "# Written by cairn-testnet init.\nmoniker = \"{}\"\n\n[p2p]\nlisten = \"/ip4/127.0.0.1/tcp/{}\"\nbootstrap = [{}]\n\n[api]\nlisten = \"127.0.0.1:{}\"\n\n[consensus]\ntick_ms = 20\n",
                n.name,
                n.p2p_port,
                bootstrap.join(", "),
                n.api_port
            ),
        )?;
    }
    let ks = Keystore::new(dir.join("accounts"));
    let mut names = Vec::new();
    for (i, k) in account_keys.iter().enumerate() {
        let name = format!("account{i}");
        let file = KeyFile::new(&name, k, None).map_err(|e| anyhow!(e))?;
        ks.save(&file)?;
        names.push(name);
    }
    let st = State {
        chain_id: genesis.chain_id.clone(),
        consensus: engine,
        nodes: infos,
        accounts: names,
    };
    std::fs::write(state_path(dir), serde_json::to_string_pretty(&st)?)?;
    println!(
        "initialised a {}-node {:?} testnet in {}",
        nodes,
        engine,
        dir.display()
    );
    println!(
        "  demo accounts (unencrypted, for local use): {}/accounts",
        dir.display()
    );
    for (i, a) in account_keys.iter().enumerate() {
        println!(
            "    account{i}  {}{}",
            a.public_key(),
            if i == 0 { "  (admin)" } else { "" }
        );
    }
    println!("next: cairn-testnet --dir {} up", dir.display());
    Ok(())
}

/// The node key file format of `cairn-node init`: hex seed, mode 0600.
fn cairn_node_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{}", hex::encode(key.to_seed()))?;
    Ok(())
}

fn start(dir: &Path, n: &NodeInfo) -> anyhow::Result<u32> {
    if let Some(pid) = pid_of(dir, &n.name) {
        return Ok(pid);
    }
    let bin = node_binary()?;
    let home = home_of(dir, &n.name);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))?;
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(&bin);
    // Each node's settings are in its home: a CAIRN_API_LISTEN (say) set in this shell would
    // give every node the same port, so no CAIRN_ variable reaches them.
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("CAIRN_")) {
            cmd.env_remove(k);
        }
    }
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

async fn wait_ready(dir: &Path, nodes: &[NodeInfo], timeout: Duration) -> anyhow::Result<()> {
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

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A client of `n`'s API that gives up quickly: a node that does not answer in 5 s is
/// reported as unresponsive.
fn client(n: &NodeInfo) -> anyhow::Result<Client> {
    Ok(Client::new(&n.api(), Duration::from_secs(5))?)
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
    Ok(())
}

fn stop(dir: &Path, n: &NodeInfo) -> anyhow::Result<bool> {
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
        } => init(
            &dir,
            &Layout {
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
                let pid = start(&dir, n)?;
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
            let pid = start(&dir, &n)?;
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
            rt.block_on(bench::run(
                &apis,
                admin,
                bench::Settings {
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
                    json,
                },
            ))
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
            println!(
                "stopped {stopped} node(s); state stays in {}",
                dir.display()
            );
            Ok(())
        }
    }
}
