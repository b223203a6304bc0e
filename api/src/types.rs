//! What the API returns (JSON).

use cairn_crypto::{Hash, PublicKey, merkle::MerkleProof};
use cairn_ledger::{
    Block, BlockHash, BlockHeader, CommitCertificate, ConsensusKind, Height, Role,
    SignedTransaction, StateProof, TxId, TxRejection,
};
use serde::{Deserialize, Serialize};

/// `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusView {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: BlockHash,
    /// This node's name.
    pub moniker: String,
    /// The software: its version and the commit it was built from, e.g. `0.1.0 (3f2a9c1b7d4e)`.
    pub version: String,
    /// This node's key.
    pub public_key: PublicKey,
    /// Engine.
    pub consensus: ConsensusKind,
    /// Committed height.
    pub height: Height,
    /// Hash of the block at `height` (the genesis hash at 0).
    pub head_hash: BlockHash,
    /// State root after it.
    pub state_root: Hash,
    /// Its timestamp.
    pub head_time_ms: u64,
    /// The node's role.
    pub role: NodeRole,
    /// Raft term or PBFT view.
    pub round: u64,
    /// The leader or primary, if known.
    pub leader: Option<PublicKey>,
    /// Connected peers.
    pub peers: usize,
    /// Validators heard from in the last few seconds (a pong or a message), this node
    /// included if it is one: what readiness counts, not open connections.
    pub heard: usize,
    /// Validators in the genesis.
    pub validators: usize,
    /// Pending transactions.
    pub mempool_txs: usize,
    /// Their encoded size.
    pub mempool_bytes: usize,
    /// Whether the node is catching up by block sync.
    pub syncing: bool,
    /// The highest height heard of from peers.
    pub known_height: Height,
    /// Synced, a quorum of validators heard from recently, and not stalled.
    pub ready: bool,
    /// Why not ready, one sentence per failing condition (empty when ready).
    pub not_ready: Vec<String>,
}

/// What a node does in consensus, as its status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Raft leader or PBFT primary, working (it hears a quorum, nobody is ahead of it).
    Leader,
    /// Raft follower or PBFT backup.
    Follower,
    /// Raft candidate.
    Candidate,
    /// Raft pre-candidate (PreVote).
    PreCandidate,
    /// Not a validator: follows the chain, takes no part in consensus.
    Observer,
}

impl std::fmt::Display for NodeRole {
    /// The role as the API writes it (`leader`, `pre_candidate`, …).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeRole::Leader => "leader",
            NodeRole::Follower => "follower",
            NodeRole::Candidate => "candidate",
            NodeRole::PreCandidate => "pre_candidate",
            NodeRole::Observer => "observer",
        })
    }
}

/// Where a transaction stands on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// In the node's mempool.
    Pending,
    /// In a block.
    Committed,
    /// Dropped, with a reason (kept for a while).
    Rejected,
}

/// The body of `POST /api/v1/txs`: a signed transaction in its JSON form, or its canonical
/// bytes (PROTOCOL.md §4) as hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Submission {
    /// `{"encoded": "<hex>"}`.
    Encoded {
        /// The encoded signed transaction, hex.
        #[cfg_attr(feature = "openapi", schema(pattern = "^([0-9a-fA-F]{2})+$"))]
        encoded: String,
    },
    /// The JSON form.
    Json(SignedTransaction),
}

/// Most transactions in one `POST /api/v1/txs/batch`.
pub const BATCH_TXS_MAX: usize = 1024;

/// The JSON body of `POST /api/v1/txs/batch`: up to [`BATCH_TXS_MAX`] submissions, each in
/// either form `POST /api/v1/txs` takes. (The same batch may instead be sent as
/// `application/octet-stream`: the canonical encoding of a sequence of signed transactions,
/// PROTOCOL.md §4.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchSubmission {
    /// The transactions, answered in this order.
    pub txs: Vec<Submission>,
}

/// One transaction's answer in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchItem {
    /// Transaction id (absent when the entry did not decode).
    pub id: Option<TxId>,
    /// Where it stands: `pending` once admitted; with `?wait=commit`, `committed` or
    /// `rejected` once final (still `pending`, with the error `wait_timeout`, if it was not
    /// final in time). Absent when the node refused it.
    pub status: Option<TxStatus>,
    /// Where it committed (with `?wait=commit`).
    pub receipt: Option<ReceiptView>,
    /// Why it was refused or rejected, as `POST /api/v1/txs` would have said.
    pub error: Option<crate::ErrorDetail>,
}

/// The answer to `POST /api/v1/txs/batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchAnswer {
    /// Entries the node admitted (`status` present).
    pub admitted: usize,
    /// Entries it refused (`error` present, `status` absent).
    pub refused: usize,
    /// One per submitted entry, in order.
    pub results: Vec<BatchItem>,
}

/// A block without its transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockSummary {
    /// Height.
    pub height: Height,
    /// Hash.
    pub hash: BlockHash,
    /// Parent's hash.
    pub prev_hash: BlockHash,
    /// Proposer's clock.
    pub timestamp_ms: u64,
    /// Transactions in it.
    pub tx_count: u32,
    /// Proposer.
    pub proposer: PublicKey,
    /// Term or view.
    pub round: u64,
    /// State root after it.
    pub state_root: Hash,
}

impl BlockSummary {
    /// Of a block.
    pub fn of(b: &Block) -> BlockSummary {
        BlockSummary::of_header(&b.header)
    }

    /// Of a block's header (all a summary needs).
    pub fn of_header(h: &BlockHeader) -> BlockSummary {
        BlockSummary {
            height: h.height,
            hash: h.hash(),
            prev_hash: h.prev_hash,
            timestamp_ms: h.timestamp_ms,
            tx_count: h.tx_count,
            proposer: h.proposer,
            round: h.round,
            state_root: h.state_root,
        }
    }
}

/// `GET /api/v1/blocks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockPage {
    /// Newest first.
    pub blocks: Vec<BlockSummary>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<Height>,
}

/// `GET /api/v1/blocks/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockView {
    /// Height.
    pub height: Height,
    /// Hash.
    pub hash: BlockHash,
    /// The block, transactions included.
    pub block: Block,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
}

/// Where a committed transaction is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceiptView {
    /// Block height.
    pub height: Height,
    /// Position in the block.
    pub index: u32,
    /// Block hash.
    pub block_hash: BlockHash,
    /// Block timestamp.
    pub block_time_ms: u64,
}

/// A rejection, as in errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonView {
    /// Stable code.
    pub code: String,
    /// Sentence.
    pub message: String,
}

impl ReasonView {
    /// Of a rejection.
    pub fn of(r: &TxRejection) -> ReasonView {
        ReasonView {
            code: r.code().into(),
            message: r.to_string(),
        }
    }
}

/// `GET /api/v1/txs/{id}` and the answer to `POST /api/v1/txs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxView {
    /// Transaction id.
    pub id: TxId,
    /// Where it stands.
    pub status: TxStatus,
    /// The transaction (absent for rejected ones this node no longer holds).
    pub tx: Option<SignedTransaction>,
    /// Where it committed.
    pub receipt: Option<ReceiptView>,
    /// Merkle proof of inclusion against the block header's `tx_root`.
    pub proof: Option<MerkleProof>,
    /// Why it was rejected.
    pub reason: Option<ReasonView>,
}

/// `GET /api/v1/accounts/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountView {
    /// The account's key.
    pub id: PublicKey,
    /// Whether the ledger has it (a missing account reads as balance 0, nonce 0).
    pub exists: bool,
    /// Balance.
    pub balance: u64,
    /// Next nonce to use.
    pub nonce: u64,
    /// Membership role.
    pub role: Option<Role>,
    /// Committed height this was read at.
    pub height: Height,
    /// With `?prove=true`: the proof of this account (or of its absence) at `height`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<StateProofView>,
}

/// Proof that a state entry holds a value, or none, in the state a certified block commits
/// to (`?prove=true`; PROTOCOL.md §7). Check the certificate against the validator set in
/// force at `height`, then the proof against the header's `state_root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateProofView {
    /// The height whose state is proved. At 0 (no block yet) the root is the genesis state's,
    /// which a verifier computes from the genesis.
    pub height: Height,
    /// The block at `height`: its `state_root` is the root the proof leads to. Absent at 0.
    pub header: Option<BlockHeader>,
    /// That block's commit certificate. Absent at 0.
    pub certificate: Option<CommitCertificate>,
    /// The state key proved (hex, PROTOCOL.md §7).
    pub key: String,
    /// Its value (hex): the account's encoding, or the record's bytes. Absent when the key
    /// holds nothing.
    pub value: Option<String>,
    /// The sibling hashes and the leaf the key's path ends at.
    pub proof: StateProof,
}

/// One transaction of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountTx {
    /// Id.
    pub id: TxId,
    /// Block height.
    pub height: Height,
    /// Position in the block.
    pub index: u32,
    /// The transaction.
    pub tx: SignedTransaction,
}

/// `GET /api/v1/accounts/{id}/txs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountTxPage {
    /// Newest first.
    pub txs: Vec<AccountTx>,
    /// Pass as `before` for the next page (a height); absent when the scan reached genesis.
    pub next: Option<Height>,
}

/// `GET /api/v1/accounts/{id}/records/{key}`, and one entry of a record page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordView {
    /// The owning account.
    pub owner: PublicKey,
    /// The record's key.
    pub key: String,
    /// The value, hex.
    pub value: String,
    /// The value as text, when it is UTF-8.
    pub text: Option<String>,
    /// With `?prove=true`: the proof of this record at a certified height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<StateProofView>,
    /// With `?prove=true` only: the account has no such record (`value` is empty), and
    /// `proof` shows it. Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

impl RecordView {
    /// Of a stored record.
    pub fn of(owner: PublicKey, key: String, value: &[u8]) -> RecordView {
        RecordView {
            owner,
            key,
            value: hex::encode(value),
            text: std::str::from_utf8(value).ok().map(str::to_string),
            proof: None,
            absent: false,
        }
    }
}

/// `GET /api/v1/accounts/{id}/records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordPage {
    /// In key order.
    pub records: Vec<RecordView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// `GET /api/v1/validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorView {
    /// Position in the genesis list.
    pub index: usize,
    /// Name.
    pub name: String,
    /// Key.
    pub public_key: PublicKey,
    /// The remote address of this node's connection to it; `null` when not connected, and
    /// for this node itself. (The genesis holds no addresses: nodes find each other through
    /// their configured bootstrap peers.)
    pub address: Option<String>,
    /// Whether this node is connected to it (or is it).
    pub connected: bool,
    /// Whether it is the current leader or primary, as this node sees it.
    pub leader: bool,
}

/// `GET /api/v1/validators/changes`: where the set in force began, the approved change
/// waiting for its boundary, and the votes that count now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorChangesView {
    /// Who may change the set (the genesis policy).
    pub policy: cairn_ledger::ChangePolicy,
    /// Blocks per epoch: changes take effect after a multiple of this.
    pub epoch_length: u64,
    /// The set in force is in force for heights above this (0: the genesis set).
    pub in_force_since: Height,
    /// The approved change waiting for its boundary, with its id.
    pub pending: Option<PendingView>,
    /// Under `validators`: each validator's vote that counts now.
    pub votes: Vec<VoteView>,
}

/// An approved change waiting for its boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingView {
    /// The change's id (`cairn validator vote` takes it).
    pub id: Hash,
    /// The change, the set it makes, the height that approved it and its boundary.
    #[serde(flatten)]
    pub change: cairn_ledger::PendingChange,
}

/// A validator's vote for a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoteView {
    /// The validator that cast it.
    pub voter: PublicKey,
    /// The change's id.
    pub id: Hash,
    /// The change.
    pub change: cairn_ledger::ValidatorChange,
    /// The height it was cast at.
    pub height: Height,
}

/// `GET /api/v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeerView {
    /// Key.
    pub public_key: PublicKey,
    /// Validator name, or `null` for an observer.
    pub validator: Option<String>,
    /// Remote address.
    pub address: String,
}

/// An event of `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChainEvent {
    /// A committed block, with its transaction ids.
    Block {
        /// The block.
        #[serde(flatten)]
        block: BlockSummary,
        /// Its transactions.
        txs: Vec<TxId>,
    },
    /// A transaction this node saw rejected (live only).
    TxRejected {
        /// Id.
        id: TxId,
        /// Why.
        reason: ReasonView,
    },
}

impl ChainEvent {
    /// The height of a block event.
    pub fn height(&self) -> Option<Height> {
        match self {
            ChainEvent::Block { block, .. } => Some(block.height),
            ChainEvent::TxRejected { .. } => None,
        }
    }
}

/// `GET /ready` when ready (503 with an error otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadyView {
    /// Always true here.
    pub ready: bool,
    /// Committed height.
    pub height: Height,
    /// Connected peers.
    pub peers: usize,
    /// Validators heard from recently, this node included.
    pub heard: usize,
}

/// `GET /health` when healthy (503 with an error otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthView {
    /// Always `ok` here.
    pub status: String,
}

/// `GET /api/v1/snapshots`: the state snapshots this node serves, for joining nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotList {
    /// Their heights, newest first.
    pub heights: Vec<Height>,
}
