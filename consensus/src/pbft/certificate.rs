//! Checks of the quorum proofs PBFT messages carry, and assembly of commit certificates.

use std::collections::BTreeSet;

use cairn_ledger::{CommitCertificate, CommitVote as LedgerVote, PbftCertificate, ValidatorSet};

use crate::{NodeId, Seq, View};

use super::message::{
    CHECKPOINT, CheckpointProof, CommitVote, PRE_PREPARE, PREPARE, PreparedProof,
};

/// The primary of `view`: validator `view mod n` (§4.1).
pub fn primary(view: View, n: usize) -> NodeId {
    NodeId((view.0 % n as u64) as u32)
}

/// A stable checkpoint proof: `quorum` (2f+1) distinct validators signed the same checkpoint.
pub fn checkpoint_proof_ok(
    p: &CheckpointProof,
    chain_id: &str,
    v: &ValidatorSet,
    quorum: usize,
) -> bool {
    let mut authors = BTreeSet::new();
    for s in &p.votes {
        if s.body != p.checkpoint || !s.verify(CHECKPOINT, chain_id, v) || !authors.insert(s.author)
        {
            return false;
        }
    }
    authors.len() >= quorum
}

/// A prepared certificate (§4.2): the pre-prepare of view `w` signed by `w`'s primary, naming
/// a block that hashes to its digest, and prepares from distinct other replicas matching it,
/// with the pre-prepare making up a quorum.
pub fn prepared_proof_ok(
    p: &PreparedProof,
    chain_id: &str,
    v: &ValidatorSet,
    quorum: usize,
) -> bool {
    let pp = &p.pre_prepare;
    if pp.author != primary(pp.body.view, v.len())
        || !pp.verify(PRE_PREPARE, chain_id, v)
        || p.block.hash() != pp.body.digest
        || Seq::at(p.block.header.height) != pp.body.seq
    {
        return false;
    }
    let mut authors = BTreeSet::from([pp.author]);
    for s in &p.prepares {
        if s.body != pp.body || !s.verify(PREPARE, chain_id, v) || !authors.insert(s.author) {
            return false;
        }
    }
    authors.len() >= quorum
}

/// A commit certificate from a quorum of matching, verified commit votes.
pub fn commit_certificate(votes: &[CommitVote], v: &ValidatorSet) -> Option<CommitCertificate> {
    let first = votes.first()?;
    let votes = votes
        .iter()
        .map(|s| {
            v.keys().get(s.author.index()).map(|key| LedgerVote {
                validator: *key,
                signature: s.signature,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(CommitCertificate::Pbft(PbftCertificate {
        view: first.body.view,
        seq: first.body.seq,
        votes,
    }))
}
