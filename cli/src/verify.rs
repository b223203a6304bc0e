//! Offline block verification: everything a block claims, checked against the genesis alone.

use cairn_ledger::{Block, BlockHash, CommitCertificate, Genesis};

/// What was checked, for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// Height.
    pub height: u64,
    /// The block's hash, recomputed.
    pub hash: BlockHash,
    /// Transactions in it.
    pub txs: usize,
    /// Certificate kind and round.
    pub certificate: String,
    /// Whether the link to the parent was checked (it needs the parent's hash).
    pub parent_checked: bool,
}

/// Checks a block and its certificate against `genesis`: chain id, transaction count and
/// Merkle root, every transaction's signature and chain, the certificate's quorum of
/// validator signatures over this height and hash, and (when `parent` is given) the hash
/// link to the parent.
pub fn verify_block(
    genesis: &Genesis,
    block: &Block,
    certificate: &CommitCertificate,
    parent: Option<BlockHash>,
) -> Result<Verified, String> {
    let h = &block.header;
    if h.chain_id != genesis.chain_id {
        return Err(format!(
            "block is for chain {:?}, the genesis is {:?}",
            h.chain_id, genesis.chain_id
        ));
    }
    if h.height == 0 {
        return Err("height 0 is the genesis, not a block".into());
    }
    if h.tx_count as usize != block.txs.len() {
        return Err(format!(
            "header says {} transactions, the block has {}",
            h.tx_count,
            block.txs.len()
        ));
    }
    let ids = block.tx_ids();
    if Block::tx_root_of(&ids) != h.tx_root {
        return Err("the transactions do not match the header's tx_root".into());
    }
    for (i, t) in block.txs.iter().enumerate() {
        if t.tx.chain_id != genesis.chain_id {
            return Err(format!("transaction {i} is for another chain"));
        }
        t.verify_signature()
            .map_err(|e| format!("transaction {i} ({}): {e}", ids[i]))?;
    }
    if !genesis.validator_set().contains(&h.proposer) {
        return Err("the proposer is not a genesis validator".into());
    }
    if h.validators_hash != genesis.validators_hash() {
        return Err(format!(
            "the header names validator set {}, not the genesis set {}",
            h.validators_hash,
            genesis.validators_hash()
        ));
    }
    if h.next_validators.is_some() {
        return Err(
            "the header announces a validator set change, which this chain cannot have approved"
                .into(),
        );
    }
    let hash = block.hash();
    certificate
        .verify(
            &genesis.chain_id,
            genesis.consensus.kind(),
            &genesis.validator_set(),
            h.height,
            &hash,
        )
        .map_err(|e| format!("commit certificate: {e}"))?;
    if let Some(p) = parent
        && p != h.prev_hash
    {
        return Err(format!(
            "prev_hash {} is not the parent's hash {p}",
            h.prev_hash
        ));
    }
    Ok(Verified {
        height: h.height,
        hash,
        txs: block.txs.len(),
        certificate: match certificate.kind() {
            cairn_ledger::ConsensusKind::Raft => {
                format!("Raft (the term {} leader's signature)", certificate.round())
            }
            cairn_ledger::ConsensusKind::Pbft => {
                format!("PBFT (2f+1 commit votes, view {})", certificate.round())
            }
        },
        parent_checked: parent.is_some(),
    })
}
