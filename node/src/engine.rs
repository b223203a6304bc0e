//! The consensus engine the genesis chose, and its durable state in the store's `consensus`
//! column family.
//!
//! Layout (keys): Raft keeps `raft/hard` (term, vote, snapshot point) and one key per log
//! entry, `raft/e/<index, big-endian>`, so an append writes only the new entries. PBFT keeps
//! `pbft/safety`, `pbft/stable`, `pbft/checkpoint` and one key per prepared certificate,
//! `pbft/p/<seq, big-endian>`. The persist ops of one engine step are written as one synced
//! batch before any later output of that step runs.

use cairn_consensus::pbft::{Pbft, PbftConfig, PbftDurable, PbftPersist};
use cairn_consensus::raft::{Entry, Raft, RaftConfig, RaftDurable, RaftPersist};
use cairn_consensus::{Input, NodeId, Output, Protocol, Status};
use cairn_crypto::{SigningKey, codec};
use cairn_ledger::{BlockStore, ConsensusConfig, ConsensusOp, Genesis, Height, StoreError};
use serde::{Deserialize, Serialize};

use crate::wire::Direct;

/// A persist op of either engine.
#[derive(Debug, Clone)]
pub enum PersistOp {
    /// Raft.
    Raft(RaftPersist),
    /// PBFT.
    Pbft(Box<PbftPersist>),
}

/// What the engine asks for, engine-independent.
pub type EngineOutput = Output<Direct, PersistOp>;

/// The running engine.
pub enum Engine {
    /// Raft.
    Raft(Box<Raft>),
    /// PBFT.
    Pbft(Box<Pbft>),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Raft(r) => r.fmt(f),
            Engine::Pbft(p) => p.fmt(f),
        }
    }
}

fn map<M, P>(
    out: Vec<Output<M, P>>,
    m: impl Fn(M) -> Direct,
    p: impl Fn(P) -> PersistOp,
    into: &mut Vec<EngineOutput>,
) {
    into.extend(out.into_iter().map(|o| match o {
        Output::Send { to, msg } => Output::Send { to, msg: m(msg) },
        Output::Broadcast { msg } => Output::Broadcast { msg: m(msg) },
        Output::Persist { op } => Output::Persist { op: p(op) },
        Output::Commit { block, certificate } => Output::Commit { block, certificate },
        Output::RequestProposal { height, round } => Output::RequestProposal { height, round },
        Output::Validate { block } => Output::Validate { block },
        Output::NotLeader { hint } => Output::NotLeader { hint },
        Output::SyncTo { peer, height } => Output::SyncTo { peer, height },
    }));
}

fn map_input<M>(input: Input<Direct>, pick: impl Fn(Direct) -> Option<M>) -> Option<Input<M>> {
    Some(match input {
        Input::Tick => Input::Tick,
        Input::Message { from, msg } => Input::Message {
            from,
            msg: pick(msg)?,
        },
        Input::Propose { block } => Input::Propose { block },
        Input::Validated { block_hash, valid } => Input::Validated { block_hash, valid },
        Input::Synced { height, tip } => Input::Synced { height, tip },
    })
}

impl Engine {
    /// Steps the engine. A message for the other engine kind is dropped.
    pub fn step(&mut self, input: Input<Direct>, out: &mut Vec<EngineOutput>) {
        match self {
            Engine::Raft(r) => {
                let Some(input) = map_input(input, |d| match d {
                    Direct::Raft(m) => Some(m),
                    Direct::Pbft(_) => None,
                }) else {
                    return;
                };
                let mut o = Vec::new();
                r.step(input, &mut o);
                map(o, Direct::Raft, PersistOp::Raft, out);
            }
            Engine::Pbft(p) => {
                let Some(input) = map_input(input, |d| match d {
                    Direct::Pbft(m) => Some(m),
                    Direct::Raft(_) => None,
                }) else {
                    return;
                };
                let mut o = Vec::new();
                p.step(input, &mut o);
                map(o, Direct::Pbft, |op| PersistOp::Pbft(Box::new(op)), out);
            }
        }
    }

    /// Whether this node holds transactions not committed yet (PBFT runs its view-change
    /// timer only then; Raft needs no such hint).
    pub fn set_pending_work(&mut self, pending: bool) {
        if let Engine::Pbft(p) = self {
            p.set_pending_work(pending);
        }
    }

    /// Where the engine stands.
    pub fn status(&self) -> Status {
        match self {
            Engine::Raft(r) => r.status(),
            Engine::Pbft(p) => p.status(),
        }
    }
}

/// Engine timing derived from the genesis and the node's tick length.
fn ticks(ms: u64, tick_ms: u64) -> u64 {
    ms.div_ceil(tick_ms.max(1)).max(1)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RaftHard {
    term: u64,
    voted_for: Option<u32>,
    snapshot_index: u64,
    snapshot_term: u64,
    snapshot_height: Height,
}

const RAFT_HARD: &[u8] = b"raft/hard";
const RAFT_ENTRY: &[u8] = b"raft/e/";
const PBFT_SAFETY: &[u8] = b"pbft/safety";
const PBFT_STABLE: &[u8] = b"pbft/stable";
const PBFT_CHECKPOINT: &[u8] = b"pbft/checkpoint";
const PBFT_PREPARED: &[u8] = b"pbft/p/";

fn key(prefix: &[u8], n: u64) -> Vec<u8> {
    [prefix, &n.to_be_bytes()].concat()
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("consensus state: {what}"))
}

/// The engine's durable state, mirrored in memory and written through to the store.
#[derive(Debug)]
pub enum Durable {
    /// Raft.
    Raft(RaftDurable),
    /// PBFT.
    Pbft(PbftDurable),
}

impl Durable {
    /// Loads the durable state for the genesis' engine (default if the store has none).
    pub fn load(genesis: &Genesis, store: &impl BlockStore) -> Result<Durable, StoreError> {
        match genesis.consensus {
            ConsensusConfig::Raft(_) => {
                let hard: RaftHard = match store.consensus_get(RAFT_HARD)? {
                    Some(b) => codec::decode(&b)?,
                    None => RaftHard::default(),
                };
                let mut entries = Vec::new();
                for (i, (k, v)) in store.consensus_scan(RAFT_ENTRY)?.into_iter().enumerate() {
                    if k != key(RAFT_ENTRY, hard.snapshot_index + 1 + i as u64) {
                        return Err(corrupt("raft log is not contiguous"));
                    }
                    entries.push(codec::decode::<Entry>(&v)?);
                }
                Ok(Durable::Raft(RaftDurable {
                    term: hard.term,
                    voted_for: hard.voted_for,
                    snapshot_index: hard.snapshot_index,
                    snapshot_term: hard.snapshot_term,
                    snapshot_height: hard.snapshot_height,
                    entries,
                }))
            }
            ConsensusConfig::Pbft(_) => {
                let mut d = PbftDurable::default();
                if let Some(b) = store.consensus_get(PBFT_SAFETY)? {
                    d.safety = codec::decode(&b)?;
                }
                if let Some(b) = store.consensus_get(PBFT_STABLE)? {
                    d.stable = Some(codec::decode(&b)?);
                }
                if let Some(b) = store.consensus_get(PBFT_CHECKPOINT)? {
                    d.checkpoint = Some(codec::decode(&b)?);
                }
                for (_, v) in store.consensus_scan(PBFT_PREPARED)? {
                    let p: cairn_consensus::pbft::PreparedProof = codec::decode(&v)?;
                    d.prepared.insert(p.pre_prepare.body.seq, p);
                }
                Ok(Durable::Pbft(d))
            }
        }
    }

    /// Builds the engine from this state and the ledger's height.
    pub fn engine(
        &self,
        genesis: &Genesis,
        key: SigningKey,
        me: NodeId,
        tick_ms: u64,
        ledger_height: Height,
    ) -> Result<Engine, StoreError> {
        match (&genesis.consensus, self) {
            (ConsensusConfig::Raft(p), Durable::Raft(d)) => {
                let min = ticks(p.election_timeout_min_ms, tick_ms).max(2);
                let cfg = RaftConfig {
                    chain_id: genesis.chain_id.clone(),
                    validators: genesis.validator_set(),
                    me,
                    election_ticks_min: min,
                    election_ticks_max: ticks(p.election_timeout_max_ms, tick_ms).max(min + 1),
                    heartbeat_ticks: ticks(p.heartbeat_interval_ms, tick_ms),
                    max_entries_per_message: 3,
                    compact_after: 32,
                    // Only spreads election timeouts between nodes: the time is a fine seed.
                    seed: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(0),
                    planted_bug_vote_twice: false,
                };
                Ok(Engine::Raft(Box::new(Raft::restore(
                    cfg,
                    key,
                    d,
                    ledger_height,
                ))))
            }
            (ConsensusConfig::Pbft(p), Durable::Pbft(d)) => {
                let cfg = PbftConfig {
                    chain_id: genesis.chain_id.clone(),
                    validators: genesis.validator_set(),
                    me,
                    checkpoint_interval: p.checkpoint_interval,
                    view_change_ticks: ticks(p.view_change_timeout_ms, tick_ms),
                    retransmit_ticks: ticks(p.view_change_timeout_ms / 4, tick_ms),
                    planted_bug_small_quorum: false,
                };
                Ok(Engine::Pbft(Box::new(Pbft::restore(
                    cfg,
                    key,
                    d,
                    ledger_height,
                ))))
            }
            _ => Err(corrupt("stored state belongs to the other engine")),
        }
    }

    /// Applies one op to the mirror and appends the store writes it needs to `writes`.
    pub fn apply(&mut self, op: &PersistOp, writes: &mut Vec<ConsensusOp>) {
        match (self, op) {
            (Durable::Raft(d), PersistOp::Raft(op)) => {
                let last_before = d.snapshot_index + d.entries.len() as u64;
                let snap_before = d.snapshot_index;
                d.apply(op);
                let last_after = d.snapshot_index + d.entries.len() as u64;
                let hard = RaftHard {
                    term: d.term,
                    voted_for: d.voted_for,
                    snapshot_index: d.snapshot_index,
                    snapshot_term: d.snapshot_term,
                    snapshot_height: d.snapshot_height,
                };
                match op {
                    RaftPersist::HardState { .. } => {
                        writes.push((RAFT_HARD.to_vec(), Some(codec::encode(&hard))));
                    }
                    RaftPersist::Append { first_index, .. } => {
                        for i in *first_index..=last_before {
                            writes.push((key(RAFT_ENTRY, i), None));
                        }
                        for i in (*first_index).max(d.snapshot_index + 1)..=last_after {
                            let e = &d.entries[(i - d.snapshot_index - 1) as usize];
                            writes.push((key(RAFT_ENTRY, i), Some(codec::encode(e))));
                        }
                    }
                    RaftPersist::TruncateFrom { index } => {
                        for i in *index..=last_before {
                            writes.push((key(RAFT_ENTRY, i), None));
                        }
                    }
                    RaftPersist::Compact { .. } => {
                        for i in snap_before + 1..=d.snapshot_index.min(last_before) {
                            writes.push((key(RAFT_ENTRY, i), None));
                        }
                        writes.push((RAFT_HARD.to_vec(), Some(codec::encode(&hard))));
                    }
                }
            }
            (Durable::Pbft(d), PersistOp::Pbft(op)) => {
                let before: Vec<u64> = d.prepared.keys().copied().collect();
                d.apply(op);
                match op.as_ref() {
                    PbftPersist::Safety(s) => {
                        writes.push((PBFT_SAFETY.to_vec(), Some(codec::encode(s))));
                    }
                    PbftPersist::Prepared(p) => {
                        let seq = p.pre_prepare.body.seq;
                        if let Some(kept) = d.prepared.get(&seq) {
                            writes.push((key(PBFT_PREPARED, seq), Some(codec::encode(kept))));
                        }
                    }
                    PbftPersist::Stable(c) => {
                        for seq in before {
                            if !d.prepared.contains_key(&seq) {
                                writes.push((key(PBFT_PREPARED, seq), None));
                            }
                        }
                        writes.push((PBFT_STABLE.to_vec(), Some(codec::encode(c))));
                    }
                    PbftPersist::Checkpoint(c) => {
                        writes.push((PBFT_CHECKPOINT.to_vec(), Some(codec::encode(c))));
                    }
                }
            }
            // Ops of the other engine cannot come from this node's engine.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::MemoryStore;

    fn entry(term: u64) -> Entry {
        Entry { term, block: None }
    }

    #[test]
    fn raft_state_written_by_ops_loads_back_equal() {
        let chain =
            cairn_ledger::testkit::TestChain::new(cairn_ledger::ConsensusKind::Raft, 3, 1, 1);
        let mut store = MemoryStore::new();
        let mut d = Durable::load(&chain.genesis, &store).expect("load");
        let ops = [
            RaftPersist::HardState {
                term: 2,
                voted_for: Some(1),
            },
            RaftPersist::Append {
                first_index: 1,
                entries: vec![entry(1), entry(2), entry(2)],
            },
            RaftPersist::Append {
                first_index: 3,
                entries: vec![entry(3), entry(3)],
            },
            RaftPersist::TruncateFrom { index: 4 },
            RaftPersist::Compact {
                index: 2,
                term: 2,
                height: 1,
            },
            RaftPersist::Append {
                first_index: 4,
                entries: vec![entry(4)],
            },
            RaftPersist::Compact {
                index: 6,
                term: 4,
                height: 3,
            },
            RaftPersist::Append {
                first_index: 7,
                entries: vec![entry(5), entry(5)],
            },
        ];
        for op in ops {
            let mut w = Vec::new();
            d.apply(&PersistOp::Raft(op), &mut w);
            store.consensus_write(&w).expect("write");
            let loaded = Durable::load(&chain.genesis, &store).expect("load");
            match (&loaded, &d) {
                (Durable::Raft(a), Durable::Raft(b)) => assert_eq!(a, b),
                _ => panic!("wrong engine"),
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// Any sequence of well-formed Raft ops, written through the keyed layout, loads back
        /// equal to the in-memory mirror after every step.
        #[test]
        fn raft_keyed_layout_matches_the_mirror(
            ops in proptest::collection::vec((0u8..4, 0u64..6, 1u64..4), 1..40)
        ) {
            let chain = cairn_ledger::testkit::TestChain::new(
                cairn_ledger::ConsensusKind::Raft, 3, 1, 1);
            let mut store = MemoryStore::new();
            let mut d = Durable::load(&chain.genesis, &store).expect("load");
            let mut term = 1;
            for (kind, a, b) in ops {
                let Durable::Raft(r) = &d else { unreachable!() };
                let snap = r.snapshot_index;
                let last = snap + r.entries.len() as u64;
                let op = match kind {
                    0 => { term += a; RaftPersist::HardState { term, voted_for: Some(b as u32 % 3) } }
                    // Appends continue the log or overwrite its tail, never leave a gap.
                    1 => RaftPersist::Append {
                        first_index: (snap + 1).max(last + 1 - a.min(last - snap)),
                        entries: (0..b).map(|_| entry(term)).collect(),
                    },
                    2 => RaftPersist::TruncateFrom { index: (snap + 1).max(last + 1 - a.min(last - snap)) },
                    _ => {
                        let index = snap + a.min(last - snap + 2);
                        RaftPersist::Compact { index, term, height: index }
                    }
                };
                let mut w = Vec::new();
                d.apply(&PersistOp::Raft(op), &mut w);
                store.consensus_write(&w).expect("write");
                let loaded = Durable::load(&chain.genesis, &store).expect("load");
                match (&loaded, &d) {
                    (Durable::Raft(x), Durable::Raft(y)) => proptest::prop_assert_eq!(x, y),
                    _ => proptest::prop_assert!(false, "wrong engine"),
                }
            }
        }
    }
}
