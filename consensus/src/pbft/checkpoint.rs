//! Checkpoints and watermarks (Castro & Liskov, OSDI '99, §4.3), and catching up by block sync.
//!
//! Every K blocks each replica signs the block hash at that height; 2f+1 matching signatures
//! make the checkpoint stable, which moves the low watermark, garbage-collects the message log
//! below it and bounds the window of sequence numbers a replica accepts to `(low, low + 2K]`.
//! A replica behind a stable checkpoint fetches the certified blocks up to it, one checkpoint
//! at a time, so it can co-sign each checkpoint from the block it now holds.

use cairn_ledger::{BlockHash, Height};

use super::message::{CHECKPOINT, Checkpoint, CheckpointProof, PbftMessage, Signed};
use super::{Out, Pbft, PbftPersist};
use crate::{NodeId, Output, Refusal, Seq};

impl Pbft {
    pub(super) fn on_checkpoint(
        &mut self,
        from: NodeId,
        s: Signed<Checkpoint>,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        let c = s.body;
        if s.author != from {
            return Err(Refusal::WrongAuthor);
        }
        if !c.seq.height().is_multiple_of(self.interval()) {
            return Err(Refusal::NotACheckpoint);
        }
        if c.seq <= self.low() {
            return Err(Refusal::StaleRound);
        }
        if self.checkpoints.holds(&s) {
            // Still counted: this replica may have reached the height since it first came.
            return self.count_checkpoint(s, out);
        }
        if !s.verify(CHECKPOINT, &self.ctx, &self.cfg.validators) {
            return Err(Refusal::BadSignature);
        }
        self.count_checkpoint(s, out)
    }

    /// Records a (checked) checkpoint vote and makes the checkpoint stable at a quorum.
    fn count_checkpoint(&mut self, s: Signed<Checkpoint>, out: &mut Out) -> Result<(), Refusal> {
        let c = s.body;
        let high = self.low().plus(self.window());
        let added = self
            .checkpoints
            .add(s, high, self.cfg.planted_bug_unbounded_checkpoints);
        // A re-sent vote changes nothing it counts toward, but this replica may have reached
        // the checkpoint's height since it first came, and co-sign now.
        if let Err(r) = added
            && r != Refusal::Duplicate
        {
            return Err(r);
        }
        let me = self.cfg.me;
        let mut matching = self.checkpoints.matching(&c);
        // A replica that reached `seq` by block sync never committed it through agreement, so
        // it never signed this checkpoint. f+1 matching signatures include an honest one, and
        // its own certified block at `seq` must be the same: it co-signs, or a window whose
        // quorum needs it would never move.
        // Only above its own latest signature: a replica signs each checkpoint height once,
        // and a quorum that needs it higher up finds its latest there.
        let signed_above = self
            .my_checkpoint
            .as_ref()
            .is_some_and(|m| m.body.seq >= c.seq);
        if self.committed() >= c.seq
            && !signed_above
            && !matching.iter().any(|v| v.author == me)
            && matching.len() > self.cfg.validators.max_byzantine()
        {
            let own = self.record_checkpoint(c, out);
            matching.push(own);
        }
        if matching.len() >= self.quorum() {
            self.make_stable(
                CheckpointProof {
                    checkpoint: c,
                    votes: matching,
                },
                out,
            );
        }
        self.follow_checkpoints(out);
        added
    }

    /// Once f+1 other validators signed checkpoints above this replica's height, at least one
    /// honest replica holds the certified block at the (f+1)-th highest of them: this replica
    /// fetches the blocks up to it. Block sync checks every certificate, so no one can lead
    /// it astray; and it needs no quorum of matching votes, which a Byzantine validator can
    /// keep from forming here by shadowing its own votes with far-future ones.
    fn follow_checkpoints(&mut self, out: &mut Out) {
        let me = self.cfg.me;
        let others: Vec<(Seq, NodeId)> = self
            .checkpoints
            .highest_by_author()
            .into_iter()
            .filter(|(_, a)| *a != me)
            .collect();
        if let Some(&(seq, peer)) = others.get(self.cfg.validators.max_byzantine())
            && seq > self.committed()
        {
            self.sync_to(peer, seq.height(), out);
        }
    }

    /// Signs, persists and broadcasts this replica's checkpoint; returns the signature.
    fn record_checkpoint(&mut self, c: Checkpoint, out: &mut Out) -> Signed<Checkpoint> {
        let own = self.safety.checkpoint(c);
        out.push(Output::Persist {
            op: PbftPersist::Checkpoint(own.clone()),
        });
        out.push(Output::Broadcast {
            msg: PbftMessage::Checkpoint(own.clone()),
        });
        if self
            .my_checkpoint
            .as_ref()
            .is_none_or(|m| m.body.seq < own.body.seq)
        {
            self.my_checkpoint = Some(own.clone());
        }
        let high = self.low().plus(self.window());
        // Its own vote is new (it signs each checkpoint once) unless it signed it before a
        // restart, in which case the earlier one is the same statement.
        let _ = self.checkpoints.add(own.clone(), high, false);
        own
    }

    /// Signs the checkpoint for `seq` and counts it toward stability.
    pub(super) fn sign_checkpoint(&mut self, seq: Seq, digest: BlockHash, out: &mut Out) {
        if seq <= self.low() {
            return;
        }
        let own = self.record_checkpoint(Checkpoint { seq, digest }, out);
        let matching = self.checkpoints.matching(&own.body);
        if matching.len() >= self.quorum() {
            self.make_stable(
                CheckpointProof {
                    checkpoint: own.body,
                    votes: matching,
                },
                out,
            );
        }
    }

    pub(super) fn make_stable(&mut self, proof: CheckpointProof, out: &mut Out) {
        let seq = proof.checkpoint.seq;
        if seq <= self.low() {
            return;
        }
        out.push(Output::Persist {
            op: PbftPersist::Stable(proof.clone()),
        });
        let helper = proof.votes.first().map(|v| v.author);
        self.stable = Some(proof);
        self.slots = self.slots.split_off(&seq.next());
        self.prepared = self.prepared.split_off(&seq.next());
        self.checkpoints.prune(seq, seq.plus(self.window()));
        self.safety.prune(seq);
        self.persist_safety(out);
        if self.committed() < seq
            && let Some(peer) = helper
        {
            self.sync_to(peer, seq.height(), out);
        }
    }

    /// Catches the ledger up to `height` by block sync, one checkpoint at a time: stopping at
    /// each checkpoint height lets this replica sign that checkpoint from the certified block
    /// it now holds, so checkpoints become stable even when most replicas synced past them.
    pub(super) fn sync_to(&mut self, peer: NodeId, height: Height, out: &mut Out) {
        if height <= self.height {
            return;
        }
        self.sync_target = self.sync_target.max(height);
        self.sync_peer = peer;
        if self.syncing.is_none() {
            self.request_sync(out);
        }
    }

    fn request_sync(&mut self, out: &mut Out) {
        let k = self.interval();
        let next_checkpoint = (self.height / k + 1) * k;
        let step = self.sync_target.min(next_checkpoint);
        if step <= self.height {
            return;
        }
        self.syncing = Some(step);
        out.push(Output::SyncTo {
            peer: self.sync_peer,
            height: step,
        });
    }

    pub(super) fn on_synced(&mut self, height: Height, tip: BlockHash, out: &mut Out) {
        // Whether or not it reached the step, this sync is over.
        let asked = self.syncing.take();
        if height > self.height {
            self.height = height;
            self.timer = 0;
            for (_, s) in self.slots.range_mut(..=Seq::at(height)) {
                s.committed = true;
            }
            if height.is_multiple_of(self.interval()) {
                self.sign_checkpoint(Seq::at(height), tip, out);
            }
            if asked.is_some() && self.sync_target > self.height {
                self.request_sync(out);
            }
        }
        self.advance(self.next_seq(), out);
        self.maybe_propose(out);
    }
}
