//! View changes (§4.4): which VIEW-CHANGE messages are valid, and the one NEW-VIEW a set of
//! them implies, so every replica can recompute and check the new primary's choice.

use std::collections::BTreeMap;

use cairn_ledger::{BlockHash, ValidatorSet};

use super::certificate::{checkpoint_proof_ok, prepared_proof_ok};
use super::message::{PreparedProof, Signed, VIEW_CHANGE, ViewChange};

/// A VIEW-CHANGE is valid (with quorums of `quorum`, 2f+1) if it is signed by a validator, its checkpoint proof holds, and
/// each prepared certificate holds, is above the checkpoint, and is from an older view.
pub fn view_change_ok(
    vc: &Signed<ViewChange>,
    chain_id: &str,
    v: &ValidatorSet,
    quorum: usize,
) -> bool {
    if !vc.verify(VIEW_CHANGE, chain_id, v) {
        return false;
    }
    let low = match &vc.body.checkpoint {
        Some(p) if !checkpoint_proof_ok(p, chain_id, v, quorum) => return false,
        Some(p) => p.checkpoint.seq,
        None => 0,
    };
    let mut seqs = std::collections::BTreeSet::new();
    vc.body.prepared.iter().all(|p| {
        let b = &p.pre_prepare.body;
        b.seq > low
            && b.view < vc.body.new_view
            && seqs.insert(b.seq)
            && prepared_proof_ok(p, chain_id, v, quorum)
    })
}

/// What a quorum of view changes implies for the new view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The highest stable checkpoint among them (min-s).
    pub low: u64,
    /// Its digest, if any.
    pub low_digest: Option<BlockHash>,
    /// For each sequence number above `low`, in order and without gaps, the prepared
    /// certificate of the highest view: these blocks are proposed again.
    pub reproposals: Vec<PreparedProof>,
}

/// The decision for a set of (valid) view changes. Deterministic: every replica computes the
/// same from the same set.
pub fn decide(vcs: &[Signed<ViewChange>]) -> Decision {
    let best = vcs
        .iter()
        .filter_map(|vc| vc.body.checkpoint.as_ref())
        .max_by_key(|p| p.checkpoint.seq);
    let low = best.map_or(0, |p| p.checkpoint.seq);
    let mut by_seq: BTreeMap<u64, &PreparedProof> = BTreeMap::new();
    for vc in vcs {
        for p in &vc.body.prepared {
            let b = &p.pre_prepare.body;
            if b.seq <= low {
                continue;
            }
            let keep = by_seq
                .get(&b.seq)
                .is_none_or(|q| q.pre_prepare.body.view < b.view);
            if keep {
                by_seq.insert(b.seq, p);
            }
        }
    }
    // Heights are contiguous: re-propose from low + 1 up to the first gap.
    let mut reproposals = Vec::new();
    let mut next = low + 1;
    while let Some(p) = by_seq.get(&next) {
        reproposals.push((*p).clone());
        next += 1;
    }
    Decision {
        low,
        low_digest: best.map(|p| p.checkpoint.digest),
        reproposals,
    }
}
