//! Copies of a store: a consistent checkpoint of a running store (online backups), and a
//! secondary open that reads a store another process may be writing (exports).

use std::path::Path;
use std::sync::Arc;

use cairn_crypto::codec;
use rocksdb::checkpoint::Checkpoint;
use rocksdb::{DB, Options, WriteBatch};

use super::{
    CF_META, CF_STATE, META_GENESIS, META_SCHEMA, META_TIP, RocksReader, RocksStore, engine,
};
use crate::block::{Block, BlockHash, Height, Tip};
use crate::certificate::CommitCertificate;
use crate::store::{ChainRead, SCHEMA_VERSION, StateEntries, StoreError};

impl RocksReader {
    /// Writes a consistent copy of the whole store to `dir`, which must not exist yet (a
    /// RocksDB checkpoint: hard links to the immutable table files where `dir` is on the same
    /// filesystem, copies elsewhere). Every block commit is one atomic batch, so the copy ends
    /// at a block boundary: a tip and the state, indexes and consensus state written with it.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        if dir.exists() {
            return Err(StoreError::Engine(format!(
                "{} already exists: a backup goes to a new directory",
                dir.display()
            )));
        }
        Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(engine)
    }

    /// Opens the store at `path` to read it while another process (a running node) may be
    /// writing it: a RocksDB secondary instance, which keeps its own logs in `scratch` and sees
    /// the store as it was when opened.
    pub fn open_secondary(path: &Path, scratch: &Path) -> Result<RocksReader, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Engine(format!(
                "{} holds no store",
                path.display()
            )));
        }
        let mut opts = Options::default();
        // A secondary instance must keep every table file open (RocksDB's rule for them).
        opts.set_max_open_files(-1);
        // The column families on disk: another schema's may not be this one's.
        let existing = DB::list_cf(&opts, path).map_err(engine)?;
        let db = DB::open_cf_as_secondary(&opts, path, scratch, existing).map_err(engine)?;
        db.try_catch_up_with_primary().map_err(engine)?;
        let reader = RocksReader { db: Arc::new(db) };
        reader.check_schema()?;
        Ok(reader)
    }
}

/// The lowest block a store filled from a snapshot holds (absent: 1).
const META_BASE: &[u8] = b"base";

impl RocksReader {
    /// The lowest block this store holds: 1, or the height of the snapshot it was filled
    /// from (the blocks below are absent).
    pub fn base_height(&self) -> Result<Height, StoreError> {
        match self.get(CF_META, META_BASE)? {
            Some(b) => Ok(codec::decode(&b)?),
            None => Ok(1),
        }
    }
}

impl RocksStore {
    /// Writes state entries into a store being filled from a snapshot (one synced batch). The
    /// store must be new: no genesis, no tip.
    pub fn install_state(&mut self, entries: &StateEntries) -> Result<(), StoreError> {
        if self.meta()?.is_some() {
            return Err(StoreError::AlreadyInitialized);
        }
        let cf = self.reader.cf(CF_STATE)?;
        let mut batch = WriteBatch::default();
        for (k, v) in entries {
            batch.put_cf(cf, k, v);
        }
        self.write_synced(batch)
    }

    /// Finishes a store filled from a snapshot: `block` (at the snapshot's height, with its
    /// certificate) becomes the tip, and the blocks below it are absent
    /// ([`RocksReader::base_height`]). The state written with [`RocksStore::install_state`]
    /// must be the one its header commits to; opening a ledger on the store checks that.
    pub fn install_tip(
        &mut self,
        genesis_hash: BlockHash,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Result<Tip, StoreError> {
        if self.meta()?.is_some() {
            return Err(StoreError::AlreadyInitialized);
        }
        let h = &block.header;
        let tip = Tip {
            height: h.height,
            hash: block.hash(),
            state_root: h.state_root,
            timestamp_ms: h.timestamp_ms,
        };
        let mut batch = WriteBatch::default();
        self.put_block(&mut batch, block, tip.hash, certificate, &block.tx_ids())?;
        let meta = self.reader.cf(CF_META)?;
        batch.put_cf(meta, META_SCHEMA, SCHEMA_VERSION.to_le_bytes());
        batch.put_cf(meta, META_GENESIS, codec::encode(&genesis_hash));
        batch.put_cf(meta, META_TIP, codec::encode(&tip));
        batch.put_cf(meta, META_BASE, codec::encode(&tip.height));
        self.tip = Some(tip);
        if let Err(e) = self.write_synced(batch) {
            self.tip = None;
            return Err(e);
        }
        Ok(tip)
    }
}
