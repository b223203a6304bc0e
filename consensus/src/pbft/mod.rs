//! PBFT (Castro & Liskov, "Practical Byzantine Fault Tolerance", OSDI '99) for n = 3f+1
//! validators, as a pure state machine.
//!
//! - Normal case (§4.2): the primary of view v (validator v mod n) signs a PRE-PREPARE for the
//!   next sequence number (= block height); replicas validate the block against their ledger
//!   before they PREPARE; 2f+1 matching prepares (the pre-prepare counts as the primary's)
//!   make it *prepared*, and the replica COMMITs; 2f+1 matching commits make it *committed*
//!   and are its commit certificate. One block is in flight at a time.
//! - Checkpoints (§4.3): every K blocks replicas sign the block hash; 2f+1 make a stable
//!   checkpoint, which moves the low watermark and garbage-collects the log. Messages outside
//!   the window (low, low + 2K] are dropped. A replica behind a stable checkpoint syncs blocks.
//! - View change (§4.4): a replica whose request timer expires (the timeout doubles with each
//!   view change without progress) sends VIEW-CHANGE with its stable checkpoint proof and its
//!   prepared certificates; f+1 view changes for higher views pull a replica along; the new
//!   primary's NEW-VIEW carries 2f+1 of them and re-proposes exactly what they imply, which
//!   every replica recomputes and checks before entering the view.
//! - Every message is signed and checked; [`safety`] is the only code that signs, and it never
//!   signs two digests for one (kind, view, seq), across restarts too.
//! - Lost messages: the in-flight slot's messages are re-sent every few ticks; a replica that
//!   sees a pre-prepare beyond its next height catches up by block sync.

mod certificate;
mod durable;
mod message;
mod safety;
#[cfg(test)]
mod tests;
mod view_change;

use std::collections::BTreeMap;

use cairn_crypto::SigningKey;
use cairn_ledger::{Block, BlockHash, Height, ValidatorSet};
use serde::{Deserialize, Serialize};

use crate::{Input, NodeId, Output, Protocol, Role, Status};
pub use certificate::{checkpoint_proof_ok, prepared_proof_ok, primary};
pub use message::{
    CHECKPOINT, Checkpoint, CheckpointProof, CommitVote, NEW_VIEW, NewView, PRE_PREPARE, PREPARE,
    PbftMessage, PreparedProof, Signed, VIEW_CHANGE, ViewChange, Vote,
};
use safety::Safety;
pub use safety::{Refusal, SafetyData, VoteKind};
pub use view_change::{Decision, decide, view_change_ok};

type Out = Vec<Output<PbftMessage, PbftPersist>>;

/// PBFT's fixed parameters.
#[derive(Debug, Clone)]
pub struct PbftConfig {
    /// Chain id (signed into every message).
    pub chain_id: String,
    /// The validators, in genesis order.
    pub validators: ValidatorSet,
    /// This replica's index.
    pub me: NodeId,
    /// A checkpoint every K blocks.
    pub checkpoint_interval: u64,
    /// Request timer, in ticks, before the first view change; doubles per view change
    /// without progress.
    pub view_change_ticks: u64,
    /// Re-send in-flight messages every this many ticks.
    pub retransmit_ticks: u64,
    /// Test only: a planted bug (quorums of f+1 instead of 2f+1) that the simulator must
    /// catch. Never set outside tests.
    #[doc(hidden)]
    pub planted_bug_small_quorum: bool,
}

/// A change to PBFT's durable state.
// Built once and handed to the caller: boxing would add an allocation and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PbftPersist {
    /// Safety's record of what it signed and the highest view entered.
    Safety(SafetyData),
    /// A prepared certificate (reported in view changes, so it must survive a crash).
    Prepared(PreparedProof),
    /// A new stable checkpoint (prunes prepared certificates at or below it).
    Stable(CheckpointProof),
    /// This replica's latest checkpoint signature, re-sent until the checkpoint is stable
    /// (also after a restart: others may need it for their quorum).
    Checkpoint(Signed<Checkpoint>),
}

/// PBFT's durable state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbftDurable {
    /// Safety data.
    pub safety: SafetyData,
    /// Prepared certificates above the stable checkpoint, by sequence number.
    pub prepared: BTreeMap<u64, PreparedProof>,
    /// The stable checkpoint.
    pub stable: Option<CheckpointProof>,
    /// This replica's latest checkpoint signature.
    pub checkpoint: Option<Signed<Checkpoint>>,
}

/// One sequence number's agreement state in the current view.
#[derive(Debug, Clone)]
struct Slot {
    pre_prepare: Option<(Signed<Vote>, Block)>,
    /// `None` until the caller answered `Validate`.
    validated: Option<bool>,
    asked: bool,
    prepares: BTreeMap<u32, Signed<Vote>>,
    commits: BTreeMap<u32, CommitVote>,
    my_prepare: Option<Signed<Vote>>,
    my_commit: Option<CommitVote>,
    committed: bool,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            pre_prepare: None,
            validated: None,
            asked: false,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            my_prepare: None,
            my_commit: None,
            committed: false,
        }
    }

    fn vote(&self) -> Option<Vote> {
        self.pre_prepare.as_ref().map(|(s, _)| s.body)
    }
}

/// A PBFT replica.
pub struct Pbft {
    cfg: PbftConfig,
    safety: Safety,
    view: u64,
    /// In a view whose NEW-VIEW was installed (or view 0); false while changing views.
    active: bool,
    /// Height of the caller's ledger tip: the last committed sequence number.
    height: Height,
    stable: Option<CheckpointProof>,
    slots: BTreeMap<u64, Slot>,
    prepared: BTreeMap<u64, PreparedProof>,
    checkpoints: BTreeMap<u64, BTreeMap<u32, Signed<Checkpoint>>>,
    my_checkpoint: Option<Signed<Checkpoint>>,
    view_changes: BTreeMap<u64, BTreeMap<u32, Signed<ViewChange>>>,
    /// Every VIEW-CHANGE sent since the last active view: all are re-sent until a view is
    /// installed, so a replica that lost an older one can still complete that view's quorum.
    my_view_changes: BTreeMap<u64, Signed<ViewChange>>,
    my_new_view: Option<Signed<NewView>>,
    timer: u64,
    attempts: u32,
    retransmit: u64,
    proposal_requested: bool,
    /// Height of the sync request in progress.
    syncing: Option<Height>,
    /// Where syncing must eventually get (it goes checkpoint by checkpoint), and from whom.
    sync_target: Height,
    sync_peer: u32,
    /// Restored into a view > 0 and not yet moved on: see `on_tick`.
    restored: bool,
    /// Whether the caller holds requests (transactions) that could be ordered now, as the
    /// last `Tick` said (§4.4: the request timer runs only while a request waits).
    pending_work: bool,
    dropped: u64,
}

impl std::fmt::Debug for Pbft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbft")
            .field("me", &self.cfg.me)
            .field("view", &self.view)
            .field("active", &self.active)
            .field("height", &self.height)
            .finish()
    }
}

impl Pbft {
    /// A replica starting from its durable state (default for a fresh node) and its ledger's
    /// height. It resumes view 0 at genesis; in a later view it waits for that view's
    /// NEW-VIEW (re-sent by the primary) or times out into the next.
    pub fn restore(
        cfg: PbftConfig,
        key: SigningKey,
        durable: &PbftDurable,
        ledger_height: Height,
    ) -> Pbft {
        let view = durable.safety.view;
        Pbft {
            safety: Safety::new(key, cfg.me.0, cfg.chain_id.clone(), durable.safety.clone()),
            view,
            active: view == 0,
            height: ledger_height,
            stable: durable.stable.clone(),
            slots: BTreeMap::new(),
            prepared: durable.prepared.clone(),
            checkpoints: BTreeMap::new(),
            my_checkpoint: durable.checkpoint.clone(),
            view_changes: BTreeMap::new(),
            my_view_changes: BTreeMap::new(),
            my_new_view: None,
            timer: 0,
            attempts: 0,
            retransmit: 0,
            proposal_requested: false,
            syncing: None,
            sync_target: 0,
            sync_peer: 0,
            restored: view > 0,
            pending_work: true,
            dropped: 0,
            cfg,
        }
    }

    fn n(&self) -> usize {
        self.cfg.validators.len()
    }

    fn quorum(&self) -> usize {
        if self.cfg.planted_bug_small_quorum {
            self.cfg.validators.max_byzantine() + 1
        } else {
            self.cfg.validators.byzantine_quorum()
        }
    }

    fn primary(&self, view: u64) -> u32 {
        primary(view, self.n())
    }

    fn is_primary(&self) -> bool {
        self.primary(self.view) == self.cfg.me.0
    }

    fn low(&self) -> u64 {
        self.stable.as_ref().map_or(0, |p| p.checkpoint.seq)
    }

    fn in_window(&self, seq: u64) -> bool {
        seq > self.low() && seq <= self.low() + 2 * self.cfg.checkpoint_interval.max(1)
    }

    fn persist_safety(&self, out: &mut Out) {
        out.push(Output::Persist {
            op: PbftPersist::Safety(self.safety.data().clone()),
        });
    }

    fn timeout(&self) -> u64 {
        self.cfg.view_change_ticks << self.attempts.min(6)
    }

    fn drop_msg(&mut self) {
        self.dropped += 1;
    }

    // ---- time ----

    fn on_tick(&mut self, out: &mut Out) {
        if self.restored && !self.my_view_changes.contains_key(&self.view) {
            // Restored into a view it cannot know was installed: say again that it wants this
            // view (a view change is a statement, not a vote, so repeating it is safe); if the
            // view does not install, the timer below moves it on.
            self.send_view_change(out);
        }
        // §4.5.2: in a view change, the timer runs only once 2f+1 replicas have moved to this
        // view or beyond, so one replica alone cannot run ahead through views the others
        // never reach. A restored replica's timer always runs.
        let waiting_alone = !self.active && !self.restored && {
            let mut movers: std::collections::BTreeSet<u32> = std::collections::BTreeSet::new();
            for (_, m) in self.view_changes.range(self.view..) {
                movers.extend(m.keys().copied());
            }
            movers.len() < self.quorum()
        };
        // Idle: in an installed view, nothing to order and nothing in flight.
        let idle = self.active
            && !self.pending_work
            && !self
                .slots
                .range(self.height + 1..)
                .any(|(_, s)| s.pre_prepare.is_some());
        if waiting_alone || idle {
            self.timer = 0;
        } else {
            self.timer += 1;
        }
        if self.timer >= self.timeout() {
            self.start_view_change(self.view + 1, out);
        }
        self.retransmit += 1;
        if self.retransmit >= self.cfg.retransmit_ticks.max(1) {
            self.retransmit = 0;
            self.resend(out);
        }
        self.maybe_propose(out);
    }

    /// Re-sends what this replica said about the in-flight slot, its latest checkpoint, and
    /// its view change or new view: the network may have lost them.
    fn resend(&mut self, out: &mut Out) {
        if !self.active {
            for vc in self.my_view_changes.values() {
                out.push(Output::Broadcast {
                    msg: PbftMessage::ViewChange(Box::new(vc.clone())),
                });
            }
            return;
        }
        if let Some(nv) = &self.my_new_view
            && nv.body.view == self.view
        {
            out.push(Output::Broadcast {
                msg: PbftMessage::NewView(Box::new(nv.clone())),
            });
        }
        if let Some(slot) = self.slots.get(&(self.height + 1)) {
            if self.is_primary()
                && let Some((vote, block)) = &slot.pre_prepare
            {
                out.push(Output::Broadcast {
                    msg: PbftMessage::PrePrepare {
                        vote: vote.clone(),
                        block: block.clone(),
                    },
                });
            }
            if let Some(p) = &slot.my_prepare {
                out.push(Output::Broadcast {
                    msg: PbftMessage::Prepare(p.clone()),
                });
            }
            if let Some(c) = &slot.my_commit {
                out.push(Output::Broadcast {
                    msg: PbftMessage::Commit(c.clone()),
                });
            }
        }
        if let Some(c) = &self.my_checkpoint {
            out.push(Output::Broadcast {
                msg: PbftMessage::Checkpoint(c.clone()),
            });
        }
    }

    // ---- normal case (§4.2) ----

    fn maybe_propose(&mut self, out: &mut Out) {
        let in_flight = self
            .slots
            .range(self.height + 1..)
            .any(|(_, s)| s.pre_prepare.is_some());
        if self.active
            && self.is_primary()
            && !self.proposal_requested
            && self.syncing.is_none()
            && !in_flight
        {
            self.proposal_requested = true;
            out.push(Output::RequestProposal {
                height: self.height + 1,
                round: self.view,
            });
        }
    }

    fn on_propose(&mut self, block: Block, out: &mut Out) {
        if !self.active || !self.is_primary() {
            out.push(Output::NotLeader {
                hint: Some(NodeId(self.primary(self.view))),
            });
            return;
        }
        let seq = block.header.height;
        if !self.proposal_requested || seq != self.height + 1 || !self.in_window(seq) {
            return self.drop_msg();
        }
        self.proposal_requested = false;
        let vote = Vote {
            view: self.view,
            seq,
            digest: block.hash(),
        };
        let Ok(signed) = self.safety.pre_prepare(vote) else {
            return self.drop_msg();
        };
        self.persist_safety(out);
        out.push(Output::Broadcast {
            msg: PbftMessage::PrePrepare {
                vote: signed.clone(),
                block: block.clone(),
            },
        });
        let mut slot = Slot::new();
        slot.pre_prepare = Some((signed, block));
        // The primary built the block on its own ledger: it is valid.
        slot.validated = Some(true);
        slot.asked = true;
        self.slots.insert(seq, slot);
        self.advance(seq, out);
    }

    fn on_pre_prepare(&mut self, from: u32, vote: Signed<Vote>, block: Block, out: &mut Out) {
        let v = vote.body;
        let ok = vote.author == from
            && self.active
            && v.view == self.view
            && vote.author == self.primary(v.view)
            && self.in_window(v.seq)
            && v.seq > self.height
            && block.header.height == v.seq
            && block.hash() == v.digest
            && vote.verify(PRE_PREPARE, &self.cfg.chain_id, &self.cfg.validators);
        if !ok {
            return self.drop_msg();
        }
        let slot = self.slots.entry(v.seq).or_insert_with(Slot::new);
        if slot.pre_prepare.is_some() {
            // A duplicate, or the primary equivocating: the first one stands either way.
            return self.drop_msg();
        }
        slot.pre_prepare = Some((vote, block));
        if v.seq > self.height + 1 {
            // Others are ahead: fetch the committed blocks in between.
            self.sync_to(from, v.seq - 1, out);
        }
        self.advance(v.seq, out);
    }

    fn on_prepare(&mut self, from: u32, s: Signed<Vote>) {
        let v = s.body;
        let ok = s.author == from
            && self.active
            && v.view == self.view
            && s.author != self.primary(v.view)
            && self.in_window(v.seq)
            && s.verify(PREPARE, &self.cfg.chain_id, &self.cfg.validators);
        if !ok {
            return self.drop_msg();
        }
        let slot = self.slots.entry(v.seq).or_insert_with(Slot::new);
        if slot.prepares.contains_key(&s.author) {
            return self.drop_msg();
        }
        slot.prepares.insert(s.author, s);
    }

    fn on_commit(&mut self, from: u32, s: CommitVote) {
        let b = &s.body;
        let ok = s.author == from
            && self.active
            && b.view == self.view
            && self.in_window(b.seq)
            && s.verify_commit(&self.cfg.chain_id, &self.cfg.validators);
        if !ok {
            return self.drop_msg();
        }
        let slot = self.slots.entry(b.seq).or_insert_with(Slot::new);
        if slot.commits.contains_key(&s.author) {
            return self.drop_msg();
        }
        slot.commits.insert(s.author, s);
    }

    fn on_validated(&mut self, digest: BlockHash, valid: bool, out: &mut Out) {
        let seqs: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.asked && s.validated.is_none() && s.vote().is_some_and(|v| v.digest == digest)
            })
            .map(|(q, _)| *q)
            .collect();
        if seqs.is_empty() {
            return self.drop_msg();
        }
        for seq in seqs {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.validated = Some(valid);
            }
            if !valid && self.active {
                // The primary proposed a block that does not execute here: replace it.
                return self.start_view_change(self.view + 1, out);
            }
            self.advance(seq, out);
        }
    }

    /// Moves slot `seq` as far as its messages allow: validate, prepare, commit, deliver.
    fn advance(&mut self, seq: u64, out: &mut Out) {
        let me = self.cfg.me.0;
        let quorum = self.quorum();
        let primary = self.primary(self.view);
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let Some(vote) = slot.vote() else { return };
        if slot.validated.is_none() {
            if !slot.asked && seq <= self.height + 1 && self.syncing.is_none() {
                slot.asked = true;
                if let Some((_, block)) = &slot.pre_prepare {
                    out.push(Output::Validate {
                        block: block.clone(),
                    });
                }
            }
            return;
        }
        if slot.validated != Some(true) {
            return;
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
                Err(_) => return,
            }
        }
        let prepares: Vec<Signed<Vote>> = slot
            .prepares
            .values()
            .filter(|p| p.body == vote && p.author != primary)
            .cloned()
            .collect();
        if prepares.len() + 1 < quorum {
            return;
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
                block: block.clone(),
                prepares,
            };
            out.push(Output::Persist {
                op: PbftPersist::Prepared(proof.clone()),
            });
            self.prepared.insert(seq, proof);
        }
        if slot.my_commit.is_none() {
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
                Err(_) => return,
            }
        }
        let commits: Vec<CommitVote> = slot
            .commits
            .values()
            .filter(|c| {
                c.body.view == vote.view
                    && c.body.seq == vote.seq
                    && c.body.block_hash == vote.digest
            })
            .cloned()
            .collect();
        if commits.len() < quorum || slot.committed || seq != self.height + 1 {
            return;
        }
        let Some(certificate) = certificate::commit_certificate(&commits, &self.cfg.validators)
        else {
            return;
        };
        let Some((_, block)) = slot.pre_prepare.clone() else {
            return;
        };
        slot.committed = true;
        out.push(Output::Commit { block, certificate });
        self.height = seq;
        self.timer = 0;
        self.attempts = 0;
        if seq.is_multiple_of(self.cfg.checkpoint_interval.max(1)) {
            self.sign_checkpoint(seq, vote.digest, out);
        }
        self.advance(seq + 1, out);
        self.maybe_propose(out);
    }

    // ---- checkpoints (§4.3) ----

    fn on_checkpoint(&mut self, from: u32, s: Signed<Checkpoint>, out: &mut Out) {
        let c = s.body;
        let k = self.cfg.checkpoint_interval.max(1);
        let ok = s.author == from
            && c.seq.is_multiple_of(k)
            && c.seq > self.low()
            && s.verify(CHECKPOINT, &self.cfg.chain_id, &self.cfg.validators);
        if !ok {
            return self.drop_msg();
        }
        let me = self.cfg.me.0;
        let votes = self.checkpoints.entry(c.seq).or_default();
        votes.entry(s.author).or_insert(s);
        let mut matching: Vec<Signed<Checkpoint>> =
            votes.values().filter(|v| v.body == c).cloned().collect();
        // A replica that reached `seq` by block sync never committed it through agreement, so
        // it never signed this checkpoint. f+1 matching signatures include an honest one, and
        // its own certified block at `seq` must be the same: it co-signs, or a window whose
        // quorum needs it would never move.
        if self.height >= c.seq
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
        self.my_checkpoint = Some(own.clone());
        self.checkpoints
            .entry(c.seq)
            .or_default()
            .insert(self.cfg.me.0, own.clone());
        own
    }

    /// Signs the checkpoint for `seq` and counts it toward stability.
    fn sign_checkpoint(&mut self, seq: u64, digest: BlockHash, out: &mut Out) {
        if seq <= self.low() {
            return;
        }
        let own = self.record_checkpoint(Checkpoint { seq, digest }, out);
        self.on_checkpoint(self.cfg.me.0, own, out);
    }

    fn make_stable(&mut self, proof: CheckpointProof, out: &mut Out) {
        let seq = proof.checkpoint.seq;
        if seq <= self.low() {
            return;
        }
        out.push(Output::Persist {
            op: PbftPersist::Stable(proof.clone()),
        });
        let helper = proof.votes.first().map(|v| v.author);
        self.stable = Some(proof);
        self.slots = self.slots.split_off(&(seq + 1));
        self.prepared = self.prepared.split_off(&(seq + 1));
        self.checkpoints = self.checkpoints.split_off(&(seq + 1));
        self.safety.prune(seq);
        self.persist_safety(out);
        if self.height < seq
            && let Some(peer) = helper
        {
            self.sync_to(peer, seq, out);
        }
    }

    /// Catches the ledger up to `height` by block sync, one checkpoint at a time: stopping at
    /// each checkpoint height lets this replica sign that checkpoint from the certified block
    /// it now holds, so checkpoints become stable even when most replicas synced past them.
    fn sync_to(&mut self, peer: u32, height: Height, out: &mut Out) {
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
        let k = self.cfg.checkpoint_interval.max(1);
        let next_checkpoint = (self.height / k + 1) * k;
        let step = self.sync_target.min(next_checkpoint);
        if step <= self.height {
            return;
        }
        self.syncing = Some(step);
        out.push(Output::SyncTo {
            peer: NodeId(self.sync_peer),
            height: step,
        });
    }

    fn on_synced(&mut self, height: Height, tip: BlockHash, out: &mut Out) {
        // Whether or not it reached the step, this sync is over.
        let asked = self.syncing.take();
        if height > self.height {
            self.height = height;
            self.timer = 0;
            for (_, s) in self.slots.range_mut(..=height) {
                s.committed = true;
            }
            if height.is_multiple_of(self.cfg.checkpoint_interval.max(1)) {
                self.sign_checkpoint(height, tip, out);
            }
            if asked.is_some() && self.sync_target > self.height {
                self.request_sync(out);
            }
        }
        self.advance(self.height + 1, out);
        self.maybe_propose(out);
    }

    // ---- view change (§4.4) ----

    fn start_view_change(&mut self, new_view: u64, out: &mut Out) {
        if new_view <= self.view {
            return;
        }
        self.view = new_view;
        self.active = false;
        self.restored = false;
        self.attempts = self.attempts.saturating_add(1);
        self.timer = 0;
        self.proposal_requested = false;
        self.my_new_view = None;
        if self.safety.enter_view(new_view) {
            self.persist_safety(out);
        }
        self.send_view_change(out);
    }

    /// Signs and broadcasts VIEW-CHANGE for the current (not yet active) view.
    fn send_view_change(&mut self, out: &mut Out) {
        let new_view = self.view;
        let low = self.low();
        let vc = ViewChange {
            new_view,
            checkpoint: self.stable.clone(),
            prepared: self
                .prepared
                .range(low + 1..)
                .map(|(_, p)| p.clone())
                .collect(),
        };
        let signed = self.safety.view_change(&vc);
        out.push(Output::Broadcast {
            msg: PbftMessage::ViewChange(Box::new(signed.clone())),
        });
        self.my_view_changes.insert(new_view, signed.clone());
        self.view_changes
            .entry(new_view)
            .or_default()
            .insert(self.cfg.me.0, signed);
        self.maybe_new_view(new_view, out);
    }

    fn on_view_change(&mut self, from: u32, vc: Signed<ViewChange>, out: &mut Out) {
        let nv = vc.body.new_view;
        if vc.author != from || nv < self.view || (nv == self.view && self.active) {
            return self.drop_msg();
        }
        if !view_change_ok(&vc, &self.cfg.chain_id, &self.cfg.validators, self.quorum()) {
            return self.drop_msg();
        }
        self.view_changes
            .entry(nv)
            .or_default()
            .insert(vc.author, vc);
        // f+1 replicas want a higher view: at least one honest one timed out; join the
        // smallest such view (§4.5.2).
        let mut askers = std::collections::BTreeSet::new();
        let mut smallest = None;
        for (v, m) in self.view_changes.range(self.view + 1..) {
            askers.extend(m.keys().copied());
            smallest.get_or_insert(*v);
        }
        if let Some(v) = smallest
            && askers.len() > self.cfg.validators.max_byzantine()
        {
            self.start_view_change(v, out);
        }
        self.maybe_new_view(nv, out);
    }

    fn maybe_new_view(&mut self, nv: u64, out: &mut Out) {
        let quorum = self.quorum();
        if nv != self.view || self.active || self.primary(nv) != self.cfg.me.0 {
            return;
        }
        if self.my_new_view.as_ref().is_some_and(|m| m.body.view == nv) {
            return;
        }
        let Some(vcs) = self.view_changes.get(&nv) else {
            return;
        };
        if vcs.len() < quorum {
            return;
        }
        let vcs: Vec<Signed<ViewChange>> = vcs.values().take(quorum).cloned().collect();
        let decision = decide(&vcs);
        let mut pre_prepares = Vec::new();
        for p in &decision.reproposals {
            let vote = Vote {
                view: nv,
                seq: p.pre_prepare.body.seq,
                digest: p.pre_prepare.body.digest,
            };
            let Ok(signed) = self.safety.pre_prepare(vote) else {
                return;
            };
            pre_prepares.push((signed, p.block.clone()));
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
        self.my_new_view = Some(signed);
        self.install(msg, &decision, out);
    }

    fn on_new_view(&mut self, from: u32, nv: Signed<NewView>, out: &mut Out) {
        let view = nv.body.view;
        let ok = nv.author == from
            && nv.author == self.primary(view)
            && (view > self.view || (view == self.view && !self.active))
            && nv.verify(NEW_VIEW, &self.cfg.chain_id, &self.cfg.validators);
        if !ok {
            return self.drop_msg();
        }
        let Some(decision) = self.check_new_view(&nv.body) else {
            return self.drop_msg();
        };
        if self.safety.enter_view(view) {
            self.persist_safety(out);
        }
        self.view = view;
        self.install(nv.body, &decision, out);
    }

    /// Checks a NEW-VIEW: a quorum of distinct, valid view changes for its view, and exactly
    /// the re-proposals they imply, signed by the new primary.
    fn check_new_view(&self, nv: &NewView) -> Option<Decision> {
        let mut authors = std::collections::BTreeSet::new();
        for vc in &nv.view_changes {
            if vc.body.new_view != nv.view
                || !authors.insert(vc.author)
                || !view_change_ok(vc, &self.cfg.chain_id, &self.cfg.validators, self.quorum())
            {
                return None;
            }
        }
        if authors.len() < self.quorum() {
            return None;
        }
        let decision = decide(&nv.view_changes);
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
                || !signed.verify(PRE_PREPARE, &self.cfg.chain_id, &self.cfg.validators)
            {
                return None;
            }
        }
        Some(decision)
    }

    fn install(&mut self, nv: NewView, decision: &Decision, out: &mut Out) {
        self.active = true;
        self.restored = false;
        self.timer = 0;
        self.proposal_requested = false;
        self.my_view_changes.clear();
        self.view_changes = self.view_changes.split_off(&(nv.view + 1));
        self.slots.clear();
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
            let mut slot = Slot::new();
            if self.is_primary() {
                // The new primary re-proposes what a quorum prepared; it holds the proof.
                slot.validated = Some(true);
                slot.asked = true;
            }
            slot.pre_prepare = Some((signed, block));
            self.slots.insert(seq, slot);
        }
        let seqs: Vec<u64> = self.slots.keys().copied().collect();
        for seq in seqs {
            self.advance(seq, out);
        }
        self.maybe_propose(out);
    }
}

impl Protocol for Pbft {
    type Message = PbftMessage;
    type PersistOp = PbftPersist;
    type Config = PbftConfig;
    type Durable = PbftDurable;

    fn restore(
        config: PbftConfig,
        key: SigningKey,
        durable: &PbftDurable,
        ledger_height: Height,
    ) -> Pbft {
        Pbft::restore(config, key, durable, ledger_height)
    }

    fn step(&mut self, input: Input<PbftMessage>, out: &mut Out) {
        match input {
            Input::Tick { pending_work } => {
                self.pending_work = pending_work;
                self.on_tick(out)
            }
            Input::Propose { block } => self.on_propose(block, out),
            Input::Validated { block_hash, valid } => self.on_validated(block_hash, valid, out),
            Input::Synced { height, tip } => self.on_synced(height, tip, out),
            Input::Message { from, msg } => {
                if from == self.cfg.me || from.index() >= self.n() {
                    return self.drop_msg();
                }
                let from = from.0;
                match msg {
                    PbftMessage::PrePrepare { vote, block } => {
                        self.on_pre_prepare(from, vote, block, out)
                    }
                    PbftMessage::Prepare(p) => {
                        let seq = p.body.seq;
                        self.on_prepare(from, p);
                        self.advance(seq, out);
                    }
                    PbftMessage::Commit(c) => {
                        let seq = c.body.seq;
                        self.on_commit(from, c);
                        self.advance(seq, out);
                    }
                    PbftMessage::Checkpoint(c) => self.on_checkpoint(from, c, out),
                    PbftMessage::ViewChange(vc) => self.on_view_change(from, *vc, out),
                    PbftMessage::NewView(nv) => self.on_new_view(from, *nv, out),
                }
            }
        }
    }

    fn status(&self) -> Status {
        Status {
            role: if self.active && self.is_primary() {
                Role::Leader
            } else {
                Role::Follower
            },
            round: self.view,
            leader: self.active.then(|| NodeId(self.primary(self.view))),
            commit_height: self.height,
            dropped: self.dropped,
        }
    }
}
