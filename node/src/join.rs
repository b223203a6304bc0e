//! Joining a running chain from a state snapshot instead of replaying it (`cairn-node join`).
//!
//! Nothing a peer sends is used before it is checked. The newest snapshot the peers offer is
//! taken; the block at its height must verify against the genesis and the validator set in
//! force there (followed from the genesis through the boundary blocks, as `cairn verify`
//! does); the snapshot's manifest must lead to that block's `state_root`; each chunk must match
//! its line of the manifest. A peer that sends something that does not check is not asked
//! again, and the chunk is fetched from another. The store is filled in `HOME/data.joining`
//! and renamed to `HOME/data` only once complete and checked, so an interrupted join leaves
//! nothing a node would start on; running `join` again starts over. The blocks below the
//! snapshot are absent from the new store (the API answers 410 for them).

use std::path::PathBuf;
use std::time::Duration;

use cairn_api::client::{Client, ClientError};
use cairn_cli::verify::{Trail, verify_block};
use cairn_crypto::{Hash, codec};
use cairn_ledger::snapshot::{SnapshotManifest, StateChunk};
use cairn_ledger::{BlockHash, Genesis, Height, Ledger, RocksStore, StoreError};

use crate::config::Home;

/// The largest chunk read from a peer.
pub const CHUNK_BYTES_MAX: usize = 64 << 20;

/// What a join installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The snapshot's height: the new store's tip and lowest block.
    pub height: Height,
    /// That block.
    pub block_hash: BlockHash,
    /// Its state root.
    pub state_root: Hash,
    /// State entries installed.
    pub entries: u64,
    /// Chunks fetched.
    pub chunks: usize,
    /// Peers not asked again, with why.
    pub refused: Vec<(String, String)>,
}

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The home already has a store.
    #[error("{0} holds a store already: `join` fills an empty home (move data/ aside first)")]
    HasStore(PathBuf),
    /// A peer address that is not a URL.
    #[error(transparent)]
    Address(ClientError),
    /// No peer offers a snapshot of this chain.
    #[error("no peer offers a snapshot of this chain ({0})")]
    NoSnapshot(String),
    /// Every peer offering the snapshot was refused.
    #[error("no peer left to fetch {what} from: {why}")]
    NoPeerLeft {
        /// What was being fetched.
        what: String,
        /// Why each peer was refused.
        why: String,
    },
    /// A file or directory.
    #[error("{path}: {error}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The installed store does not open as a ledger (its state is not its tip's).
    #[error("the installed store does not check: {0}")]
    Check(String),
}

/// The peers still asked, and those refused with why.
struct Peers {
    alive: Vec<(String, Client)>,
    refused: Vec<(String, String)>,
    next: usize,
}

impl Peers {
    fn refuse(&mut self, url: &str, why: String) {
        tracing::warn!(peer = url, reason = %why, "not asking this peer again");
        self.alive.retain(|(u, _)| u != url);
        self.refused.push((url.to_string(), why));
    }

    fn why(&self) -> String {
        self.refused
            .iter()
            .map(|(u, w)| format!("{u}: {w}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The next peer to ask, round and round in the order given.
    fn pick(&mut self) -> Option<(String, Client)> {
        if self.alive.is_empty() {
            return None;
        }
        let p = self.alive[self.next % self.alive.len()].clone();
        self.next += 1;
        Some(p)
    }
}

/// Fills `home`'s empty store from the newest snapshot `peers` (API URLs) offer, checking
/// everything against `genesis`.
pub async fn join(home: &Home, genesis: &Genesis, peers: &[String]) -> Result<Joined, JoinError> {
    let data = home.data();
    if data.join("CURRENT").exists() {
        return Err(JoinError::HasStore(data));
    }
    let mut all = Vec::new();
    for url in peers {
        all.push((
            url.clone(),
            Client::new(url, Duration::from_secs(60)).map_err(JoinError::Address)?,
        ));
    }
    let mut p = Peers {
        alive: Vec::new(),
        refused: Vec::new(),
        next: 0,
    };
    // Who offers what; peers of another chain or that do not answer are left out.
    let mut offers: Vec<(String, Client, Height)> = Vec::new();
    for (url, c) in all {
        match (c.status().await, c.snapshots().await) {
            (Ok(st), Ok(list)) if st.genesis_hash == genesis.hash() => {
                if let Some(h) = list.heights.first() {
                    offers.push((url.clone(), c.clone(), *h));
                }
                p.alive.push((url, c));
            }
            (Ok(st), _) if st.genesis_hash != genesis.hash() => {
                p.refused
                    .push((url, format!("serves the chain {}", st.genesis_hash)));
            }
            (Err(e), _) | (_, Err(e)) => p.refused.push((url, e.to_string())),
            _ => {}
        }
    }
    let height = offers
        .iter()
        .map(|o| o.2)
        .max()
        .ok_or_else(|| JoinError::NoSnapshot(p.why()))?;
    p.alive
        .retain(|(u, _)| offers.iter().any(|o| &o.0 == u && o.2 == height));

    // The block at that height, certified by the set in force there.
    let mut trail = Trail::new(genesis);
    let block = loop {
        let (url, c) = p.pick().ok_or_else(|| JoinError::NoPeerLeft {
            what: format!("block {height}"),
            why: p.why(),
        })?;
        match certified_block(&c, genesis, &mut trail, height).await {
            Ok(view) => break view,
            Err(why) => p.refuse(&url, why),
        }
    };
    let header = &block.block.header;

    // The manifest, against that block's state root.
    let manifest: SnapshotManifest = loop {
        let (url, c) = p.pick().ok_or_else(|| JoinError::NoPeerLeft {
            what: format!("the manifest of snapshot {height}"),
            why: p.why(),
        })?;
        match c.snapshot_manifest(height).await {
            Ok(m) if m.height != height || m.block_hash != block.hash => p.refuse(
                &url,
                format!("a manifest for block {} {}", m.height, m.block_hash),
            ),
            Ok(m) => match m.verify(&header.state_root) {
                Ok(()) => break m,
                Err(e) => p.refuse(&url, e.to_string()),
            },
            Err(e) => p.refuse(&url, e.to_string()),
        }
    };

    // The chunks, each checked before it is written.
    let partial = home.0.join("data.joining");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|error| JoinError::Io {
            path: partial.clone(),
            error,
        })?;
    }
    let mut store = RocksStore::open(&partial, &genesis.hash())?;
    let mut entries = 0u64;
    for index in 0..manifest.chunks.len() as u32 {
        let chunk = loop {
            let (url, c) = p.pick().ok_or_else(|| JoinError::NoPeerLeft {
                what: format!("chunk {index} of snapshot {height}"),
                why: p.why(),
            })?;
            let got = c.snapshot_chunk(height, index, CHUNK_BYTES_MAX).await;
            let checked = got.map_err(|e| e.to_string()).and_then(|bytes| {
                let chunk: StateChunk = codec::decode(&bytes).map_err(|e| e.to_string())?;
                if chunk.index != index {
                    return Err(format!("chunk {} when {index} was asked for", chunk.index));
                }
                manifest.check_chunk(&chunk).map_err(|e| e.to_string())?;
                Ok(chunk)
            });
            match checked {
                Ok(chunk) => break chunk,
                Err(why) => p.refuse(&url, format!("chunk {index}: {why}")),
            }
        };
        entries += chunk.entries.len() as u64;
        store.install_state(&chunk.entries)?;
    }
    store.install_tip(genesis.hash(), &block.block, &block.certificate)?;
    drop(store);
    let store = RocksStore::open(&partial, &genesis.hash())?;
    Ledger::open(store, genesis.clone()).map_err(|e| JoinError::Check(e.to_string()))?;
    std::fs::rename(&partial, &data).map_err(|error| JoinError::Io {
        path: data.clone(),
        error,
    })?;
    Ok(Joined {
        height,
        block_hash: block.hash,
        state_root: header.state_root,
        entries,
        chunks: manifest.chunks.len(),
        refused: p.refused,
    })
}

/// The block at `height` from `c`, checked against `genesis` and the set in force there
/// (following, with `trail`, the boundary blocks below it, fetched from `c` too).
async fn certified_block(
    c: &Client,
    genesis: &Genesis,
    trail: &mut Trail,
    height: Height,
) -> Result<cairn_api::BlockView, String> {
    for e in trail.boundaries_below(height) {
        let b = c.block(&e.to_string()).await.map_err(|e| e.to_string())?;
        trail.follow(&b.block.header, &b.certificate)?;
    }
    let set = trail.set_at(height)?;
    let view = c
        .block(&height.to_string())
        .await
        .map_err(|e| e.to_string())?;
    if view.block.header.height != height || view.hash != view.block.hash() {
        return Err(format!("block {height} came back as another block"));
    }
    verify_block(genesis, set, &view.block, &view.certificate, None)?;
    Ok(view)
}
