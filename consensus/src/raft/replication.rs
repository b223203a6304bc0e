//! Log replication and commitment (Ongaro & Ousterhout, §5.3 and §5.4).
//!
//! The leader keeps up to `blocks_in_flight` blocks of its own term in its log above what is
//! committed and applied (pipelining: each built on the one before, or on the committed tip;
//! entries of earlier terms commit and apply first, so a block is never built on one that may
//! still lose) and replicates
//! with AppendEntries; an entry of the current term stored by a majority commits, with every
//! entry before it (§5.4.2, Figure 8); a new leader's no-op lets earlier terms' entries commit
//! (§8). Certificates: the leader signs `(chain, height, block hash, term)` for each committed
//! block and ships the signature to followers with AppendEntries.

use cairn_ledger::{
    Block, BlockHash, CommitCertificate, ConsensusKind, Height, RaftCertificate,
    RaftCommitStatement,
};

use super::{Entry, Out, Raft, RaftMessage, RaftPersist};
use crate::{LogIndex, NodeId, Output, Refusal, Role, Term};

impl Raft {
    pub(super) fn append(&mut self, e: Entry, out: &mut Out) {
        let first_index = self.log.last_index().next();
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

    pub(super) fn broadcast_append(&mut self, out: &mut Out) {
        for p in self.others().collect::<Vec<_>>() {
            self.send_append(p, out);
        }
    }

    pub(super) fn send_append(&mut self, to: NodeId, out: &mut Out) {
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
        let prev_index = LogIndex(pr.next.0 - 1);
        let Some(prev_term) = self.log.term_at(prev_index) else {
            return;
        };
        let last = self
            .log
            .last_index()
            .min(prev_index.plus(self.cfg.max_entries_per_message as u64));
        let entries = self.log.slice(pr.next, last);
        let max = self.cfg.max_entries_per_message;
        let from = pr.applied.max(self.log.snapshot_index).next();
        let certificates = (from.0..=self.commit_index.0)
            .map(LogIndex)
            .filter_map(|i| self.certificate_for(i).map(|c| (i, c)))
            .take(max)
            .collect();
        if pr.replicating && !entries.is_empty() {
            self.progress[to.index()].next = last.next();
        }
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
    fn certificate_for(&mut self, index: LogIndex) -> Option<RaftCertificate> {
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
            term: self.term.0,
        };
        let cert = RaftCertificate {
            term: self.term.0,
            leader: self.key.public_key(),
            signature: statement.sign(&self.cfg.chain_id, &self.key),
        };
        self.certificates.insert(index, cert.clone());
        Some(cert)
    }

    /// §5.3/§5.4.2: commit the highest index that a majority stores and that belongs to the
    /// current term.
    pub(super) fn maybe_commit(&mut self, out: &mut Out) {
        let mut matched: Vec<LogIndex> = self.progress.iter().map(|p| p.matched).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.majority() - 1];
        if candidate > self.commit_index && self.log.term_at(candidate) == Some(self.term) {
            assert!(self.role == Role::Leader, "only a leader counts replicas");
            self.commit_index = candidate;
            self.apply_committed(out);
            self.broadcast_append(out);
        }
    }

    /// Hands committed entries to the caller in order, as far as certificates allow.
    pub(super) fn apply_committed(&mut self, out: &mut Out) {
        while self.applied < self.commit_index {
            let index = self.applied.next();
            let Some(entry) = self.log.entry(index) else {
                break;
            };
            match &entry.block {
                None => {}
                Some(block) if block.header.height <= self.applied_height => {}
                Some(block) => {
                    // Release-mode invariant: heights are handed over contiguously, once.
                    assert_eq!(
                        block.header.height,
                        self.applied_height + 1,
                        "Raft commits heights in order"
                    );
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

    /// Where the next block goes, if this leader may ask for one now: at most
    /// `blocks_in_flight` of its blocks wait above the applied index, and entries of earlier
    /// terms there must be applied first, so the next block is built on the committed tip or
    /// on this leader's own blocks of this term, which nothing but a new leader can replace.
    /// Returns the next block's height and the hash of the block it must extend, if that block
    /// is not committed yet.
    fn next_block_slot(&self) -> Option<(Height, Option<BlockHash>)> {
        if self.role != Role::Leader {
            return None;
        }
        let first = self.applied.next();
        let last = self.log.last_index();
        if first <= last && self.log.term_at(first) != Some(self.term) {
            return None;
        }
        let mut count = 0;
        let mut newest: Option<&Block> = None;
        let mut index = first;
        while index <= last {
            if let Some(b) = self.log.entry(index).and_then(|e| e.block.as_ref()) {
                count += 1;
                newest = Some(b);
            }
            index = index.next();
        }
        if count >= self.cfg.blocks_in_flight.max(1)
            || newest.is_some_and(|b| b.header.height <= self.applied_height)
        {
            // Full, or the ledger got to those heights another way (block sync): they apply
            // (or are skipped) first.
            return None;
        }
        Some(match newest {
            Some(b) => (b.header.height + 1, Some(b.hash())),
            None => (self.applied_height + 1, None),
        })
    }

    pub(super) fn maybe_request_proposal(&mut self, out: &mut Out) {
        if self.proposal_requested {
            return;
        }
        if let Some((height, _)) = self.next_block_slot() {
            self.proposal_requested = true;
            out.push(Output::RequestProposal {
                height,
                round: self.term.0,
            });
        }
    }

    pub(super) fn on_propose(&mut self, block: Block, out: &mut Out) -> Result<(), Refusal> {
        if self.role != Role::Leader {
            out.push(Output::NotLeader { hint: self.leader });
            return Ok(());
        }
        if !self.proposal_requested {
            return Err(Refusal::Unrequested);
        }
        // Whatever the answer, the request is spent: a block that does not fit (built for an
        // older term, or on a block not in this log) means the caller's view of the request
        // is stale, and the next tick asks afresh.
        self.proposal_requested = false;
        let Some((height, parent)) = self.next_block_slot() else {
            return Err(Refusal::Unrequested);
        };
        if block.header.height != height
            || block.header.round != self.term.0
            || parent.is_some_and(|p| p != block.header.prev_hash)
        {
            return Err(Refusal::Unrequested);
        }
        self.append(
            Entry {
                term: self.term,
                block: Some(block),
            },
            out,
        );
        self.maybe_commit(out);
        self.broadcast_append(out);
        // Pipelining: the next block may be built while this one replicates.
        self.maybe_request_proposal(out);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append(
        &mut self,
        from: NodeId,
        term: Term,
        mut prev_index: LogIndex,
        mut prev_term: Term,
        mut entries: Vec<Entry>,
        leader_commit: LogIndex,
        certificates: Vec<(LogIndex, RaftCertificate)>,
        out: &mut Out,
    ) -> Result<(), Refusal> {
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
            reject(self, out);
            return Err(Refusal::StaleRound);
        }
        let max = self.cfg.max_entries_per_message;
        if entries.len() > max || certificates.len() > max {
            return Err(Refusal::TooLarge);
        }
        if term > self.term || self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from), out);
        } else {
            self.elapsed = 0;
        }
        // Entries at or below our snapshot point are committed and already here.
        if prev_index < self.log.snapshot_index {
            let skip = self.log.snapshot_index.since(prev_index) as usize;
            if skip > entries.len() {
                reject(self, out);
                return Ok(());
            }
            entries.drain(..skip);
            prev_index = self.log.snapshot_index;
            prev_term = self.log.snapshot_term;
        }
        if self.log.term_at(prev_index) != Some(prev_term) {
            // §5.3 log matching fails; our committed prefix matches every leader's log, so
            // the leader resumes right after our commit index.
            reject(self, out);
            return Ok(());
        }
        let mut index = prev_index;
        let mut appended = Vec::new();
        for e in entries {
            index = index.next();
            match self.log.term_at(index) {
                Some(t) if t == e.term && appended.is_empty() => continue,
                Some(_) if appended.is_empty() => {
                    // Conflict: drop our suffix. Committed entries never conflict (§5.4).
                    assert!(
                        index > self.commit_index,
                        "Raft conflict at a committed index"
                    );
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
                    first_index: LogIndex(index.0 + 1 - appended.len() as u64),
                    entries: appended,
                },
            });
        }
        let mut refused = Ok(());
        for (i, cert) in certificates {
            if let Err(r) = self.accept_certificate(i, cert) {
                refused = Err(r);
            }
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
        refused
    }

    pub(super) fn on_append_response(
        &mut self,
        from: NodeId,
        term: Term,
        success: bool,
        last_index: LogIndex,
        applied: LogIndex,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        if term > self.term {
            self.become_follower(term, None, out);
            return Ok(());
        }
        if self.role != Role::Leader {
            return Err(Refusal::Unexpected);
        }
        if term < self.term {
            return Err(Refusal::StaleRound);
        }
        let last = self.log.last_index();
        let pr = &mut self.progress[from.index()];
        pr.active = true;
        if success {
            pr.applied = pr.applied.max(applied.min(last));
        } else {
            // A refusal says where the follower is now, which may be behind what it once
            // acknowledged: a node restored from a backup or joined from a snapshot starts
            // with no log. Taking its word lowers what the leader counts as stored there,
            // which can only delay a commit, never make one (it never raises `matched`).
            pr.applied = applied.min(last);
            pr.matched = pr.matched.min(last_index);
        }
        if success {
            pr.matched = pr.matched.max(last_index.min(last));
            // Entries sent since (pipelined) are not sent again.
            pr.next = pr.next.max(pr.matched.next());
            pr.replicating = true;
            self.maybe_commit(out);
            if self.progress[from.index()].next <= last {
                self.send_append(from, out);
            }
        } else {
            pr.next = last_index.next().min(last.next());
            pr.replicating = false;
            self.send_append(from, out);
        }
        Ok(())
    }

    /// Keeps a leader's certificate if it certifies the block we hold at that index.
    fn accept_certificate(
        &mut self,
        index: LogIndex,
        cert: RaftCertificate,
    ) -> Result<(), Refusal> {
        if index <= self.applied || self.certificates.contains_key(&index) {
            return Ok(());
        }
        let Some(block) = self.log.entry(index).and_then(|e| e.block.as_ref()) else {
            return Ok(());
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
            Ok(())
        } else {
            Err(Refusal::BadSignature)
        }
    }
}
