//! The RocksDB [`BlockStore`] (DESIGN §7).
//!
//! Column families: `blocks` (height BE → block), `certs` (height BE → certificate),
//! `block_by_hash` (hash → height BE), `tx_index` (tx id → location), `state` (state key →
//! value), `consensus` (engine key → bytes), `meta` (schema version, genesis hash, tip).
//! Heights are big-endian so that key order is height order.
//!
//! Committing a block is one `WriteBatch` written with `sync = true`: after `commit` returns,
//! the block survives a crash of the process or the machine, and a crash at any instant leaves
//! either the whole block or none of it.

use std::path::Path;

use cairn_crypto::{PublicKey, codec};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions,
};

use super::{
    BlockCommit, BlockStore, ConsensusOp, SCHEMA_VERSION, StateEntries, StoreError, StoreMeta,
    check_extends,
};
use crate::block::{Block, BlockHash, Height, Tip, TxLocation};
use crate::certificate::CommitCertificate;
use crate::state::{Account, StateKey, StateView, WriteSet};
use crate::transaction::TxId;

const CF_BLOCKS: &str = "blocks";
const CF_CERTS: &str = "certs";
const CF_BLOCK_BY_HASH: &str = "block_by_hash";
const CF_TX_INDEX: &str = "tx_index";
const CF_STATE: &str = "state";
const CF_CONSENSUS: &str = "consensus";
const CF_META: &str = "meta";
const COLUMN_FAMILIES: [&str; 7] = [
    CF_BLOCKS,
    CF_CERTS,
    CF_BLOCK_BY_HASH,
    CF_TX_INDEX,
    CF_STATE,
    CF_CONSENSUS,
    CF_META,
];

const META_SCHEMA: &[u8] = b"schema_version";
const META_GENESIS: &[u8] = b"genesis_hash";
const META_TIP: &[u8] = b"tip";

/// A RocksDB-backed store for one chain.
pub struct RocksStore {
    db: DB,
    /// Cached copy of `meta/tip`, updated in the same step as each commit.
    tip: Option<Tip>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .field("tip", &self.tip)
            .finish()
    }
}

fn engine(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.into_string())
}

fn height_key(h: Height) -> [u8; 8] {
    h.to_be_bytes()
}

impl RocksStore {
    /// Opens (creating if needed) the store at `path` for the chain `genesis_hash`. Refuses a
    /// store of another chain or another schema version.
    pub fn open(path: &Path, genesis_hash: &BlockHash) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Two cores on the target machines: one for the node, one for flushes/compactions.
        opts.increase_parallelism(2);
        let cfs = COLUMN_FAMILIES.map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(engine)?;
        let mut store = RocksStore { db, tip: None };
        match store.meta()? {
            None => {
                // A store without meta must be empty: meta is written with the genesis state.
                if store
                    .db
                    .iterator_cf(store.cf(CF_BLOCKS)?, IteratorMode::Start)
                    .next()
                    .is_some()
                {
                    return Err(StoreError::Corrupt("blocks present but no meta".into()));
                }
            }
            Some(meta) => {
                if meta.schema_version != SCHEMA_VERSION {
                    return Err(StoreError::UnsupportedSchema {
                        found: meta.schema_version,
                        supported: SCHEMA_VERSION,
                    });
                }
                if meta.genesis_hash != *genesis_hash {
                    return Err(StoreError::GenesisMismatch {
                        found: meta.genesis_hash,
                        expected: *genesis_hash,
                    });
                }
                store.tip = Some(store.read_tip()?);
            }
        }
        Ok(store)
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt(format!("missing column family {name}")))
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(engine)
    }

    fn read_tip(&self) -> Result<Tip, StoreError> {
        let bytes = self
            .get(CF_META, META_TIP)?
            .ok_or_else(|| StoreError::Corrupt("meta without tip".into()))?;
        Ok(codec::decode(&bytes)?)
    }

    fn synced() -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        w
    }

    fn put_writes(&self, batch: &mut WriteBatch, writes: &WriteSet) -> Result<(), StoreError> {
        let cf = self.cf(CF_STATE)?;
        for (k, v) in writes {
            match v {
                Some(v) => batch.put_cf(cf, k, v),
                None => batch.delete_cf(cf, k),
            }
        }
        Ok(())
    }

    /// For tests of the refusal paths: overwrites the schema version.
    #[doc(hidden)]
    pub fn force_schema_version_for_tests(&mut self, version: u32) -> Result<(), StoreError> {
        self.db
            .put_cf_opt(
                self.cf(CF_META)?,
                META_SCHEMA,
                version.to_le_bytes(),
                &Self::synced(),
            )
            .map_err(engine)
    }
}

impl StateView for RocksStore {
    fn account(&self, id: &PublicKey) -> Result<Option<Account>, StoreError> {
        let cf = self.cf(CF_STATE)?;
        match self
            .db
            .get_pinned_cf(cf, StateKey::Account(*id).to_bytes())
            .map_err(engine)?
        {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn record(&self, owner: &PublicKey, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(
            CF_STATE,
            &StateKey::Record(*owner, key.to_string()).to_bytes(),
        )
    }
}

impl BlockStore for RocksStore {
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        let Some(version) = self.get(CF_META, META_SCHEMA)? else {
            return Ok(None);
        };
        let version: [u8; 4] = version
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("schema version is not 4 bytes".into()))?;
        let genesis = self
            .get(CF_META, META_GENESIS)?
            .ok_or_else(|| StoreError::Corrupt("meta without genesis hash".into()))?;
        Ok(Some(StoreMeta {
            schema_version: u32::from_le_bytes(version),
            genesis_hash: codec::decode(&genesis)?,
        }))
    }

    fn initialize(
        &mut self,
        genesis_hash: BlockHash,
        writes: &WriteSet,
        tip: Tip,
    ) -> Result<(), StoreError> {
        if self.meta()?.is_some() {
            return Err(StoreError::AlreadyInitialized);
        }
        let mut batch = WriteBatch::default();
        self.put_writes(&mut batch, writes)?;
        let meta = self.cf(CF_META)?;
        batch.put_cf(meta, META_SCHEMA, SCHEMA_VERSION.to_le_bytes());
        batch.put_cf(meta, META_GENESIS, codec::encode(&genesis_hash));
        batch.put_cf(meta, META_TIP, codec::encode(&tip));
        self.db.write_opt(batch, &Self::synced()).map_err(engine)?;
        self.tip = Some(tip);
        Ok(())
    }

    fn tip(&self) -> Result<Tip, StoreError> {
        self.tip.ok_or(StoreError::Uninitialized)
    }

    fn commit(&mut self, commit: &BlockCommit, tip: Tip) -> Result<(), StoreError> {
        check_extends(&self.tip()?, commit)?;
        let height = commit.block.header.height;
        let hk = height_key(height);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_BLOCKS)?, hk, codec::encode(&commit.block));
        batch.put_cf(self.cf(CF_CERTS)?, hk, codec::encode(&commit.certificate));
        batch.put_cf(self.cf(CF_BLOCK_BY_HASH)?, commit.hash.0.0, hk);
        let txi = self.cf(CF_TX_INDEX)?;
        for (i, id) in commit.tx_ids.iter().enumerate() {
            let loc = TxLocation {
                height,
                index: i as u32,
            };
            batch.put_cf(txi, id.0.0, codec::encode(&loc));
        }
        self.put_writes(&mut batch, &commit.writes)?;
        batch.put_cf(self.cf(CF_META)?, META_TIP, codec::encode(&tip));
        self.db.write_opt(batch, &Self::synced()).map_err(engine)?;
        self.tip = Some(tip);
        Ok(())
    }

    fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        let Some(bytes) = self.get(CF_BLOCKS, &height_key(height))? else {
            return Ok(None);
        };
        let block = Block::decode(&bytes)?;
        // Assert at both ends: what we read back must be what was written under this key.
        if block.header.height != height {
            return Err(StoreError::Corrupt(format!(
                "block stored under height {height} says height {}",
                block.header.height
            )));
        }
        Ok(Some(block))
    }

    fn height_of(&self, hash: &BlockHash) -> Result<Option<Height>, StoreError> {
        let Some(bytes) = self.get(CF_BLOCK_BY_HASH, &hash.0.0)? else {
            return Ok(None);
        };
        let be: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("block_by_hash value is not 8 bytes".into()))?;
        Ok(Some(u64::from_be_bytes(be)))
    }

    fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StoreError> {
        match self.get(CF_CERTS, &height_key(height))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        match self.get(CF_TX_INDEX, &id.0.0)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn state_entries(&self) -> Result<StateEntries, StoreError> {
        self.db
            .iterator_cf(self.cf(CF_STATE)?, IteratorMode::Start)
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(engine))
            .collect()
    }

    fn consensus_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_CONSENSUS, key)
    }

    fn consensus_write(&mut self, ops: &[ConsensusOp]) -> Result<(), StoreError> {
        let cf = self.cf(CF_CONSENSUS)?;
        let mut batch = WriteBatch::default();
        for (k, v) in ops {
            match v {
                Some(v) => batch.put_cf(cf, k, v),
                None => batch.delete_cf(cf, k),
            }
        }
        self.db.write_opt(batch, &Self::synced()).map_err(engine)
    }

    fn consensus_scan(&self, prefix: &[u8]) -> Result<StateEntries, StoreError> {
        let mode = IteratorMode::From(prefix, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for kv in self.db.iterator_cf(self.cf(CF_CONSENSUS)?, mode) {
            let (k, v) = kv.map_err(engine)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}
