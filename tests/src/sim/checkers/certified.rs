//! Certificates: at most one block per height ever gathers a commit quorum. Every COMMIT
//! vote put on the wire is counted (by signer, as its receivers would), whoever receives it;
//! if two blocks at one height each have 2f+1 signers, two valid commit certificates exist
//! for that height, and an offline verifier shown the one that never joins the chain would
//! be fooled, even if no honest node ever commits it.

use std::collections::{BTreeMap, BTreeSet};

use cairn_ledger::{BlockHash, Height};

/// Signers of COMMIT votes, by height and block.
#[derive(Debug, Default)]
pub(crate) struct Certified {
    votes: BTreeMap<Height, BTreeMap<BlockHash, BTreeSet<u32>>>,
}

impl Certified {
    /// `signer` put a COMMIT for `block` at `height` on the wire; `quorum` is 2f+1.
    pub(crate) fn vote(
        &mut self,
        height: Height,
        block: BlockHash,
        signer: u32,
        quorum: usize,
    ) -> Result<(), String> {
        let at = self.votes.entry(height).or_default();
        at.entry(block).or_default().insert(signer);
        let certified: Vec<&BlockHash> = at
            .iter()
            .filter(|(_, s)| s.len() >= quorum)
            .map(|(b, _)| b)
            .collect();
        if certified.len() > 1 {
            return Err(format!(
                "certificates: two blocks at height {height} have commit quorums: {} and {}",
                certified[0], certified[1]
            ));
        }
        Ok(())
    }
}
