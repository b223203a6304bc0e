//! What a node spends on each transaction before consensus sees it:
//! `cargo bench --workspace --bench admission`.
//!
//! No processes and no sockets; the ledger is a RocksDB store in a temporary directory.
//! Criterion reports time per batch and transactions per second; µs per transaction is the
//! time divided by the batch size.
//!
//! - `intake/<n>`: a client's batch of n as `POST /api/v1/txs/batch` takes it before the core
//!   (the binary body decoded, stateless checks, one batch signature verification). n from 1
//!   to 2,048 shows what batching saves: a paced load arrives in small batches, and large
//!   batches also share each sender's key between its transactions.
//! - `intake/1024_one_bad`: the same with one bad signature, found by halving the batch.
//! - `core/submit_1024`: the core's part of admitting 1,024 verified transactions from 256
//!   senders (already committed?, nonce look-up, a dry run for the next nonce, mempool
//!   insertion, the announcement).
//! - `core/gossip_1024`: a replica's path for 1,024 transactions a peer announced (the held
//!   or verified filter, one batch verification, mempool insertion).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    ConsensusKind, Ledger, MempoolConfig, RocksStore, SignedTransaction, VerifiedTransaction,
    verify_transactions,
};
use cairn_node::api::submit::parse_batch;
use cairn_node::core::admission::Admission;
use cairn_node::core::chain::Chain;
use cairn_node::metrics::Metrics;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SENDERS: usize = 256;
const PER_SENDER: u64 = 4;

/// A chain with `SENDERS` funded members, and 4 transfers from each (nonces 0 to 3), in
/// nonce order across senders.
fn load() -> (TestChain, Vec<SignedTransaction>) {
    let c = TestChain::new(ConsensusKind::Pbft, 4, SENDERS + 1, 1_000_000);
    let to = c.accounts[0].public_key();
    let txs = (0..PER_SENDER)
        .flat_map(|nonce| (1..=SENDERS).map(move |a| (a, nonce)))
        .map(|(a, nonce)| c.transfer(&c.accounts[a], nonce, to, 1))
        .collect();
    (c, txs)
}

fn intake(c: &mut Criterion) {
    let (chain, txs) = load();
    let mut g = c.benchmark_group("intake");
    g.measurement_time(Duration::from_secs(5));
    for n in [1usize, 16, 64, 256, 1024] {
        let body = cairn_crypto::codec::encode(&txs[..n].to_vec());
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &body, |b, body| {
            b.iter(|| {
                let parsed = parse_batch(body, true).expect("decodes");
                let txs: Vec<SignedTransaction> =
                    parsed.into_iter().map(|r| r.expect("decodes")).collect();
                let verified = verify_transactions(txs, chain.chain_id());
                assert!(verified.iter().all(Result::is_ok));
                black_box(verified)
            })
        });
    }
    // One bad signature among 1,024 (a client's, in a merged batch): the batch fails, and the
    // bad one is found by halving rather than by checking the other 1,023 one by one.
    let mut one_bad = txs.clone();
    one_bad[700].signature.0[40] ^= 0x10;
    g.throughput(Throughput::Elements(one_bad.len() as u64));
    g.bench_function("1024_one_bad", |b| {
        b.iter_batched(
            || one_bad.clone(),
            |t| {
                let v = verify_transactions(t, chain.chain_id());
                assert_eq!(v.iter().filter(|r| r.is_err()).count(), 1);
                black_box(v)
            },
            BatchSize::LargeInput,
        )
    });
    // Two client batches merged, as the intake does when it is busy.
    let doubled: Vec<SignedTransaction> = txs.iter().chain(&txs).cloned().collect();
    g.throughput(Throughput::Elements(doubled.len() as u64));
    g.bench_function(BenchmarkId::from_parameter(doubled.len()), |b| {
        b.iter_batched(
            || doubled.clone(),
            |t| black_box(verify_transactions(t, chain.chain_id())),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn core(c: &mut Criterion) {
    let (test_chain, txs) = load();
    let dir = tempfile::tempdir().expect("tmp");
    let genesis = test_chain.genesis.clone();
    let store = RocksStore::open(dir.path(), &genesis.hash()).expect("open");
    let chain = Chain::new(Ledger::open(store, genesis).expect("ledger"));
    let chain_id = test_chain.chain_id().to_string();
    let metrics = Arc::new(Metrics::new());
    let fresh = || Admission::new(MempoolConfig::default(), &chain_id, metrics.clone());
    let verified: Vec<VerifiedTransaction> = verify_transactions(txs.clone(), &chain_id)
        .into_iter()
        .map(|r| r.expect("valid"))
        .collect();

    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("submit_1024", |b| {
        b.iter_batched(
            || (fresh(), verified.clone()),
            |(mut a, txs)| {
                let now = Instant::now();
                for t in txs {
                    black_box(a.submit(t, &chain, now).expect("admitted"));
                }
                a
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("gossip_1024", |b| {
        b.iter_batched(
            || (fresh(), txs.clone()),
            |(mut a, txs)| {
                let now = Instant::now();
                a.on_gossip(txs, false, chain.ledger(), now).expect("io");
                while let Some(batch) = a.next_batch() {
                    let results = verify_transactions(batch, &chain_id);
                    a.on_verified(results, chain.ledger(), now).expect("io");
                }
                assert_eq!(a.mempool().len(), SENDERS * PER_SENDER as usize);
                a
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, intake, core);
criterion_main!(benches);
