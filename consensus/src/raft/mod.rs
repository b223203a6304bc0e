//! Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm"), for crash
//! faults with n = 2f+1 validators, as a pure state machine.
//!
//! One file per part of the paper: [`election`] (§5.2 with PreVote and CheckQuorum),
//! [`replication`] (§5.3–5.4, certificates), [`snapshot`] (§7); [`log`] is the in-memory log.
//!
//! Bounded state: Raft tolerates crash faults, so its peers run this code; still, nothing a
//! peer sends makes it keep more than the bounds written next to each field of [`Raft`] (and
//! in ARCHITECTURE.md), which [`Protocol::footprint`] states and the simulator checks,
//! duplicated and replayed messages included.

mod durable;
mod election;
mod log;
mod message;
mod replication;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cairn_crypto::SigningKey;
use cairn_ledger::{Height, RaftCertificate, ValidatorSet};

use crate::{
    DetRng, Held, Input, LogIndex, NodeId, Output, Protocol, Refusal, Refusals, Role, Status, Term,
};
use log::RaftLog;
pub use message::{Entry, RaftDurable, RaftMessage, RaftPersist};

type Out = Vec<Output<RaftMessage, RaftPersist>>;

/// Raft's fixed parameters.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// Chain id (signed into certificates).
    pub chain_id: String,
    /// The validators, in genesis order.
    pub validators: ValidatorSet,
    /// This node's index.
    pub me: NodeId,
    /// Election timeout, lower bound, in ticks.
    pub election_ticks_min: u64,
    /// Election timeout, upper bound (exclusive), in ticks.
    pub election_ticks_max: u64,
    /// Leader heartbeat interval, in ticks.
    pub heartbeat_ticks: u64,
    /// Most entries in one AppendEntries.
    pub max_entries_per_message: usize,
    /// Applied entries kept in the log before compaction.
    pub compact_after: u64,
    /// Most blocks a leader keeps in its log above what is committed and applied: it asks for
    /// block h+1 while h (up to this many) replicates. 1 is one block at a time.
    pub blocks_in_flight: usize,
    /// Seed of the election-timeout randomness.
    pub seed: u64,
    /// Test only: a planted bug (grant a vote even after voting for someone else in the same
    /// term) that the simulator must catch. Never set outside tests.
    #[doc(hidden)]
    pub planted_bug_vote_twice: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Next index to send.
    next: LogIndex,
    /// Highest index known to match.
    matched: LogIndex,
    /// The follower's applied index, as last reported.
    applied: LogIndex,
    /// Heard from since the last CheckQuorum.
    active: bool,
    /// The follower's last answer was a success, so entries are sent to it once: `next`
    /// moves past them when they are sent, not when they are acknowledged (pipelined
    /// AppendEntries). A refusal (a lost message shows up as one at the next heartbeat) goes
    /// back to probing: resending from `next` until an answer matches.
    replicating: bool,
}

/// The highest term a peer's message may carry. A real cluster never gets near it (a term per
/// nanosecond would take 146 years), and the terms after it stay countable.
pub const TERM_MAX: Term = Term(u64::MAX / 2);

/// A Raft validator.
pub struct Raft {
    cfg: RaftConfig,
    key: SigningKey,
    rng: DetRng,
    // Durable (mirrored by Persist outputs).
    term: Term,
    voted_for: Option<NodeId>,
    /// The log above the snapshot point: at most 2 × `compact_after` applied entries (then it
    /// is compacted), plus those not yet applied. A leader keeps at most `blocks_in_flight`
    /// blocks above what is applied, so beyond what is committed a log holds at most a no-op
    /// and that many blocks per term since the last commit; and each AppendEntries brings at
    /// most `max_entries_per_message`.
    log: RaftLog,
    // Volatile.
    role: Role,
    leader: Option<NodeId>,
    commit_index: LogIndex,
    /// Index up to which committed entries were handed to the caller (or synced).
    applied: LogIndex,
    /// Height of the last block the caller's ledger holds.
    applied_height: Height,
    elapsed: u64,
    timeout: u64,
    heartbeat_elapsed: u64,
    /// Votes in the election in progress: at most one per validator (n).
    votes: BTreeMap<NodeId, bool>,
    /// The leader's view of each follower: exactly n.
    progress: Vec<Progress>,
    /// Certificates for committed block entries not yet compacted: at most one per log entry
    /// above the applied index (only for entries the log holds).
    certificates: BTreeMap<LogIndex, RaftCertificate>,
    proposal_requested: bool,
    /// A catch-up in progress: (index, term, height).
    pending_sync: Option<(LogIndex, Term, Height)>,
    refused: Refusals,
}

impl std::fmt::Debug for Raft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raft")
            .field("me", &self.cfg.me)
            .field("term", &self.term)
            .field("role", &self.role)
            .field("commit_index", &self.commit_index)
            .field("applied_height", &self.applied_height)
            .finish()
    }
}

impl Raft {
    /// A validator starting from its durable state (default for a fresh node) and the height
    /// of its ledger's tip. Nothing else survives a restart.
    pub fn restore(
        cfg: RaftConfig,
        key: SigningKey,
        durable: &RaftDurable,
        ledger_height: Height,
    ) -> Raft {
        let log = RaftLog::from_durable(durable);
        // Only the snapshot point is known to be committed. An entry at a height the ledger
        // holds may still be an uncommitted block that lost (a crash between a block sync and
        // the compaction that follows it), so nothing after the snapshot point is assumed
        // committed: those entries commit again through the leader, and `apply_committed`
        // skips blocks the ledger already holds.
        let applied = log.snapshot_index;
        let mut rng = DetRng::new(cfg.seed ^ (u64::from(cfg.me.0) << 32));
        let timeout = rng.range(cfg.election_ticks_min, cfg.election_ticks_max);
        let n = cfg.validators.len();
        Raft {
            term: durable.term,
            voted_for: durable.voted_for.map(NodeId),
            log,
            role: Role::Follower,
            leader: None,
            commit_index: applied,
            applied,
            applied_height: ledger_height,
            elapsed: 0,
            timeout,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
            progress: vec![Progress::default(); n],
            certificates: BTreeMap::new(),
            proposal_requested: false,
            pending_sync: None,
            refused: Refusals::default(),
            rng,
            key,
            cfg,
        }
    }

    fn majority(&self) -> usize {
        self.cfg.validators.majority()
    }

    fn others(&self) -> impl Iterator<Item = NodeId> + use<> {
        let me = self.cfg.me;
        (0..self.cfg.validators.len() as u32)
            .map(NodeId)
            .filter(move |n| *n != me)
    }

    fn persist_hard_state(&self, out: &mut Out) {
        out.push(Output::Persist {
            op: RaftPersist::HardState {
                term: self.term,
                voted_for: self.voted_for.map(|n| n.0),
            },
        });
    }
}

impl Protocol for Raft {
    type Message = RaftMessage;
    type PersistOp = RaftPersist;
    type Config = RaftConfig;
    type Durable = RaftDurable;

    fn restore(
        config: RaftConfig,
        key: SigningKey,
        durable: &RaftDurable,
        ledger_height: Height,
    ) -> Raft {
        Raft::restore(config, key, durable, ledger_height)
    }

    fn step(&mut self, input: Input<RaftMessage>, out: &mut Out) {
        let (term, commit) = (self.term, self.commit_index);
        let r = match input {
            Input::Tick { .. } => {
                self.on_tick(out);
                Ok(())
            }
            Input::Message { from, msg } => self.on_message(from, msg, out),
            Input::Propose { block } => self.on_propose(*block, out),
            Input::Synced { height, .. } => {
                self.on_synced(height, out);
                Ok(())
            }
            // Raft followers trust the leader's validation (crash-fault model).
            Input::Validated { .. } => Err(Refusal::Unrequested),
        };
        if let Err(r) = r {
            self.refused.count(r);
        }
        // Release-mode invariants: terms and the commit index never go back.
        assert!(
            self.term >= term,
            "Raft term went back: {term} -> {}",
            self.term
        );
        assert!(
            self.commit_index >= commit,
            "Raft commit index went back: {commit} -> {}",
            self.commit_index
        );
    }

    fn status(&self) -> Status {
        Status {
            role: self.role,
            round: self.term.0,
            leader: self.leader,
            commit_height: self.applied_height,
            refused: self.refused,
        }
    }

    fn footprint(&self) -> Vec<Held> {
        let n = self.cfg.validators.len();
        let keep = self.cfg.compact_after.max(1) as usize;
        let batch = self.cfg.max_entries_per_message;
        // Terms since the entry at the commit index: each may have left a no-op and the
        // blocks in flight.
        let committed_term = self.log.term_at(self.commit_index).unwrap_or_default();
        let terms = self.term.since(committed_term) as usize + 1;
        let log = 2 * keep + 2 * batch + (1 + self.cfg.blocks_in_flight.max(1)) * terms;
        vec![
            Held::messages("votes", self.votes.len(), n),
            Held::messages("certificates", self.certificates.len(), log),
            Held::entries(
                "log entries",
                self.log.last_index().since(self.log.snapshot_index) as usize,
                log,
            ),
        ]
    }
}

impl Raft {
    fn on_message(&mut self, from: NodeId, msg: RaftMessage, out: &mut Out) -> Result<(), Refusal> {
        if from == self.cfg.me || from.index() >= self.cfg.validators.len() {
            return Err(Refusal::NotAValidator);
        }
        if msg.term() > TERM_MAX {
            return Err(Refusal::OutOfRange);
        }
        match msg {
            RaftMessage::PreVote {
                term,
                last_index,
                last_term,
            } => {
                self.on_pre_vote(from, term, last_index, last_term, out);
                Ok(())
            }
            RaftMessage::PreVoteResponse { term, granted } => {
                self.on_pre_vote_response(from, term, granted, out)
            }
            RaftMessage::RequestVote {
                term,
                last_index,
                last_term,
            } => self.on_request_vote(from, term, last_index, last_term, out),
            RaftMessage::RequestVoteResponse { term, granted } => {
                self.on_request_vote_response(from, term, granted, out)
            }
            RaftMessage::AppendEntries {
                term,
                prev_index,
                prev_term,
                entries,
                leader_commit,
                certificates,
            } => self.on_append(
                from,
                term,
                prev_index,
                prev_term,
                entries,
                leader_commit,
                certificates,
                out,
            ),
            RaftMessage::AppendEntriesResponse {
                term,
                success,
                last_index,
                applied,
            } => self.on_append_response(from, term, success, last_index, applied, out),
            RaftMessage::Snapshot {
                term,
                index,
                index_term,
                height,
            } => self.on_snapshot(from, term, index, index_term, height, out),
        }
    }
}
