//! Integrity: every committed block carries a commit certificate that anyone can check offline
//! against the genesis validators (and the block is linked to its parent, see validity).

use cairn_ledger::{Block, CommitCertificate, Genesis};

/// Whether `cert` certifies `block` under `genesis`.
pub(crate) fn certified(
    genesis: &Genesis,
    block: &Block,
    cert: &CommitCertificate,
) -> Result<(), String> {
    cert.verify(
        &genesis.chain_id,
        genesis.consensus.kind(),
        &genesis.validator_set(),
        block.header.height,
        &block.hash(),
    )
    .map_err(|e| e.to_string())
}

/// Honest node `node` committed `block` with `cert`.
pub(crate) fn check(
    genesis: &Genesis,
    node: usize,
    block: &Block,
    cert: &CommitCertificate,
) -> Result<(), String> {
    certified(genesis, block, cert).map_err(|e| {
        format!(
            "node {node} committed height {} with a bad certificate: {e}",
            block.header.height
        )
    })
}
