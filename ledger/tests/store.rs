//! The store conformance suite on both implementations, and RocksDB-only behaviour: reopening,
//! refusing another chain or schema version.

use cairn_ledger::store::{SCHEMA_VERSION, conformance};
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    BlockStore, ChainRead, ConsensusKind, Ledger, MemoryStore, OpenError, RocksStore, StateView,
    StoreError, Trust, VerifiedTransaction,
};

#[test]
fn memory_store_conforms() {
    conformance::run_all(MemoryStore::new);
}

#[test]
fn rocks_store_conforms() {
    let dirs: std::cell::RefCell<Vec<tempfile::TempDir>> = Default::default();
    // The suite's chain; RocksStore::open needs its genesis hash up front.
    let genesis_hash = TestChain::new(ConsensusKind::Raft, 1, 4, 1_000)
        .genesis
        .hash();
    conformance::run_all(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksStore::open(dir.path(), &genesis_hash).expect("open");
        dirs.borrow_mut().push(dir);
        store
    });
}

fn commit_blocks(l: &mut Ledger<RocksStore>, c: &TestChain, n: u64) {
    for _ in 0..n {
        let k = &c.accounts[1];
        let nonce = l
            .account(&k.public_key())
            .expect("read")
            .map_or(0, |a| a.nonce);
        let tx = VerifiedTransaction::trusted(c.transfer(k, nonce, c.accounts[2].public_key(), 1));
        c.commit(l, &[tx]).expect("commit");
    }
}

#[test]
fn rocks_store_survives_reopen() {
    let c = TestChain::new(ConsensusKind::Pbft, 4, 4, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let tip = {
        let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("open");
        let mut l = Ledger::open(store, c.genesis.clone()).expect("ledger");
        commit_blocks(&mut l, &c, 5);
        l.store_mut().consensus_put(b"view", b"3").expect("put");
        l.tip()
    };
    let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("reopen");
    let l = Ledger::open(store, c.genesis.clone()).expect("ledger");
    assert_eq!(l.tip(), tip);
    assert_eq!(
        l.store().consensus_get(b"view").expect("get"),
        Some(b"3".to_vec())
    );
    assert_eq!(
        l.account(&c.accounts[2].public_key())
            .expect("read")
            .expect("exists")
            .balance,
        1_005
    );
    let report = cairn_ledger::audit::audit_store(l.store(), &c.genesis).expect("audit");
    assert_eq!(report.height, 5);
}

#[test]
fn rocks_store_refuses_another_chain() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 2, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("open");
        Ledger::open(store, c.genesis.clone()).expect("ledger");
    }
    let mut other = c.genesis.clone();
    other.chain_id = "another-chain".into();
    let err = RocksStore::open(dir.path(), &other.hash()).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::GenesisMismatch { found, expected } if found == c.genesis.hash() && expected == other.hash()),
        "{err}"
    );
    // The memory store path goes through Ledger::open's own check.
    let mut mem = MemoryStore::new();
    mem = Ledger::open(mem, c.genesis.clone())
        .expect("ledger")
        .into_store();
    assert!(matches!(
        Ledger::open(mem, other),
        Err(OpenError::Store(StoreError::GenesisMismatch { .. }))
    ));
}

#[test]
fn rocks_store_refuses_unknown_schema_version() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 2, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("open");
        let mut l = Ledger::open(store, c.genesis.clone()).expect("ledger");
        l.store_mut()
            .force_schema_version_for_tests(SCHEMA_VERSION + 1)
            .expect("write");
    }
    let err = RocksStore::open(dir.path(), &c.genesis.hash()).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::UnsupportedSchema { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err}"
    );
}

#[test]
fn applying_a_block_from_a_peer_verifies_it_fully() {
    // Two nodes: one builds and commits, the other applies the block as if fetched by block
    // sync (Trust::Verify), from its own RocksDB.
    let c = TestChain::new(ConsensusKind::Pbft, 4, 3, 1_000);
    let (d1, d2) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut a = Ledger::open(
        RocksStore::open(d1.path(), &c.genesis.hash()).expect("open"),
        c.genesis.clone(),
    )
    .expect("a");
    let mut b = Ledger::open(
        RocksStore::open(d2.path(), &c.genesis.hash()).expect("open"),
        c.genesis.clone(),
    )
    .expect("b");
    commit_blocks(&mut a, &c, 3);
    for h in 1..=3 {
        let block = a.store().block(h).expect("read").expect("block");
        let cert = a.store().certificate(h).expect("read").expect("cert");
        b.apply_block(block, cert, Trust::Verify)
            .expect("peer block applies");
    }
    assert_eq!(a.tip(), b.tip());
}

/// The write-ahead log files of a store directory, largest first.
fn wal_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map_or(0, |m| m.len())));
    v
}

/// A store with 8 blocks, all of them only in the write-ahead log (no flush yet), closed.
fn store_with_blocks_in_the_log() -> (TestChain, tempfile::TempDir, std::path::PathBuf) {
    let c = TestChain::new(ConsensusKind::Raft, 1, 4, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("open");
        let mut l = Ledger::open(store, c.genesis.clone()).expect("ledger");
        commit_blocks(&mut l, &c, 8);
    }
    let wal = wal_files(dir.path())
        .into_iter()
        .next()
        .expect("a WAL file");
    (c, dir, wal)
}

#[test]
fn a_damaged_write_ahead_log_is_refused_naming_the_file() {
    // Bytes flipped early, in the middle, and in the last record of the log: RocksDB's replay
    // either reports corruption or stops early; either way the store refuses to open, names
    // the log, and stays refused (nothing was repaired behind the operator's back).
    for at in [0.25, 0.5, 0.9, 1.0] {
        let (c, dir, wal) = store_with_blocks_in_the_log();
        let mut bytes = std::fs::read(&wal).expect("read wal");
        let i = ((bytes.len() as f64 * at) as usize).min(bytes.len() - 8);
        for b in &mut bytes[i..i + 4] {
            *b ^= 0x5a;
        }
        std::fs::write(&wal, &bytes).expect("write wal");
        for attempt in 0..2 {
            let err = RocksStore::open(dir.path(), &c.genesis.hash()).expect_err("must refuse");
            let msg = err.to_string();
            assert!(
                msg.contains(&wal.display().to_string()),
                "flip at {at}, attempt {attempt}: names the log: {msg}"
            );
        }
    }
}

#[test]
fn a_truncated_write_ahead_log_is_refused() {
    let (c, dir, wal) = store_with_blocks_in_the_log();
    let len = std::fs::metadata(&wal).expect("meta").len();
    // Cut the last few hundred bytes: the last block's record is incomplete, which the log's
    // own recovery takes for an unacknowledged write.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .expect("open wal");
    f.set_len(len - 300).expect("truncate");
    drop(f);
    for _ in 0..2 {
        let err = RocksStore::open(dir.path(), &c.genesis.hash()).expect_err("must refuse");
        assert!(
            matches!(
                &err,
                StoreError::RolledBack {
                    expected_height: 8,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains(&wal.display().to_string()),
            "names the log: {err}"
        );
    }
}

#[test]
fn a_store_moved_aside_starts_fresh_and_a_clean_store_reopens() {
    let (c, dir, _) = store_with_blocks_in_the_log();
    // Clean reopen: the mark agrees.
    drop(RocksStore::open(dir.path(), &c.genesis.hash()).expect("reopen"));
    // The documented recovery: move the directory aside; a new one opens empty.
    let aside = dir.path().with_extension("damaged");
    std::fs::rename(dir.path(), &aside).expect("move aside");
    let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("fresh store");
    let l = Ledger::open(store, c.genesis.clone()).expect("ledger");
    assert_eq!(l.tip().height, 0);
    drop(l);
    std::fs::remove_dir_all(&aside).expect("cleanup");
}

/// RocksDB's memory stays within the budgets the store was opened with: writing four times the
/// memtable budget, the memtables are flushed back within it, and reading everything back leaves the
/// shared block cache at most its capacity.
/// Puts `n` values of 128 KiB that do not compress into the consensus column family, under
/// the keys `big-000`…; returns them.
fn put_incompressible(store: &mut RocksStore, n: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let values: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            (0..128 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    for (i, v) in values.iter().enumerate() {
        store
            .consensus_put(format!("big-{i:03}").as_bytes(), v)
            .expect("put");
    }
    values
}

/// The nice value in a `/proc/…/stat` file: field 19, counted after the parenthesised command
/// (which may hold spaces), where the state is field 3.
fn nice_in(stat: &std::path::Path) -> Option<i64> {
    let stat = std::fs::read_to_string(stat).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(16)?.parse().ok()
}

/// The nice value of each of this process's threads named `name`.
fn threads_named(name: &str) -> Vec<i64> {
    let mut nice = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() == name
            && let Some(n) = nice_in(&dir.join("stat"))
        {
            nice.push(n);
        }
    }
    nice
}

#[test]
fn compactions_run_at_the_lowest_cpu_priority_and_flushes_at_normal_priority() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 4, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let memory = cairn_ledger::StoreMemory {
        memtable_bytes: 4 << 20,
        block_cache_bytes: 1 << 20,
    };
    let mut store = RocksStore::open_with(dir.path(), &c.genesis.hash(), memory).expect("open");
    // 16 MiB through a 4 MiB memtable budget: four or more level-0 files, so a compaction.
    put_incompressible(&mut store, 128);
    // A pool thread takes its priority when it runs its first job.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !threads_named("rocksdb:low").contains(&19) {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction thread at nice 19 a minute after the writes: {:?}",
            threads_named("rocksdb:low")
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The flush threads keep the process's priority (whatever the test runs at).
    let own = nice_in(std::path::Path::new("/proc/thread-self/stat")).expect("own nice value");
    let flushes = threads_named("rocksdb:high");
    assert!(!flushes.is_empty(), "the flushes ran on their own pool");
    assert!(
        flushes.iter().all(|&n| n == own),
        "flush threads at {flushes:?}, the process at {own}"
    );
}

#[test]
fn rocks_store_keeps_memtables_and_block_cache_within_their_budgets() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 4, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let memory = cairn_ledger::StoreMemory {
        memtable_bytes: 4 << 20,
        block_cache_bytes: 1 << 20,
    };
    let mut store = RocksStore::open_with(dir.path(), &c.genesis.hash(), memory).expect("open");
    let reader = store.reader();
    // 16 MiB of values that do not compress, four times the memtable budget.
    let values = put_incompressible(&mut store, 128);
    // The budget is RocksDB's soft limit: a write past 7/8 of it switches the largest memtable
    // to be flushed in the background, so how far the memtables overshoot meanwhile depends on
    // how busy the machine is. Once the flushes are done they hold the budget and at most a
    // write and an arena block more (without a budget they would hold all 16 MiB: each column
    // family alone flushes at 64 MiB).
    let settled = memory.memtable_bytes + (2 << 20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = reader.memtable_bytes().expect("memtable size");
        if now <= settled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the memtables still hold {now} bytes a minute after the writes, budget {}",
            memory.memtable_bytes
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Read it all back (through the table files now): the cache fills and evicts.
    for (i, v) in values.iter().enumerate() {
        let got = store
            .consensus_get(format!("big-{i:03}").as_bytes())
            .expect("get")
            .expect("present");
        assert_eq!(&got, v);
    }
    let cached = reader.block_cache_bytes().expect("cache usage");
    assert!(cached > 0, "the reads went through the block cache");
    assert!(
        cached <= memory.block_cache_bytes,
        "block cache at {cached} bytes, capacity {}",
        memory.block_cache_bytes
    );
}

/// The store's RocksDB opened directly, every column family on disk, to damage it underneath.
fn raw_open(dir: &std::path::Path) -> rocksdb::DB {
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).expect("list");
    rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, names).expect("raw open")
}

#[test]
fn a_block_missing_a_stored_transaction_is_reported_corrupt() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 4, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("open");
        let mut l = Ledger::open(store, c.genesis.clone()).expect("ledger");
        commit_blocks(&mut l, &c, 3);
    }
    // Damage the store underneath: remove block 2's one transaction (height 2, index 0).
    {
        let db = raw_open(dir.path());
        let txs = db.cf_handle("txs").expect("txs column family");
        let mut key = [0u8; 12];
        key[..8].copy_from_slice(&2u64.to_be_bytes());
        assert!(
            db.get_cf(txs, key).expect("get").is_some(),
            "the key layout"
        );
        db.delete_cf(txs, key).expect("delete");
    }
    let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("reopen");
    assert_eq!(
        store.block(1).expect("read").expect("block 1").txs.len(),
        1,
        "the blocks around it read back"
    );
    assert_eq!(store.block(3).expect("read").expect("block 3").txs.len(), 1);
    match store.block(2) {
        Err(StoreError::Corrupt(msg)) => assert!(
            msg.contains("height 2 has 0 transactions stored, its header says 1"),
            "{msg}"
        ),
        other => panic!("expected a corrupt block, got {other:?}"),
    }
    // The account index still names it: the page says so rather than skipping it.
    let sender = c.accounts[1].public_key();
    match store.account_txs(&sender, 3, 10) {
        Err(StoreError::Corrupt(msg)) => assert!(
            msg.contains("transaction 0 of height 2 is indexed but not stored"),
            "{msg}"
        ),
        other => panic!("expected a corrupt page, got {other:?}"),
    }
}

#[test]
fn a_store_of_the_previous_layout_is_refused_as_another_schema() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 4, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("open");
        let mut l = Ledger::open(store, c.genesis.clone()).expect("ledger");
        commit_blocks(&mut l, &c, 2);
        l.store_mut()
            .force_schema_version_for_tests(3)
            .expect("set version");
    }
    // Schema 3's column families: whole blocks in `blocks`, no `txs`.
    {
        let mut db = raw_open(dir.path());
        db.drop_cf("txs").expect("drop txs");
        db.create_cf("blocks", &rocksdb::Options::default())
            .expect("create blocks");
    }
    let refused = |r: Result<(), StoreError>, what: &str| match r {
        Err(StoreError::UnsupportedSchema { found, supported }) => {
            assert_eq!((found, supported), (3, SCHEMA_VERSION), "{what}")
        }
        other => panic!("{what}: expected UnsupportedSchema, got {other:?}"),
    };
    refused(
        RocksStore::open(dir.path(), &c.genesis.hash()).map(|_| ()),
        "open",
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    refused(
        cairn_ledger::RocksReader::open_secondary(dir.path(), scratch.path()).map(|_| ()),
        "secondary open",
    );
    // Refused without being changed: no `txs` column family was created in it.
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).expect("list");
    assert!(names.iter().any(|n| n == "blocks"), "{names:?}");
    assert!(!names.iter().any(|n| n == "txs"), "{names:?}");
}
