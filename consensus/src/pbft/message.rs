//! PBFT's messages (Castro & Liskov, OSDI '99, §4), each signed by its author.
//!
//! Pre-prepares and prepares are signed over `(view, seq, digest)`; the block travels beside
//! the signature and must hash to the digest. Commits are signed over the ledger's
//! [`PbftCommitStatement`], so 2f+1 commits are a commit certificate as they stand.

use std::sync::Arc;

use cairn_crypto::{Domain, Signature, codec};
use cairn_ledger::domains::PBFT_COMMIT;
use cairn_ledger::{Block, BlockHash, PbftCommitStatement, ValidatorSet};

use crate::{NodeId, Seq, View};
use serde::{Deserialize, Serialize};

/// Domain of pre-prepare signatures.
pub const PRE_PREPARE: Domain = Domain::new("cairn/pbft/pre-prepare/v1");
/// Domain of prepare signatures.
pub const PREPARE: Domain = Domain::new("cairn/pbft/prepare/v1");
/// Domain of checkpoint signatures.
pub const CHECKPOINT: Domain = Domain::new("cairn/pbft/checkpoint/v1");
/// Domain of view-change signatures.
pub const VIEW_CHANGE: Domain = Domain::new("cairn/pbft/view-change/v1");
/// Domain of new-view signatures.
pub const NEW_VIEW: Domain = Domain::new("cairn/pbft/new-view/v1");

/// `(view, seq, digest)`: the body of pre-prepares and prepares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// View.
    pub view: View,
    /// Sequence number (= block height).
    pub seq: Seq,
    /// Block hash.
    pub digest: BlockHash,
}

/// A checkpoint: "after `seq` my chain ends in `digest`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number, a multiple of the checkpoint interval.
    pub seq: Seq,
    /// Hash of the block at `seq` (it commits to the whole chain).
    pub digest: BlockHash,
}

/// A message body with its author's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// The author.
    pub author: NodeId,
    /// What was signed.
    pub body: T,
    /// Signature over `domain ‖ chain ‖ encode(body)`.
    pub signature: Signature,
}

impl<T: Serialize> Signed<T> {
    /// Whether the author is a validator and the signature verifies in `domain`.
    pub fn verify(&self, domain: Domain, chain_id: &str, validators: &ValidatorSet) -> bool {
        let Some(key) = validators.keys().get(self.author.index()) else {
            return false;
        };
        key.verify(
            domain,
            chain_id,
            &codec::encode(&self.body),
            &self.signature,
        )
        .is_ok()
    }
}

/// A commit vote.
pub type CommitVote = Signed<PbftCommitStatement>;

impl CommitVote {
    /// Verifies a commit vote (domain `cairn/pbft/commit/v1`).
    pub fn verify_commit(&self, chain_id: &str, validators: &ValidatorSet) -> bool {
        self.verify(PBFT_COMMIT, chain_id, validators)
    }
}

/// Proof that a stable checkpoint was reached: 2f+1 matching signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointProof {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The signatures.
    pub votes: Vec<Signed<Checkpoint>>,
}

/// Proof that a block prepared in some view: its pre-prepare and 2f matching prepares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedProof {
    /// The primary's pre-prepare.
    pub pre_prepare: Signed<Vote>,
    /// The block it names, shared with the replica's log (serialized as the block itself).
    pub block: Arc<Block>,
    /// Prepares from other replicas.
    pub prepares: Vec<Signed<Vote>>,
}

/// VIEW-CHANGE (§4.4): the replica's stable checkpoint and what it prepared after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view asked for.
    pub new_view: View,
    /// Last stable checkpoint (`None`: genesis).
    pub checkpoint: Option<CheckpointProof>,
    /// Prepared certificates for sequence numbers above it.
    pub prepared: Vec<PreparedProof>,
}

/// NEW-VIEW (§4.4): 2f+1 view changes and the pre-prepares they imply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The new view.
    pub view: View,
    /// The view changes it is built from.
    pub view_changes: Vec<Signed<ViewChange>>,
    /// Re-proposals, with their blocks, in sequence order.
    pub pre_prepares: Vec<(Signed<Vote>, Block)>,
}

/// Messages between PBFT replicas.
// Built once and moved, never stored in bulk: boxing the block would add an allocation per
// message and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PbftMessage {
    /// PRE-PREPARE with its block.
    PrePrepare {
        /// The primary's signed `(view, seq, digest)`.
        vote: Signed<Vote>,
        /// The block.
        block: Block,
    },
    /// PREPARE.
    Prepare(Signed<Vote>),
    /// COMMIT.
    Commit(CommitVote),
    /// CHECKPOINT.
    Checkpoint(Signed<Checkpoint>),
    /// VIEW-CHANGE.
    ViewChange(Box<Signed<ViewChange>>),
    /// NEW-VIEW.
    NewView(Box<Signed<NewView>>),
}

impl PbftMessage {
    /// The view a message shows its sender working in: that of a pre-prepare, prepare,
    /// commit or new-view. `None` for checkpoints (not tied to a view) and view changes (a
    /// request to leave a view, not proof that the next one began). Unverified: for status
    /// displays only, never for a protocol decision.
    pub fn view(&self) -> Option<View> {
        match self {
            PbftMessage::PrePrepare { vote, .. } | PbftMessage::Prepare(vote) => {
                Some(vote.body.view)
            }
            PbftMessage::Commit(c) => Some(View(c.body.view)),
            PbftMessage::NewView(nv) => Some(nv.body.view),
            PbftMessage::Checkpoint(_) | PbftMessage::ViewChange(_) => None,
        }
    }
}
