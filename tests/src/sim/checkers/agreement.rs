//! Agreement: no two honest nodes commit different blocks at the same height.

use std::collections::BTreeMap;

use cairn_ledger::{BlockHash, Height};

/// The first block an honest node committed at each height.
#[derive(Debug, Default)]
pub(crate) struct Agreement {
    committed: BTreeMap<Height, BlockHash>,
}

impl Agreement {
    /// Honest node `node` committed `hash` at `height`.
    pub(crate) fn check(
        &mut self,
        node: usize,
        height: Height,
        hash: BlockHash,
    ) -> Result<(), String> {
        match self.committed.get(&height) {
            Some(h) if *h != hash => Err(format!(
                "agreement: node {node} committed {hash} at height {height}, another honest node committed {h}"
            )),
            Some(_) => Ok(()),
            None => {
                self.committed.insert(height, hash);
                Ok(())
            }
        }
    }
}
