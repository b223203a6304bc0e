//! Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm"), for crash
//! faults with n = 2f+1 validators, as a pure state machine.
//!
//! - Leader election with randomized timeouts (§5.2), PreVote so a partitioned node cannot
//!   disrupt a healthy cluster when it returns, and CheckQuorum so a leader that lost its
//!   majority steps down (thesis §9.6, §6.2).
//! - Log replication of blocks (§5.3); a new leader appends a no-op so entries of earlier
//!   terms commit with it (§5.4.2, §8); commit only by majority match of an entry of the
//!   current term (§5.4.2, Figure 8).
//! - One block in flight: the leader asks for a proposal only when everything in its log is
//!   committed and applied, so every block is built on the committed ledger tip.
//! - Certificates: the leader signs `(chain, height, block hash, term)` for each committed
//!   block and ships the signature to followers with AppendEntries.
//! - Log compaction: applied entries are dropped once the log holds `compact_after` applied
//!   entries beyond the snapshot point; the ledger's blocks are the snapshot. A follower behind
//!   the compacted log gets `Snapshot` and the caller syncs blocks (`Output::SyncTo`).

mod durable;
mod log;
mod message;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cairn_crypto::SigningKey;
use cairn_ledger::{
    Block, CommitCertificate, ConsensusKind, Height, RaftCertificate, RaftCommitStatement,
    ValidatorSet,
};

use crate::{DetRng, Input, NodeId, Output, Protocol, Role, Status};
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
    next: u64,
    /// Highest index known to match.
    matched: u64,
    /// The follower's applied index, as last reported.
    applied: u64,
    /// Heard from since the last CheckQuorum.
    active: bool,
}

/// A Raft validator.
pub struct Raft {
    cfg: RaftConfig,
    key: SigningKey,
    rng: DetRng,
    // Durable (mirrored by Persist outputs).
    term: u64,
    voted_for: Option<NodeId>,
    log: RaftLog,
    // Volatile.
    role: Role,
    leader: Option<NodeId>,
    commit_index: u64,
    /// Index up to which committed entries were handed to the caller (or synced).
    applied: u64,
    /// Height of the last block the caller's ledger holds.
    applied_height: Height,
    elapsed: u64,
    timeout: u64,
    heartbeat_elapsed: u64,
    votes: BTreeMap<NodeId, bool>,
    progress: Vec<Progress>,
    /// Certificates for committed block entries not yet compacted.
    certificates: BTreeMap<u64, RaftCertificate>,
    proposal_requested: bool,
    /// A catch-up in progress: (index, term, height).
    pending_sync: Option<(u64, u64, Height)>,
    dropped: u64,
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
            dropped: 0,
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

    fn reset_timer(&mut self) {
        self.elapsed = 0;
        self.timeout = self
            .rng
            .range(self.cfg.election_ticks_min, self.cfg.election_ticks_max);
    }

    /// A follower that heard from a leader within the minimum election timeout ignores
    /// vote requests: the leader is alive (thesis §4.2.3, with CheckQuorum).
    fn in_lease(&self) -> bool {
        self.role == Role::Follower
            && self.leader.is_some()
            && self.elapsed < self.cfg.election_ticks_min
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>, out: &mut Out) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard_state(out);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.proposal_requested = false;
        self.reset_timer();
    }

    fn start_pre_vote(&mut self, out: &mut Out) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.cfg.me, true);
        self.reset_timer();
        if self.votes.len() >= self.majority() {
            return self.start_election(out);
        }
        out.push(Output::Broadcast {
            msg: RaftMessage::PreVote {
                term: self.term + 1,
                last_index: self.log.last_index(),
                last_term: self.log.last_term(),
            },
        });
    }

    fn start_election(&mut self, out: &mut Out) {
        self.role = Role::Candidate;
        self.term += 1;
        self.voted_for = Some(self.cfg.me);
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.cfg.me, true);
        self.reset_timer();
        self.persist_hard_state(out);
        if self.votes.len() >= self.majority() {
            return self.become_leader(out);
        }
        out.push(Output::Broadcast {
            msg: RaftMessage::RequestVote {
                term: self.term,
                last_index: self.log.last_index(),
                last_term: self.log.last_term(),
            },
        });
    }

    fn become_leader(&mut self, out: &mut Out) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.me);
        self.heartbeat_elapsed = 0;
        self.elapsed = 0;
        let next = self.log.last_index() + 1;
        for p in &mut self.progress {
            *p = Progress {
                next,
                matched: 0,
                applied: 0,
                active: true,
            };
        }
        // §8: a no-op of the new term lets earlier entries commit (never count replicas of
        // an old term's entry, §5.4.2).
        self.append(
            Entry {
                term: self.term,
                block: None,
            },
            out,
        );
        self.maybe_commit(out);
        self.broadcast_append(out);
    }

    fn append(&mut self, e: Entry, out: &mut Out) {
        let first_index = self.log.last_index() + 1;
        self.log.push(e.clone());
        out.push(Output::Persist {
            op: RaftPersist::Append {
                first_index,
                entries: vec![e],
            },
        });
        let me = self.cfg.me.index();
        self.progress[me].matched = self.log.last_index();
    }

    fn up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    fn broadcast_append(&mut self, out: &mut Out) {
        for p in self.others().collect::<Vec<_>>() {
            self.send_append(p, out);
        }
    }

    fn send_append(&mut self, to: NodeId, out: &mut Out) {
        let pr = self.progress[to.index()];
        if pr.next <= self.log.snapshot_index || pr.applied < self.log.snapshot_index {
            out.push(Output::Send {
                to,
                msg: RaftMessage::Snapshot {
                    term: self.term,
                    index: self.log.snapshot_index,
                    index_term: self.log.snapshot_term,
                    height: self.log.snapshot_height,
                },
            });
            return;
        }
        let prev_index = pr.next - 1;
        let Some(prev_term) = self.log.term_at(prev_index) else {
            return;
        };
        let last = self
            .log
            .last_index()
            .min(prev_index + self.cfg.max_entries_per_message as u64);
        let entries = self.log.slice(pr.next, last);
        let max = self.cfg.max_entries_per_message;
        let certificates = (pr.applied.max(self.log.snapshot_index) + 1..=self.commit_index)
            .filter_map(|i| self.certificate_for(i).map(|c| (i, c)))
            .take(max)
            .collect();
        out.push(Output::Send {
            to,
            msg: RaftMessage::AppendEntries {
                term: self.term,
                prev_index,
                prev_term,
                entries,
                leader_commit: self.commit_index,
                certificates,
            },
        });
    }

    /// The leader's certificate for the committed block entry at `index`, signing one now if
    /// this leader has none (the entry is committed and we are leader of `self.term`).
    fn certificate_for(&mut self, index: u64) -> Option<RaftCertificate> {
        if let Some(c) = self.certificates.get(&index) {
            return Some(c.clone());
        }
        if self.role != Role::Leader || index > self.commit_index {
            return None;
        }
        let block = self.log.entry(index)?.block.as_ref()?;
        let statement = RaftCommitStatement {
            height: block.header.height,
            block_hash: block.hash(),
            term: self.term,
        };
        let cert = RaftCertificate {
            term: self.term,
            leader: self.key.public_key(),
            signature: statement.sign(&self.cfg.chain_id, &self.key),
        };
        self.certificates.insert(index, cert.clone());
        Some(cert)
    }

    /// §5.3/§5.4.2: commit the highest index that a majority stores and that belongs to the
    /// current term.
    fn maybe_commit(&mut self, out: &mut Out) {
        let mut matched: Vec<u64> = self.progress.iter().map(|p| p.matched).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.majority() - 1];
        if candidate > self.commit_index && self.log.term_at(candidate) == Some(self.term) {
            self.commit_index = candidate;
            self.apply_committed(out);
            self.broadcast_append(out);
        }
    }

    /// Hands committed entries to the caller in order, as far as certificates allow.
    fn apply_committed(&mut self, out: &mut Out) {
        while self.applied < self.commit_index {
            let index = self.applied + 1;
            let Some(entry) = self.log.entry(index) else {
                break;
            };
            match &entry.block {
                None => {}
                Some(block) if block.header.height <= self.applied_height => {}
                Some(block) => {
                    let block = block.clone();
                    let Some(cert) = self.certificate_for(index) else {
                        break;
                    };
                    self.applied_height = block.header.height;
                    out.push(Output::Commit {
                        block,
                        certificate: CommitCertificate::Raft(cert),
                    });
                }
            }
            self.applied = index;
            let me = self.cfg.me.index();
            self.progress[me].applied = index;
        }
        self.maybe_compact(out);
        self.maybe_request_proposal(out);
    }

    fn maybe_compact(&mut self, out: &mut Out) {
        let keep = self.cfg.compact_after.max(1);
        if self.applied < self.log.snapshot_index + 2 * keep {
            return;
        }
        let index = self.applied - keep;
        let (Some(term), Some(height)) = (self.log.term_at(index), self.log.height_at(index))
        else {
            return;
        };
        self.log.compact(index, term, height);
        self.certificates = self.certificates.split_off(&(index + 1));
        out.push(Output::Persist {
            op: RaftPersist::Compact {
                index,
                term,
                height,
            },
        });
    }

    fn maybe_request_proposal(&mut self, out: &mut Out) {
        if self.role == Role::Leader
            && !self.proposal_requested
            && self.applied == self.log.last_index()
        {
            self.proposal_requested = true;
            out.push(Output::RequestProposal {
                height: self.applied_height + 1,
                round: self.term,
            });
        }
    }

    fn on_tick(&mut self, out: &mut Out) {
        self.elapsed += 1;
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.broadcast_append(out);
            }
            if self.elapsed >= self.cfg.election_ticks_min {
                // CheckQuorum: step down without a majority heard from in a timeout.
                let me = self.cfg.me.index();
                let active = self
                    .progress
                    .iter()
                    .enumerate()
                    .filter(|(i, p)| *i == me || p.active)
                    .count();
                for p in &mut self.progress {
                    p.active = false;
                }
                self.elapsed = 0;
                if active < self.majority() {
                    self.become_follower(self.term, None, out);
                }
            }
        } else if self.elapsed >= self.timeout {
            self.start_pre_vote(out);
        }
    }

    fn on_propose(&mut self, block: Block, out: &mut Out) {
        if self.role != Role::Leader {
            out.push(Output::NotLeader { hint: self.leader });
            return;
        }
        if !self.proposal_requested
            || block.header.height != self.applied_height + 1
            || self.applied != self.log.last_index()
        {
            self.dropped += 1;
            return;
        }
        self.proposal_requested = false;
        self.append(
            Entry {
                term: self.term,
                block: Some(block),
            },
            out,
        );
        self.maybe_commit(out);
        self.broadcast_append(out);
    }

    fn on_synced(&mut self, height: Height, out: &mut Out) {
        self.applied_height = self.applied_height.max(height);
        let Some((index, term, snap_height)) = self.pending_sync else {
            return;
        };
        if height < snap_height {
            return;
        }
        self.pending_sync = None;
        // Raft §7: keep entries after the snapshot point if the log agrees at that point.
        if self.log.term_at(index) != Some(term) {
            self.log.truncate_from(self.log.snapshot_index + 1);
            out.push(Output::Persist {
                op: RaftPersist::TruncateFrom {
                    index: self.log.snapshot_index + 1,
                },
            });
        }
        self.log.compact(index, term, snap_height);
        out.push(Output::Persist {
            op: RaftPersist::Compact {
                index,
                term,
                height: snap_height,
            },
        });
        self.commit_index = self.commit_index.max(index);
        self.applied = self.applied.max(index);
        self.certificates = self.certificates.split_off(&(index + 1));
        if let Some(leader) = self.leader {
            out.push(Output::Send {
                to: leader,
                msg: RaftMessage::AppendEntriesResponse {
                    term: self.term,
                    success: true,
                    last_index: index,
                    applied: self.applied,
                },
            });
        }
        self.apply_committed(out);
    }

    fn on_message(&mut self, from: NodeId, msg: RaftMessage, out: &mut Out) {
        if from == self.cfg.me || from.index() >= self.cfg.validators.len() {
            self.dropped += 1;
            return;
        }
        match msg {
            RaftMessage::PreVote {
                term,
                last_index,
                last_term,
            } => {
                let granted =
                    term > self.term && !self.in_lease() && self.up_to_date(last_index, last_term);
                out.push(Output::Send {
                    to: from,
                    msg: RaftMessage::PreVoteResponse {
                        term: if granted { term } else { self.term },
                        granted,
                    },
                });
            }
            RaftMessage::PreVoteResponse { term, granted } => {
                if term > self.term + 1 || (!granted && term > self.term) {
                    self.become_follower(term, None, out);
                } else if self.role == Role::PreCandidate && granted && term == self.term + 1 {
                    self.votes.insert(from, true);
                    if self.votes.values().filter(|v| **v).count() >= self.majority() {
                        self.start_election(out);
                    }
                } else {
                    self.dropped += 1;
                }
            }
            RaftMessage::RequestVote {
                term,
                last_index,
                last_term,
            } => {
                if term > self.term && self.in_lease() {
                    self.dropped += 1;
                    return;
                }
                if term > self.term {
                    self.become_follower(term, None, out);
                }
                let granted = term == self.term
                    && (self.voted_for.is_none_or(|v| v == from)
                        || self.cfg.planted_bug_vote_twice)
                    && self.up_to_date(last_index, last_term);
                if granted {
                    self.voted_for = Some(from);
                    self.persist_hard_state(out);
                    self.reset_timer();
                }
                out.push(Output::Send {
                    to: from,
                    msg: RaftMessage::RequestVoteResponse {
                        term: self.term,
                        granted,
                    },
                });
            }
            RaftMessage::RequestVoteResponse { term, granted } => {
                if term > self.term {
                    self.become_follower(term, None, out);
                } else if self.role == Role::Candidate && term == self.term {
                    self.votes.insert(from, granted);
                    if self.votes.values().filter(|v| **v).count() >= self.majority() {
                        self.become_leader(out);
                    }
                } else {
                    self.dropped += 1;
                }
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
            } => {
                if term > self.term {
                    self.become_follower(term, None, out);
                    return;
                }
                if self.role != Role::Leader || term < self.term {
                    self.dropped += 1;
                    return;
                }
                let last = self.log.last_index();
                let pr = &mut self.progress[from.index()];
                pr.active = true;
                pr.applied = pr.applied.max(applied.min(last));
                if success {
                    pr.matched = pr.matched.max(last_index.min(last));
                    pr.next = pr.matched + 1;
                    self.maybe_commit(out);
                    if self.progress[from.index()].next <= last {
                        self.send_append(from, out);
                    }
                } else {
                    pr.next = (last_index + 1).max(pr.matched + 1).min(last + 1);
                    self.send_append(from, out);
                }
            }
            RaftMessage::Snapshot {
                term,
                index,
                index_term,
                height,
            } => {
                if term < self.term {
                    out.push(Output::Send {
                        to: from,
                        msg: RaftMessage::AppendEntriesResponse {
                            term: self.term,
                            success: false,
                            last_index: self.commit_index,
                            applied: self.applied,
                        },
                    });
                    return;
                }
                self.become_follower(term, Some(from), out);
                if index <= self.applied {
                    // Everything up to `index` is already applied here, hence committed and
                    // matching the leader.
                    out.push(Output::Send {
                        to: from,
                        msg: RaftMessage::AppendEntriesResponse {
                            term: self.term,
                            success: true,
                            last_index: self.applied,
                            applied: self.applied,
                        },
                    });
                } else if self.pending_sync.is_none_or(|(i, _, _)| i < index) {
                    self.pending_sync = Some((index, index_term, height));
                    out.push(Output::SyncTo { peer: from, height });
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        from: NodeId,
        term: u64,
        mut prev_index: u64,
        mut prev_term: u64,
        mut entries: Vec<Entry>,
        leader_commit: u64,
        certificates: Vec<(u64, RaftCertificate)>,
        out: &mut Out,
    ) {
        let reject = |me: &Raft, out: &mut Out| {
            out.push(Output::Send {
                to: from,
                msg: RaftMessage::AppendEntriesResponse {
                    term: me.term,
                    success: false,
                    last_index: me.commit_index,
                    applied: me.applied,
                },
            });
        };
        if term < self.term {
            self.dropped += 1;
            return reject(self, out);
        }
        if term > self.term || self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from), out);
        } else {
            self.elapsed = 0;
        }
        // Entries at or below our snapshot point are committed and already here.
        if prev_index < self.log.snapshot_index {
            let skip = (self.log.snapshot_index - prev_index) as usize;
            if skip > entries.len() {
                return reject(self, out);
            }
            entries.drain(..skip);
            prev_index = self.log.snapshot_index;
            prev_term = self.log.snapshot_term;
        }
        if self.log.term_at(prev_index) != Some(prev_term) {
            // §5.3 log matching fails; our committed prefix matches every leader's log, so
            // the leader resumes right after our commit index.
            return reject(self, out);
        }
        let mut index = prev_index;
        let mut appended = Vec::new();
        for e in entries {
            index += 1;
            match self.log.term_at(index) {
                Some(t) if t == e.term && appended.is_empty() => continue,
                Some(_) if appended.is_empty() => {
                    // Conflict: drop our suffix. Committed entries never conflict (§5.4).
                    debug_assert!(index > self.commit_index, "conflict at a committed index");
                    self.log.truncate_from(index);
                    out.push(Output::Persist {
                        op: RaftPersist::TruncateFrom { index },
                    });
                }
                _ => {}
            }
            self.log.push(e.clone());
            appended.push(e);
        }
        if !appended.is_empty() {
            out.push(Output::Persist {
                op: RaftPersist::Append {
                    first_index: index + 1 - appended.len() as u64,
                    entries: appended,
                },
            });
        }
        for (i, cert) in certificates {
            self.accept_certificate(i, cert);
        }
        let new_commit = leader_commit.min(index);
        if new_commit > self.commit_index {
            self.commit_index = new_commit;
        }
        self.apply_committed(out);
        out.push(Output::Send {
            to: from,
            msg: RaftMessage::AppendEntriesResponse {
                term: self.term,
                success: true,
                last_index: index,
                applied: self.applied,
            },
        });
    }

    /// Keeps a leader's certificate if it certifies the block we hold at that index.
    fn accept_certificate(&mut self, index: u64, cert: RaftCertificate) {
        if index <= self.applied || self.certificates.contains_key(&index) {
            return;
        }
        let Some(block) = self.log.entry(index).and_then(|e| e.block.as_ref()) else {
            return;
        };
        let c = CommitCertificate::Raft(cert);
        if c.verify(
            &self.cfg.chain_id,
            ConsensusKind::Raft,
            &self.cfg.validators,
            block.header.height,
            &block.hash(),
        )
        .is_ok()
        {
            if let CommitCertificate::Raft(cert) = c {
                self.certificates.insert(index, cert);
            }
        } else {
            self.dropped += 1;
        }
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
        match input {
            Input::Tick { .. } => self.on_tick(out),
            Input::Message { from, msg } => self.on_message(from, msg, out),
            Input::Propose { block } => self.on_propose(block, out),
            Input::Synced { height, .. } => self.on_synced(height, out),
            // Raft followers trust the leader's validation (crash-fault model).
            Input::Validated { .. } => self.dropped += 1,
        }
    }

    fn status(&self) -> Status {
        Status {
            role: self.role,
            round: self.term,
            leader: self.leader,
            commit_height: self.applied_height,
            dropped: self.dropped,
        }
    }
}
