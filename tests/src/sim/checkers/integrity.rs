//! Integrity: every committed block carries a commit certificate that anyone can check offline
//! against the validator set in force at its height, followed from the genesis (and the block
//! is linked to its parent, see validity).

use cairn_ledger::{Block, CommitCertificate};

use crate::sim::Cluster;

/// Whether `cert` certifies `block` under the set in force at its height.
pub(crate) fn certified(
    cluster: &Cluster,
    block: &Block,
    cert: &CommitCertificate,
) -> Result<(), String> {
    let genesis = &cluster.genesis;
    let epoch = cluster.epoch_at(block.header.height);
    cert.verify(
        &genesis.chain_id,
        genesis.consensus.kind(),
        &cluster.set_of(&epoch.members),
        block.header.height,
        &block.hash(),
    )
    .map_err(|e| e.to_string())
}

/// Honest node `node` committed `block` with `cert`.
pub(crate) fn check(
    cluster: &Cluster,
    node: usize,
    block: &Block,
    cert: &CommitCertificate,
) -> Result<(), String> {
    certified(cluster, block, cert).map_err(|e| {
        format!(
            "node {node} committed height {} with a bad certificate: {e}",
            block.header.height
        )
    })
}
