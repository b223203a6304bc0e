//! Leader election (Ongaro & Ousterhout, §5.2), with PreVote so a node that was partitioned
//! away cannot disrupt a healthy cluster when it returns, and CheckQuorum so a leader that lost
//! its majority steps down (Ongaro's thesis, §9.6 and §6.2).

use super::{Entry, Out, Progress, Raft, RaftMessage};
use crate::{LogIndex, NodeId, Output, Refusal, Role, Term};

impl Raft {
    pub(super) fn reset_timer(&mut self) {
        self.elapsed = 0;
        self.timeout = self
            .rng
            .range(self.cfg.election_ticks_min, self.cfg.election_ticks_max);
    }

    /// A follower that heard from a leader within the minimum election timeout ignores
    /// vote requests: the leader is alive (thesis §4.2.3, with CheckQuorum).
    pub(super) fn in_lease(&self) -> bool {
        self.role == Role::Follower
            && self.leader.is_some()
            && self.elapsed < self.cfg.election_ticks_min
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>, out: &mut Out) {
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

    pub(super) fn start_pre_vote(&mut self, out: &mut Out) {
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
                term: self.term.next(),
                last_index: self.log.last_index(),
                last_term: self.log.last_term(),
            },
        });
    }

    pub(super) fn start_election(&mut self, out: &mut Out) {
        self.role = Role::Candidate;
        self.term = self.term.next();
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

    pub(super) fn become_leader(&mut self, out: &mut Out) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.me);
        self.heartbeat_elapsed = 0;
        self.elapsed = 0;
        let next = self.log.last_index().next();
        for p in &mut self.progress {
            *p = Progress {
                next,
                matched: LogIndex(0),
                applied: LogIndex(0),
                active: true,
                replicating: false,
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
        // Nothing of an earlier term left to commit: the first block need not wait for the
        // no-op.
        self.maybe_request_proposal(out);
    }

    pub(super) fn up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    pub(super) fn on_tick(&mut self, out: &mut Out) {
        self.elapsed += 1;
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.broadcast_append(out);
            }
            // A request the caller answered with a block that did not fit is asked again.
            self.maybe_request_proposal(out);
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

    pub(super) fn on_pre_vote(
        &mut self,
        from: NodeId,
        term: Term,
        last_index: LogIndex,
        last_term: Term,
        out: &mut Out,
    ) {
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

    pub(super) fn on_pre_vote_response(
        &mut self,
        from: NodeId,
        term: Term,
        granted: bool,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        if term > self.term.next() || (!granted && term > self.term) {
            self.become_follower(term, None, out);
            return Ok(());
        }
        if self.role != Role::PreCandidate {
            return Err(Refusal::Unexpected);
        }
        if !granted || term != self.term.next() {
            return Err(Refusal::StaleRound);
        }
        self.votes.insert(from, true);
        if self.votes.values().filter(|v| **v).count() >= self.majority() {
            self.start_election(out);
        }
        Ok(())
    }

    pub(super) fn on_request_vote(
        &mut self,
        from: NodeId,
        term: Term,
        last_index: LogIndex,
        last_term: Term,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        if term > self.term && self.in_lease() {
            return Err(Refusal::LeaderAlive);
        }
        if term > self.term {
            self.become_follower(term, None, out);
        }
        let granted = term == self.term
            && (self.voted_for.is_none_or(|v| v == from) || self.cfg.planted_bug_vote_twice)
            && self.up_to_date(last_index, last_term);
        if granted {
            // Release-mode invariant: one vote per term (§5.2), across restarts too.
            assert!(
                self.voted_for.is_none_or(|v| v == from) || self.cfg.planted_bug_vote_twice,
                "Raft voted twice in term {}",
                self.term
            );
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
        Ok(())
    }

    pub(super) fn on_request_vote_response(
        &mut self,
        from: NodeId,
        term: Term,
        granted: bool,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        if term > self.term {
            self.become_follower(term, None, out);
            return Ok(());
        }
        if self.role != Role::Candidate {
            return Err(Refusal::Unexpected);
        }
        if term < self.term {
            return Err(Refusal::StaleRound);
        }
        self.votes.insert(from, granted);
        if self.votes.values().filter(|v| **v).count() >= self.majority() {
            self.become_leader(out);
        }
        Ok(())
    }
}
