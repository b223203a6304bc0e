//! A run's parameters (all derived from its seed), what it reports, and how seeds are chosen.

use cairn_consensus::DetRng;
use cairn_ledger::Height;

use super::adversary::Behaviour;

/// Engine settings a run may vary, and test-only switches: planted bugs that prove the
/// checkers can fail.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// Raft: most blocks a leader keeps in flight (pipelining); 3 unless a run says otherwise.
    pub blocks_in_flight: usize,
    /// Raft: grant votes without regard to an earlier vote in the same term.
    pub raft_vote_twice: bool,
    /// PBFT: quorums of f+1 instead of 2f+1.
    pub pbft_small_quorum: bool,
    /// PBFT: checkpoint votes kept for any future sequence number (an unbounded map).
    pub pbft_unbounded_checkpoints: bool,
    /// Validator-set changes without the handover gate: blocks are built and found valid
    /// above an uncommitted set change, so the old set's instance can order them too.
    pub no_handover_gate: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            blocks_in_flight: 3,
            raft_vote_twice: false,
            pbft_small_quorum: false,
            pbft_unbounded_checkpoints: false,
            no_handover_gate: false,
        }
    }
}

/// One run's parameters, all derived from the seed.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Seed.
    pub seed: u64,
    /// Validators.
    pub nodes: usize,
    /// Ticks with faults on.
    pub fault_ticks: u64,
    /// Ticks allowed, after healing, for every node to commit `liveness_blocks` new blocks.
    pub liveness_ticks: u64,
    /// New blocks every node must commit after healing.
    pub liveness_blocks: u64,
    /// Planted bugs.
    pub knobs: Knobs,
    /// Byzantine validators and how they behave (PBFT runs; at most f).
    pub byzantine: Vec<(usize, Behaviour)>,
    /// Check every commit's certificate (integrity). Off only to show that the agreement
    /// checker alone catches a planted quorum bug.
    pub check_certificates: bool,
    /// Replay floods: now and then the network delivers a few hundred recently sent messages
    /// again.
    pub replay_floods: bool,
    /// No random faults (no loss, duplication, partitions, crashes or torn steps): only the
    /// outages in `plan`. For scenarios that measure one thing.
    pub quiet: bool,
    /// Planned outages (with `quiet`).
    pub plan: Vec<Outage>,
    /// Nodes beyond the genesis validators (indices `nodes..nodes + spares`): observers
    /// that validator-set changes may add.
    pub spares: usize,
    /// Validator-set changes: at each boundary height, the members (node indices, in order)
    /// in force after it. Ascending boundaries, multiples of [`super::EPOCH_LENGTH`].
    pub changes: Vec<(Height, Vec<usize>)>,
}

/// A planned crash and restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// The node.
    pub node: usize,
    /// The tick it crashes.
    pub at: u64,
    /// How many ticks it stays down.
    pub ticks: u64,
}

impl RunConfig {
    /// Raft defaults for a seed: 3 or 5 validators, 1,500 fault ticks, 1,000 liveness ticks.
    pub fn for_seed(seed: u64) -> RunConfig {
        let mut r = DetRng::new(seed);
        RunConfig {
            seed,
            nodes: if r.chance(0.5) { 3 } else { 5 },
            fault_ticks: 1_500,
            liveness_ticks: 1_000,
            liveness_blocks: 3,
            knobs: Knobs::default(),
            byzantine: Vec::new(),
            check_certificates: true,
            replay_floods: false,
            quiet: false,
            plan: Vec::new(),
            spares: 0,
            changes: Vec::new(),
        }
    }

    /// PBFT defaults for a seed: 4 or 7 validators, up to f of them Byzantine with a random
    /// behaviour each, 1,500 fault ticks, 3,000 liveness ticks (view changes back off).
    pub fn pbft_for_seed(seed: u64) -> RunConfig {
        let mut r = DetRng::new(seed ^ 0xb1f7);
        let nodes = if r.chance(0.75) { 4 } else { 7 };
        let f = (nodes - 1) / 3;
        let count = r.range(0, f as u64 + 1) as usize;
        let mut byzantine = Vec::new();
        while byzantine.len() < count {
            let i = r.range(0, nodes as u64) as usize;
            if byzantine.iter().all(|(j, _)| *j != i) {
                let b = Behaviour::ALL[r.range(0, Behaviour::CLASSIC as u64) as usize];
                byzantine.push((i, b));
            }
        }
        RunConfig {
            seed,
            nodes,
            fault_ticks: 1_500,
            liveness_ticks: 3_000,
            liveness_blocks: 3,
            knobs: Knobs::default(),
            byzantine,
            check_certificates: true,
            replay_floods: false,
            quiet: false,
            plan: Vec::new(),
            spares: 0,
            changes: Vec::new(),
        }
    }

    /// The same run with validator-set changes: two spare nodes, and one to three changes at
    /// epoch boundaries within the first few dozen blocks, each adding a node, removing a
    /// member or replacing one (a key rotation), never leaving more Byzantine members than the
    /// new set tolerates, a PBFT set below 4 or a Raft set below 3. Drawn from a stream of its
    /// own.
    pub fn with_reconfiguration(mut self, kind: cairn_ledger::ConsensusKind) -> RunConfig {
        let mut r = DetRng::new(self.seed ^ 0x5e7c_4a9e);
        self.spares = 2;
        let total = self.nodes + self.spares;
        let byzantine: Vec<usize> = self.byzantine.iter().map(|(i, _)| *i).collect();
        let pbft = kind == cairn_ledger::ConsensusKind::Pbft;
        let allowed = |members: &[usize]| {
            let n = members.len();
            let bad = members.iter().filter(|m| byzantine.contains(m)).count();
            if pbft {
                n >= 4 && bad <= (n - 1) / 3
            } else {
                // A one-validator Raft commits every block it proposes within the step that
                // proposes it: the simulator, which builds whenever asked, would never leave
                // that step. Production sets are three or more anyway.
                n >= 3
            }
        };
        let mut members: Vec<usize> = (0..self.nodes).collect();
        let mut at = 0;
        for _ in 0..r.range(1, 4) {
            at += super::EPOCH_LENGTH * r.range(1, 5);
            let outside: Vec<usize> = (0..total).filter(|i| !members.contains(i)).collect();
            // A few tries for a change the fault model allows.
            for _ in 0..8 {
                let mut next = members.clone();
                let pick =
                    |r: &mut DetRng, from: &[usize]| from[r.range(0, from.len() as u64) as usize];
                match r.range(0, 3) {
                    0 if !outside.is_empty() => next.push(pick(&mut r, &outside)),
                    1 => {
                        let j = r.range(0, next.len() as u64) as usize;
                        next.remove(j);
                    }
                    2 if !outside.is_empty() => {
                        let j = r.range(0, next.len() as u64) as usize;
                        next[j] = pick(&mut r, &outside);
                    }
                    _ => continue,
                }
                if allowed(&next) {
                    members = next;
                    self.changes.push((at, members.clone()));
                    break;
                }
            }
        }
        self
    }

    /// The same run with every flood on: replay floods in the network and, for each Byzantine
    /// validator, a chance of a flooding behaviour instead (far-future views or checkpoints,
    /// votes beyond the watermark, duplicates, garbage), so every behaviour is equally likely.
    /// Drawn from a stream of its own: the rest of the seed's run is drawn as before.
    pub fn with_floods(mut self) -> RunConfig {
        let mut r = DetRng::new(self.seed ^ 0xf100d);
        self.replay_floods = true;
        for (_, b) in &mut self.byzantine {
            let i = r.range(0, Behaviour::ALL.len() as u64) as usize;
            if i >= Behaviour::CLASSIC {
                *b = Behaviour::ALL[i];
            }
        }
        self
    }
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The seed that reproduces it.
    pub seed: u64,
    /// When.
    pub tick: u64,
    /// What.
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} tick {}: {} (replay: SIM_SEED={})",
            self.seed, self.tick, self.what, self.seed
        )
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Blocks committed (highest height any node reached).
    pub height: Height,
    /// Faults injected: crashes, partitions, dropped and duplicated messages.
    pub crashes: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Messages dropped by the network.
    pub dropped: u64,
    /// Messages duplicated by the network.
    pub duplicated: u64,
    /// Crashes that cut a step's outputs short.
    pub torn_steps: u64,
    /// Catch-ups by block sync.
    pub syncs: u64,
    /// Highest term or view an honest node reached.
    pub max_round: u64,
    /// Byzantine validators in the run.
    pub byzantine: Vec<Behaviour>,
    /// Old messages the network delivered again in replay floods.
    pub replayed: u64,
    /// The largest footprint any honest replica had (messages, entries), with its bound then.
    pub peak: Peak,
    /// Restarted replicas that rejoined the others' round, and the ticks that took.
    pub rejoins: Rejoins,
    /// Engines of honest nodes replaced for a new validator set (member or not).
    pub handovers: u64,
}

/// The largest footprint seen, against the bound in force at that moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peak {
    /// Most messages retained, and the bound then.
    pub messages: (usize, usize),
    /// Most entries retained, and the bound then.
    pub entries: (usize, usize),
}

impl Peak {
    /// Keeps the larger of each.
    pub fn absorb(&mut self, other: Peak) {
        if other.messages.0 > self.messages.0 {
            self.messages = other.messages;
        }
        if other.entries.0 > self.entries.0 {
            self.entries = other.entries;
        }
    }
}

impl std::fmt::Display for Peak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peak retained messages {} (bound {}) entries {} (bound {})",
            self.messages.0, self.messages.1, self.entries.0, self.entries.1
        )
    }
}

/// How long restarted replicas took to work in the same round as the others again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejoins {
    /// Rejoins measured.
    pub count: u64,
    /// Their ticks, added up.
    pub total_ticks: u64,
    /// The longest.
    pub max_ticks: u64,
}

impl Rejoins {
    /// Records one rejoin.
    pub fn record(&mut self, ticks: u64) {
        self.count += 1;
        self.total_ticks += ticks;
        self.max_ticks = self.max_ticks.max(ticks);
    }

    /// The mean, in ticks.
    pub fn mean_ticks(&self) -> u64 {
        self.total_ticks / self.count.max(1)
    }

    /// Adds another run's.
    pub fn absorb(&mut self, other: Rejoins) {
        self.count += other.count;
        self.total_ticks += other.total_ticks;
        self.max_ticks = self.max_ticks.max(other.max_ticks);
    }
}

/// The seeds to run: the one in `SIM_SEED` (a replay), or `0..count`.
pub fn seeds(count: u64) -> Vec<u64> {
    seeds_from(0, count)
}

/// The seeds to run: the one in `SIM_SEED` (a replay), or `start..start + count`.
pub fn seeds_from(start: u64, count: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (start..start + count).collect(),
    }
}

/// Runs every seed, adding up the reports of the clean runs; returns the totals and the
/// violations found (as text).
pub fn run_seeds(
    seeds: &[u64],
    run: impl Fn(u64) -> Result<RunReport, Violation>,
) -> (RunReport, Vec<String>) {
    let mut total = RunReport::default();
    let mut violations = Vec::new();
    for &seed in seeds {
        match run(seed) {
            Ok(r) => total.absorb(r),
            Err(v) => violations.push(v.to_string()),
        }
    }
    (total, violations)
}

impl RunReport {
    /// Adds another run's counts to these totals (the highest round is the maximum).
    pub fn absorb(&mut self, r: RunReport) {
        self.height += r.height;
        self.crashes += r.crashes;
        self.partitions += r.partitions;
        self.dropped += r.dropped;
        self.duplicated += r.duplicated;
        self.torn_steps += r.torn_steps;
        self.syncs += r.syncs;
        self.handovers += r.handovers;
        self.max_round = self.max_round.max(r.max_round);
        self.byzantine.extend(r.byzantine);
        self.replayed += r.replayed;
        self.peak.absorb(r.peak);
        self.rejoins.absorb(r.rejoins);
    }
}

impl std::fmt::Display for Rejoins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rejoins {} mean {} max {} ticks",
            self.count,
            self.mean_ticks(),
            self.max_ticks
        )
    }
}
