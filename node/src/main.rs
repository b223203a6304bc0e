//! `cairn-node`: run a Cairn validator.

use std::path::PathBuf;

use anyhow::Context;
use cairn_crypto::SigningKey;
use cairn_node::config::{Config, Home, read_key, write_new_key};
use clap::{Parser, Subcommand};

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
    /// what goes into the genesis validator list.
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
    /// Print the API's OpenAPI document (what every node serves at /api/v1/openapi.json),
    /// for client generators and API testers, without running a node.
    Openapi,
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
            json,
        } => {
            let h = Home(home);
            let mut cfg = Config {
                moniker,
                ..Config::default()
            };
            cfg.p2p.listen = p2p_listen;
            cfg.api.listen = api_listen;
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
                    "next: put the network's genesis.json in {} and run `cairn-node run --home {}`",
                    h.0.display(),
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
        Command::Openapi => {
            println!("{}", cairn_node::api::doc::json());
            Ok(())
        }
        Command::ShowKey { home, json } => print_key(&read_key(&Home(home).key())?, json),
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
