//! The consensus engines alone (no IO): blocks committed per second by a 4-node PBFT and a
//! 3-node Raft cluster in the simulator, with no faults. Every PBFT message is signed and
//! verified; Raft signs one certificate per block and followers verify it.
//!
//! `cargo bench --workspace --bench engines`

use cairn_consensus::pbft::Pbft;
use cairn_consensus::raft::Raft;
use cairn_ledger::ConsensusKind;
use cairn_tests::sim::{RunConfig, Sim};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::{Duration, Instant};

const BLOCKS: u64 = 200;

fn engines(c: &mut Criterion) {
    let mut g = c.benchmark_group("engines");
    g.throughput(Throughput::Elements(BLOCKS));
    g.sample_size(10);
    g.bench_function("raft_3_nodes_200_blocks", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for seed in 0..iters {
                let mut cfg = RunConfig::for_seed(seed);
                cfg.nodes = 3;
                let sim = Sim::<Raft>::new(cfg, ConsensusKind::Raft);
                let t = Instant::now();
                sim.run_clean(BLOCKS).expect("raft commits");
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("pbft_4_nodes_200_blocks", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for seed in 0..iters {
                let mut cfg = RunConfig::pbft_for_seed(seed);
                cfg.nodes = 4;
                cfg.byzantine.clear();
                let sim = Sim::<Pbft>::new(cfg, ConsensusKind::Pbft);
                let t = Instant::now();
                sim.run_clean(BLOCKS).expect("pbft commits");
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
