//! Validity (DESIGN §9.2, for the simulated application): a committed block extends its node's
//! ledger tip, follows the application's state rule, comes from a member of the validator set
//! in force at its height and names that set (and, at a boundary where the set changes, the
//! next one). Nodes use the same rule to answer `Validate` and to check blocks they sync.

use cairn_crypto::Hash;
use cairn_ledger::{Block, BlockHash, Height};

use crate::sim::Cluster;

/// The tip of a ledger: the last block's hash, state root and time (genesis's at height 0).
pub(crate) struct Tip {
    pub(crate) hash: BlockHash,
    pub(crate) state_root: Hash,
    pub(crate) timestamp_ms: u64,
    pub(crate) height: Height,
}

/// The simulated application's rule for the next state root.
pub(crate) fn next_root(prev: &Hash, height: Height) -> Hash {
    Hash::sha256(&[prev.0.as_slice(), &height.to_le_bytes()].concat())
}

/// Whether `b` is a valid next block on `tip`.
pub(crate) fn next_block_ok(cluster: &Cluster, tip: &Tip, b: &Block) -> Result<(), String> {
    let h = &b.header;
    let height = tip.height + 1;
    if h.height != height {
        return Err(format!("height {} after {}", h.height, tip.height));
    }
    if h.prev_hash != tip.hash {
        return Err(format!(
            "block {} does not link to the ledger tip",
            h.height
        ));
    }
    if h.state_root != next_root(&tip.state_root, height) || h.timestamp_ms < tip.timestamp_ms {
        return Err(format!("block {} breaks the state rule", h.height));
    }
    let epoch = cluster.epoch_at(height);
    if !cluster.set_of(&epoch.members).contains(&h.proposer) {
        return Err(format!("block {} proposed by a non-validator", h.height));
    }
    let (hash, next) = cluster.header_sets(height);
    if h.validators_hash != hash || h.next_validators != next {
        return Err(format!(
            "block {} names a validator set not in force",
            h.height
        ));
    }
    Ok(())
}

/// Honest node `node` committed `b` on `tip`.
pub(crate) fn check(cluster: &Cluster, node: usize, tip: &Tip, b: &Block) -> Result<(), String> {
    next_block_ok(cluster, tip, b)
        .map_err(|e| format!("node {node} committed an invalid block: {e}"))
}
