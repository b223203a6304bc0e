//! Raft under the deterministic simulator: many seeds with faults on (replay floods included),
//! validator-set changes under the same faults, exact replay, and a planted bug the checkers
//! must catch.
//!
//! `SIM_SEED=<n> cargo test -p cairn-tests --test raft_sim` replays one seed.

use cairn_ledger::ConsensusKind;
use cairn_tests::sim::{RunConfig, run_raft, run_seeds, seeds, seeds_from};

const SEEDS: u64 = 240;

#[test]
fn raft_keeps_every_invariant_under_faults() {
    let (total, violations) = run_seeds(&seeds(SEEDS), |seed| {
        run_raft(RunConfig::for_seed(seed).with_floods())
    });
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
    if std::env::var_os("SIM_SEED").is_none() {
        // The faults really happened: this run proves something.
        assert!(total.crashes > 0 && total.torn_steps > 0, "{total:?}");
        assert!(
            total.partitions > 0 && total.dropped > 0 && total.duplicated > 0,
            "{total:?}"
        );
        assert!(
            total.syncs > 0,
            "some follower fell behind the compacted log: {total:?}"
        );
        assert!(
            total.height > 100 * SEEDS / 2,
            "blocks committed: {total:?}"
        );
        assert!(total.replayed > 0, "no replay flood ran: {total:?}");
        assert!(
            total.rejoins.count > 0,
            "no restart was measured: {total:?}"
        );
        eprintln!("raft: {} | {}", total.peak, total.rejoins);
    }
}

#[test]
fn raft_keeps_every_invariant_across_validator_set_changes() {
    // Seeds of their own: one to three changes each (adds, removals, replacements) under the
    // same faults.
    const RECONFIGURATION_SEEDS: u64 = 80;
    let (total, violations) = run_seeds(&seeds_from(50_000, RECONFIGURATION_SEEDS), |seed| {
        run_raft(
            RunConfig::for_seed(seed)
                .with_floods()
                .with_reconfiguration(ConsensusKind::Raft),
        )
    });
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
    if std::env::var_os("SIM_SEED").is_none() {
        assert!(
            total.handovers > RECONFIGURATION_SEEDS,
            "set changes taken over: {total:?}"
        );
        assert!(total.crashes > 0 && total.partitions > 0 && total.syncs > 0);
    }
}

#[test]
fn a_reconfigured_seed_replays_exactly() {
    let run = || run_raft(RunConfig::for_seed(7).with_reconfiguration(ConsensusKind::Raft));
    let a = run();
    assert_eq!(a, run());
    assert!(a.as_ref().is_ok_and(|r| r.handovers > 0), "{a:?}");
}

#[test]
fn a_seed_replays_exactly() {
    let a = run_raft(RunConfig::for_seed(42));
    let b = run_raft(RunConfig::for_seed(42));
    assert_eq!(a, b);
    assert_ne!(
        run_raft(RunConfig::for_seed(43)),
        a,
        "different seeds, different runs"
    );
}

#[test]
fn the_checkers_catch_a_planted_double_vote() {
    // A Raft that grants a second vote in a term it already voted in: two leaders in one term
    // must be reported within a bounded number of seeds.
    let found = (0..200).find_map(|seed| {
        let mut cfg = RunConfig::for_seed(seed);
        cfg.knobs.raft_vote_twice = true;
        run_raft(cfg).err()
    });
    let v = found.expect("no violation found in 200 seeds with a planted double vote");
    assert!(
        v.what.contains("election safety") || v.what.contains("agreement"),
        "unexpected violation: {v}"
    );
    eprintln!("planted bug caught: {v}");
}
