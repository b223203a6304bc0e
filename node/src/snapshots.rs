//! The state snapshots a node keeps for new nodes to join from (`cairn-node join`): taken every
//! `storage.snapshot_interval` blocks on a thread of their own, never by the consensus task,
//! kept as files in `HOME/snapshots/<height>/` (the manifest and one file per chunk, in the
//! codec), and served by the API (`/api/v1/snapshots…`).
//!
//! A snapshot is cut from a checkpoint of the store, so it is the state at one block boundary
//! (whichever block had committed when it was taken, not necessarily a multiple of the
//! interval), and its manifest is checked against that block's state root before it is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_crypto::codec;
use cairn_ledger::snapshot::{SnapshotError, SnapshotManifest, cut, depth_for};
use cairn_ledger::{BlockHash, ChainRead, Height, RocksReader, RocksStore, StoreError};

const MANIFEST: &str = "manifest.bin";

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// A file or directory.
    #[error("{path}: {error}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What failed (in the message, not a source, so it is said once).
        error: std::io::Error,
    },
    /// The store or its checkpoint.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cut does not lead to the tip's root (a bug).
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TakeError + '_ {
    move |error| TakeError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The snapshots in a node's `HOME/snapshots`.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// The snapshots kept in `dir`.
    pub fn new(dir: PathBuf) -> Snapshots {
        Snapshots { dir }
    }

    /// The heights of the snapshots kept, newest first.
    pub fn heights(&self) -> Vec<Height> {
        let mut hs: Vec<Height> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        hs.sort_unstable_by(|a, b| b.cmp(a));
        hs
    }

    /// A snapshot's manifest.
    pub fn manifest(&self, height: Height) -> Option<SnapshotManifest> {
        let bytes = std::fs::read(self.dir.join(height.to_string()).join(MANIFEST)).ok()?;
        codec::decode(&bytes).ok()
    }

    /// A chunk as stored: the encoding of a `StateChunk`.
    pub fn chunk(&self, height: Height, index: u32) -> Option<Vec<u8>> {
        std::fs::read(
            self.dir
                .join(height.to_string())
                .join(format!("chunk-{index}.bin")),
        )
        .ok()
    }

    /// Takes a snapshot of the store `reader` reads now, unless one of its tip exists: a
    /// checkpoint, cut into chunks, checked against the tip's root, written whole (a directory
    /// renamed into place). Keeps the newest `kept`. Returns the height taken.
    pub fn take(
        &self,
        reader: &RocksReader,
        genesis_hash: &BlockHash,
        kept: usize,
    ) -> Result<Option<Height>, TakeError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let scratch = self.dir.join(".checkpoint");
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).map_err(io(&scratch))?;
        }
        reader.checkpoint(&scratch)?;
        let taken = self.cut_from(&scratch, genesis_hash);
        std::fs::remove_dir_all(&scratch).map_err(io(&scratch))?;
        let taken = taken?;
        for old in self.heights().into_iter().skip(kept) {
            let d = self.dir.join(old.to_string());
            std::fs::remove_dir_all(&d).map_err(io(&d))?;
        }
        Ok(taken)
    }

    fn cut_from(
        &self,
        store: &Path,
        genesis_hash: &BlockHash,
    ) -> Result<Option<Height>, TakeError> {
        let store = RocksStore::open(store, genesis_hash)?;
        let tip = store.tip()?;
        let target = self.dir.join(tip.height.to_string());
        if tip.height == 0 || target.exists() {
            return Ok(None);
        }
        let entries = store.state_entries()?;
        let depth = depth_for(entries.len());
        let (manifest, chunks) = cut(entries, depth, tip.height, tip.hash, tip.state_root);
        manifest.verify(&tip.state_root)?;
        let partial = self.dir.join(format!(".{}.partial", tip.height));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        std::fs::create_dir_all(&partial).map_err(io(&partial))?;
        for c in &chunks {
            let p = partial.join(format!("chunk-{}.bin", c.index));
            std::fs::write(&p, codec::encode(c)).map_err(io(&p))?;
        }
        let p = partial.join(MANIFEST);
        std::fs::write(&p, codec::encode(&manifest)).map_err(io(&p))?;
        std::fs::rename(&partial, &target).map_err(io(&target))?;
        Ok(Some(tip.height))
    }
}

/// Starts the thread that takes a snapshot whenever the tip is `interval` blocks past the
/// newest one kept.
pub fn start_taker(
    snapshots: Snapshots,
    reader: RocksReader,
    genesis_hash: BlockHash,
    interval: u64,
    kept: usize,
) -> std::io::Result<()> {
    if interval == 0 {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("snapshots".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let Ok(tip) = reader.tip() else { continue };
                let newest = snapshots.heights().first().copied().unwrap_or(0);
                if tip.height < newest + interval {
                    continue;
                }
                match snapshots.take(&reader, &genesis_hash, kept) {
                    Ok(Some(h)) => tracing::info!(height = h, "took a state snapshot"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "could not take a state snapshot"),
                }
            }
        })?;
    Ok(())
}
