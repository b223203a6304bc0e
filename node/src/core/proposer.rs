//! When a leader builds its block.
//!
//! The engine asks once per height (`RequestProposal`); the request is parked here until the
//! mempool holds a full block (`block_txs_max` transactions that could execute now), or holds
//! any such transaction and `block_interval_ms` has passed since the request. With
//! `empty_blocks`, an empty block goes out every interval. A pipelining leader asks for block
//! h+1 while h is in flight; heights count from what the ledger will hold once the blocks
//! built here commit (`built_to`). A block on top of one not committed yet is built only when a
//! full one is waiting: every block costs each validator its votes, signatures and a synced
//! write, so below that load, waiting for the commit and building one larger block is both
//! cheaper and, on a machine whose CPU is the limit, faster. A request above the next such height (the ledger is
//! catching up with the engine) waits for the ledger, since the engine will not ask again.

use std::time::{Duration, Instant};

use cairn_ledger::Height;

/// The parked request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parked {
    height: Height,
    round: u64,
    since: Instant,
}

/// Block production settings (`[consensus]` in config.toml).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Most transactions in a block.
    pub block_txs_max: usize,
    /// How long to wait for a block to fill.
    pub block_interval: Duration,
    /// Propose empty blocks every interval.
    pub empty_blocks: bool,
}

/// What the mempool holds, as the policy needs it.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// Transactions pending.
    pub txs: usize,
    /// Whether any could execute in the next block.
    pub executable: bool,
}

/// The parked proposal request and the policy.
#[derive(Debug)]
pub struct Proposer {
    policy: Policy,
    parked: Option<Parked>,
}

impl Proposer {
    /// No request parked.
    pub fn new(policy: Policy) -> Proposer {
        Proposer {
            policy,
            parked: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The engine asked for the block at `height` in `round`.
    pub fn park(&mut self, height: Height, round: u64, now: Instant) {
        self.parked = Some(Parked {
            height,
            round,
            since: now,
        });
    }

    /// Whether a request is parked.
    pub fn is_parked(&self) -> bool {
        self.parked.is_some()
    }

    /// The ledger reached `height`: a request at or below it is moot.
    pub fn on_commit(&mut self, height: Height) {
        self.parked = self.parked.filter(|p| p.height > height);
    }

    /// `(height, round)` to build now, if it is time. `built_to`: the ledger's height once the
    /// blocks built here commit (above `tip` when some are in flight); `pending`: what the
    /// mempool holds beyond those blocks.
    pub fn due(
        &mut self,
        tip: Height,
        built_to: Height,
        pending: Pending,
        now: Instant,
    ) -> Option<(Height, u64)> {
        let p = self.parked?;
        if p.height <= built_to {
            self.parked = None;
            return None;
        }
        if p.height > built_to + 1 {
            return None;
        }
        let waited = now.saturating_duration_since(p.since) >= self.policy.block_interval;
        let full = pending.txs >= self.policy.block_txs_max;
        let go = if built_to > tip {
            pending.executable && full
        } else {
            (pending.executable && (full || waited)) || (self.policy.empty_blocks && waited)
        };
        go.then_some((p.height, p.round))
    }

    /// The block was built and handed to the engine.
    pub fn built(&mut self) {
        self.parked = None;
    }

    /// The engine that asked is gone (the validator set changed): nothing is parked.
    pub fn forget(&mut self) {
        self.parked = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(empty: bool) -> Policy {
        Policy {
            block_txs_max: 10,
            block_interval: Duration::from_millis(5),
            empty_blocks: empty,
        }
    }

    fn pending(txs: usize, executable: bool) -> Pending {
        Pending { txs, executable }
    }

    #[test]
    fn the_policy_as_a_table() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(6);
        // (desc, empty_blocks, parked height, tip, pending, now, expected)
        let table: [(&str, bool, Height, Height, Pending, Instant, bool); 9] = [
            (
                "nothing pending",
                false,
                5,
                4,
                pending(0, false),
                later,
                false,
            ),
            (
                "some, interval not over",
                false,
                5,
                4,
                pending(3, true),
                t0,
                false,
            ),
            (
                "some, interval over",
                false,
                5,
                4,
                pending(3, true),
                later,
                true,
            ),
            (
                "a full block at once",
                false,
                5,
                4,
                pending(10, true),
                t0,
                true,
            ),
            (
                "only gaps, however many",
                false,
                5,
                4,
                pending(50, false),
                later,
                false,
            ),
            (
                "empty blocks, interval over",
                true,
                5,
                4,
                pending(0, false),
                later,
                true,
            ),
            (
                "empty blocks, interval not over",
                true,
                5,
                4,
                pending(0, false),
                t0,
                false,
            ),
            (
                "ledger behind the request",
                false,
                7,
                4,
                pending(10, true),
                later,
                false,
            ),
            (
                "request already committed",
                false,
                4,
                4,
                pending(10, true),
                later,
                false,
            ),
        ];
        for (desc, empty, height, tip, pending, now, expected) in table {
            let mut p = Proposer::new(policy(empty));
            p.park(height, 3, t0);
            let due = p.due(tip, tip, pending, now);
            assert_eq!(due.is_some(), expected, "{desc}");
            if let Some(d) = due {
                assert_eq!(d, (height, 3), "{desc}");
            }
        }
    }

    #[test]
    fn requests_go_with_commits_and_builds() {
        let t0 = Instant::now();
        let mut p = Proposer::new(policy(false));
        assert_eq!(p.due(0, 0, pending(10, true), t0), None, "nothing parked");
        p.park(2, 1, t0);
        p.on_commit(1);
        assert!(p.is_parked(), "a commit below the request keeps it");
        p.on_commit(2);
        assert!(!p.is_parked(), "a commit at its height ends it");
        p.park(3, 1, t0);
        assert_eq!(p.due(4, 4, pending(10, true), t0), None);
        assert!(!p.is_parked(), "found moot when asked");
        p.park(5, 2, t0);
        assert_eq!(p.due(4, 4, pending(10, true), t0), Some((5, 2)));
        p.built();
        assert!(!p.is_parked());
    }

    #[test]
    fn a_block_on_one_in_flight_waits_for_a_full_block() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(6);
        let mut p = Proposer::new(policy(true));
        // Tip 4, block 5 in flight, block 6 asked for.
        p.park(6, 1, t0);
        assert_eq!(
            p.due(4, 5, pending(9, true), later),
            None,
            "not a full block"
        );
        assert_eq!(
            p.due(4, 5, pending(0, false), later),
            None,
            "no empty block ahead"
        );
        assert_eq!(
            p.due(4, 5, pending(10, true), t0),
            Some((6, 1)),
            "a full one at once"
        );
        // Once block 5 commits, the usual policy applies.
        assert_eq!(p.due(5, 5, pending(1, true), later), Some((6, 1)));
    }
}
