//! Online backups and restores (`cairn-node backup`, `cairn-node restore`).
//!
//! A backup is a directory: `store/` (a RocksDB checkpoint of the node's store: consistent,
//! ending at a block boundary), the chain's `genesis.json`, and `BACKUP.json` saying which
//! chain and block it holds. A running node takes the checkpoint itself, asked over a Unix
//! socket in its home (`admin.sock`, mode 0600: only the node's user can ask); a stopped
//! node's store is copied directly. Both a backup and a restore check the copy before they
//! call it good: the stored state must have the root the tip's header commits to, and the
//! tip's certificate must verify.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_crypto::Hash;
use cairn_ledger::{
    BlockHash, BlockStore, ChainRead, ConsensusWrite, Genesis, Height, Ledger, RocksReader,
    RocksStore, StoreError, Tip,
};
use serde::{Deserialize, Serialize};

use crate::config::Home;

/// The admin socket's name in a node's home.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// The manifest's name in a backup.
pub const MANIFEST: &str = "BACKUP.json";
/// The longest request line the admin socket reads.
const REQUEST_BYTES_MAX: u64 = 64 * 1024;

/// What a backup holds: `BACKUP.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The chain.
    pub chain_id: String,
    /// Its genesis hash.
    pub genesis_hash: BlockHash,
    /// The last block in the backup.
    pub height: Height,
    /// Its hash.
    pub block_hash: BlockHash,
    /// The state root after it.
    pub state_root: Hash,
    /// When the backup was taken (ms since the Unix epoch).
    pub taken_at_ms: u64,
    /// The software that took it.
    pub version: String,
}

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or directory.
    #[error("{path}: {error}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What failed (in the message, not a source, so it is said once).
        error: std::io::Error,
    },
    /// The target already holds something.
    #[error("{0} is not empty: a backup or restore writes only to a new or empty directory")]
    NotEmpty(PathBuf),
    /// The node did not take the checkpoint.
    #[error("the running node could not take the backup: {0}")]
    Node(String),
    /// The store is locked by a process that does not answer on its admin socket.
    #[error(
        "the store in {0} is in use, but no node answers on its admin socket ({ADMIN_SOCKET} in the home): the node may be starting or stopping, or could not bind the socket (its log says why; a socket path must be under 108 bytes)"
    )]
    Busy(PathBuf),
    /// Nothing to back up.
    #[error("{0} holds no store: nothing to back up")]
    NoStore(PathBuf),
    /// Not a backup.
    #[error("{path} is not a Cairn backup: {why}")]
    NotABackup {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong.
        why: String,
    },
    /// A backup of another chain.
    #[error("the backup is of the chain with genesis {found}; this home's genesis is {expected}")]
    OtherChain {
        /// The backup's.
        found: BlockHash,
        /// The home's.
        expected: BlockHash,
    },
    /// The copy does not check.
    #[error("the copy in {path} is not intact: {why}")]
    Damaged {
        /// The store.
        path: PathBuf,
        /// What does not hold.
        why: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |error| BackupError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A request on the admin socket: one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AdminRequest {
    /// Write a checkpoint of the store to `to` (absolute, not existing yet).
    Checkpoint { to: PathBuf },
}

/// The answer: one JSON line.
#[derive(Debug, Serialize, Deserialize)]
struct AdminReply {
    error: Option<String>,
}

/// Binds the admin socket at `path` and serves it on a thread of its own for the life of the
/// process: each connection sends one request line and gets one answer line, one connection
/// at a time (backups are rare and each is a whole-store operation). A socket file left by a
/// node that died is replaced (the store's lock, taken before this, shows that no other node
/// uses this home).
pub fn serve_admin(path: &Path, reader: RocksReader) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("admin-socket".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => answer(s, &reader),
                    Err(e) => tracing::warn!(error = %e, "admin socket: accept failed"),
                }
            }
        })?;
    Ok(())
}

fn answer(stream: UnixStream, reader: &RocksReader) {
    use std::io::Read;
    let timeout = Some(Duration::from_secs(10));
    let _ = stream.set_read_timeout(timeout);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut line = String::new();
    let reply = match BufReader::new(stream.take(REQUEST_BYTES_MAX)).read_line(&mut line) {
        Ok(_) => match serde_json::from_str::<AdminRequest>(&line) {
            Ok(AdminRequest::Checkpoint { to }) if to.is_relative() => AdminReply {
                error: Some(format!("{} is not an absolute path", to.display())),
            },
            Ok(AdminRequest::Checkpoint { to }) => {
                tracing::info!(to = %to.display(), "taking a backup checkpoint");
                AdminReply {
                    error: reader.checkpoint(&to).err().map(|e| e.to_string()),
                }
            }
            Err(e) => AdminReply {
                error: Some(format!("not a request: {e}")),
            },
        },
        Err(e) => AdminReply {
            error: Some(e.to_string()),
        },
    };
    if let Ok(mut text) = serde_json::to_string(&reply) {
        text.push('\n');
        let _ = writer.write_all(text.as_bytes());
    }
}

/// Asks the node running in `home` for a checkpoint at `to`. `Ok(false)`: no node answers.
fn ask_node(home: &Home, to: &Path) -> Result<bool, BackupError> {
    let socket = home.0.join(ADMIN_SOCKET);
    let Ok(mut stream) = UnixStream::connect(&socket) else {
        return Ok(false);
    };
    let request = AdminRequest::Checkpoint { to: to.into() };
    let mut line = serde_json::to_string(&request).map_err(|e| BackupError::Node(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io(&socket))?;
    // A checkpoint of a large store flushes memtables and links files: give it time.
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .map_err(io(&socket))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(io(&socket))?;
    let reply: AdminReply = serde_json::from_str(&answer)
        .map_err(|e| BackupError::Node(format!("an answer that is not JSON ({e}): {answer:?}")))?;
    match reply.error {
        None => Ok(true),
        Some(e) => Err(BackupError::Node(e)),
    }
}

fn empty_dir(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io(dir))
        }
        Err(e) => Err(io(dir)(e)),
    }
}

/// Opens the store at `path` and checks it: the ledger refuses a state whose root is not the
/// tip's `state_root`; the tip's header must hash to the tip and its certificate verify
/// against the validator set that made it (skipped for a tip that ends a set: the set before
/// it is not in the store's state). Returns the tip.
pub fn check_store(path: &Path, genesis: &Genesis) -> Result<Tip, BackupError> {
    let damaged = |why: String| BackupError::Damaged {
        path: path.to_path_buf(),
        why,
    };
    let store = RocksStore::open(path, &genesis.hash())?;
    let ledger = Ledger::open(store, genesis.clone()).map_err(|e| damaged(e.to_string()))?;
    let tip = ledger.tip();
    if tip.height == 0 {
        return Ok(tip);
    }
    let store = ledger.store();
    let header = store
        .header(tip.height)?
        .ok_or_else(|| damaged(format!("the tip's header {} is missing", tip.height)))?;
    if header.hash() != tip.hash || header.state_root != tip.state_root {
        return Err(damaged(format!(
            "the header at {} is not the tip's",
            tip.height
        )));
    }
    let cert = store
        .certificate(tip.height)?
        .ok_or_else(|| damaged(format!("the tip's certificate {} is missing", tip.height)))?;
    let set = ledger.validators_in_force();
    if tip.height > set.since() {
        cert.verify(
            &genesis.chain_id,
            genesis.consensus.kind(),
            set.set(),
            tip.height,
            &tip.hash,
        )
        .map_err(|e| damaged(format!("the tip's certificate: {e}")))?;
    }
    Ok(tip)
}

/// Backs up the node in `home` to the new or empty directory `to`, while it runs (it takes
/// the checkpoint) or not (the store is copied here), and checks the copy.
pub fn backup(home: &Home, genesis: &Genesis, to: &Path) -> Result<Manifest, BackupError> {
    if !home.data().join("CURRENT").exists() {
        return Err(BackupError::NoStore(home.data()));
    }
    empty_dir(to)?;
    let to = std::fs::canonicalize(to).map_err(io(to))?;
    let store_dir = to.join("store");
    if !ask_node(home, &store_dir)? {
        let data = home.data();
        let store = match RocksStore::open(&data, &genesis.hash()) {
            Ok(s) => s,
            Err(StoreError::Engine(msg)) if msg.contains("lock") => {
                return Err(BackupError::Busy(data));
            }
            Err(e) => return Err(e.into()),
        };
        store.reader().checkpoint(&store_dir)?;
    }
    let tip = check_store(&store_dir, genesis)?;
    let manifest = Manifest {
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash(),
        height: tip.height,
        block_hash: tip.hash,
        state_root: tip.state_root,
        taken_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        version: crate::VERSION.to_string(),
    };
    std::fs::copy(home.genesis(), to.join("genesis.json")).map_err(io(&home.genesis()))?;
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| BackupError::Node(e.to_string()))?;
    std::fs::write(to.join(MANIFEST), text + "\n").map_err(io(&to.join(MANIFEST)))?;
    Ok(manifest)
}

/// Restores the backup `from` into `home` (initialised, with the chain's genesis.json, and
/// no store yet): copies the store, checks it, and empties its consensus state, so the node
/// starts with no record of votes (as after `data` was moved aside). `data` appears only once
/// all of that succeeded.
pub fn restore(from: &Path, home: &Home, genesis: &Genesis) -> Result<Manifest, BackupError> {
    let not_a_backup = |why: String| BackupError::NotABackup {
        path: from.to_path_buf(),
        why,
    };
    let manifest_path = from.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| not_a_backup(format!("{MANIFEST}: {e}")))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| not_a_backup(format!("{MANIFEST}: {e}")))?;
    if manifest.genesis_hash != genesis.hash() {
        return Err(BackupError::OtherChain {
            found: manifest.genesis_hash,
            expected: genesis.hash(),
        });
    }
    let data = home.data();
    if data.exists() {
        empty_dir(&data)?;
        std::fs::remove_dir(&data).map_err(io(&data))?;
    }
    // Everything is checked and the vote record emptied in a directory of its own: `data`
    // appears only when the copy is good, and a failed restore leaves nothing behind.
    let partial = home.0.join("data.restoring");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    let prepared = copy_dir(&from.join("store"), &partial).and_then(|()| {
        let tip = check_store(&partial, genesis)?;
        if tip.hash != manifest.block_hash || tip.state_root != manifest.state_root {
            return Err(BackupError::Damaged {
                path: from.join("store"),
                why: format!(
                    "it holds block {} {}, its {MANIFEST} says {} {}",
                    tip.height, tip.hash, manifest.height, manifest.block_hash
                ),
            });
        }
        let mut store = RocksStore::open(&partial, &genesis.hash())?;
        let ops: Vec<ConsensusWrite> = store
            .consensus_scan(&[])?
            .into_iter()
            .map(|(key, _)| ConsensusWrite::Delete { key })
            .collect();
        store.consensus_write(&ops)?;
        Ok(())
    });
    if let Err(e) = prepared {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &data).map_err(io(&data))?;
    Ok(manifest)
}

/// Copies the files of `from` (a checkpoint: files only) into the new directory `to`, each
/// synced.
fn copy_dir(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let src = entry.path();
        if !entry.file_type().map_err(io(&src))?.is_file() {
            continue;
        }
        let dst = to.join(entry.file_name());
        std::fs::copy(&src, &dst).map_err(io(&src))?;
        std::fs::File::open(&dst)
            .and_then(|f| f.sync_all())
            .map_err(io(&dst))?;
    }
    std::fs::File::open(to)
        .and_then(|d| d.sync_all())
        .map_err(io(to))
}
