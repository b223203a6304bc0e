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
            std::fs::create_dir_all(&h.0).with_context(|| format!("creating {}", h.0.display()))?;
            let key = SigningKey::generate();
            write_new_key(&h.key(), &key)?;
            if !h.config().exists() {
                let mut cfg = Config {
                    moniker,
                    ..Config::default()
                };
                cfg.p2p.listen = p2p_listen;
                cfg.api.listen = api_listen;
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
        Command::Openapi => {
            println!("{}", cairn_node::api::doc::json());
            Ok(())
        }
        Command::ShowKey { home, json } => print_key(&read_key(&Home(home).key())?, json),
        Command::Run { home } => {
            let h = Home(home);
            if !h.config().exists() && !h.0.exists() {
                anyhow::bail!(
                    "{} does not exist: create a node home with `cairn-node init --home {}`",
                    h.0.display(),
                    h.0.display()
                );
            }
            let cfg = Config::load(&h.config())?;
            init_logging(&cfg);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(cairn_node::node::run(h, cfg))
        }
    }
}
