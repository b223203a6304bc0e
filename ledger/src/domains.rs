//! Domain tags of everything the ledger hashes or signs (one tag per kind; see PROTOCOL.md).

use cairn_crypto::Domain;

/// Signature of a transaction by its sender.
pub const TX_SIGN: Domain = Domain::new("cairn/tx/sign/v1");
/// Transaction id.
pub const TX_ID: Domain = Domain::new("cairn/tx/id/v1");
/// Block hash (over the encoded header).
pub const BLOCK_HASH: Domain = Domain::new("cairn/block/v1");
/// Genesis hash (over the encoded genesis document).
pub const GENESIS_HASH: Domain = Domain::new("cairn/genesis/v4");
/// A validator list, as block headers commit to it.
pub const VALIDATORS: Domain = Domain::new("cairn/validators/v1");
/// A validator-set change, as listings name it.
pub const VALIDATOR_CHANGE: Domain = Domain::new("cairn/validator-change/v1");
/// A leaf of the state tree.
pub const STATE_LEAF: Domain = Domain::new("cairn/state/leaf/v2");
/// A node of the state tree.
pub const STATE_NODE: Domain = Domain::new("cairn/state/node/v2");
/// Full-state digest (audits and tests).
pub const STATE_DIGEST: Domain = Domain::new("cairn/state-digest/v1");
/// Raft leader's commit signature.
pub const RAFT_COMMIT: Domain = Domain::new("cairn/raft/commit/v1");
/// PBFT replica's commit vote.
pub const PBFT_COMMIT: Domain = Domain::new("cairn/pbft/commit/v1");
