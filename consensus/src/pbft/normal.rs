//! Normal-case operation (Castro & Liskov, OSDI '99, §4.2): the primary's PRE-PREPARE, the
//! replicas' PREPARE once the block validates against their ledger, COMMIT once prepared (2f+1
//! matching prepares, the pre-prepare counting as the primary's), and delivery in sequence
//! order once 2f+1 matching commits make the block's commit certificate. Pipelined: up to
//! `blocks_in_flight` blocks, each on the one before, with the ordering rules of
//! [`Pbft::advance_slot`].

use std::sync::Arc;

use cairn_ledger::{Block, BlockHash};

use super::log::Slot;
use super::message::{CommitVote, PRE_PREPARE, PREPARE, PbftMessage, PreparedProof, Signed, Vote};
use super::{Out, Pbft, PbftPersist, VoteKind, certificate};
use crate::{NodeId, Output, Refusal, Seq, View};

impl Pbft {
    /// Where this primary's next block goes, if it may propose one now: up to
    /// `blocks_in_flight` of its own blocks of this view may be pre-prepared above the
    /// committed height, and the next one is built on the newest of them. Blocks re-proposed
    /// by a view change commit first (the caller built nothing on them). Returns the sequence
    /// number and the digest of the block to build on, if that block is not committed yet.
    fn next_block_slot(&self) -> Option<(Seq, Option<BlockHash>)> {
        let mut seq = self.next_seq();
        let mut parent = None;
        for (q, slot) in self.slots.range(seq..) {
            let Some(vote) = slot.vote() else { break };
            if *q != seq || !slot.built_here {
                return None;
            }
            parent = Some(vote.digest);
            seq = seq.next();
        }
        let in_flight = seq.0 - self.next_seq().0;
        (in_flight < self.depth() && self.in_window(seq)).then_some((seq, parent))
    }

    pub(super) fn maybe_propose(&mut self, out: &mut Out) {
        if !self.active || !self.is_primary() || self.proposal_requested || self.syncing.is_some() {
            return;
        }
        let Some((seq, _)) = self.next_block_slot() else {
            return;
        };
        // A primary restarted into its view (it rejoins through a relayed NEW-VIEW) may have
        // pre-prepared this height before it crashed; it cannot sign another block there,
        // so it asks for none and lets the others' timers replace it.
        if self.safety.signed(VoteKind::PrePrepare, self.view, seq) {
            return;
        }
        self.proposal_requested = true;
        out.push(Output::RequestProposal {
            height: seq.height(),
            round: self.view.0,
        });
    }

    pub(super) fn on_propose(&mut self, block: Block, out: &mut Out) -> Result<(), Refusal> {
        if !self.active || !self.is_primary() {
            out.push(Output::NotLeader {
                hint: Some(self.primary(self.view)),
            });
            return Ok(());
        }
        if !self.proposal_requested {
            return Err(Refusal::Unrequested);
        }
        // Whatever the answer, the request is spent: a block that does not fit (built for an
        // older view, on a block no longer in flight, or while a sync replaced the slots)
        // means the caller's view of the request is stale, and the next tick asks afresh
        // rather than leaving the primary waiting for a block that will never come.
        self.proposal_requested = false;
        let seq = Seq::at(block.header.height);
        let Some((want, parent)) = self.next_block_slot() else {
            return Err(Refusal::Unrequested);
        };
        if seq != want
            || block.header.round != self.view.0
            || parent.is_some_and(|p| p != block.header.prev_hash)
            || self.syncing.is_some()
        {
            return Err(Refusal::Unrequested);
        }
        let vote = Vote {
            view: self.view,
            seq,
            digest: block.hash(),
        };
        let signed = self.safety.pre_prepare(vote)?;
        self.persist_safety(out);
        out.push(Output::Broadcast {
            msg: PbftMessage::PrePrepare {
                vote: signed.clone(),
                block: block.clone(),
            },
        });
        let mut slot = Slot::new();
        slot.pre_prepare = Some((signed, Arc::new(block)));
        // The primary built the block on its own ledger: it is valid.
        slot.validated = Some(true);
        slot.asked = true;
        slot.built_here = true;
        self.slots.insert(seq, slot);
        self.advance(seq, out);
        // Pipelining: the next block may be built while this one is agreed on.
        self.maybe_propose(out);
        Ok(())
    }

    /// The checks every vote of the current view passes: author, view, window. Prepares and
    /// commits for a height this replica already committed are still taken: after a view
    /// change the block is proposed again, and the replicas that have not committed it need
    /// this one's votes for their quorums.
    fn vote_ok(&self, from: NodeId, s: &Signed<Vote>) -> Result<(), Refusal> {
        let v = s.body;
        if s.author != from {
            return Err(Refusal::WrongAuthor);
        }
        if v.view < self.view {
            return Err(Refusal::StaleRound);
        }
        if v.view != self.view || !self.active {
            return Err(Refusal::NotInView);
        }
        if !self.in_window(v.seq) {
            return Err(Refusal::OutsideWindow);
        }
        Ok(())
    }

    pub(super) fn on_pre_prepare(
        &mut self,
        from: NodeId,
        vote: Signed<Vote>,
        block: Block,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        let v = vote.body;
        self.vote_ok(from, &vote)?;
        if vote.author != self.primary(v.view) {
            return Err(Refusal::NotPrimary);
        }
        if v.seq <= self.committed() {
            return Err(Refusal::AlreadyCommitted);
        }
        if Seq::at(block.header.height) != v.seq || block.hash() != v.digest {
            return Err(Refusal::WrongDigest);
        }
        // Duplicates are refused before the signature check (cheap under a flood); a
        // different pre-prepare, once verified, is the primary equivocating: the first stands.
        let first = self.slots.get(&v.seq).and_then(|s| s.vote());
        if first == Some(v) {
            return Err(Refusal::Duplicate);
        }
        if !vote.verify(PRE_PREPARE, &self.ctx, &self.cfg.validators) {
            return Err(Refusal::BadSignature);
        }
        if first.is_some() {
            return Err(Refusal::Conflicting);
        }
        let slot = self.slots.entry(v.seq).or_insert_with(Slot::new);
        slot.pre_prepare = Some((vote, Arc::new(block)));
        if v.seq.0 >= self.next_seq().0 + self.depth() {
            // Beyond the blocks a primary may have in flight: others are ahead; fetch the
            // committed blocks in between.
            self.sync_to(from, v.seq.height() - 1, out);
        }
        self.advance(v.seq, out);
        Ok(())
    }

    pub(super) fn on_prepare(&mut self, from: NodeId, s: Signed<Vote>) -> Result<(), Refusal> {
        self.vote_ok(from, &s)?;
        if s.author == self.primary(s.body.view) {
            // The primary's pre-prepare is its prepare.
            return Err(Refusal::NotPrimary);
        }
        if let Some(p) = self
            .slots
            .get(&s.body.seq)
            .and_then(|x| x.prepares.get(&s.author))
            && p.body == s.body
        {
            return Err(Refusal::Duplicate);
        }
        if !s.verify(PREPARE, &self.ctx, &self.cfg.validators) {
            return Err(Refusal::BadSignature);
        }
        self.slots
            .entry(s.body.seq)
            .or_insert_with(Slot::new)
            .add_prepare(s)
    }

    pub(super) fn on_commit(&mut self, from: NodeId, c: CommitVote) -> Result<(), Refusal> {
        let b = &c.body;
        let as_vote = Signed {
            author: c.author,
            body: Vote {
                view: View(b.view),
                seq: Seq(b.seq),
                digest: b.block_hash,
            },
            signature: c.signature,
        };
        self.vote_ok(from, &as_vote)?;
        if let Some(p) = self
            .slots
            .get(&Seq(b.seq))
            .and_then(|x| x.commits.get(&c.author))
            && p.body == c.body
        {
            return Err(Refusal::Duplicate);
        }
        if !c.verify_commit(&self.cfg.chain_id, &self.cfg.validators) {
            return Err(Refusal::BadSignature);
        }
        self.slots
            .entry(Seq(b.seq))
            .or_insert_with(Slot::new)
            .add_commit(c)
    }

    pub(super) fn on_validated(
        &mut self,
        digest: BlockHash,
        valid: bool,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        let seqs: Vec<Seq> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.asked && s.validated.is_none() && s.vote().is_some_and(|v| v.digest == digest)
            })
            .map(|(q, _)| *q)
            .collect();
        if seqs.is_empty() {
            return Err(Refusal::Unrequested);
        }
        for seq in seqs {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.validated = Some(valid);
            }
            if !valid && self.active {
                // The primary proposed a block that does not execute here: replace it.
                self.start_view_change(self.view.next(), out);
                return Ok(());
            }
            self.advance(seq, out);
        }
        Ok(())
    }

    /// Moves slot `seq`, and the slots after it that its progress unblocks, as far as their
    /// messages allow.
    pub(super) fn advance(&mut self, mut seq: Seq, out: &mut Out) {
        // Each pass that leaves its slot validated may let the next one validate or commit;
        // the window bounds the walk.
        for _ in 0..=self.window() {
            if !self.advance_slot(seq, out) {
                return;
            }
            seq = seq.next();
            if !self.slots.contains_key(&seq) {
                return;
            }
        }
    }

    /// What slot `seq`'s block needs of the slot before it (`seq` above the next height):
    /// `(validated, committed)`: whether the block before is validated here in this view and
    /// is this block's parent, and whether this replica signed COMMIT for it in this view.
    fn parent_state(&self, seq: Seq, block: &Block) -> (bool, bool) {
        if seq <= self.next_seq() {
            return (true, true);
        }
        let Some(before) = self.slots.get(&Seq(seq.0 - 1)) else {
            return (false, false);
        };
        let is_parent = before
            .vote()
            .is_some_and(|v| v.digest == block.header.prev_hash);
        let validated = is_parent && before.validated == Some(true);
        let committed = validated
            && before
                .my_commit
                .as_ref()
                .is_some_and(|c| View(c.body.view) == self.view);
        (validated, committed)
    }

    /// Moves slot `seq` as far as its messages allow: validate, prepare, commit, deliver.
    /// Returns whether the slot is validated (the next slot may then go on).
    ///
    /// Pipelining: a block above the next height is validated only once its parent, the block
    /// of the slot before, is validated here in this view (the caller executes it on top of
    /// that one), and this replica signs COMMIT for it only once it signed COMMIT for the parent
    /// in this view (or committed it). So whoever signs COMMIT for h is prepared at every
    /// height from its committed one up to h in this view, with blocks that chain: a block
    /// committed at h leaves prepared certificates at f+1 honest replicas for every height below
    /// it down to where they committed, and a view change re-proposes them without a gap.
    fn advance_slot(&mut self, seq: Seq, out: &mut Out) -> bool {
        let me = self.cfg.me;
        let quorum = self.quorum();
        let primary = self.primary(self.view);
        let next = self.next_seq();
        let depth = self.depth();
        let (parent_validated, parent_committed) = match self.slots.get(&seq) {
            Some(slot) => match &slot.pre_prepare {
                Some((_, block)) => self.parent_state(seq, block),
                None => return false,
            },
            None => return false,
        };
        let Some(slot) = self.slots.get_mut(&seq) else {
            return false;
        };
        let Some(vote) = slot.vote() else {
            return false;
        };
        if slot.validated.is_none() {
            // At most `blocks_in_flight` blocks are executed ahead of the ledger: an
            // equivocating primary cannot make a backup execute a longer chain.
            let within = seq.0 < next.0 + depth;
            if !slot.asked && parent_validated && within && self.syncing.is_none() {
                slot.asked = true;
                if let Some((_, block)) = &slot.pre_prepare {
                    out.push(Output::Validate {
                        block: Block::clone(block),
                    });
                }
            }
            return false;
        }
        if slot.validated != Some(true) {
            return false;
        }
        if me != primary && slot.my_prepare.is_none() {
            match self.safety.prepare(vote) {
                Ok(p) => {
                    out.push(Output::Persist {
                        op: PbftPersist::Safety(self.safety.data().clone()),
                    });
                    out.push(Output::Broadcast {
                        msg: PbftMessage::Prepare(p.clone()),
                    });
                    slot.prepares.insert(me, p.clone());
                    slot.my_prepare = Some(p);
                }
                Err(r) => {
                    self.refuse(r);
                    return true;
                }
            }
        }
        let prepares: Vec<Signed<Vote>> = slot
            .prepares
            .values()
            .filter(|p| p.body == vote && p.author != primary)
            .cloned()
            .collect();
        if prepares.len() + 1 < quorum {
            return true;
        }
        // Prepared: the certificate must survive a crash before we commit (§4.4 needs it).
        if self
            .prepared
            .get(&seq)
            .is_none_or(|p| p.pre_prepare.body != vote)
            && let Some((pp, block)) = &slot.pre_prepare
        {
            let proof = PreparedProof {
                pre_prepare: pp.clone(),
                block: Arc::clone(block),
                prepares,
            };
            out.push(Output::Persist {
                op: PbftPersist::Prepared(proof.clone()),
            });
            self.prepared.insert(seq, proof);
        }
        if slot.my_commit.is_none() {
            if !parent_committed {
                return true;
            }
            match self.safety.commit(vote) {
                Ok(c) => {
                    out.push(Output::Persist {
                        op: PbftPersist::Safety(self.safety.data().clone()),
                    });
                    out.push(Output::Broadcast {
                        msg: PbftMessage::Commit(c.clone()),
                    });
                    slot.commits.insert(me, c.clone());
                    slot.my_commit = Some(c);
                }
                Err(r) => {
                    self.refuse(r);
                    return true;
                }
            }
        }
        let commits: Vec<CommitVote> = slot
            .commits
            .values()
            .filter(|c| {
                View(c.body.view) == vote.view
                    && Seq(c.body.seq) == vote.seq
                    && c.body.block_hash == vote.digest
            })
            .cloned()
            .collect();
        // Nothing commits through agreement while a block sync is out: the caller may already
        // be applying the synced blocks at these heights (it answers with `Synced`, and the
        // slot commits then if it is still the next one).
        if commits.len() < quorum || slot.committed || seq != next || self.syncing.is_some() {
            return true;
        }
        let Some(certificate) = certificate::commit_certificate(&commits, &self.cfg.validators)
        else {
            return true;
        };
        let Some(block) = slot.pre_prepare.as_ref().map(|(_, b)| Block::clone(b)) else {
            return true;
        };
        slot.committed = true;
        // Release-mode invariants the caller relies on: heights are delivered contiguously,
        // once each, and a block hashes to the digest its certificate signs.
        assert_eq!(seq, self.next_seq(), "PBFT delivers heights in order");
        assert_eq!(
            block.hash(),
            vote.digest,
            "a committed block hashes to its certified digest"
        );
        out.push(Output::Commit { block, certificate });
        self.height = seq.height();
        self.timer = 0;
        self.attempts = 0;
        if seq.height().is_multiple_of(self.interval()) {
            self.sign_checkpoint(seq, vote.digest, out);
        }
        self.maybe_propose(out);
        true
    }
}
