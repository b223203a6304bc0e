//! Block stores: where committed blocks, certificates, the transaction and account indexes,
//! the state and the consensus engine's durable state live.
//!
//! Two traits: [`ChainRead`] (every read, including the explorer's) and [`BlockStore`] (reads
//! plus the writes: genesis, block commits, consensus state). Two implementations:
//! [`MemoryStore`] (tests, simulations) and, with the `rocksdb` feature, `RocksStore` (nodes),
//! whose `RocksReader` serves committed reads from other threads while the node writes.
//! [`conformance`] is one suite both must pass.

use cairn_crypto::PublicKey;
use cairn_crypto::codec::CodecError;

use crate::block::{Block, BlockHash, BlockHeader, Height, Tip, TxLocation};
use crate::certificate::CommitCertificate;
use crate::state::{StateKey, StateView, WriteSet};
use crate::transaction::{Payload, SignedTransaction, Transaction, TxId};

pub mod conformance;
mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use memory::MemoryStore;
#[cfg(feature = "rocksdb")]
pub use rocks::{RocksReader, RocksStore, StoreMemory};

/// Version of the on-disk layout. A store written with another version is refused.
///
/// 2: block headers and transaction ids by height, an account → transactions index, and
/// the consensus column family in the engines' keyed layouts (`cairn_consensus`).
/// 3: the state root is a sparse Merkle tree's (`state_tree`), so version 2 chains' roots
/// are not this version's; the layout is unchanged.
/// 4: each transaction stored once, by height and index (`txs`), and a block is its header
/// and that run; the account index holds keys only.
pub const SCHEMA_VERSION: u32 = 4;

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
    #[error(
        "store schema version {found} is not supported (this build reads {supported}); a store \
         of another version cannot be converted: move it aside and let the node re-sync"
    )]
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
    /// The store opened lower than what this process had written before: its write-ahead log
    /// lost acknowledged writes (a damaged or truncated file), which the storage engine's
    /// recovery dropped without an error.
    #[error(
        "the store in {path} holds writes up to sequence number {found}, but this node had \
         written up to {expected} (tip height {expected_height}) before it stopped: its \
         write-ahead log ({wal}) was damaged or truncated, and blocks or consensus state this \
         node had acknowledged are missing"
    )]
    RolledBack {
        /// The store's directory.
        path: String,
        /// The last sequence number written before the stop, from the write mark.
        expected: u64,
        /// The tip height at that write.
        expected_height: Height,
        /// The sequence number the store recovered to.
        found: u64,
        /// The write-ahead log files in the directory.
        wal: String,
    },
}

/// One committed transaction that involves an account (as sender, receiver or member
/// changed), from the account index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTx {
    /// Block height.
    pub height: Height,
    /// Position in the block.
    pub index: u32,
    /// The transaction.
    pub tx: SignedTransaction,
}

/// One record of an account's key/value namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// The record's key.
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
}

/// Committed reads: blocks, certificates, indexes, state, consensus state.
///
/// Reads of committed data never see a half-written block: a block, its indexes, its state
/// changes and the tip move together.
pub trait ChainRead: StateView {
    /// Layout version and chain, or `None` for an empty store.
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError>;
    /// The newest committed block (height 0: genesis).
    fn tip(&self) -> Result<Tip, StoreError>;
    /// The block at `height`.
    fn block(&self, height: Height) -> Result<Option<Block>, StoreError>;
    /// The header of the block at `height`, without decoding its transactions.
    fn header(&self, height: Height) -> Result<Option<BlockHeader>, StoreError>;
    /// The ids of the transactions of the block at `height`, in block order.
    fn block_tx_ids(&self, height: Height) -> Result<Option<Vec<TxId>>, StoreError>;
    /// Committed transactions involving `account` in blocks below `below`, newest first: at
    /// least `limit` (if there are that many) and then the rest of the last block reached, so
    /// that a page always ends on a block boundary.
    fn account_txs(
        &self,
        account: &PublicKey,
        below: Height,
        limit: usize,
    ) -> Result<Vec<AccountTx>, StoreError>;
    /// Up to `limit` records of `owner` with keys after `after` (all if `None`), in key order.
    fn records(
        &self,
        owner: &PublicKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RecordEntry>, StoreError>;
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
    /// Every consensus entry whose key starts with `prefix`, sorted by key.
    fn consensus_scan(&self, prefix: &[u8]) -> Result<StateEntries, StoreError>;
}

/// Storage for one chain: [`ChainRead`] and the writes.
///
/// Invariants every implementation keeps (the conformance suite checks them):
/// - `commit` is atomic: after a crash either all of a block's writes are there or none;
/// - heights are contiguous from 1 to the tip, each block's `prev_hash` the previous hash;
/// - `consensus_write` is atomic and durable when it returns.
pub trait BlockStore: ChainRead {
    /// Writes the genesis state into an empty store.
    fn initialize(
        &mut self,
        genesis_hash: BlockHash,
        writes: &WriteSet,
        tip: Tip,
    ) -> Result<(), StoreError>;
    /// Commits one block atomically and durably.
    fn commit(&mut self, commit: &BlockCommit, tip: Tip) -> Result<(), StoreError>;
    /// Stores consensus state durably before returning.
    fn consensus_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.consensus_write(&[ConsensusWrite::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }])
    }
    /// Applies the writes atomically and durably, in order.
    fn consensus_write(&mut self, ops: &[ConsensusWrite]) -> Result<(), StoreError>;
}

/// One change to the consensus column family. Engines describe their durable state as these
/// (`cairn_consensus::DurableState`), so a store needs no copy of it to know what to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsensusWrite {
    /// Sets `key` to `value`.
    Put {
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// Key.
        key: Vec<u8>,
    },
    /// Removes every key in `from..to` (`to` excluded).
    DeleteRange {
        /// First key removed.
        from: Vec<u8>,
        /// First key kept after the range.
        to: Vec<u8>,
    },
}

/// The accounts a transaction involves, for the account index: its sender, and the receiver
/// or the member it changes. Sorted, without repeats.
pub fn involved_accounts(tx: &Transaction) -> Vec<PublicKey> {
    let mut v = vec![tx.sender];
    match &tx.payload {
        Payload::Transfer { to, .. } => v.push(*to),
        Payload::AddMember { account, .. } | Payload::RemoveMember { account } => v.push(*account),
        Payload::PutRecord { .. } | Payload::ChangeValidators { .. } => {}
    }
    v.sort();
    v.dedup();
    v
}

/// Where `owner`'s records start in the state's key order, and the first key to read after
/// `after` (its key followed by the smallest byte); shared by the implementations.
pub(crate) fn record_keys(owner: &PublicKey, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let prefix = StateKey::Record(*owner, String::new()).to_bytes();
    let start = match after {
        Some(k) => {
            let mut s = StateKey::Record(*owner, k.to_string()).to_bytes();
            s.push(0);
            s
        }
        None => prefix.clone(),
    };
    (prefix, start)
}

/// A record from its state key (which starts with `prefix`) and value.
pub(crate) fn record_entry(
    prefix: &[u8],
    key: &[u8],
    value: &[u8],
) -> Result<RecordEntry, StoreError> {
    let name = String::from_utf8(key[prefix.len()..].to_vec())
        .map_err(|_| StoreError::Corrupt("record key is not UTF-8".into()))?;
    Ok(RecordEntry {
        key: name,
        value: value.to_vec(),
    })
}

/// Whether an account page that holds `page` is full before an entry at `height`: it has
/// `limit` entries and `height` starts another block (pages end on block boundaries).
pub(crate) fn page_full(page: &[AccountTx], limit: usize, height: Height) -> bool {
    page.len() >= limit && page.last().is_some_and(|t| t.height != height)
}

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
