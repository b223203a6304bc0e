//! PBFT (Castro & Liskov, "Practical Byzantine Fault Tolerance", OSDI '99) for n = 3f+1
//! validators, as a pure state machine.
//!
//! - Normal case (§4.2): the primary of view v (validator v mod n) signs a PRE-PREPARE for the
//!   next sequence number (= block height); replicas validate the block against their ledger
//!   before they PREPARE; 2f+1 matching prepares (the pre-prepare counts as the primary's)
//!   make it *prepared*, and the replica COMMITs; 2f+1 matching commits make it *committed*
//!   and are its commit certificate. Up to `blocks_in_flight` blocks are in flight, each built
//!   on the one before; a replica commits (signs COMMIT for) h+1 only after it committed, or
//!   signed COMMIT for, h in the same view, which keeps a view change's re-proposals gap-free
//!   (see `normal` and ARCHITECTURE.md).
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
//! - Lost messages: the in-flight slots' messages are re-sent every few ticks; a replica that
//!   sees a pre-prepare beyond the blocks that may be in flight catches up by block sync.
//! - Bounded state: whatever up to f Byzantine replicas send, a replica keeps at most the
//!   bounds written next to each field of [`Pbft`] (and listed in ARCHITECTURE.md);
//!   [`Protocol::footprint`] states them and the simulator checks them.
//!
//! One file per part of the paper: [`normal`] (§4.2), [`checkpoint`] (§4.3, with block sync),
//! [`view_change`] (§4.4) and [`timer`] (the request timer of §4.4 and §4.5.2, and
//! retransmission); [`log`] holds the message log those parts fill.

mod certificate;
mod checkpoint;
mod durable;
mod log;
mod message;
mod normal;
mod safety;
#[cfg(test)]
mod tests;
mod timer;
mod view_change;

use std::collections::BTreeMap;

use cairn_crypto::SigningKey;
use cairn_ledger::{Height, ValidatorSet};
use serde::{Deserialize, Serialize};

use crate::{Held, Input, NodeId, Output, Protocol, Refusal, Refusals, Role, Seq, Status, View};
pub use certificate::{checkpoint_proof_ok, prepared_proof_ok, primary};
use log::{CheckpointVotes, Slot, ViewChanges};
pub use message::{
    CHECKPOINT, Checkpoint, CheckpointProof, CommitVote, NEW_VIEW, NewView, PRE_PREPARE, PREPARE,
    PbftMessage, PreparedProof, Signed, VIEW_CHANGE, ViewChange, Vote,
};
use safety::Safety;
pub use safety::{SafetyData, VoteKind};
pub use view_change::{Decision, decide, view_change_ok};

type Out = Vec<Output<PbftMessage, PbftPersist>>;

/// PBFT's fixed parameters.
#[derive(Debug, Clone)]
pub struct PbftConfig {
    /// Chain id (signed into every message).
    pub chain_id: String,
    /// The validators in force, in order.
    pub validators: ValidatorSet,
    /// The last height of the validator set before this one (0 for the genesis set): this
    /// instance orders the heights above it, and signs its messages in a context that names
    /// it ([`PbftConfig::context`]), so no message of another set's instance verifies here.
    pub base: Seq,
    /// This replica's index.
    pub me: NodeId,
    /// A checkpoint every K blocks.
    pub checkpoint_interval: u64,
    /// Request timer, in ticks, before the first view change; doubles per view change
    /// without progress.
    pub view_change_ticks: u64,
    /// Re-send in-flight messages every this many ticks.
    pub retransmit_ticks: u64,
    /// Most blocks a primary keeps pre-prepared above the committed height (pipelining: it
    /// proposes h+1 while h is being agreed on); 1 is one block at a time. Backups take up to
    /// this many beyond their next height before they suspect they fell behind.
    pub blocks_in_flight: usize,
    /// Test only: a planted bug (quorums of f+1 instead of 2f+1) that the simulator must
    /// catch. Never set outside tests.
    #[doc(hidden)]
    pub planted_bug_small_quorum: bool,
    /// Test only: a planted bug (checkpoint votes kept for any future sequence number, as
    /// before the horizon existed) that the simulator's bound checker must catch.
    #[doc(hidden)]
    pub planted_bug_unbounded_checkpoints: bool,
}

impl PbftConfig {
    /// What every message except a commit vote is signed in: the chain id, and for a set
    /// after the genesis one `#<base>`. Commit votes are signed with the chain id alone, as
    /// the certificates they make are checked offline; their sequence numbers never repeat
    /// across sets.
    pub fn context(&self) -> String {
        if self.base == Seq(0) {
            self.chain_id.clone()
        } else {
            format!("{}#{}", self.chain_id, self.base)
        }
    }
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
    pub prepared: BTreeMap<Seq, PreparedProof>,
    /// The stable checkpoint.
    pub stable: Option<CheckpointProof>,
    /// This replica's latest checkpoint signature.
    pub checkpoint: Option<Signed<Checkpoint>>,
}

/// A PBFT replica.
///
/// Bounds (n validators, window W = 2K sequence numbers above the stable checkpoint; each
/// message's size is bounded by the transport): see each field. None depends on what peers
/// send; [`Protocol::footprint`] reports each.
pub struct Pbft {
    cfg: PbftConfig,
    /// [`PbftConfig::context`], computed once.
    ctx: String,
    /// What this replica signed: at most 3 votes (pre-prepare, prepare, commit) per sequence
    /// number of the window, in the current view only (older views are forgotten when a view
    /// is entered: no vote is signed for them again).
    safety: Safety,
    view: View,
    /// In a view whose NEW-VIEW was installed (or view 0); false while changing views.
    active: bool,
    /// Height of the caller's ledger tip: the last committed sequence number.
    height: Height,
    stable: Option<CheckpointProof>,
    /// The message log of the current view: at most W slots (sequence numbers in the window),
    /// each with one pre-prepare and at most one prepare and one commit per validator.
    slots: BTreeMap<Seq, Slot>,
    /// This replica's prepared certificates: at most W (one per sequence number in the window).
    prepared: BTreeMap<Seq, PreparedProof>,
    /// Checkpoint votes: per validator, one per checkpoint height in the window (at most
    /// W / K = 2) plus its latest beyond the window: at most 3n.
    checkpoints: CheckpointVotes,
    my_checkpoint: Option<Signed<Checkpoint>>,
    /// VIEW-CHANGE messages: per validator, its two highest views: at most 2n.
    view_changes: ViewChanges,
    /// This replica's VIEW-CHANGE messages since the last installed view, re-sent until a view
    /// is installed (a replica that lost one can still complete that view's quorum): the
    /// latest [`OWN_VIEW_CHANGES_KEPT`].
    my_view_changes: BTreeMap<View, Signed<ViewChange>>,
    /// The NEW-VIEW this replica sent as primary, or installed: re-sent, and relayed to a
    /// replica that asks for the view with a VIEW-CHANGE, so one that restarted or fell behind
    /// joins the view the others are in.
    new_view: Option<Signed<NewView>>,
    /// Replicas this one relayed its NEW-VIEW to since the last retransmission: at most n.
    relayed: std::collections::BTreeSet<NodeId>,
    /// The highest later view each validator was seen voting in (signature checked): at most
    /// n. f+1 of them show that a quorum installed a later view; see `view_change::later_view`.
    later_views: BTreeMap<NodeId, View>,
    timer: u64,
    attempts: u32,
    retransmit: u64,
    proposal_requested: bool,
    /// Height of the sync request in progress.
    syncing: Option<Height>,
    /// Where syncing must eventually get (it goes checkpoint by checkpoint), and from whom.
    sync_target: Height,
    sync_peer: NodeId,
    /// Restored into a view > 0 and not yet moved on: see `on_tick`.
    restored: bool,
    /// Whether the caller holds requests (transactions) that could be ordered now, as the
    /// last `Tick` said (§4.4: the request timer runs only while a request waits).
    pending_work: bool,
    refused: Refusals,
}

/// How many of its own VIEW-CHANGE messages a replica keeps re-sending.
pub const OWN_VIEW_CHANGES_KEPT: usize = 2;

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
            safety: Safety::new(
                key,
                cfg.me,
                cfg.chain_id.clone(),
                cfg.context(),
                durable.safety.clone(),
            ),
            ctx: cfg.context(),
            view,
            active: view == View(0),
            height: ledger_height,
            stable: durable.stable.clone(),
            slots: BTreeMap::new(),
            prepared: durable.prepared.clone(),
            checkpoints: CheckpointVotes::default(),
            my_checkpoint: durable.checkpoint.clone(),
            view_changes: ViewChanges::default(),
            my_view_changes: BTreeMap::new(),
            new_view: None,
            relayed: std::collections::BTreeSet::new(),
            later_views: BTreeMap::new(),
            timer: 0,
            attempts: 0,
            retransmit: 0,
            proposal_requested: false,
            syncing: None,
            sync_target: 0,
            sync_peer: NodeId(0),
            restored: view > View(0),
            pending_work: true,
            refused: Refusals::default(),
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

    fn primary(&self, view: View) -> NodeId {
        primary(view, self.n())
    }

    fn is_primary(&self) -> bool {
        self.primary(self.view) == self.cfg.me
    }

    /// The low watermark: the stable checkpoint's sequence number.
    fn low(&self) -> Seq {
        self.stable
            .as_ref()
            .map_or(self.cfg.base, |p| p.checkpoint.seq.max(self.cfg.base))
    }

    /// The sequence number of the last committed block.
    fn committed(&self) -> Seq {
        Seq::at(self.height)
    }

    /// The sequence number to order next.
    fn next_seq(&self) -> Seq {
        Seq::at(self.height).next()
    }

    /// Most blocks in flight (at least 1).
    fn depth(&self) -> u64 {
        self.cfg.blocks_in_flight.max(1) as u64
    }

    /// K, the checkpoint interval.
    fn interval(&self) -> u64 {
        self.cfg.checkpoint_interval.max(1)
    }

    /// W = 2K, the width of the watermark window.
    fn window(&self) -> u64 {
        2 * self.interval()
    }

    fn in_window(&self, seq: Seq) -> bool {
        seq > self.low() && seq <= self.low().plus(self.window())
    }

    fn persist_safety(&self, out: &mut Out) {
        out.push(Output::Persist {
            op: PbftPersist::Safety(self.safety.data().clone()),
        });
    }

    fn timeout(&self) -> u64 {
        self.cfg.view_change_ticks << self.attempts.min(6)
    }

    /// Counts a refusal.
    fn refuse(&mut self, r: Refusal) {
        self.refused.count(r);
    }

    /// Counts the refusal, if there was one.
    fn note(&mut self, r: Result<(), Refusal>) {
        if let Err(r) = r {
            self.refuse(r);
        }
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
        let (view, height) = (self.view, self.height);
        let r = match input {
            Input::Tick { pending_work } => {
                self.pending_work = pending_work;
                self.on_tick(out);
                Ok(())
            }
            Input::Propose { block } => self.on_propose(*block, out),
            Input::Validated { block_hash, valid } => self.on_validated(block_hash, valid, out),
            Input::Synced { height, tip } => {
                self.on_synced(height, tip, out);
                Ok(())
            }
            Input::Message { from, msg } => self.on_message(from, msg, out),
        };
        self.note(r);
        // Release-mode invariants: views and the committed height never go back.
        assert!(
            self.view >= view,
            "PBFT view went back: {view} -> {}",
            self.view
        );
        assert!(
            self.height >= height,
            "PBFT height went back: {height} -> {}",
            self.height
        );
    }

    fn status(&self) -> Status {
        Status {
            role: if self.active && self.is_primary() {
                Role::Leader
            } else {
                Role::Follower
            },
            round: self.view.0,
            leader: self.active.then(|| self.primary(self.view)),
            commit_height: self.height,
            refused: self.refused,
        }
    }

    fn footprint(&self) -> Vec<Held> {
        let n = self.n();
        let w = self.window() as usize;
        let votes: usize = self.slots.values().map(Slot::messages).sum();
        vec![
            // A pre-prepare and a prepare and a commit per validator, per sequence number of
            // the window.
            Held::messages("log votes", votes, w * (1 + 2 * n)),
            Held::entries("log slots", self.slots.len(), w),
            Held::entries("prepared certificates", self.prepared.len(), w),
            Held::messages("checkpoint votes", self.checkpoints.len(), 3 * n),
            Held::messages(
                "view changes",
                self.view_changes.len(),
                ViewChanges::PER_AUTHOR * n,
            ),
            Held::messages(
                "own view changes",
                self.my_view_changes.len(),
                OWN_VIEW_CHANGES_KEPT,
            ),
            // Three kinds per sequence number of the window, in the current view.
            Held::messages("signed votes", self.safety.data().signed.len(), 3 * w),
            Held::messages("relayed new views", self.relayed.len(), n),
            Held::messages("later views", self.later_views.len(), n),
        ]
    }
}

impl Pbft {
    fn on_message(&mut self, from: NodeId, msg: PbftMessage, out: &mut Out) -> Result<(), Refusal> {
        if from == self.cfg.me || from.index() >= self.n() {
            return Err(Refusal::NotAValidator);
        }
        self.maybe_later_view(from, &msg, out);
        match msg {
            PbftMessage::PrePrepare { vote, block } => self.on_pre_prepare(from, vote, block, out),
            PbftMessage::Prepare(p) => {
                let seq = p.body.seq;
                self.on_prepare(from, p)?;
                self.advance(seq, out);
                Ok(())
            }
            PbftMessage::Commit(c) => {
                let seq = Seq(c.body.seq);
                self.on_commit(from, c)?;
                self.advance(seq, out);
                Ok(())
            }
            PbftMessage::Checkpoint(c) => self.on_checkpoint(from, c, out),
            PbftMessage::ViewChange(vc) => self.on_view_change(from, *vc, out),
            PbftMessage::NewView(nv) => self.on_new_view(*nv, out),
        }
    }
}
