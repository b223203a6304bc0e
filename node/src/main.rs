//! `cairn-node`: run a Cairn validator.

use std::path::PathBuf;

use anyhow::Context;
use cairn_crypto::SigningKey;
use cairn_node::config::{Config, Home, read_key, write_new_key};
use clap::{Parser, Subcommand};

mod data_cmd;

/// A Cairn validator node: orders signed transactions with the network's other validators
/// (Raft or PBFT, as the genesis says), keeps the ledger in RocksDB, serves the JSON API.
#[derive(Parser)]
#[command(version = cairn_node::VERSION, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node home: a new node key (mode 0600) and a default config.toml.
    ///
    /// Put the network's genesis.json in the home before `run`. The printed public key is
    /// what goes into the genesis validator list; the printed peer id, after this node's
    /// p2p address, is what the other nodes list under `[p2p] bootstrap`.
    Init {
        /// The node's home directory (created if missing).
        #[arg(long)]
        home: PathBuf,
        /// A name for logs.
        #[arg(long, default_value = "cairn-node")]
        moniker: String,
        /// p2p listen multiaddr.
        #[arg(long, default_value = "/ip4/127.0.0.1/tcp/26000")]
        p2p_listen: String,
        /// API listen address (port 0 picks a free port and writes it to HOME/api_addr).
        #[arg(long, default_value = "127.0.0.1:8000")]
        api_listen: String,
        /// Another node to dial, as /ip4/<host>/tcp/<port>/p2p/<peer id> (repeat for each;
        /// written to `[p2p] bootstrap`). The genesis names validators by key only.
        #[arg(long = "bootstrap", value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// Print the key as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the node in HOME (config.toml, genesis.json, node_key; data in HOME/data) until
    /// SIGINT or SIGTERM.
    Run {
        /// The node's home directory.
        #[arg(long)]
        home: PathBuf,
    },
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Write a network's genesis.json step by step, then check it and print its hash.
    #[command(
        subcommand,
        after_help = "A network of four validators on four hosts:\n  \
          cairn-node init --home n0 ...                        # on each host: prints its public key\n  \
          cairn-node genesis new --chain-id acme-ledger --consensus pbft\n  \
          cairn-node genesis add-validator --name n0 --key <n0's public key>   # once per validator\n  \
          cairn-node genesis add-account --key <admin's key> --balance 1000000 --role admin\n  \
          cairn-node genesis validate                          # summary and hash: compare them on every host\n\n\
          Then copy genesis.json into every node's home. The genesis names validators by key:\n\
          where each runs goes in the nodes' config.toml, [p2p] bootstrap."
    )]
    Genesis(GenesisCmd),
    /// Print the API's OpenAPI document (what every node serves at /api/v1/openapi.json),
    /// for client generators and API testers, without running a node.
    Openapi,
    /// Write certified blocks FROM..=TO to a file that another node can import (and verify).
    /// Works while the node runs.
    #[command(
        after_help = "Example:\n  cairn-node export --home n0 --from 1 --to 5000 blocks.cairn\n  cairn-node import --home fresh blocks.cairn"
    )]
    Export {
        /// The node's home directory.
        #[arg(long)]
        home: PathBuf,
        /// First block.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last block (default: the tip).
        #[arg(long)]
        to: Option<u64>,
        /// The file to write (replaced whole, or left alone on failure).
        file: PathBuf,
    },
    /// Apply the blocks of an export to this home's store, each verified as if a peer had sent
    /// it: its certificate against the validator set in force, every signature, its execution
    /// and state root. The node must be stopped.
    #[command(after_help = "Example:\n  cairn-node import --home fresh blocks.cairn")]
    Import {
        /// The node's home directory (with its genesis.json).
        #[arg(long)]
        home: PathBuf,
        /// The export.
        file: PathBuf,
    },
    /// Back up the node's store to a new directory, while the node runs (it takes a
    /// consistent checkpoint at a block boundary) or not; the copy is checked before it counts.
    #[command(
        after_help = "Example:\n  cairn-node backup --home n0 --to /backups/n0-$(date +%F)\n  cairn-node restore --home n0-new --from /backups/n0-2026-12-01"
    )]
    Backup {
        /// The node's home directory.
        #[arg(long)]
        home: PathBuf,
        /// A new or empty directory.
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into a home that has no store yet: the copy is checked (its state
    /// matches the certified root of its tip) before the node may use it.
    #[command(
        after_help = "Example:\n  cairn-node init --home n0-new ... && cp genesis.json n0-new/\n  cairn-node restore --home n0-new --from /backups/n0-2026-12-01"
    )]
    Restore {
        /// The node's home directory (initialised, with the chain's genesis.json).
        #[arg(long)]
        home: PathBuf,
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Fill this home's empty store from the newest state snapshot the peers offer, instead of
    /// replaying the chain: the block at its height is checked against the genesis and the
    /// validators in force there, and every chunk against that block's state root; a peer
    /// that sends anything else is not asked again. Then `run` follows the chain from there.
    #[command(
        after_help = "Example:\n  cairn-node join --home n5 --peer http://10.0.0.1:8000 --peer http://10.0.0.2:8000\n  cairn-node run --home n5\n\nPeers serve snapshots every storage.snapshot_interval blocks (config.toml).\nThe new store holds no block below the snapshot's height."
    )]
    Join {
        /// The node's home directory (initialised, with the chain's genesis.json, no data/).
        #[arg(long)]
        home: PathBuf,
        /// A peer's API, e.g. http://10.0.0.1:8000 (repeat: chunks are fetched from each in
        /// turn).
        #[arg(long = "peer", value_name = "URL")]
        peers: Vec<String>,
    },
    /// Print the node's public key and libp2p peer id.
    ShowKey {
        /// The node's home directory.
        #[arg(long)]
        home: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GenesisCmd {
    /// Start a genesis: chain id, engine and its parameters (validators and accounts follow).
    New {
        /// The file to write.
        #[arg(long, default_value = "genesis.json")]
        file: PathBuf,
        /// Names the chain in every signature: 1..=64 characters of [A-Za-z0-9._-].
        #[arg(long)]
        chain_id: String,
        /// The engine: pbft (Byzantine faults, n = 3f+1) or raft (crash faults, n = 2f+1).
        #[arg(long, value_parser = parse_kind)]
        consensus: cairn_ledger::ConsensusKind,
        /// Genesis time in ms since the Unix epoch (default: now); block 1 may not be older.
        #[arg(long)]
        genesis_time_ms: Option<u64>,
        /// PBFT: a checkpoint every this many blocks, also the epoch at which validator
        /// changes take effect [default: 10].
        #[arg(long)]
        checkpoint_interval: Option<u64>,
        /// PBFT: ms without progress before a view change [default: 2000].
        #[arg(long)]
        view_change_timeout_ms: Option<u64>,
        /// Raft: lower bound of the election timeout, ms [default: 1000].
        #[arg(long)]
        election_timeout_min_ms: Option<u64>,
        /// Raft: upper bound of the election timeout, ms [default: 2000].
        #[arg(long)]
        election_timeout_max_ms: Option<u64>,
        /// Raft: leader heartbeat interval, ms [default: 200].
        #[arg(long)]
        heartbeat_interval_ms: Option<u64>,
        /// Raft: validator-set changes take effect at multiples of this height [default: 100]
        /// (PBFT: at checkpoints).
        #[arg(long)]
        epoch_length: Option<u64>,
        /// Who may change the validator set: `admins` (one admin's transaction) or
        /// `validators` (a quorum of the validators in force vote) [default: validators for
        /// PBFT, admins for Raft].
        #[arg(long, value_parser = parse_policy)]
        validator_changes: Option<cairn_ledger::ChangePolicy>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Add a validator by its public key (what `cairn-node init` or `show-key` prints).
    AddValidator {
        /// The genesis file.
        #[arg(long, default_value = "genesis.json")]
        file: PathBuf,
        /// A unique name, for logs and tables.
        #[arg(long)]
        name: String,
        /// Its public key (hex).
        #[arg(long, conflicts_with = "home", required_unless_present = "home")]
        key: Option<cairn_crypto::PublicKey>,
        /// Or the node's home, whose node_key gives the public key.
        #[arg(long)]
        home: Option<PathBuf>,
    },
    /// Add an account that exists at height 0 (what `cairn key new` prints).
    AddAccount {
        /// The genesis file.
        #[arg(long, default_value = "genesis.json")]
        file: PathBuf,
        /// The account's public key (hex).
        #[arg(long)]
        key: cairn_crypto::PublicKey,
        /// Starting balance.
        #[arg(long, default_value_t = 0)]
        balance: u64,
        /// Membership: admin (may add and remove members), user, or none (may only receive).
        #[arg(long, default_value = "user", value_parser = ["admin", "user", "none"])]
        role: String,
    },
    /// Check a finished genesis as a node does, and print a summary and its hash.
    Validate {
        /// The genesis file.
        #[arg(long, default_value = "genesis.json")]
        file: PathBuf,
    },
    /// Print the genesis hash (the chain's identity) of a valid genesis.
    Hash {
        /// The genesis file.
        #[arg(long, default_value = "genesis.json")]
        file: PathBuf,
    },
}

fn parse_kind(s: &str) -> Result<cairn_ledger::ConsensusKind, String> {
    match s {
        "pbft" => Ok(cairn_ledger::ConsensusKind::Pbft),
        "raft" => Ok(cairn_ledger::ConsensusKind::Raft),
        _ => Err(format!("{s:?} is not an engine: pbft or raft")),
    }
}

fn parse_policy(s: &str) -> Result<cairn_ledger::ChangePolicy, String> {
    match s {
        "admins" => Ok(cairn_ledger::ChangePolicy::Admins),
        "validators" => Ok(cairn_ledger::ChangePolicy::Validators),
        _ => Err(format!(
            "{s:?} is not a policy: admins (one admin approves) or validators (a quorum votes)"
        )),
    }
}

fn genesis_cmd(cmd: GenesisCmd) -> anyhow::Result<()> {
    use cairn_node::genesis_tool as tool;
    match cmd {
        GenesisCmd::New {
            file,
            chain_id,
            consensus,
            genesis_time_ms,
            checkpoint_interval,
            view_change_timeout_ms,
            election_timeout_min_ms,
            election_timeout_max_ms,
            heartbeat_interval_ms,
            epoch_length,
            validator_changes,
            force,
        } => {
            let choice = tool::ConsensusChoice {
                checkpoint_interval,
                view_change_timeout_ms,
                election_timeout_min_ms,
                election_timeout_max_ms,
                heartbeat_interval_ms,
                epoch_length,
                validator_changes,
            };
            let g = tool::new(&file, &chain_id, consensus, &choice, genesis_time_ms, force)?;
            println!(
                "wrote {}: chain {}, {}; next: `genesis add-validator` for each validator and `genesis add-account` for at least one member",
                file.display(),
                g.chain_id,
                g.consensus.kind()
            );
            Ok(())
        }
        GenesisCmd::AddValidator {
            file,
            name,
            key,
            home,
        } => {
            let key = match (key, home) {
                (Some(k), _) => k,
                (None, Some(h)) => read_key(&Home(h).key())?.public_key(),
                (None, None) => anyhow::bail!("give --key or --home"),
            };
            let g = tool::add_validator(&file, &name, key)?;
            println!(
                "added validator {name} ({key}): {} validators",
                g.validators.len()
            );
            Ok(())
        }
        GenesisCmd::AddAccount {
            file,
            key,
            balance,
            role,
        } => {
            let role = match role.as_str() {
                "admin" => Some(cairn_ledger::Role::Admin),
                "user" => Some(cairn_ledger::Role::User),
                _ => None,
            };
            let g = tool::add_account(&file, key, balance, role)?;
            println!(
                "added account {key} with {balance}: {} accounts",
                g.accounts.len()
            );
            Ok(())
        }
        GenesisCmd::Validate { file } => {
            let g = tool::load_checked(&file)?;
            println!("{} is valid\n{}", file.display(), tool::summary(&g));
            if g.consensus.kind() == cairn_ledger::ConsensusKind::Pbft && g.validators.len() < 4 {
                eprintln!(
                    "note: PBFT with {} validators tolerates no Byzantine fault (4 tolerate one)",
                    g.validators.len()
                );
            }
            Ok(())
        }
        GenesisCmd::Hash { file } => {
            println!("{}", tool::load_checked(&file)?.hash());
            Ok(())
        }
    }
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check config.toml (with CAIRN_* environment overrides), genesis.json and the node key,
    /// addresses included, without opening the store or the network.
    #[command(
        after_help = "Example:\n  cairn-node config validate --home n0\n  CAIRN_API_LISTEN=0.0.0.0:8000 cairn-node config validate --home n0"
    )]
    Validate {
        /// The node's home directory.
        #[arg(long)]
        home: PathBuf,
    },
    /// Print the configuration in effect (the file with the environment applied), commented.
    #[command(after_help = "Example:\n  cairn-node config show --home n0")]
    Show {
        /// The node's home directory.
        #[arg(long)]
        home: PathBuf,
    },
}

/// Loads HOME's config, saying what to do when there is no home.
fn load_config(h: &Home) -> anyhow::Result<Config> {
    if !h.config().exists() && !h.0.exists() {
        anyhow::bail!(
            "{} does not exist: create a node home with `cairn-node init --home {}`",
            h.0.display(),
            h.0.display()
        );
    }
    Ok(Config::load(&h.config())?)
}

fn print_key(key: &SigningKey, json: bool) -> anyhow::Result<()> {
    let pk = key.public_key();
    let peer = cairn_p2p::peer_id_of(&pk)?;
    if json {
        println!("{}", serde_json::json!({"public_key": pk, "peer_id": peer}));
    } else {
        println!("public key: {pk}\npeer id:    {peer}");
    }
    Ok(())
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cfg.log.format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

/// Runs the command; errors are printed once, without a backtrace, and exit with status 1.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let logging = matches!(cli.command, Command::Run { .. });
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}");
            if logging && tracing::dispatcher::has_been_set() {
                tracing::error!(error = %msg, "node failed");
            } else {
                eprintln!("error: {msg}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            home,
            moniker,
            p2p_listen,
            api_listen,
            bootstrap,
            json,
        } => {
            let h = Home(home);
            let mut cfg = Config {
                moniker,
                ..Config::default()
            };
            cfg.p2p.listen = p2p_listen;
            cfg.api.listen = api_listen;
            cfg.p2p.bootstrap = bootstrap;
            cfg.check()
                .map_err(|e| anyhow::anyhow!("{e} (given on the command line)"))?;
            std::fs::create_dir_all(&h.0).with_context(|| format!("creating {}", h.0.display()))?;
            let key = SigningKey::generate();
            write_new_key(&h.key(), &key)?;
            if !h.config().exists() {
                std::fs::write(h.config(), cfg.to_toml())
                    .with_context(|| format!("writing {}", h.config().display()))?;
            }
            print_key(&key, json)?;
            if !json {
                eprintln!(
                    "next: put the network's genesis.json in {}, list the other validators' \
                     addresses under [p2p] bootstrap in {} (unless given with --bootstrap), and \
                     run `cairn-node run --home {}`",
                    h.0.display(),
                    h.config().display(),
                    h.0.display()
                );
            }
            Ok(())
        }
        Command::Config(ConfigCmd::Validate { home }) => {
            let h = Home(home);
            let cfg = load_config(&h)?;
            let p = cairn_node::node::preflight(&h, &cfg)?;
            println!(
                "{} is valid: chain {} ({}, {} validators); this node {} is {}; p2p on {}, API on {}",
                h.0.display(),
                p.genesis.chain_id,
                p.genesis.consensus.kind(),
                p.genesis.validators.len(),
                p.key.public_key(),
                if p.is_validator() {
                    "a validator"
                } else {
                    "an observer"
                },
                cfg.p2p.listen,
                cfg.api.listen
            );
            Ok(())
        }
        Command::Config(ConfigCmd::Show { home }) => {
            let cfg = load_config(&Home(home))?;
            print!("{}", cfg.to_toml());
            Ok(())
        }
        Command::Genesis(cmd) => genesis_cmd(cmd),
        Command::Openapi => {
            println!("{}", cairn_node::api::doc::json());
            Ok(())
        }
        Command::ShowKey { home, json } => print_key(&read_key(&Home(home).key())?, json),
        Command::Export {
            home,
            from,
            to,
            file,
        } => data_cmd::export(home, from, to, &file),
        Command::Import { home, file } => data_cmd::import(home, &file),
        Command::Backup { home, to } => data_cmd::backup(home, &to),
        Command::Restore { home, from } => data_cmd::restore(home, &from),
        Command::Join { home, peers } => data_cmd::join(home, &peers),
        Command::Run { home } => {
            let h = Home(home);
            let cfg = load_config(&h)?;
            init_logging(&cfg);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(cairn_node::node::run(h, cfg))
        }
    }
}
