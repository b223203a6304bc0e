//! Runs the deterministic simulator over many seeds.
//!
//! ```text
//! cargo run --release -p cairn-tests --bin sim -- --engine raft|pbft --seeds 10000 [--start 0] [--blocks-in-flight 3] [--reconfigure]
//! SIM_SEED=1234 cargo run --release -p cairn-tests --bin sim -- --engine raft
//! ```
//!
//! Every fault kind is on: crashes, torn steps, partitions, loss, duplication, replay floods
//! and (PBFT) up to f Byzantine validators of every behaviour, floods included. Prints seeds
//! run, faults injected, blocks committed, the peak state retained by any honest replica
//! against its bound, rejoin times, and every failing seed; exits 1 if any seed broke an
//! invariant. With `--reconfigure` each run also changes its validator set one to three times
//! (adds, removals, rotations) while the faults go on.

use std::process::ExitCode;
use std::time::Instant;

use cairn_ledger::ConsensusKind;
use cairn_tests::sim::{RunConfig, RunReport, run_pbft, run_raft};

fn usage() -> ExitCode {
    eprintln!(
        "usage: sim --engine raft|pbft [--seeds N] [--start S] [--blocks-in-flight N (default 3)] [--reconfigure]   (SIM_SEED=n replays one seed)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut engine = None;
    let mut seeds = 100u64;
    let mut start = 0u64;
    let mut in_flight = 3u64;
    let mut reconfigure = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--reconfigure" {
            reconfigure = true;
            continue;
        }
        let value = args.next();
        match (a.as_str(), value.as_deref().map(str::parse::<u64>)) {
            ("--engine", _) => engine = value,
            ("--seeds", Some(Ok(n))) => seeds = n,
            ("--start", Some(Ok(n))) => start = n,
            ("--blocks-in-flight", Some(Ok(n))) if n >= 1 => in_flight = n,
            _ => return usage(),
        }
    }
    type Run = fn(RunConfig) -> Result<RunReport, cairn_tests::sim::Violation>;
    let (run, config, kind): (Run, fn(u64) -> RunConfig, ConsensusKind) = match engine.as_deref() {
        Some("raft") => (
            run_raft,
            |s| RunConfig::for_seed(s).with_floods(),
            ConsensusKind::Raft,
        ),
        Some("pbft") => (
            run_pbft,
            |s| RunConfig::pbft_for_seed(s).with_floods(),
            ConsensusKind::Pbft,
        ),
        _ => return usage(),
    };
    let range = cairn_tests::sim::seeds_from(start, seeds);
    let t = Instant::now();
    let mut total = RunReport::default();
    let mut failures = Vec::new();
    for &seed in &range {
        let mut cfg = config(seed);
        cfg.knobs.blocks_in_flight = in_flight as usize;
        if reconfigure {
            cfg = cfg.with_reconfiguration(kind);
        }
        match run(cfg) {
            Ok(r) => total.absorb(r),
            Err(v) => {
                eprintln!("VIOLATION {v}");
                failures.push(seed);
            }
        }
    }
    println!(
        "engine {} | blocks in flight {} | seeds {} | violations {} | blocks committed {} | set changes taken over {} | crashes {} (torn steps {}) | partitions {} | messages dropped {} duplicated {} | block syncs {} | byzantine validators {} | highest round {} | replayed {} | {} | {} | {:.1} s",
        engine.as_deref().unwrap_or("?"),
        in_flight,
        range.len(),
        failures.len(),
        total.height,
        total.handovers,
        total.crashes,
        total.torn_steps,
        total.partitions,
        total.dropped,
        total.duplicated,
        total.syncs,
        total.byzantine.len(),
        total.max_round,
        total.replayed,
        total.peak,
        total.rejoins,
        t.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failing seeds: {failures:?}");
        ExitCode::from(1)
    }
}
