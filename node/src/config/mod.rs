//! `config.toml` (with `CAIRN_*` environment overrides, see [`settings`]) and the node key
//! file.

pub mod settings;

use std::path::{Path, PathBuf};

use cairn_crypto::SigningKey;
use serde::{Deserialize, Serialize};

/// Why a home directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `config.toml` does not parse or breaks a rule.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `CAIRN_*` environment variable that names no setting or has a bad value.
    #[error("{0}")]
    Environment(String),
    /// `init` would overwrite a key.
    #[error("{0} already exists: refusing to overwrite a node key")]
    KeyExists(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The node's settings. Every field has a default, so a partial file is fine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A human name for logs.
    pub moniker: String,
    /// Networking.
    pub p2p: P2pConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Block production.
    pub consensus: ConsensusConfig,
    /// The mempool.
    pub mempool: MempoolConfig,
    /// The store's memory.
    pub storage: StorageConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[p2p]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// Multiaddr to listen on.
    pub listen: String,
    /// The other nodes to dial, each ending in `/p2p/<peer id>`. The genesis names
    /// validators by key only; their addresses are configuration.
    pub bootstrap: Vec<String>,
    /// Non-validator keys (hex) allowed to connect, e.g. observers that only sync. A node
    /// whose own key is not a genesis validator runs only if its key is listed here.
    pub observers: Vec<String>,
    /// mDNS discovery on the local network (sends multicast; off by default).
    pub mdns: bool,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the HTTP API listens on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest body of a transaction batch.
    pub max_batch_bytes: usize,
    /// Requests served at once; more get `503 overloaded`.
    pub max_concurrent_requests: usize,
    /// Longest `?wait=commit`, in milliseconds.
    pub wait_timeout_ms: u64,
    /// A request's headers must arrive within this, in milliseconds; a kept-alive connection
    /// waiting for its next request is closed after it too.
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this once its headers did, in milliseconds.
    pub body_timeout_ms: u64,
    /// A connection that moves no byte in either direction for this long is closed, in
    /// milliseconds, whatever it is doing (a client that stopped reading its answer, say).
    /// Must exceed `wait_timeout_ms` (a waiting client is quiet) and the event stream's 10 s
    /// keep-alive.
    pub idle_timeout_ms: u64,
    /// Most open connections; more are closed on accept.
    pub max_connections: usize,
}

/// `[consensus]`: how this node proposes (the protocol's own timing is in the genesis).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusConfig {
    /// Length of one engine tick, in milliseconds.
    pub tick_ms: u64,
    /// Most transactions in a block.
    pub block_txs_max: usize,
    /// How long a leader may wait for a block to fill once it can propose, in milliseconds.
    pub block_interval_ms: u64,
    /// Propose blocks without transactions every `block_interval_ms`.
    pub empty_blocks: bool,
    /// Send the blocks this node proposes as transaction ids (`wire::Compact`).
    pub compact_blocks: bool,
    /// Most blocks this node, as leader or primary, keeps in flight: it builds block h+1 while
    /// h is being agreed on (1: one block at a time).
    pub blocks_in_flight: usize,
}

/// The most `consensus.blocks_in_flight` may be.
pub const BLOCKS_IN_FLIGHT_MAX: usize = 8;

/// `[mempool]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Most pending transactions.
    pub txs_max: usize,
    /// Most pending bytes.
    pub bytes_max: usize,
}

/// `[storage]`: the memory RocksDB may use (write buffers and block cache, each over all column
/// families together), and the state snapshots the node keeps for others to join from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// All write buffers (memtables); past it the largest is flushed to disk.
    pub memtable_bytes: usize,
    /// The block cache all column families share (data, index and filter blocks).
    pub block_cache_bytes: usize,
    /// Blocks between state snapshots (0: none).
    pub snapshot_interval: u64,
    /// Snapshots kept (the newest).
    pub snapshots_kept: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let d = cairn_ledger::StoreMemory::default();
        StorageConfig {
            memtable_bytes: d.memtable_bytes,
            block_cache_bytes: d.block_cache_bytes,
            snapshot_interval: 1000,
            snapshots_kept: 2,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `cairn_node=debug,info` (`RUST_LOG` wins).
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            moniker: "cairn-node".into(),
            p2p: P2pConfig::default(),
            api: ApiConfig::default(),
            consensus: ConsensusConfig::default(),
            mempool: MempoolConfig::default(),
            storage: StorageConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: "/ip4/127.0.0.1/tcp/26000".into(),
            bootstrap: Vec::new(),
            observers: Vec::new(),
            mdns: false,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8000".into(),
            max_body_bytes: 64 << 10,
            max_batch_bytes: 4 << 20,
            max_concurrent_requests: 1024,
            wait_timeout_ms: 30_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 4096,
        }
    }
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            tick_ms: 50,
            block_txs_max: 2000,
            block_interval_ms: 5,
            empty_blocks: false,
            compact_blocks: true,
            blocks_in_flight: 2,
        }
    }
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            txs_max: 100_000,
            bytes_max: 64 << 20,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "human".into(),
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads `path`, applies the `CAIRN_*` environment variables over it, and checks the
    /// result, addresses included.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // Only CAIRN_ variables matter; any other may hold bytes that are not UTF-8.
        let mut env = Vec::new();
        for (k, v) in std::env::vars_os() {
            let Some(k) = k.to_str().filter(|k| k.starts_with("CAIRN_")) else {
                continue;
            };
            let v = v.into_string().map_err(|_| {
                ConfigError::Environment(format!("the environment variable {k} is not UTF-8"))
            })?;
            env.push((k.to_string(), v));
        }
        Config::load_with(path, env)
    }

    /// [`Config::load`] with the given environment.
    pub fn load_with(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let applied = settings::apply_env(&mut table, env).map_err(ConfigError::Environment)?;
        let cfg: Config = table.try_into().map_err(|e: toml::de::Error| {
            let why = e.message().to_string();
            if applied.is_empty() {
                invalid(why)
            } else {
                invalid(format!(
                    "{why} (with {} from the environment)",
                    applied.join(", ")
                ))
            }
        })?;
        cfg.check().map_err(invalid)?;
        Ok(cfg)
    }

    /// Checks every value, addresses included.
    pub fn check(&self) -> Result<(), String> {
        check_log_level(&self.log.level)?;
        if self.storage.snapshots_kept == 0 {
            return Err("storage.snapshots_kept: at least 1 (storage.snapshot_interval = 0 turns snapshots off)".into());
        }
        if self.storage.memtable_bytes != 0 && self.storage.memtable_bytes < 4 << 20 {
            return Err(
                "storage.memtable_bytes: 0 (no shared budget) or at least 4194304 (4 MiB)".into(),
            );
        }
        if self.storage.block_cache_bytes < 1 << 20 {
            return Err("storage.block_cache_bytes: at least 1048576 (1 MiB)".into());
        }
        cairn_p2p::check_listen_address(&self.p2p.listen)
            .map_err(|e| format!("p2p.listen: {e}"))?;
        for b in &self.p2p.bootstrap {
            cairn_p2p::check_peer_address(b).map_err(|e| format!("p2p.bootstrap: {e}"))?;
        }
        for o in &self.p2p.observers {
            o.parse::<cairn_crypto::PublicKey>()
                .map_err(|_| format!("p2p.observers: {o:?} is not a public key (64 hex digits)"))?;
        }
        self.api
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                format!(
                    "api.listen: {:?} is not an address and port such as 127.0.0.1:8000",
                    self.api.listen
                )
            })?;
        if self.consensus.tick_ms == 0 || self.consensus.tick_ms > 10_000 {
            return Err("consensus.tick_ms must be in 1..=10000".into());
        }
        if self.consensus.block_txs_max == 0
            || self.consensus.block_txs_max > cairn_ledger::block::BLOCK_TXS_MAX
        {
            return Err(format!(
                "consensus.block_txs_max must be in 1..={}",
                cairn_ledger::block::BLOCK_TXS_MAX
            ));
        }
        if !(1..=BLOCKS_IN_FLIGHT_MAX).contains(&self.consensus.blocks_in_flight) {
            return Err(format!(
                "consensus.blocks_in_flight must be in 1..={BLOCKS_IN_FLIGHT_MAX}"
            ));
        }
        if !matches!(self.log.format.as_str(), "human" | "json") {
            return Err(format!(
                "log.format must be \"human\" or \"json\", not {:?}",
                self.log.format
            ));
        }
        if self.api.max_concurrent_requests == 0 || self.mempool.txs_max == 0 {
            return Err("api.max_concurrent_requests and mempool.txs_max must be > 0".into());
        }
        if self.api.max_body_bytes < 1024 || self.api.max_batch_bytes < 1024 {
            return Err("api.max_body_bytes and api.max_batch_bytes must be at least 1024".into());
        }
        let a = &self.api;
        if a.header_timeout_ms == 0 || a.body_timeout_ms == 0 || a.max_connections == 0 {
            return Err(
                "api.header_timeout_ms, api.body_timeout_ms and api.max_connections must be > 0"
                    .into(),
            );
        }
        if a.idle_timeout_ms <= a.wait_timeout_ms.max(10_000) {
            return Err(format!(
                "api.idle_timeout_ms ({}) must exceed api.wait_timeout_ms ({}) and the event \
                 stream's 10 s keep-alive, or quiet clients would be cut off",
                a.idle_timeout_ms, a.wait_timeout_ms
            ));
        }
        Ok(())
    }

    /// The file `init` writes: every setting, with what it means, its unit and default.
    pub fn to_toml(&self) -> String {
        settings::commented_toml(self)
    }
}

/// The levels `log.level` may name.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks `log.level`: comma-separated directives, each a level or `target=level`. (tracing
/// would read a lone word such as "verbose" as a target and log nothing.)
fn check_log_level(level: &str) -> Result<(), String> {
    let bad = |d: &str| {
        format!(
            "log.level: {d:?} is neither a level ({}) nor a target=level directive such as \
             cairn_node=debug",
            LEVELS.join(", ")
        )
    };
    let mut any = false;
    for d in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        any = true;
        let lvl = match d.rsplit_once('=') {
            Some((target, l)) if !target.is_empty() => l,
            Some(_) => return Err(bad(d)),
            None => d,
        };
        if !LEVELS.contains(&lvl.to_ascii_lowercase().as_str()) {
            return Err(bad(d));
        }
    }
    if !any {
        return Err(bad(level));
    }
    Ok(())
}

/// Paths inside a node's home directory.
#[derive(Debug, Clone)]
pub struct Home(pub PathBuf);

impl Home {
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    /// `genesis.json`.
    pub fn genesis(&self) -> PathBuf {
        self.0.join("genesis.json")
    }
    /// `node_key` (hex seed, mode 0600).
    pub fn key(&self) -> PathBuf {
        self.0.join("node_key")
    }
    /// The RocksDB directory.
    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }
}

/// Writes a new key (mode 0600, never overwriting) and returns it.
pub fn write_new_key(path: &Path, key: &SigningKey) -> Result<(), ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Err(ConfigError::KeyExists(path.to_path_buf()));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    writeln!(f, "{}", hex::encode(key.to_seed())).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Reads a key file written by [`write_new_key`]; refuses one others can read.
pub fn read_key(path: &Path) -> Result<SigningKey, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let invalid = |reason: &str| ConfigError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(invalid(
            "node key is readable by others: chmod 600 it (or create a new one)",
        ));
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let bytes = hex::decode(text.trim()).map_err(|_| invalid("node key is not hex"))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| invalid("node key must be 32 bytes (64 hex digits)"))?;
    Ok(SigningKey::from_seed(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_and_partial_files_get_defaults() {
        let c = Config::default();
        let back: Config = toml::from_str(&c.to_toml()).expect("parse");
        assert_eq!(back, c);
        let partial: Config = toml::from_str("[api]\nlisten = \"127.0.0.1:0\"\n").expect("parse");
        assert_eq!(partial.api.listen, "127.0.0.1:0");
        assert_eq!(partial.consensus, ConsensusConfig::default());
        assert!(toml::from_str::<Config>("[api]\nlistn = 1\n").is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_key_they_belong_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let load = |text: &str, env: &[(&str, &str)]| {
            std::fs::write(&path, text).expect("write");
            let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            Config::load_with(&path, env).map_err(|e| e.to_string())
        };
        assert!(load("", &[]).is_ok());
        assert!(load("[log]\nlevel = \"info,cairn_node=debug\"\n", &[]).is_ok());
        for (text, needle) in [
            ("[log]\nlevel = \"verbose\"\n", "log.level"),
            ("[log]\nlevel = \"\"\n", "log.level"),
            ("[p2p]\nlisten = \"127.0.0.1:26000\"\n", "p2p.listen"),
            ("[p2p]\nlisten = \"/ip4/127.0.0.1/udp/1\"\n", "p2p.listen"),
            (
                "[p2p]\nbootstrap = [\"/ip4/1.2.3.4/tcp/1\"]\n",
                "p2p.bootstrap",
            ),
            ("[p2p]\nobservers = [\"abc\"]\n", "p2p.observers"),
            ("[api]\nlisten = \"localhost\"\n", "api.listen"),
            ("[api]\nlisten = 8000\n", "invalid type"),
        ] {
            let e = load(text, &[]).expect_err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
        // The environment wins, and its mistakes are named too.
        let c = load(
            "[api]\nlisten = \"127.0.0.1:1\"\n",
            &[("CAIRN_API_LISTEN", "0.0.0.0:2")],
        )
        .expect("loads");
        assert_eq!(c.api.listen, "0.0.0.0:2");
        let e = load("", &[("CAIRN_LOG_LEVEL", "verbose")]).expect_err("refused");
        assert!(e.contains("log.level"), "{e}");
        let e = load("", &[("CAIRN_LOG_LEVL", "info")]).expect_err("refused");
        assert!(e.contains("CAIRN_LOG_LEVL"), "{e}");
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node_key");
        let key = SigningKey::generate();
        write_new_key(&path, &key).expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            read_key(&path).expect("read").public_key(),
            key.public_key()
        );
        assert!(matches!(
            write_new_key(&path, &key),
            Err(ConfigError::KeyExists(_))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(read_key(&path).is_err());
    }
}
