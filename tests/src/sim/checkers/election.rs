//! Election safety (Raft §5.2): at most one leader per term. In PBFT the primary of a view is
//! fixed by the view number, so the same check holds by construction and still runs.

use std::collections::BTreeMap;

use cairn_consensus::{Role, Status};

/// The honest node seen leading each round of each validator set (terms and views start
/// over with each set's engine instance).
#[derive(Debug, Default)]
pub(crate) struct Election {
    leaders: BTreeMap<(u64, u64), usize>,
}

impl Election {
    /// Honest node `node`, in the instance of the set above `base`, reports `status`.
    pub(crate) fn check(&mut self, node: usize, base: u64, status: &Status) -> Result<(), String> {
        if status.role != Role::Leader {
            return Ok(());
        }
        match self.leaders.get(&(base, status.round)) {
            Some(&other) if other != node => Err(format!(
                "election safety: nodes {other} and {node} both lead term {} of the set above \
                 height {base}",
                status.round
            )),
            _ => {
                self.leaders.insert((base, status.round), node);
                Ok(())
            }
        }
    }
}
