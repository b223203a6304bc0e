//! Offline block verification: everything a block claims, checked against the genesis and
//! the validator set in force at its height, which a verifier follows from the genesis through
//! the epoch boundaries (PROTOCOL.md §8).

use cairn_api::StateProofView;
use cairn_ledger::state::genesis_writes;
use cairn_ledger::{
    Block, BlockHash, BlockHeader, CommitCertificate, Genesis, SetInForce, StateTree,
};

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
    /// How many validators certified it under the set in force, and since when that set is.
    pub validators: usize,
    /// The height after which that set is in force (0: the genesis set).
    pub validators_since: u64,
    /// The new list this block announces, if the set changes after it.
    pub announces_validators: Option<usize>,
}

/// Follows the validator set from the genesis through epoch boundaries: feed it each
/// boundary block's header and certificate in height order ([`Trail::boundaries_below`]
/// says which), and it knows the set in force at any height above them.
#[derive(Debug, Clone)]
pub struct Trail {
    genesis: Genesis,
    set: SetInForce,
    /// Boundaries up to here are followed.
    followed_to: u64,
}

impl Trail {
    /// Starts at the genesis set.
    pub fn new(genesis: &Genesis) -> Trail {
        Trail {
            genesis: genesis.clone(),
            set: SetInForce::genesis(genesis),
            followed_to: 0,
        }
    }

    /// The boundary heights still to follow before `height` can be checked.
    pub fn boundaries_below(&self, height: u64) -> Vec<u64> {
        let k = self.genesis.consensus.epoch_length().max(1);
        let mut e = (self.followed_to / k + 1) * k;
        let mut out = Vec::new();
        while e < height {
            out.push(e);
            e += k;
        }
        out
    }

    /// Checks the boundary block `header` (the next of [`Trail::boundaries_below`]) against
    /// the set in force and takes the set it announces.
    pub fn follow(
        &mut self,
        header: &BlockHeader,
        certificate: &CommitCertificate,
    ) -> Result<(), String> {
        let k = self.genesis.consensus.epoch_length().max(1);
        let expected = (self.followed_to / k + 1) * k;
        if header.height != expected {
            return Err(format!(
                "expected the boundary block at height {expected}, got height {}",
                header.height
            ));
        }
        check_header(&self.genesis, &self.set, header, certificate)
            .map_err(|e| format!("boundary block {}: {e}", header.height))?;
        if let Some(list) = &header.next_validators {
            self.set = SetInForce::new(list.clone(), header.height);
        }
        self.followed_to = header.height;
        Ok(())
    }

    /// The set in force at `height`, once every boundary below it is followed.
    pub fn set_at(&self, height: u64) -> Result<&SetInForce, String> {
        match self.boundaries_below(height).first() {
            Some(e) => Err(format!(
                "the validator set at height {height} needs the boundary block {e} first"
            )),
            None => Ok(&self.set),
        }
    }
}

/// What a header and its certificate claim about who made it, against `set`: the proposer is
/// in it, the header names it, a quorum of it certified the block, and a new set appears only
/// at an epoch boundary. (The transactions are not looked at: [`verify_block`] does both.)
pub fn check_header(
    genesis: &Genesis,
    set: &SetInForce,
    h: &BlockHeader,
    certificate: &CommitCertificate,
) -> Result<(), String> {
    if h.chain_id != genesis.chain_id {
        return Err(format!(
            "block is for chain {:?}, the genesis is {:?}",
            h.chain_id, genesis.chain_id
        ));
    }
    if h.height == 0 {
        return Err("height 0 is the genesis, not a block".into());
    }
    let whose = if set.since() == 0 {
        "the genesis set".to_string()
    } else {
        format!("the set in force since height {}", set.since())
    };
    if !set.set().contains(&h.proposer) {
        return Err(format!("the proposer is not a validator of {whose}"));
    }
    if h.validators_hash != set.hash() {
        return Err(format!(
            "the header names validator set {}, not {whose} ({})",
            h.validators_hash,
            set.hash()
        ));
    }
    if h.next_validators.is_some()
        && !h
            .height
            .is_multiple_of(genesis.consensus.epoch_length().max(1))
    {
        return Err(format!(
            "the header announces a new validator set at height {}, which is not an epoch boundary",
            h.height
        ));
    }
    certificate
        .verify(
            &genesis.chain_id,
            genesis.consensus.kind(),
            set.set(),
            h.height,
            &h.hash(),
        )
        .map_err(|e| format!("commit certificate: {e}"))
}

/// Checks a block and its certificate against `genesis` and `set`, the validator set in force
/// at its height ([`Trail::set_at`]): chain id, transaction count and Merkle root, every
/// transaction's signature and chain, the proposer and `validators_hash`, the certificate's
/// quorum of signatures over this height and hash, and (when `parent` is given) the hash link
/// to the parent.
pub fn verify_block(
    genesis: &Genesis,
    set: &SetInForce,
    block: &Block,
    certificate: &CommitCertificate,
    parent: Option<BlockHash>,
) -> Result<Verified, String> {
    let h = &block.header;
    check_header(genesis, set, h, certificate)?;
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
    let hash = block.hash();
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
        validators: set.set().len(),
        validators_since: set.since(),
        announces_validators: h.next_validators.as_ref().map(Vec::len),
    })
}

/// Checks a proof of a state entry (PROTOCOL.md §7) against `genesis` and `set`, the validator
/// set in force at its height ([`Trail::set_at`]): the block's certificate, and that the
/// proof leads from `key` (the key the caller means, never the one the node names) and the
/// value shown to the header's `state_root`. At height 0 the root is the genesis state's,
/// computed here. Returns the value proved (`None`: the key holds nothing).
pub fn verify_state_proof(
    genesis: &Genesis,
    set: &SetInForce,
    p: &StateProofView,
    key: &[u8],
) -> Result<Option<Vec<u8>>, String> {
    if p.key != hex::encode(key) {
        return Err(format!(
            "the proof is for key {}, not {}",
            p.key,
            hex::encode(key)
        ));
    }
    let value = p
        .value
        .as_deref()
        .map(hex::decode)
        .transpose()
        .map_err(|e| format!("the value is not hex: {e}"))?;
    let root = match (&p.header, &p.certificate) {
        (None, None) if p.height == 0 => StateTree::default()
            .apply(&genesis_writes(genesis))
            .root_hash(),
        (Some(h), Some(c)) => {
            if h.height != p.height {
                return Err(format!(
                    "the header is for height {}, the proof says {}",
                    h.height, p.height
                ));
            }
            check_header(genesis, set, h, c)?;
            h.state_root
        }
        _ => {
            return Err(format!(
                "a proof at height {} needs that block's header and certificate",
                p.height
            ));
        }
    };
    p.proof
        .verify(&root, key, value.as_deref())
        .map_err(|e| format!("state proof: {e}"))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::testkit::{TestChain, key};
    use cairn_ledger::{
        ConsensusConfig, ConsensusKind, Ledger, MemoryStore, Payload, RaftParams, Validator,
        ValidatorChange, VerifiedTransaction,
    };

    /// A Raft chain with epochs of 4 whose admin adds a validator in block 1: blocks 1..=6
    /// with their certificates, the set changing after block 4.
    fn changed_chain() -> (TestChain, Vec<(Block, CommitCertificate)>) {
        let mut c = TestChain::new(ConsensusKind::Raft, 3, 1, 10);
        c.genesis.consensus = ConsensusConfig::Raft(RaftParams {
            epoch_length: 4,
            ..RaftParams::default()
        });
        let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
        let add = c.tx(
            &c.accounts[0],
            0,
            Payload::ChangeValidators {
                change: ValidatorChange::Add {
                    validator: Validator {
                        name: "new".into(),
                        public_key: key("new", 0).public_key(),
                    },
                },
            },
        );
        let mut blocks = Vec::new();
        for h in 1..=6u64 {
            let txs = if h == 1 {
                vec![VerifiedTransaction::trusted(add.clone())]
            } else {
                vec![]
            };
            let (block, _) = c.commit(&mut l, &txs).expect("commit");
            blocks.push((block.clone(), c.certify(&block)));
        }
        (c, blocks)
    }

    #[test]
    fn the_trail_follows_a_change_and_checks_later_blocks_against_the_new_set() {
        let (c, blocks) = changed_chain();
        let mut trail = Trail::new(&c.genesis);
        assert_eq!(trail.boundaries_below(6), vec![4]);
        assert!(trail.set_at(5).is_err(), "boundary 4 not followed yet");
        let (b4, c4) = &blocks[3];
        trail.follow(&b4.header, c4).expect("boundary 4");
        let set = trail.set_at(5).expect("followed").clone();
        assert_eq!((set.since(), set.set().len()), (4, 4));
        let (b5, c5) = &blocks[4];
        let ok = verify_block(&c.genesis, &set, b5, c5, Some(b4.hash())).expect("block 5");
        assert_eq!((ok.validators, ok.validators_since), (4, 4));
        // Against the genesis set, block 5 names the wrong set.
        let genesis_set = SetInForce::genesis(&c.genesis);
        let err = verify_block(&c.genesis, &genesis_set, b5, c5, None).expect_err("old set");
        assert!(err.contains("names validator set"), "{err}");
    }

    #[test]
    fn a_boundary_block_with_its_announcement_cut_out_is_refused() {
        let (c, blocks) = changed_chain();
        let (b4, c4) = &blocks[3];
        let mut forged = b4.header.clone();
        forged.next_validators = None;
        let mut trail = Trail::new(&c.genesis);
        let err = trail.follow(&forged, c4).expect_err("forged");
        assert!(err.contains("certificate"), "{err}");
        // And a boundary cannot be skipped.
        let (b5, c5) = &blocks[4];
        assert!(trail.follow(&b5.header, c5).is_err());
    }
}
