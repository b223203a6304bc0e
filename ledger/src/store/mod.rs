//! Block stores: where committed blocks, certificates, the transaction index, the state and
//! the consensus engine's durable state live.
//!
//! Two implementations: [`MemoryStore`] (tests, simulations) and, with the `rocksdb` feature,
//! `RocksStore` (nodes). [`conformance`] is one suite both must pass.

use cairn_crypto::codec::CodecError;

use crate::block::{Block, BlockHash, Height, Tip, TxLocation};
use crate::certificate::CommitCertificate;
use crate::state::{StateView, WriteSet};
use crate::transaction::TxId;

pub mod conformance;
mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use memory::MemoryStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;

/// Version of the on-disk layout. A store written with another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything committing one block changes, written atomically.
#[derive(Debug, Clone)]
pub struct BlockCommit {
    /// The block.
    pub block: Block,
    /// Its hash (computed once by the caller).
    pub hash: BlockHash,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
    /// Ids of its transactions, in order.
    pub tx_ids: Vec<TxId>,
    /// State changes.
    pub writes: WriteSet,
}

/// State entries as `(key, value)` pairs, sorted by key.
pub type StateEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// What a store knows about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMeta {
    /// Layout version.
    pub schema_version: u32,
    /// The chain it belongs to.
    pub genesis_hash: BlockHash,
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store belongs to another chain.
    #[error("store belongs to chain {found}, not {expected}")]
    GenesisMismatch {
        /// The store's genesis hash.
        found: BlockHash,
        /// The one asked for.
        expected: BlockHash,
    },
    /// The store was written by another version of Cairn.
    #[error("store schema version {found} is not supported (this build reads {supported})")]
    UnsupportedSchema {
        /// The store's version.
        found: u32,
        /// This build's.
        supported: u32,
    },
    /// `commit` was given a block that does not extend the tip.
    #[error("block at height {got} does not extend the tip at height {tip}")]
    NotNextHeight {
        /// Current tip height.
        tip: Height,
        /// The block's height.
        got: Height,
    },
    /// `commit` was given a block whose parent is not the tip.
    #[error("block's parent {got} is not the tip {tip}")]
    NotChild {
        /// Tip hash.
        tip: BlockHash,
        /// The block's prev_hash.
        got: BlockHash,
    },
    /// The store has not been initialized with a genesis state.
    #[error("store is not initialized")]
    Uninitialized,
    /// `initialize` on a store that already holds a chain.
    #[error("store is already initialized")]
    AlreadyInitialized,
    /// Stored bytes do not decode, or contradict each other.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// Stored bytes do not decode.
    #[error("stored value does not decode: {0}")]
    Codec(#[from] CodecError),
    /// The storage engine failed.
    #[error("storage engine: {0}")]
    Engine(String),
}

/// Storage for one chain.
///
/// Invariants every implementation keeps (the conformance suite checks them):
/// - `commit` is atomic: after a crash either all of a block's writes are there or none;
/// - heights are contiguous from 1 to the tip, each block's `prev_hash` the previous hash;
/// - `consensus_write` is atomic and durable when it returns.
pub trait BlockStore: StateView {
    /// Layout version and chain, or `None` for an empty store.
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError>;
    /// Writes the genesis state into an empty store.
    fn initialize(
        &mut self,
        genesis_hash: BlockHash,
        writes: &WriteSet,
        tip: Tip,
    ) -> Result<(), StoreError>;
    /// The newest committed block (height 0: genesis).
    fn tip(&self) -> Result<Tip, StoreError>;
    /// Commits one block atomically and durably.
    fn commit(&mut self, commit: &BlockCommit, tip: Tip) -> Result<(), StoreError>;
    /// The block at `height`.
    fn block(&self, height: Height) -> Result<Option<Block>, StoreError>;
    /// The height of the block with this hash.
    fn height_of(&self, hash: &BlockHash) -> Result<Option<Height>, StoreError>;
    /// The certificate of the block at `height`.
    fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StoreError>;
    /// Where a committed transaction is.
    fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError>;
    /// Every state entry, sorted by key (for audits, tests and snapshots).
    fn state_entries(&self) -> Result<StateEntries, StoreError>;
    /// Durable consensus state (term, vote, log, safety data…), by key.
    fn consensus_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores consensus state durably before returning.
    fn consensus_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.consensus_write(&[(key.to_vec(), Some(value.to_vec()))])
    }
    /// Applies puts (`Some`) and deletes (`None`) atomically and durably, in order.
    fn consensus_write(&mut self, ops: &[ConsensusOp]) -> Result<(), StoreError>;
    /// Every consensus entry whose key starts with `prefix`, sorted by key.
    fn consensus_scan(&self, prefix: &[u8]) -> Result<StateEntries, StoreError>;
}

/// One change to the consensus column family: a put (`Some`) or a delete (`None`).
pub type ConsensusOp = (Vec<u8>, Option<Vec<u8>>);

/// Checks that `commit` extends `tip`; shared by the implementations.
pub(crate) fn check_extends(tip: &Tip, commit: &BlockCommit) -> Result<(), StoreError> {
    let h = &commit.block.header;
    if h.height != tip.height + 1 {
        return Err(StoreError::NotNextHeight {
            tip: tip.height,
            got: h.height,
        });
    }
    if h.prev_hash != tip.hash {
        return Err(StoreError::NotChild {
            tip: tip.hash,
            got: h.prev_hash,
        });
    }
    Ok(())
}
