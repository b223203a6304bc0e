//! An in-memory [`BlockStore`], for tests and the simulator.

use std::collections::{BTreeMap, HashMap};

use cairn_crypto::{PublicKey, codec};

use super::{
    BlockCommit, BlockStore, ConsensusOp, SCHEMA_VERSION, StateEntries, StoreError, StoreMeta,
    check_extends,
};
use crate::block::{Block, BlockHash, Height, Tip, TxLocation};
use crate::certificate::CommitCertificate;
use crate::state::{Account, StateKey, StateView, WriteSet};
use crate::transaction::TxId;

/// Keeps everything in maps. Not durable, by design.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    meta: Option<StoreMeta>,
    tip: Option<Tip>,
    blocks: BTreeMap<Height, Block>,
    certs: BTreeMap<Height, CommitCertificate>,
    by_hash: HashMap<BlockHash, Height>,
    tx_index: HashMap<TxId, TxLocation>,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    consensus: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn apply(&mut self, writes: &WriteSet) {
        for (k, v) in writes {
            match v {
                Some(v) => self.state.insert(k.clone(), v.clone()),
                None => self.state.remove(k),
            };
        }
    }
}

impl StateView for MemoryStore {
    fn account(&self, id: &PublicKey) -> Result<Option<Account>, StoreError> {
        match self.state.get(&StateKey::Account(*id).to_bytes()) {
            Some(bytes) => Ok(Some(codec::decode(bytes)?)),
            None => Ok(None),
        }
    }

    fn record(&self, owner: &PublicKey, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .state
            .get(&StateKey::Record(*owner, key.to_string()).to_bytes())
            .cloned())
    }
}

impl BlockStore for MemoryStore {
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        Ok(self.meta)
    }

    fn initialize(
        &mut self,
        genesis_hash: BlockHash,
        writes: &WriteSet,
        tip: Tip,
    ) -> Result<(), StoreError> {
        if self.meta.is_some() {
            return Err(StoreError::AlreadyInitialized);
        }
        self.apply(writes);
        self.meta = Some(StoreMeta {
            schema_version: SCHEMA_VERSION,
            genesis_hash,
        });
        self.tip = Some(tip);
        Ok(())
    }

    fn tip(&self) -> Result<Tip, StoreError> {
        self.tip.ok_or(StoreError::Uninitialized)
    }

    fn commit(&mut self, commit: &BlockCommit, tip: Tip) -> Result<(), StoreError> {
        check_extends(&self.tip()?, commit)?;
        let height = commit.block.header.height;
        for (i, id) in commit.tx_ids.iter().enumerate() {
            self.tx_index.insert(
                *id,
                TxLocation {
                    height,
                    index: i as u32,
                },
            );
        }
        self.apply(&commit.writes);
        self.blocks.insert(height, commit.block.clone());
        self.certs.insert(height, commit.certificate.clone());
        self.by_hash.insert(commit.hash, height);
        self.tip = Some(tip);
        Ok(())
    }

    fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        Ok(self.blocks.get(&height).cloned())
    }

    fn height_of(&self, hash: &BlockHash) -> Result<Option<Height>, StoreError> {
        Ok(self.by_hash.get(hash).copied())
    }

    fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StoreError> {
        Ok(self.certs.get(&height).cloned())
    }

    fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        Ok(self.tx_index.get(id).copied())
    }

    fn state_entries(&self) -> Result<StateEntries, StoreError> {
        Ok(self
            .state
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn consensus_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.consensus.get(key).cloned())
    }

    fn consensus_write(&mut self, ops: &[ConsensusOp]) -> Result<(), StoreError> {
        for (k, v) in ops {
            match v {
                Some(v) => self.consensus.insert(k.clone(), v.clone()),
                None => self.consensus.remove(k),
            };
        }
        Ok(())
    }

    fn consensus_scan(&self, prefix: &[u8]) -> Result<StateEntries, StoreError> {
        Ok(self
            .consensus
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
