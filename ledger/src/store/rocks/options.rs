//! How the store tunes RocksDB: the memory budgets, and each column family's options.

use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options};

use super::{CF_ACCOUNT_TXS, CF_BLOCK_BY_HASH, CF_CONSENSUS, CF_STATE, CF_TX_IDS, CF_TX_INDEX};

/// The memory RocksDB may use: its write buffers (memtables) and its block cache, each a
/// budget over all column families together (ARCHITECTURE.md, "Storage").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMemory {
    /// All memtables together, in bytes: past it RocksDB flushes the largest one. 0: no
    /// shared budget (each column family flushes at 64 MiB, up to 640 MiB in all).
    pub memtable_bytes: usize,
    /// The one block cache every column family shares, in bytes: data blocks, and the index
    /// and filter blocks of every table file (which would otherwise sit outside any bound).
    pub block_cache_bytes: usize,
}

impl StoreMemory {
    /// The default memtable budget.
    pub const DEFAULT_MEMTABLE_BYTES: usize = 32 << 20;
    /// The default block cache.
    pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 32 << 20;
}

impl Default for StoreMemory {
    fn default() -> Self {
        StoreMemory {
            memtable_bytes: Self::DEFAULT_MEMTABLE_BYTES,
            block_cache_bytes: Self::DEFAULT_BLOCK_CACHE_BYTES,
        }
    }
}

/// Column families read by point lookups of keys that may be absent (a transaction id not yet
/// committed, a block hash not yet seen, an account not yet created): each table file has a
/// Bloom filter (10 bits per key), so such a lookup seldom reads the file. The others are
/// read by height, which the tip bounds, or by range: a filter would cost memory, in the
/// block cache and in every compaction, and save no read (the account index's filter alone
/// would hold more than the transaction index's, at two keys per transfer).
const LOOKED_UP: [&str; 4] = [CF_TX_INDEX, CF_BLOCK_BY_HASH, CF_STATE, CF_CONSENSUS];

/// Column families keyed at random: each level-0 file overlaps the whole of the level below,
/// so each compaction into it rewrites that level. They wait for 8 level-0 files instead of
/// RocksDB's 4, which halves how often that happens; a lookup checks the extra files' Bloom
/// filters (pinned in the cache), an account page's range scan merges them.
const KEYED_AT_RANDOM: [&str; 4] = [CF_TX_INDEX, CF_ACCOUNT_TXS, CF_BLOCK_BY_HASH, CF_STATE];

/// Column families whose entries are mostly SHA-256 hashes (transaction ids), which do not
/// compress: LZ4 saved 17% of the transaction index's bytes and none of the blocks' id
/// lists, for compressing every flushed and compacted block and decompressing every one
/// read. They are stored uncompressed; the others stay LZ4.
const RANDOM_BYTES: [&str; 2] = [CF_TX_INDEX, CF_TX_IDS];

/// The target size of a table file written by compaction. A compaction builds each output
/// file's Bloom filter from a hash per key, all held until the file is done: with RocksDB's
/// 64 MiB files of small index entries that came to 28 MB of a node's peak heap (heaptrack,
/// a 2M-transaction PBFT soak), more as the chain grows into bigger compactions.
const TABLE_FILE_BYTES: u64 = 8 << 20;

/// The options of column family `name`. All share `cache`, which holds the index and filter
/// blocks too (so they count against its capacity), with those of level-0 files pinned (they
/// are read on every lookup).
pub(super) fn column_family_options(name: &str, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if LOOKED_UP.contains(&name) {
        table.set_bloom_filter(10.0, false);
    }
    let mut cf = Options::default();
    cf.set_block_based_table_factory(&table);
    cf.set_target_file_size_base(TABLE_FILE_BYTES);
    cf.set_compression_type(if RANDOM_BYTES.contains(&name) {
        DBCompressionType::None
    } else {
        DBCompressionType::Lz4
    });
    if KEYED_AT_RANDOM.contains(&name) {
        cf.set_level_zero_file_num_compaction_trigger(8);
    }
    cf
}
