//! Blocks: ordered batches of transactions, linked by hash.

use cairn_crypto::{Hash, PublicKey, codec, merkle};
use serde::{Deserialize, Serialize};

use crate::domains;
use crate::genesis::Validator;
use crate::transaction::{SignedTransaction, TxId};

/// Block height. Height 0 is the genesis state (no block); the first block is height 1.
pub type Height = u64;

/// Most transactions in one block.
pub const BLOCK_TXS_MAX: usize = 20_000;
/// Largest encoded block, in bytes.
pub const BLOCK_BYTES_MAX: usize = 32 << 20;

/// A block hash: `SHA-256(tag "cairn/block/v1" ‖ encoded header)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct BlockHash(pub Hash);

impl std::fmt::Display for BlockHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockHash({}…)", &self.0.to_hex()[..12])
    }
}

impl std::str::FromStr for BlockHash {
    type Err = cairn_crypto::ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(BlockHash)
    }
}

/// Everything a block commits to. The block hash covers exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: String,
    /// Height, parent's + 1.
    pub height: Height,
    /// Parent's hash; for height 1, the genesis hash.
    pub prev_hash: BlockHash,
    /// Proposer's clock, milliseconds since the Unix epoch; never below the parent's.
    pub timestamp_ms: u64,
    /// Merkle root (RFC 6962) over the transaction ids, in block order.
    pub tx_root: Hash,
    /// Number of transactions. Committing to it fixes the Merkle tree's size, so an inclusion
    /// proof proves a transaction's position, not only its presence.
    pub tx_count: u32,
    /// State root after applying this block (see `state::next_state_root`).
    pub state_root: Hash,
    /// The validator that proposed the block (Raft leader or PBFT primary).
    pub proposer: PublicKey,
    /// Consensus round: the Raft term or the PBFT view.
    pub round: u64,
    /// The validator set this block is certified by: [`crate::genesis::validators_hash`] of
    /// the list in force at this height (names and keys, in order).
    pub validators_hash: Hash,
    /// On the last block of an epoch after which the set changes, the whole new list, in
    /// force from the next height; otherwise absent. A verifier following the chain from the
    /// genesis learns each new set here, certified by the set before it.
    pub next_validators: Option<Vec<Validator>>,
}

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        BlockHash(Hash::tagged(domains::BLOCK_HASH, &[&codec::encode(self)]))
    }
}

/// A header and the transactions it commits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, in execution order. Every one of them executed successfully.
    pub txs: Vec<SignedTransaction>,
}

impl Block {
    /// The block hash (of the header).
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The transaction ids, in order.
    pub fn tx_ids(&self) -> Vec<TxId> {
        self.txs.iter().map(SignedTransaction::id).collect()
    }

    /// The Merkle root over the given ids.
    pub fn tx_root_of(ids: &[TxId]) -> Hash {
        let leaves: Vec<Hash> = ids.iter().map(|id| id.0).collect();
        merkle::root(&leaves)
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        codec::encoded_len(self)
    }

    /// Decodes a block, refusing more than [`BLOCK_BYTES_MAX`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Block, codec::CodecError> {
        codec::decode_limited(bytes, BLOCK_BYTES_MAX)
    }

    /// Proof that the transaction at `index` is in this block (checked against
    /// `header.tx_root`).
    pub fn inclusion_proof(&self, index: usize) -> Option<merkle::MerkleProof> {
        let leaves: Vec<Hash> = self.txs.iter().map(|t| t.id().0).collect();
        merkle::prove(&leaves, index)
    }
}

impl BlockHeader {
    /// Whether `proof` shows transaction `id` at `proof.index` of this block: the proof's tree
    /// size must be the header's `tx_count` and its path must lead to `tx_root`.
    pub fn proves_inclusion(&self, id: &TxId, proof: &merkle::MerkleProof) -> bool {
        proof.leaf_count == u64::from(self.tx_count) && proof.verify(&id.0, &self.tx_root)
    }
}

/// The newest block of a store, as far as the ledger needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tip {
    /// Height (0: genesis only).
    pub height: Height,
    /// Hash of the block at `height` (the genesis hash at 0).
    pub hash: BlockHash,
    /// State root after it.
    pub state_root: Hash,
    /// Its timestamp (the genesis time at 0).
    pub timestamp_ms: u64,
}

/// Where a committed transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxLocation {
    /// Block height.
    pub height: Height,
    /// Position in the block, from 0.
    pub index: u32,
}

/// What committing a transaction did. Every transaction in a block succeeded (a transaction
/// that would fail is left out of the block), so a receipt says where, and the sender's state
/// after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// The transaction.
    pub tx_id: TxId,
    /// Its block and position.
    pub location: TxLocation,
    /// Sender's balance after it.
    pub sender_balance: u64,
    /// Sender's next nonce after it.
    pub sender_next_nonce: u64,
}
