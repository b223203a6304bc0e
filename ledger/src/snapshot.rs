//! State snapshots: the whole state at a certified height, cut into chunks that can each be
//! checked alone, so a joining node can fetch them from several peers and refuse a bad one
//! before it uses anything (issue 14).
//!
//! A snapshot of depth `d` has `2^d` chunks: chunk `i` holds every entry whose path
//! (`SHA-256(key)`, PROTOCOL.md §7) starts with the `d` bits of `i`, sorted by path. Its
//! manifest lists, for each chunk, the hash of that subtree of the state tree and how many
//! entries it holds. The manifest is checked against a certified `state_root` by combining
//! those pairs up to the root as the tree's definition does; a chunk is checked against its
//! manifest line by hashing its entries into that subtree. Both checks together show the
//! entries are exactly the state the root commits to.

use cairn_crypto::Hash;
use serde::{Deserialize, Serialize};

use crate::block::{BlockHash, Height};
use crate::state_tree::{bit, node_hash, subtree_hash};
use crate::store::StateEntries;

/// About how many entries a chunk holds: the depth is chosen for it.
pub const CHUNK_ENTRIES: usize = 1024;
/// The deepest cut: at most 65,536 chunks.
pub const DEPTH_MAX: u8 = 16;

/// One chunk's line in a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkInfo {
    /// The hash of the chunk's subtree.
    pub hash: Hash,
    /// How many entries it holds.
    pub entries: u64,
}

/// What a snapshot holds, checkable against a certified header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotManifest {
    /// The height whose state this is.
    pub height: Height,
    /// The block at that height.
    pub block_hash: BlockHash,
    /// Its `state_root`.
    pub state_root: Hash,
    /// The chunks are the subtrees at this depth.
    pub depth: u8,
    /// One line per chunk, in path order.
    pub chunks: Vec<ChunkInfo>,
}

/// One chunk: entries `(key, value)`, sorted by `SHA-256(key)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChunk {
    /// Which chunk.
    pub index: u32,
    /// Its entries.
    pub entries: StateEntries,
}

/// Why a snapshot or a chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// A depth past [`DEPTH_MAX`], or a chunk list of the wrong length.
    #[error("the manifest has {chunks} chunks at depth {depth}")]
    Shape {
        /// Its depth.
        depth: u8,
        /// Its chunk count.
        chunks: usize,
    },
    /// The manifest's chunks do not combine to the certified root.
    #[error("the manifest's chunks lead to state root {computed}, not the certified {certified}")]
    Root {
        /// What they combine to.
        computed: Hash,
        /// The header's.
        certified: Hash,
    },
    /// A chunk the manifest does not list.
    #[error("chunk {0} is not in the manifest")]
    NoSuchChunk(u32),
    /// A chunk whose entries do not belong to it or are out of order or repeated.
    #[error("chunk {index}: entry {entry} is out of place")]
    Misplaced {
        /// The chunk.
        index: u32,
        /// The entry's position in it.
        entry: usize,
    },
    /// A chunk whose entries are not the ones the manifest commits to.
    #[error("chunk {index} does not match the manifest ({why})")]
    Mismatch {
        /// The chunk.
        index: u32,
        /// What differs.
        why: String,
    },
}

/// The depth that gives chunks of about [`CHUNK_ENTRIES`] entries.
pub fn depth_for(entries: usize) -> u8 {
    let mut d = 0u8;
    while d < DEPTH_MAX && (entries >> d) > CHUNK_ENTRIES {
        d += 1;
    }
    d
}

/// The chunk a path falls in at `depth`.
fn chunk_of(path: &Hash, depth: u8) -> u32 {
    (0..usize::from(depth)).fold(0u32, |acc, i| (acc << 1) | u32::from(bit(path, i)))
}

/// Cuts a whole state into the chunks of depth `depth` and writes their manifest for the block
/// `block_hash` at `height` whose `state_root` is the state's root.
pub fn cut(
    entries: StateEntries,
    depth: u8,
    height: Height,
    block_hash: BlockHash,
    state_root: Hash,
) -> (SnapshotManifest, Vec<StateChunk>) {
    let depth = depth.min(DEPTH_MAX);
    // (path, value hash, the entry).
    type Hashed = (Hash, Hash, (Vec<u8>, Vec<u8>));
    let mut hashed: Vec<Hashed> = entries
        .into_iter()
        .map(|(k, v)| (Hash::sha256(&k), Hash::sha256(&v), (k, v)))
        .collect();
    hashed.sort_unstable_by_key(|e| e.0);
    let count = 1usize << depth;
    let mut chunks: Vec<StateChunk> = (0..count as u32)
        .map(|index| StateChunk {
            index,
            entries: Vec::new(),
        })
        .collect();
    let mut leaves: Vec<Vec<(Hash, Hash)>> = vec![Vec::new(); count];
    for (path, value_hash, entry) in hashed {
        let i = chunk_of(&path, depth) as usize;
        leaves[i].push((path, value_hash));
        chunks[i].entries.push(entry);
    }
    let infos = leaves
        .iter()
        .map(|l| ChunkInfo {
            hash: subtree_hash(usize::from(depth), l),
            entries: l.len() as u64,
        })
        .collect();
    let manifest = SnapshotManifest {
        height,
        block_hash,
        state_root,
        depth,
        chunks: infos,
    };
    (manifest, chunks)
}

impl SnapshotManifest {
    /// Checks that the chunks combine to `certified`, the `state_root` of a header whose
    /// certificate the caller verified (and that it is the manifest's own).
    pub fn verify(&self, certified: &Hash) -> Result<(), SnapshotError> {
        if self.depth > DEPTH_MAX || self.chunks.len() != 1usize << self.depth {
            return Err(SnapshotError::Shape {
                depth: self.depth,
                chunks: self.chunks.len(),
            });
        }
        let mut level: Vec<(Hash, u64)> = self.chunks.iter().map(|c| (c.hash, c.entries)).collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| {
                    let ((ha, ca), (hb, cb)) = (pair[0], pair[1]);
                    let n = ca.saturating_add(cb);
                    let h = match (ca, cb) {
                        (0, 0) => Hash::ZERO,
                        // A lone entry sits as high as it can: its leaf hash goes up as is.
                        (0, 1) => hb,
                        (1, 0) => ha,
                        _ => node_hash(&ha, &hb),
                    };
                    (h, n)
                })
                .collect();
        }
        let computed = level[0].0;
        if computed != *certified || self.state_root != *certified {
            return Err(SnapshotError::Root {
                computed,
                certified: *certified,
            });
        }
        Ok(())
    }

    /// Checks a chunk against this (verified) manifest: its entries are in path order, all in
    /// its subtree, as many as listed, and hash to the listed subtree hash.
    pub fn check_chunk(&self, chunk: &StateChunk) -> Result<(), SnapshotError> {
        let info = self
            .chunks
            .get(chunk.index as usize)
            .ok_or(SnapshotError::NoSuchChunk(chunk.index))?;
        let mut leaves: Vec<(Hash, Hash)> = Vec::with_capacity(chunk.entries.len());
        for (i, (k, v)) in chunk.entries.iter().enumerate() {
            let path = Hash::sha256(k);
            if chunk_of(&path, self.depth) != chunk.index
                || leaves.last().is_some_and(|(prev, _)| *prev >= path)
            {
                return Err(SnapshotError::Misplaced {
                    index: chunk.index,
                    entry: i,
                });
            }
            leaves.push((path, Hash::sha256(v)));
        }
        if leaves.len() as u64 != info.entries {
            return Err(SnapshotError::Mismatch {
                index: chunk.index,
                why: format!(
                    "{} entries, the manifest lists {}",
                    leaves.len(),
                    info.entries
                ),
            });
        }
        if subtree_hash(usize::from(self.depth), &leaves) != info.hash {
            return Err(SnapshotError::Mismatch {
                index: chunk.index,
                why: "its entries hash to another subtree".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
