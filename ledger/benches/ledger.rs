//! Ledger benchmarks.
//!
//! `cargo bench --workspace --bench ledger`
//!
//! - `apply_store_5000/pre_verified`: execute a block of 5,000 pre-verified transfers and
//!   commit it to RocksDB (one synced WriteBatch). Target: ≥ 100k tx/s on one core.
//! - `apply_store_5000/verify`: the same with every signature batch-verified (block sync).
//! - `verify_transactions_5000`: stateless checks + batch signature verification.
//! - `mempool_insert_5000`: mempool admission of 5,000 verified transactions.
//! - `state_tree_apply_5000`: the state tree's share of a block of 5,000 transfers: 5,000
//!   account writes applied to a tree of 5,000 and of 100,000 accounts, and the new root.

use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    Block, CommitCertificate, ConsensusKind, Ledger, MemoryStore, Mempool, MempoolConfig,
    RocksStore, SignedTransaction, Trust, VerifiedTransaction, verify_transactions,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};

const TXS: usize = 5_000;
const BLOCKS: u64 = 8;

/// A chain of `TXS` accounts and `BLOCKS` blocks in which every account sends one transfer.
fn fixture() -> (TestChain, Vec<(Block, CommitCertificate)>) {
    let c = TestChain::new(ConsensusKind::Raft, 1, TXS, 1_000_000);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let mut blocks = Vec::new();
    for h in 0..BLOCKS {
        let txs: Vec<VerifiedTransaction> = (0..TXS)
            .map(|i| {
                let to = c.accounts[(i + 1) % TXS].public_key();
                VerifiedTransaction::trusted(c.transfer(&c.accounts[i], h, to, 1 + i as u64 % 5))
            })
            .collect();
        let (block, _) = c.commit(&mut l, &txs).expect("commit");
        // ed25519 signing is deterministic: the same certificate the ledger stored.
        let cert = c.certify(&block);
        blocks.push((block, cert));
    }
    (c, blocks)
}

fn apply_store(c: &mut Criterion) {
    let (chain, blocks) = fixture();
    let mut g = c.benchmark_group("apply_store_5000");
    g.throughput(Throughput::Elements(TXS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    for (name, trust) in [
        ("pre_verified", Trust::PreVerified),
        ("verify", Trust::Verify),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // A fresh store for each run of BLOCKS blocks (not timed).
                    let dir = tempfile::tempdir().expect("tmp");
                    let store = RocksStore::open(dir.path(), &chain.genesis.hash()).expect("open");
                    let mut l = Ledger::open(store, chain.genesis.clone()).expect("ledger");
                    for (block, cert) in blocks.iter().take((iters - done) as usize) {
                        let (block, cert) = (block.clone(), cert.clone());
                        let t = Instant::now();
                        black_box(l.apply_block(block, cert, trust).expect("apply"));
                        total += t.elapsed();
                        done += 1;
                    }
                }
                total
            })
        });
    }
    g.finish();
}

fn signed_batch() -> (TestChain, Vec<SignedTransaction>) {
    let c = TestChain::new(ConsensusKind::Raft, 1, TXS, 1_000_000);
    let txs = (0..TXS)
        .map(|i| c.transfer(&c.accounts[i], 0, c.accounts[(i + 1) % TXS].public_key(), 1))
        .collect();
    (c, txs)
}

fn verify_and_admit(c: &mut Criterion) {
    let (chain, txs) = signed_batch();
    let mut g = c.benchmark_group("admission");
    g.throughput(Throughput::Elements(TXS as u64));
    g.sample_size(10);
    g.bench_function("verify_transactions_5000", |b| {
        b.iter_batched(
            || txs.clone(),
            |t| black_box(verify_transactions(t, chain.chain_id())),
            BatchSize::LargeInput,
        )
    });
    let ledger = Ledger::open(MemoryStore::new(), chain.genesis.clone()).expect("open");
    let verified: Vec<VerifiedTransaction> = txs
        .iter()
        .cloned()
        .map(VerifiedTransaction::trusted)
        .collect();
    g.bench_function("mempool_insert_5000", |b| {
        b.iter_batched(
            || (Mempool::new(MempoolConfig::default()), verified.clone()),
            |(mut pool, txs)| {
                for t in txs {
                    black_box(pool.insert(t, &ledger).expect("io").expect("admitted"));
                }
                pool
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// The state tree's share of a block: 5,000 account writes (a block of transfers among 5,000
/// accounts changes each) applied to a tree of 5,000 and of 100,000 accounts.
fn state_tree(c: &mut Criterion) {
    use cairn_ledger::StateTree;
    use cairn_ledger::state::WriteSet;
    let mut g = c.benchmark_group("state_tree_apply_5000");
    g.throughput(Throughput::Elements(TXS as u64));
    for accounts in [5_000u32, 100_000] {
        let key = |i: u32| {
            let mut k = vec![0x01];
            k.extend_from_slice(&cairn_crypto::Hash::sha256(&i.to_le_bytes()).0);
            k
        };
        let value = |i: u32, v: u64| cairn_crypto::codec::encode(&(u64::from(i) + v, v, 0u8));
        let all: WriteSet = (0..accounts).map(|i| (key(i), Some(value(i, 0)))).collect();
        let tree = StateTree::default().apply(&all);
        let writes: WriteSet = (0..TXS as u32)
            .map(|i| (key(i * (accounts / TXS as u32)), Some(value(i, 1))))
            .collect();
        g.bench_function(format!("{accounts}_accounts"), |b| {
            b.iter(|| black_box(tree.apply(black_box(&writes)).root_hash()))
        });
    }
    g.finish();
}

criterion_group!(benches, apply_store, verify_and_admit, state_tree);
criterion_main!(benches);
