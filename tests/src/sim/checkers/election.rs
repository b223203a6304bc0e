//! Election safety (Raft §5.2): at most one leader per term. In PBFT the primary of a view is
//! fixed by the view number, so the same check holds by construction and still runs.

use std::collections::BTreeMap;

use cairn_consensus::{Role, Status};

/// The honest node seen leading each round.
#[derive(Debug, Default)]
pub(crate) struct Election {
    leaders: BTreeMap<u64, usize>,
}

impl Election {
    /// Honest node `node` reports `status`.
    pub(crate) fn check(&mut self, node: usize, status: &Status) -> Result<(), String> {
        if status.role != Role::Leader {
            return Ok(());
        }
        match self.leaders.get(&status.round) {
            Some(&other) if other != node => Err(format!(
                "election safety: nodes {other} and {node} both lead term {}",
                status.round
            )),
            _ => {
                self.leaders.insert(status.round, node);
                Ok(())
            }
        }
    }
}
