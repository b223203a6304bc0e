//! The RocksDB [`BlockStore`] (DESIGN §7).
//!
//! Column families: `headers` (height BE → header), `txs` (height BE ‖ index BE → the signed
//! transaction; a block is its header and its run of `txs`), `tx_ids` (height BE → the block's
//! transaction ids, concatenated), `certs` (height BE → certificate), `block_by_hash` (hash →
//! height BE), `tx_index` (tx id → location), `account_txs` (account ‖ height BE ‖ index BE →
//! nothing: the key is the entry, the transaction is read from `txs`), `state` (state key →
//! value), `consensus` (engine key → bytes), `meta` (schema version, genesis hash, tip).
//! Big-endian numbers make key order height order.
//!
//! Each transaction is stored once, under a key that only grows (`txs`): its table files never
//! overlap, so compaction moves them down without rewriting them. The column families keyed
//! at random (`tx_index`, `account_txs`, `block_by_hash`, `state`) are rewritten by every
//! compaction that reaches them, so they hold small fixed-size entries only: a 3M-transaction soak wrote 2.9 GB
//! of `account_txs` table files when its values were whole transactions.
//!
//! Committing a block is one `WriteBatch` written with `sync = true`: after `commit` returns,
//! the block survives a crash of the process or the machine, and a crash at any instant leaves
//! either the whole block or none of it. The write-ahead log is replayed with
//! `TolerateCorruptedTailRecords`: an incomplete last record (a write cut by a crash, never
//! acknowledged) is dropped, any other damage refuses the open; the [`mark`] catches a log that
//! lost acknowledged records without looking damaged (truncated).
//!
//! [`RocksStore`] is the one writer. [`RocksReader`] handles share its database and serve
//! committed reads from any thread.

mod copies;
mod mark;
mod options;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_crypto::{PublicKey, codec};
use rocksdb::{
    Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBRecoveryMode, Direction, Env, IteratorMode,
    Options, ReadOptions, WriteBatch, WriteBufferManager, WriteOptions,
};

use super::{
    AccountTx, BlockCommit, BlockStore, ChainRead, ConsensusWrite, RecordEntry, SCHEMA_VERSION,
    StateEntries, StoreError, StoreMeta, check_extends, involved_accounts, page_full, record_entry,
    record_keys,
};
use crate::block::{Block, BlockHash, BlockHeader, Height, Tip, TxLocation};
use crate::certificate::CommitCertificate;
use crate::state::{Account, StateKey, StateView, WriteSet};
use crate::transaction::{SignedTransaction, TxId};
use mark::{Found, Mark, WriteMark};
pub use options::StoreMemory;
use options::column_family_options;

const CF_TXS: &str = "txs";
const CF_HEADERS: &str = "headers";
const CF_TX_IDS: &str = "tx_ids";
const CF_CERTS: &str = "certs";
const CF_BLOCK_BY_HASH: &str = "block_by_hash";
const CF_TX_INDEX: &str = "tx_index";
const CF_ACCOUNT_TXS: &str = "account_txs";
const CF_STATE: &str = "state";
const CF_CONSENSUS: &str = "consensus";
const CF_META: &str = "meta";
const COLUMN_FAMILIES: [&str; 10] = [
    CF_HEADERS,
    CF_TXS,
    CF_TX_IDS,
    CF_CERTS,
    CF_BLOCK_BY_HASH,
    CF_TX_INDEX,
    CF_ACCOUNT_TXS,
    CF_STATE,
    CF_CONSENSUS,
    CF_META,
];

const META_SCHEMA: &[u8] = b"schema_version";
const META_GENESIS: &[u8] = b"genesis_hash";
const META_TIP: &[u8] = b"tip";

fn engine(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.into_string())
}

fn height_key(h: Height) -> [u8; 8] {
    h.to_be_bytes()
}

/// A transaction's key in `txs`: its block's height, then its index in the block.
fn tx_key(height: Height, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

fn account_tx_key(account: &PublicKey, height: Height, index: u32) -> [u8; 44] {
    let mut k = [0u8; 44];
    k[..32].copy_from_slice(&account.0);
    k[32..40].copy_from_slice(&height.to_be_bytes());
    k[40..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Read access to a RocksDB store, shareable across threads. Sees every block as soon as its
/// commit returned.
#[derive(Clone)]
pub struct RocksReader {
    db: Arc<DB>,
}

impl RocksReader {
    /// RocksDB's memtables now, all column families, in bytes (at most the [`StoreMemory`]
    /// budget when there is one, bar a flush in progress), from its own accounting.
    pub fn memtable_bytes(&self) -> Option<usize> {
        self.sum_over_column_families("rocksdb.cur-size-all-mem-tables")
    }

    /// What RocksDB's open table files hold in memory outside the block cache, all column
    /// families, in bytes (its own estimate): this grows with the number of table files,
    /// that is with the chain.
    pub fn table_readers_bytes(&self) -> Option<usize> {
        self.sum_over_column_families("rocksdb.estimate-table-readers-mem")
    }

    /// An integer property of each column family, added up (`None` if one lacks it).
    fn sum_over_column_families(&self, property: &str) -> Option<usize> {
        let mut total = 0u64;
        for name in COLUMN_FAMILIES {
            let cf = self.db.cf_handle(name)?;
            total += self.db.property_int_value_cf(cf, property).ok()??;
        }
        Some(total as usize)
    }

    /// RocksDB's block cache now, in bytes (one cache shared by every column family, holding
    /// data, index and filter blocks: at most [`StoreMemory::block_cache_bytes`]).
    pub fn block_cache_bytes(&self) -> Option<usize> {
        let cf = self.db.cf_handle(CF_HEADERS)?;
        self.db
            .property_int_value_cf(cf, "rocksdb.block-cache-usage")
            .ok()?
            .map(|v| v as usize)
    }
}

impl std::fmt::Debug for RocksReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksReader")
            .field("path", &self.db.path())
            .finish()
    }
}

/// A RocksDB-backed store for one chain: the writer.
pub struct RocksStore {
    reader: RocksReader,
    /// Cached copy of `meta/tip`, updated in the same step as each commit.
    tip: Option<Tip>,
    mark: WriteMark,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.reader.db.path())
            .field("tip", &self.tip)
            .finish()
    }
}

/// The write-ahead log files in `dir`, for messages.
fn wal_files(dir: &Path) -> String {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    if v.is_empty() {
        "no *.log file left".into()
    } else {
        v.join(", ")
    }
}

/// Refuses a store that recovered to a lower sequence number than its mark records.
fn check_mark(found: Found, recovered: u64, path: &Path, wal: &str) -> Result<(), StoreError> {
    match found {
        Found::Mark(m) if m.seq > recovered => Err(StoreError::RolledBack {
            path: path.display().to_string(),
            expected: m.seq,
            expected_height: m.height,
            found: recovered,
            wal: wal.to_string(),
        }),
        _ => Ok(()),
    }
}

impl RocksStore {
    /// Opens (creating if needed) the store at `path` for the chain `genesis_hash`, with the
    /// default memory budget. Refuses a store of another chain or another schema version, a
    /// damaged write-ahead log, and a store that recovered to less than it had acknowledged.
    pub fn open(path: &Path, genesis_hash: &BlockHash) -> Result<Self, StoreError> {
        RocksStore::open_with(path, genesis_hash, StoreMemory::default())
    }

    /// [`RocksStore::open`] with a memory budget.
    pub fn open_with(
        path: &Path,
        genesis_hash: &BlockHash,
        memory: StoreMemory,
    ) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        // The database keeps the manager and the cache alive (rust-rocksdb's
        // options-outlive-the-database rule).
        if memory.memtable_bytes > 0 {
            opts.set_write_buffer_manager(&WriteBufferManager::new_write_buffer_manager(
                memory.memtable_bytes,
                false,
            ));
        }
        let cache = Cache::new_lru_cache(memory.block_cache_bytes.max(1 << 20));
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Compactions run at the lowest CPU priority (nice 19): each one comes in a burst
        // (it rewrites a whole level), and in it competes with consensus for the cores;
        // deferred to the moments the node waits on its peers, it delays no block. Flushes
        // keep normal priority: writes stall when they fall behind.
        let mut env = Env::new().map_err(engine)?;
        env.lower_thread_pool_cpu_priority();
        opts.set_env(&env);
        // Two cores on the target machines: one for the node, one for flushes/compactions.
        opts.increase_parallelism(2);
        opts.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        // What the directory holds before RocksDB touches it: a recovery that drops damaged
        // records may rewrite the log, and the message must name the files as they were.
        let wal = wal_files(path);
        let corrupt = |e: rocksdb::Error| match engine(e) {
            StoreError::Engine(msg) if msg.contains("Corruption") => StoreError::Corrupt(format!(
                "{msg} (write-ahead log files in {}: {wal})",
                path.display()
            )),
            other => other,
        };
        let (mark, found) = if path.join("CURRENT").exists() {
            // An existing store: recover it read-only first, which changes no file, and
            // compare with the mark before a read-write open may make a loss permanent.
            let (mark, found) = WriteMark::open(path)?;
            let existing = DB::list_cf(&opts, path).map_err(engine)?;
            let ro = RocksReader {
                db: Arc::new(
                    DB::open_cf_for_read_only(&opts, path, existing, false).map_err(corrupt)?,
                ),
            };
            // Another schema's column families are not this one's: refuse it before the
            // read-write open, which would fail on them or create this schema's in it.
            ro.check_schema()?;
            check_mark(found, ro.db.latest_sequence_number(), path, &wal)?;
            (mark, found)
        } else {
            std::fs::create_dir_all(path)
                .map_err(|e| StoreError::Engine(format!("{}: {e}", path.display())))?;
            WriteMark::open(path)?
        };
        let cfs = COLUMN_FAMILIES
            .map(|name| ColumnFamilyDescriptor::new(name, column_family_options(name, &cache)));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(corrupt)?;
        check_mark(found, db.latest_sequence_number(), path, &wal)?;
        let mut store = RocksStore {
            reader: RocksReader { db: Arc::new(db) },
            tip: None,
            mark,
        };
        match store.meta()? {
            None => {
                // A store without meta must be empty: meta is written with the genesis state.
                if store
                    .reader
                    .db
                    .iterator_cf(store.reader.cf(CF_HEADERS)?, IteratorMode::Start)
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
                store.tip = Some(store.reader.read_tip()?);
            }
        }
        if !matches!(found, Found::Mark(_)) {
            // A new store, or a mark torn by a power loss: start from what is there now.
            store.record_mark();
        }
        Ok(store)
    }

    /// A read handle on this store, for other threads.
    pub fn reader(&self) -> RocksReader {
        self.reader.clone()
    }

    /// The store's directory.
    pub fn path(&self) -> PathBuf {
        self.reader.db.path().to_path_buf()
    }

    /// The write mark's path (see [`mark`]).
    pub fn mark_path(&self) -> &Path {
        self.mark.path()
    }

    fn synced() -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(!planted_unsynced_commit());
        w
    }

    fn write_synced(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.reader
            .db
            .write_opt(batch, &Self::synced())
            .map_err(engine)?;
        self.record_mark();
        Ok(())
    }

    fn record_mark(&self) {
        self.mark.record(Mark {
            seq: self.reader.db.latest_sequence_number(),
            height: self.tip.map_or(0, |t| t.height),
        });
    }

    /// Puts a committed block, its certificate and its index entries in `batch`.
    pub(super) fn put_block(
        &self,
        batch: &mut WriteBatch,
        block: &Block,
        hash: BlockHash,
        certificate: &CommitCertificate,
        tx_ids: &[TxId],
    ) -> Result<(), StoreError> {
        let r = &self.reader;
        let height = block.header.height;
        let hk = height_key(height);
        batch.put_cf(r.cf(CF_HEADERS)?, hk, codec::encode(&block.header));
        let txs = r.cf(CF_TXS)?;
        for (i, t) in block.txs.iter().enumerate() {
            batch.put_cf(txs, tx_key(height, i as u32), codec::encode(t));
        }
        let ids: Vec<u8> = tx_ids.iter().flat_map(|id| id.0.0).collect();
        batch.put_cf(r.cf(CF_TX_IDS)?, hk, ids);
        batch.put_cf(r.cf(CF_CERTS)?, hk, codec::encode(certificate));
        batch.put_cf(r.cf(CF_BLOCK_BY_HASH)?, hash.0.0, hk);
        // Index entries go in key order: each memtable insert then starts its skiplist search
        // from the one before instead of from the top (random transaction ids and accounts
        // made these inserts most of a block commit's CPU).
        let txi = r.cf(CF_TX_INDEX)?;
        let mut by_id: Vec<(usize, &TxId)> = tx_ids.iter().enumerate().collect();
        by_id.sort_unstable_by_key(|(_, id)| *id);
        for (i, id) in by_id {
            let loc = TxLocation {
                height,
                index: i as u32,
            };
            batch.put_cf(txi, id.0.0, codec::encode(&loc));
        }
        let acc = r.cf(CF_ACCOUNT_TXS)?;
        let mut by_account: Vec<[u8; 44]> = block
            .txs
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                involved_accounts(&t.tx)
                    .into_iter()
                    .map(move |a| account_tx_key(&a, height, i as u32))
            })
            .collect();
        by_account.sort_unstable();
        for key in by_account {
            batch.put_cf(acc, key, []);
        }
        Ok(())
    }

    fn put_writes(&self, batch: &mut WriteBatch, writes: &WriteSet) -> Result<(), StoreError> {
        let cf = self.reader.cf(CF_STATE)?;
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
        let mut batch = WriteBatch::default();
        batch.put_cf(self.reader.cf(CF_META)?, META_SCHEMA, version.to_le_bytes());
        self.write_synced(batch)
    }
}

impl Drop for RocksStore {
    fn drop(&mut self) {
        self.mark.sync();
    }
}

impl RocksReader {
    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt(format!("missing column family {name}")))
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(engine)
    }

    /// The transaction at `index` of the block at `height`, which an index says is there.
    fn tx_at(&self, height: Height, index: u32) -> Result<SignedTransaction, StoreError> {
        match self.get(CF_TXS, &tx_key(height, index))? {
            Some(bytes) => Ok(SignedTransaction::decode(&bytes)?),
            None => Err(StoreError::Corrupt(format!(
                "transaction {index} of height {height} is indexed but not stored"
            ))),
        }
    }

    /// Refuses a store written with another schema version.
    fn check_schema(&self) -> Result<(), StoreError> {
        match self.meta()? {
            Some(meta) if meta.schema_version != SCHEMA_VERSION => {
                Err(StoreError::UnsupportedSchema {
                    found: meta.schema_version,
                    supported: SCHEMA_VERSION,
                })
            }
            _ => Ok(()),
        }
    }

    fn read_tip(&self) -> Result<Tip, StoreError> {
        let bytes = self
            .get(CF_META, META_TIP)?
            .ok_or_else(|| StoreError::Corrupt("meta without tip".into()))?;
        Ok(codec::decode(&bytes)?)
    }

    /// An account and the tip it was read at, from one consistent snapshot.
    pub fn account_at_tip(&self, id: &PublicKey) -> Result<(Option<Account>, Tip), StoreError> {
        let (bytes, tip) = self.entry_at_tip(&StateKey::Account(*id))?;
        Ok((bytes.map(|b| codec::decode(&b)).transpose()?, tip))
    }

    /// A state entry's value and the tip it was read at, from one consistent snapshot.
    pub fn entry_at_tip(&self, key: &StateKey) -> Result<(Option<Vec<u8>>, Tip), StoreError> {
        let snap = self.db.snapshot();
        let tip = snap
            .get_cf(self.cf(CF_META)?, META_TIP)
            .map_err(engine)?
            .ok_or(StoreError::Uninitialized)?;
        let value = snap
            .get_cf(self.cf(CF_STATE)?, key.to_bytes())
            .map_err(engine)?;
        Ok((value, codec::decode(&tip)?))
    }
}

impl StateView for RocksReader {
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

    fn entry(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_STATE, &key.to_bytes())
    }
}

impl ChainRead for RocksReader {
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

    fn tip(&self) -> Result<Tip, StoreError> {
        match self.get(CF_META, META_TIP)? {
            Some(bytes) => Ok(codec::decode(&bytes)?),
            None => Err(StoreError::Uninitialized),
        }
    }

    fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        let Some(header) = self.header(height)? else {
            return Ok(None);
        };
        let first = tx_key(height, 0);
        let mode = IteratorMode::From(&first, Direction::Forward);
        let mut read = ReadOptions::default();
        if let Some(next) = height.checked_add(1) {
            read.set_iterate_upper_bound(tx_key(next, 0));
        }
        // The count is from disk: a damaged one must not decide an allocation.
        let mut txs = Vec::with_capacity((header.tx_count as usize).min(1 << 16));
        for kv in self.db.iterator_cf_opt(self.cf(CF_TXS)?, read, mode) {
            let (k, v) = kv.map_err(engine)?;
            if k.len() != 12 || k[..8] != first[..8] {
                break;
            }
            // Assert at both ends: the run must be the header's transactions, in order.
            if k[8..] != (txs.len() as u32).to_be_bytes() {
                return Err(StoreError::Corrupt(format!(
                    "transaction {} of height {height} is missing",
                    txs.len()
                )));
            }
            txs.push(SignedTransaction::decode(&v)?);
        }
        if txs.len() != header.tx_count as usize {
            return Err(StoreError::Corrupt(format!(
                "height {height} has {} transactions stored, its header says {}",
                txs.len(),
                header.tx_count
            )));
        }
        Ok(Some(Block { header, txs }))
    }

    fn header(&self, height: Height) -> Result<Option<BlockHeader>, StoreError> {
        let Some(bytes) = self.get(CF_HEADERS, &height_key(height))? else {
            return Ok(None);
        };
        let header: BlockHeader = codec::decode(&bytes)?;
        if header.height != height {
            return Err(StoreError::Corrupt(format!(
                "header stored under height {height} says height {}",
                header.height
            )));
        }
        Ok(Some(header))
    }

    fn block_tx_ids(&self, height: Height) -> Result<Option<Vec<TxId>>, StoreError> {
        let Some(bytes) = self.get(CF_TX_IDS, &height_key(height))? else {
            return Ok(None);
        };
        if bytes.len() % 32 != 0 {
            return Err(StoreError::Corrupt(format!(
                "transaction ids of height {height} are {} bytes",
                bytes.len()
            )));
        }
        Ok(Some(
            bytes
                .chunks_exact(32)
                .map(|c| {
                    let mut id = [0u8; 32];
                    id.copy_from_slice(c);
                    TxId(cairn_crypto::Hash(id))
                })
                .collect(),
        ))
    }

    fn account_txs(
        &self,
        account: &PublicKey,
        below: Height,
        limit: usize,
    ) -> Result<Vec<AccountTx>, StoreError> {
        let start = account_tx_key(account, below, 0);
        let mode = IteratorMode::From(&start, Direction::Reverse);
        let mut out: Vec<AccountTx> = Vec::new();
        for kv in self.db.iterator_cf(self.cf(CF_ACCOUNT_TXS)?, mode) {
            let (k, _) = kv.map_err(engine)?;
            if k.len() != 44 || k[..32] != account.0 {
                break;
            }
            if *k == start {
                continue;
            }
            let mut h = [0u8; 8];
            h.copy_from_slice(&k[32..40]);
            let mut i = [0u8; 4];
            i.copy_from_slice(&k[40..]);
            let (height, index) = (u64::from_be_bytes(h), u32::from_be_bytes(i));
            if page_full(&out, limit, height) {
                break;
            }
            out.push(AccountTx {
                height,
                index,
                tx: self.tx_at(height, index)?,
            });
        }
        Ok(out)
    }

    fn records(
        &self,
        owner: &PublicKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RecordEntry>, StoreError> {
        let (prefix, start) = record_keys(owner, after);
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut out = Vec::new();
        for kv in self.db.iterator_cf(self.cf(CF_STATE)?, mode) {
            let (k, v) = kv.map_err(engine)?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push(record_entry(&prefix, &k, &v)?);
        }
        Ok(out)
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

    fn consensus_scan(&self, prefix: &[u8]) -> Result<StateEntries, StoreError> {
        let mode = IteratorMode::From(prefix, Direction::Forward);
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

impl StateView for RocksStore {
    fn account(&self, id: &PublicKey) -> Result<Option<Account>, StoreError> {
        self.reader.account(id)
    }

    fn record(&self, owner: &PublicKey, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.reader.record(owner, key)
    }

    fn entry(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.reader.entry(key)
    }
}

impl ChainRead for RocksStore {
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        self.reader.meta()
    }
    fn tip(&self) -> Result<Tip, StoreError> {
        self.tip.ok_or(StoreError::Uninitialized)
    }
    fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        self.reader.block(height)
    }
    fn header(&self, height: Height) -> Result<Option<BlockHeader>, StoreError> {
        self.reader.header(height)
    }
    fn block_tx_ids(&self, height: Height) -> Result<Option<Vec<TxId>>, StoreError> {
        self.reader.block_tx_ids(height)
    }
    fn account_txs(
        &self,
        account: &PublicKey,
        below: Height,
        limit: usize,
    ) -> Result<Vec<AccountTx>, StoreError> {
        self.reader.account_txs(account, below, limit)
    }
    fn records(
        &self,
        owner: &PublicKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RecordEntry>, StoreError> {
        self.reader.records(owner, after, limit)
    }
    fn height_of(&self, hash: &BlockHash) -> Result<Option<Height>, StoreError> {
        self.reader.height_of(hash)
    }
    fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StoreError> {
        self.reader.certificate(height)
    }
    fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        self.reader.tx_location(id)
    }
    fn state_entries(&self) -> Result<StateEntries, StoreError> {
        self.reader.state_entries()
    }
    fn consensus_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.reader.consensus_get(key)
    }
    fn consensus_scan(&self, prefix: &[u8]) -> Result<StateEntries, StoreError> {
        self.reader.consensus_scan(prefix)
    }
}

impl BlockStore for RocksStore {
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
        let meta = self.reader.cf(CF_META)?;
        batch.put_cf(meta, META_SCHEMA, SCHEMA_VERSION.to_le_bytes());
        batch.put_cf(meta, META_GENESIS, codec::encode(&genesis_hash));
        batch.put_cf(meta, META_TIP, codec::encode(&tip));
        self.tip = Some(tip);
        if let Err(e) = self.write_synced(batch) {
            self.tip = None;
            return Err(e);
        }
        Ok(())
    }

    fn commit(&mut self, commit: &BlockCommit, tip: Tip) -> Result<(), StoreError> {
        check_extends(&self.tip()?, commit)?;
        let r = &self.reader;
        let mut batch = WriteBatch::default();
        self.put_block(
            &mut batch,
            &commit.block,
            commit.hash,
            &commit.certificate,
            &commit.tx_ids,
        )?;
        self.put_writes(&mut batch, &commit.writes)?;
        batch.put_cf(r.cf(CF_META)?, META_TIP, codec::encode(&tip));
        let before = self.tip;
        self.tip = Some(tip);
        if let Err(e) = self.write_synced(batch) {
            self.tip = before;
            return Err(e);
        }
        Ok(())
    }

    fn consensus_write(&mut self, ops: &[ConsensusWrite]) -> Result<(), StoreError> {
        let cf = self.reader.cf(CF_CONSENSUS)?;
        let mut batch = WriteBatch::default();
        for op in ops {
            match op {
                ConsensusWrite::Put { key, value } => batch.put_cf(cf, key, value),
                ConsensusWrite::Delete { key } => batch.delete_cf(cf, key),
                ConsensusWrite::DeleteRange { from, to } => {
                    if from < to {
                        batch.delete_range_cf(cf, from, to);
                    }
                }
            }
        }
        self.write_synced(batch)
    }
}

/// A bug planted on purpose, in debug builds only, so that the power-loss test can show it
/// catches one: with `CAIRN_PLANTED_BUG=unsynced_commit` in the environment, block commits are
/// written without a sync (a process crash loses nothing; a power cut loses the tail).
#[cfg(debug_assertions)]
fn planted_unsynced_commit() -> bool {
    static ON: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        std::env::var("CAIRN_PLANTED_BUG").is_ok_and(|v| v == "unsynced_commit")
    });
    *ON
}

#[cfg(not(debug_assertions))]
fn planted_unsynced_commit() -> bool {
    false
}
