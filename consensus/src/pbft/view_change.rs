//! View changes (Castro & Liskov, OSDI '99, §4.4, with the liveness rules of §4.5.2).
//!
//! A replica whose request timer expires asks for the next view with VIEW-CHANGE, carrying
//! its stable checkpoint proof and its prepared certificates; f+1 requests for higher views
//! pull a replica along (at least one honest replica timed out). The new primary's NEW-VIEW
//! carries 2f+1 of them and re-proposes exactly what they imply ([`decide`]), which every
//! replica recomputes and checks before it enters the view.
//!
//! A replica that restarted or fell behind asks again for the view it is in; any replica in
//! a later installed view answers with that view's NEW-VIEW (signed by its primary and
//! self-proving, so anyone may relay it), and the replica joins the view the others are in
//! instead of pushing a view change alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_ledger::{Block, BlockHash, ValidatorSet};

use super::certificate::{checkpoint_proof_ok, prepared_proof_ok};
use super::log::Slot;
use super::message::{
    NEW_VIEW, NewView, PRE_PREPARE, PREPARE, PbftMessage, PreparedProof, Signed, VIEW_CHANGE,
    ViewChange, Vote,
};
use super::{OWN_VIEW_CHANGES_KEPT, Out, Pbft};
use crate::{NodeId, Output, Refusal, Seq, View};

/// A VIEW-CHANGE is valid (with quorums of `quorum`, 2f+1) if it is signed by a validator in
/// `context` ([`super::PbftConfig::context`]), its checkpoint proof holds, and each prepared
/// certificate holds, is above the checkpoint (or the set's `base` without one), and is from
/// an older view.
pub fn view_change_ok(
    vc: &Signed<ViewChange>,
    chain_id: &str,
    v: &ValidatorSet,
    quorum: usize,
    base: Seq,
) -> bool {
    if !vc.verify(VIEW_CHANGE, chain_id, v) {
        return false;
    }
    let low = match &vc.body.checkpoint {
        Some(p) if !checkpoint_proof_ok(p, chain_id, v, quorum) => return false,
        Some(p) => p.checkpoint.seq.max(base),
        None => base,
    };
    let mut seqs = std::collections::BTreeSet::new();
    vc.body.prepared.iter().all(|p| {
        let b = &p.pre_prepare.body;
        b.seq > low
            && b.view < vc.body.new_view
            && seqs.insert(b.seq)
            && prepared_proof_ok(p, chain_id, v, quorum)
    })
}

/// What a quorum of view changes implies for the new view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The highest stable checkpoint among them (min-s).
    pub low: Seq,
    /// Its digest, if any.
    pub low_digest: Option<BlockHash>,
    /// For each sequence number above `low`, in order and without gaps, the prepared
    /// certificate of the highest view, each block built on the one before (the first on the
    /// checkpoint's block): these blocks are proposed again.
    pub reproposals: Vec<PreparedProof>,
}

/// The decision for a set of (valid) view changes of the instance above `base`.
/// Deterministic: every replica computes the same from the same set.
pub fn decide(vcs: &[Signed<ViewChange>], base: Seq) -> Decision {
    let best = vcs
        .iter()
        .filter_map(|vc| vc.body.checkpoint.as_ref())
        .max_by_key(|p| p.checkpoint.seq);
    let low = best.map_or(base, |p| p.checkpoint.seq.max(base));
    let mut by_seq: BTreeMap<Seq, &PreparedProof> = BTreeMap::new();
    for vc in vcs {
        for p in &vc.body.prepared {
            let b = &p.pre_prepare.body;
            if b.seq <= low {
                continue;
            }
            let keep = by_seq
                .get(&b.seq)
                .is_none_or(|q| q.pre_prepare.body.view < b.view);
            if keep {
                by_seq.insert(b.seq, p);
            }
        }
    }
    // Heights are contiguous: re-propose from low + 1 up to the first gap, or the first
    // block not built on the one chosen before it. Neither can hide a committed block: a block
    // committed at h leaves, in any quorum of view changes, certificates for every height
    // from the checkpoint to h whose blocks chain (see `normal::advance_slot`).
    let mut reproposals = Vec::new();
    let mut next = low.next();
    let mut parent = best.map(|p| p.checkpoint.digest);
    while let Some(p) = by_seq.get(&next) {
        if parent.is_some_and(|d| d != p.block.header.prev_hash) {
            break;
        }
        parent = Some(p.pre_prepare.body.digest);
        reproposals.push((*p).clone());
        next = next.next();
    }
    Decision {
        low,
        low_digest: best.map(|p| p.checkpoint.digest),
        reproposals,
    }
}

impl Pbft {
    pub(super) fn start_view_change(&mut self, new_view: View, out: &mut Out) {
        if new_view <= self.view {
            return;
        }
        self.view = new_view;
        self.active = false;
        self.restored = false;
        self.attempts = self.attempts.saturating_add(1);
        self.timer = 0;
        self.proposal_requested = false;
        self.new_view = None;
        if self.safety.enter_view(new_view) {
            self.persist_safety(out);
        }
        self.send_view_change(out);
    }

    /// Signs and broadcasts VIEW-CHANGE for the current (not yet active) view.
    pub(super) fn send_view_change(&mut self, out: &mut Out) {
        let new_view = self.view;
        let low = self.low();
        let vc = ViewChange {
            new_view,
            checkpoint: self.stable.clone(),
            prepared: self
                .prepared
                .range(low.next()..)
                .map(|(_, p)| p.clone())
                .collect(),
        };
        let signed = self.safety.view_change(&vc);
        out.push(Output::Broadcast {
            msg: PbftMessage::ViewChange(Box::new(signed.clone())),
        });
        self.my_view_changes.insert(new_view, signed.clone());
        while self.my_view_changes.len() > OWN_VIEW_CHANGES_KEPT {
            self.my_view_changes.pop_first();
        }
        self.view_changes.add_own(signed);
        self.maybe_new_view(new_view, out);
    }

    pub(super) fn on_view_change(
        &mut self,
        from: NodeId,
        vc: Signed<ViewChange>,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        let nv = vc.body.new_view;
        if vc.author != from {
            return Err(Refusal::WrongAuthor);
        }
        if nv < self.view || (nv == self.view && self.active) {
            // The sender asks for a view this replica is past: it restarted or fell behind.
            // Show it the view the others are in.
            self.relay_new_view(from, out);
            return Err(Refusal::StaleRound);
        }
        if self.view_changes.holds(&vc) {
            return Err(Refusal::Duplicate);
        }
        if !view_change_ok(
            &vc,
            &self.ctx,
            &self.cfg.validators,
            self.quorum(),
            self.cfg.base,
        ) {
            return Err(Refusal::InvalidProof);
        }
        self.view_changes.add(vc)?;
        // f+1 replicas want a higher view: at least one honest one timed out; join the
        // smallest such view (§4.5.2).
        let (askers, smallest) = self.view_changes.from(self.view.next());
        if let Some(v) = smallest
            && askers.len() > self.cfg.validators.max_byzantine()
        {
            self.start_view_change(v, out);
        }
        self.maybe_new_view(nv, out);
        Ok(())
    }

    /// A vote from a view later than this replica's is evidence of where the others are. Once
    /// f+1 validators were seen voting in later views (signatures checked, one check per
    /// validator and view), at least one honest replica works in a view at least the
    /// (f+1)-th highest of them, so a quorum installed it: this replica asks for that view,
    /// and a replica in it answers with its NEW-VIEW (`relay_new_view`). A restarted replica
    /// thus joins the others within a round trip instead of waiting for its timer, and f
    /// Byzantine validators cannot move it (they are never f+1).
    pub(super) fn maybe_later_view(&mut self, from: NodeId, msg: &PbftMessage, out: &mut Out) {
        let Some(view) = msg.view() else { return };
        if view <= self.view || self.later_views.get(&from).is_some_and(|v| *v >= view) {
            return;
        }
        let (ctx, validators) = (&self.ctx, &self.cfg.validators);
        let signed_by_sender = match msg {
            PbftMessage::PrePrepare { vote, .. } => {
                vote.author == from && vote.verify(PRE_PREPARE, ctx, validators)
            }
            PbftMessage::Prepare(p) => p.author == from && p.verify(PREPARE, ctx, validators),
            PbftMessage::Commit(c) => {
                c.author == from && c.verify_commit(&self.cfg.chain_id, validators)
            }
            // A NEW-VIEW proves itself when it is handled.
            _ => false,
        };
        if !signed_by_sender {
            return;
        }
        self.later_views.insert(from, view);
        let mut views: Vec<View> = self
            .later_views
            .values()
            .copied()
            .filter(|v| *v > self.view)
            .collect();
        views.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&w) = views.get(self.cfg.validators.max_byzantine()) {
            self.start_view_change(w, out);
        }
    }

    /// Sends the NEW-VIEW of the installed view to `to`, at most once per retransmission
    /// period per replica (a NEW-VIEW is large: no one can make this replica send it in a loop).
    fn relay_new_view(&mut self, to: NodeId, out: &mut Out) {
        let Some(nv) = &self.new_view else { return };
        if !self.active || nv.body.view != self.view || !self.relayed.insert(to) {
            return;
        }
        out.push(Output::Send {
            to,
            msg: PbftMessage::NewView(Box::new(nv.clone())),
        });
    }

    fn maybe_new_view(&mut self, nv: View, out: &mut Out) {
        let quorum = self.quorum();
        if nv != self.view || self.active || self.primary(nv) != self.cfg.me {
            return;
        }
        if self.new_view.as_ref().is_some_and(|m| m.body.view == nv) {
            return;
        }
        if self.view_changes.count_for(nv) < quorum {
            return;
        }
        let vcs: Vec<Signed<ViewChange>> = self
            .view_changes
            .for_view(nv)
            .into_iter()
            .take(quorum)
            .collect();
        let decision = decide(&vcs, self.cfg.base);
        let mut pre_prepares = Vec::new();
        for p in &decision.reproposals {
            let vote = Vote {
                view: nv,
                seq: p.pre_prepare.body.seq,
                digest: p.pre_prepare.body.digest,
            };
            match self.safety.pre_prepare(vote) {
                Ok(signed) => pre_prepares.push((signed, Block::clone(&p.block))),
                Err(r) => return self.refuse(r),
            }
        }
        self.persist_safety(out);
        let msg = NewView {
            view: nv,
            view_changes: vcs,
            pre_prepares,
        };
        let signed = self.safety.new_view(&msg);
        out.push(Output::Broadcast {
            msg: PbftMessage::NewView(Box::new(signed.clone())),
        });
        self.install(signed, &decision, out);
    }

    /// A NEW-VIEW, from its primary or relayed by any replica: it proves itself.
    pub(super) fn on_new_view(
        &mut self,
        nv: Signed<NewView>,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        let view = nv.body.view;
        if view < self.view || (view == self.view && self.active) {
            return Err(Refusal::StaleRound);
        }
        if nv.author != self.primary(view) {
            return Err(Refusal::NotPrimary);
        }
        if !nv.verify(NEW_VIEW, &self.ctx, &self.cfg.validators) {
            return Err(Refusal::BadSignature);
        }
        let decision = self.check_new_view(&nv.body).ok_or(Refusal::InvalidProof)?;
        if self.safety.enter_view(view) {
            self.persist_safety(out);
        }
        self.view = view;
        self.install(nv, &decision, out);
        Ok(())
    }

    /// Checks a NEW-VIEW: a quorum of distinct, valid view changes for its view, and exactly
    /// the re-proposals they imply, signed by the new primary.
    fn check_new_view(&self, nv: &NewView) -> Option<Decision> {
        let mut authors = std::collections::BTreeSet::new();
        for vc in &nv.view_changes {
            if vc.body.new_view != nv.view
                || !authors.insert(vc.author)
                || !view_change_ok(
                    vc,
                    &self.ctx,
                    &self.cfg.validators,
                    self.quorum(),
                    self.cfg.base,
                )
            {
                return None;
            }
        }
        if authors.len() < self.quorum() {
            return None;
        }
        let decision = decide(&nv.view_changes, self.cfg.base);
        if decision.reproposals.len() != nv.pre_prepares.len() {
            return None;
        }
        let primary = self.primary(nv.view);
        for (p, (signed, block)) in decision.reproposals.iter().zip(&nv.pre_prepares) {
            let want = Vote {
                view: nv.view,
                seq: p.pre_prepare.body.seq,
                digest: p.pre_prepare.body.digest,
            };
            if signed.body != want
                || signed.author != primary
                || block.hash() != want.digest
                || !signed.verify(PRE_PREPARE, &self.ctx, &self.cfg.validators)
            {
                return None;
            }
        }
        Some(decision)
    }

    fn install(&mut self, signed: Signed<NewView>, decision: &Decision, out: &mut Out) {
        assert!(
            signed.body.view == self.view && self.safety.data().view <= self.view,
            "a replica installs the view it is in"
        );
        self.active = true;
        self.restored = false;
        self.timer = 0;
        self.proposal_requested = false;
        self.my_view_changes.clear();
        self.view_changes.prune_through(signed.body.view);
        let view = signed.body.view;
        self.later_views.retain(|_, v| *v > view);
        self.slots.clear();
        let nv = signed.body.clone();
        self.new_view = Some(signed);
        if let (Some(digest), true) = (decision.low_digest, decision.low > self.low()) {
            // Adopt the quorum's stable checkpoint; a proof is in one of the view changes.
            if let Some(p) = nv
                .view_changes
                .iter()
                .filter_map(|vc| vc.body.checkpoint.as_ref())
                .find(|p| p.checkpoint.seq == decision.low && p.checkpoint.digest == digest)
            {
                self.make_stable(p.clone(), out);
            }
        }
        for (signed, block) in nv.pre_prepares {
            let seq = signed.body.seq;
            if !self.in_window(seq) {
                // Below the (possibly just adopted) stable checkpoint: already committed.
                continue;
            }
            let mut slot = Slot::new();
            if self.is_primary() {
                // The new primary re-proposes what a quorum prepared; it holds the proof.
                slot.validated = Some(true);
                slot.asked = true;
            }
            slot.pre_prepare = Some((signed, Arc::new(block)));
            self.slots.insert(seq, slot);
        }
        // The new primary signed a pre-prepare for every re-proposal, some of them perhaps at
        // or below a stable checkpoint it holds: those are never signed again.
        self.safety.prune(self.low());
        let seqs: Vec<Seq> = self.slots.keys().copied().collect();
        for seq in seqs {
            self.advance(seq, out);
        }
        self.maybe_propose(out);
    }
}
