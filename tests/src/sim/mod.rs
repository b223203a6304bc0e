//! A deterministic simulator of N consensus engines over a faulty network.
//!
//! Per tick: due messages are delivered (in delivery-time order; equal times in send order),
//! then every live engine gets a `Tick`, then the fault schedule may act. Outputs are executed
//! in order like a node would: `Persist` into the node's durable state, `Commit` into its
//! ledger (a list of certified blocks that survives crashes, as RocksDB would), sends into the
//! network. A crash may cut a step's outputs at any point, so anything an engine sends before
//! persisting what it depends on is caught.
//!
//! Checkers run after every step (DESIGN §9), each in a file of its own under [`checkers`]:
//! agreement, validity, integrity (certificate and hash link; commits in height order exactly
//! once), durability (a ledger never shrinks), election safety (one leader per term) and
//! bounded state (no honest replica retains more than its engine states). After the fault
//! phase every fault heals and each node must commit new blocks within a bound (liveness).
//!
//! Faults: crashes (also in the middle of a step), restarts, partitions of four shapes, loss,
//! duplication, delay, replay floods, and up to f Byzantine PBFT validators ([`adversary`]);
//! the report measures how long restarted replicas take to rejoin the others' round.
//!
//! Validator-set changes ([`RunConfig::with_reconfiguration`]): spare nodes follow the chain as
//! observers; at a boundary height where the set changes, the block announces the new list,
//! and a node that commits it replaces its engine with a fresh instance of the new set
//! (durable state reset with `DurableState::starting_at`), dropping whatever the old instance
//! still had to do, as the node does. Messages carry their sender's set (its base height): a
//! receiver behind it syncs to it, one ahead drops it. Nothing above an uncommitted boundary
//! is built or found valid (the handover gate).

mod adversary;
mod app;
mod checkers;
mod config;
mod engines;
mod network;

use std::collections::{BTreeMap, VecDeque};

use cairn_consensus::pbft::Pbft;
use cairn_consensus::raft::Raft;
use cairn_consensus::{DetRng, DurableState, Input, Output, Protocol};
use cairn_ledger::ConsensusWrite;
use cairn_ledger::{Block, BlockHash, CommitCertificate, ConsensusKind, Height};

pub use adversary::{Adversary, Behaviour};
use checkers::agreement::Agreement;
use checkers::certified::Certified;
use checkers::election::Election;
use checkers::{bounds, durability, liveness};
pub use config::{
    Knobs, Outage, Peak, Rejoins, RunConfig, RunReport, Violation, run_seeds, seeds, seeds_from,
};
pub use engines::{Cluster, EPOCH_LENGTH, Epoch, PBFT_CHECKPOINT_INTERVAL, SimEngine};
use network::{Envelope, Links, Partition};

/// One engine instance and what it keeps on "disk".
struct Instance<E: SimEngine> {
    engine: Option<E>,
    /// The consensus column family, as the node lays it out (`DurableState::writes`).
    keys: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The same state built by `DurableState::apply`: what `load` must give back.
    model: E::Durable,
    /// The instance's ledger: certified blocks, height i+1 at position i.
    chain: Vec<(Block, CommitCertificate)>,
    /// Blocks it built on top of its ledger that are not committed yet, in height order, as a
    /// pipelining leader's node keeps them (lost in a crash).
    ahead: Vec<Block>,
    /// Blocks above its ledger it found valid, by hash: a pipelined block is validated on
    /// top of them, as a node executes it on their executions (pruned as the ledger grows;
    /// lost in a crash).
    validated: BTreeMap<BlockHash, Block>,
    restarts: u64,
    /// Running (not crashed). A running node outside the validator set has no engine: it
    /// follows the chain as an observer.
    up: bool,
    /// Bumped when the instance's engine is replaced for a new validator set: outputs of
    /// the replaced engine still queued are dropped.
    generation: u64,
}

struct Node<E: SimEngine> {
    /// Instance 0 is the node; a Byzantine twin has a second instance with the same key.
    instances: Vec<Instance<E>>,
    byzantine: Option<Behaviour>,
    /// What the node sent, for replay attacks.
    history: Vec<E::Message>,
}

/// The simulator.
pub struct Sim<E: SimEngine> {
    cfg: RunConfig,
    cluster: Cluster,
    rng: DetRng,
    nodes: Vec<Node<E>>,
    net: BTreeMap<(u64, u64), Envelope<E::Message>>,
    seq: u64,
    now: u64,
    links: Links<E::Message>,
    agreement: Agreement,
    certified: Certified,
    /// A certificate violation found while a message went on the wire, reported after the
    /// step that sent it.
    broken_certificates: Option<String>,
    election: Election,
    /// Restarted honest nodes not yet back in the others' round, with their restart tick.
    rejoining: BTreeMap<usize, u64>,
    report: RunReport,
    faults_on: bool,
}

type Step<E> = Vec<Output<<E as Protocol>::Message, <E as Protocol>::PersistOp>>;

impl<E: SimEngine> Sim<E> {
    /// A cluster at genesis.
    pub fn new(cfg: RunConfig, kind: ConsensusKind) -> Self {
        let cluster = Cluster::with_changes(kind, cfg.nodes, cfg.spares, &cfg.changes);
        let mut rng = DetRng::new(cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
        let genesis = cluster.epoch_at(1);
        let nodes = (0..cfg.nodes + cfg.spares)
            .map(|i| {
                let byzantine = cfg.byzantine.iter().find(|(j, _)| *j == i).map(|(_, b)| *b);
                let copies = if byzantine == Some(Behaviour::Twin) {
                    2
                } else {
                    1
                };
                let instances = (0..copies)
                    .map(|_| {
                        let model = E::Durable::default();
                        Instance {
                            engine: genesis.id_of(i).map(|me| {
                                E::restore(
                                    E::config(&cluster, &genesis, me, rng.next_u64(), &cfg.knobs),
                                    cluster.keys[i].clone(),
                                    &model,
                                    0,
                                )
                            }),
                            keys: BTreeMap::new(),
                            model,
                            chain: Vec::new(),
                            ahead: Vec::new(),
                            validated: BTreeMap::new(),
                            restarts: 0,
                            up: true,
                            generation: 0,
                        }
                    })
                    .collect();
                Node {
                    instances,
                    byzantine,
                    history: Vec::new(),
                }
            })
            .collect();
        let mut links = Links::new(&mut rng);
        if cfg.quiet {
            links.drop_p = 0.0;
            links.dup_p = 0.0;
        }
        Sim {
            cfg,
            cluster,
            rng,
            nodes,
            net: BTreeMap::new(),
            seq: 0,
            now: 0,
            links,
            agreement: Agreement::default(),
            certified: Certified::default(),
            broken_certificates: None,
            election: Election::default(),
            rejoining: BTreeMap::new(),
            report: RunReport::default(),
            faults_on: true,
        }
    }

    fn violation(&self, what: String) -> Violation {
        Violation {
            seed: self.cfg.seed,
            tick: self.now,
            what,
        }
    }

    fn honest(&self, i: usize) -> bool {
        self.nodes[i].byzantine.is_none()
    }

    fn chain_len(&self, i: usize) -> Height {
        self.nodes[i].instances[0].chain.len() as Height
    }

    /// Whether the handover gate keeps a block at `height` from being built or found valid on
    /// a ledger at `tip` (a set change lies between them, not committed yet).
    fn gated(&self, tip: Height, height: Height) -> bool {
        !self.cfg.knobs.no_handover_gate && self.cluster.handover_between(tip, height)
    }

    /// The validator set instance `(i, k)` works in: the one in force for its next block.
    fn epoch_of(&self, i: usize, k: usize) -> Epoch {
        self.cluster
            .epoch_at(self.nodes[i].instances[k].chain.len() as Height + 1)
    }

    /// Runs the fault phase, heals, and checks liveness.
    pub fn run(mut self) -> Result<RunReport, Violation> {
        for _ in 0..self.cfg.fault_ticks {
            self.tick()?;
            self.maybe_fault()?;
        }
        self.heal()?;
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.honest(i)).collect();
        let start = honest.iter().map(|&i| self.chain_len(i)).max().unwrap_or(0);
        let target = start + self.cfg.liveness_blocks;
        for _ in 0..self.cfg.liveness_ticks {
            self.tick()?;
            let heights: Vec<Height> = honest.iter().map(|&i| self.chain_len(i)).collect();
            if liveness::check(&honest, &heights, target, self.cfg.liveness_ticks).is_ok() {
                self.report.height = target;
                self.report.max_round = honest
                    .iter()
                    .filter_map(|&i| self.nodes[i].instances[0].engine.as_ref())
                    .map(|e| e.status().round)
                    .max()
                    .unwrap_or(0);
                self.report.byzantine = self.cfg.byzantine.iter().map(|(_, b)| *b).collect();
                return Ok(self.report);
            }
        }
        let heights: Vec<Height> = honest.iter().map(|&i| self.chain_len(i)).collect();
        let what = liveness::check(&honest, &heights, target, self.cfg.liveness_ticks)
            .err()
            .unwrap_or_default();
        Err(self.violation(what))
    }

    /// Runs without faults until every node has committed `blocks` blocks; returns the ticks
    /// it took. For benchmarks of the engines alone.
    pub fn run_clean(mut self, blocks: Height) -> Result<u64, Violation> {
        self.faults_on = false;
        while (0..self.nodes.len()).any(|i| self.honest(i) && self.chain_len(i) < blocks) {
            if self.now > 1_000 + blocks * 100 {
                return Err(self.violation(format!("no progress: {blocks} blocks not reached")));
            }
            self.tick()?;
        }
        Ok(self.now)
    }

    fn tick(&mut self) -> Result<(), Violation> {
        self.now += 1;
        if self.now.is_multiple_of(100) && std::env::var_os("SIM_TRACE").is_some() {
            let states: Vec<String> = self
                .nodes
                .iter()
                .map(|n| match &n.instances[0].engine {
                    Some(e) => {
                        let s = e.status();
                        format!(
                            "{:?}/r{}/h{}/l{:?}",
                            s.role,
                            s.round,
                            s.commit_height,
                            s.leader.map(|l| l.0)
                        )
                    }
                    None => "down".into(),
                })
                .collect();
            eprintln!(
                "t{} faults={} {:?} {}",
                self.now,
                self.faults_on,
                self.links.partition,
                states.join(" ")
            );
        }
        while let Some((&(at, seq), _)) = self.net.first_key_value() {
            if at > self.now {
                break;
            }
            let Some(env) = self.net.remove(&(at, seq)) else {
                break;
            };
            for k in 0..self.nodes[env.to].instances.len() {
                self.deliver(env.to, k, env.from, env.epoch, env.msg.clone())?;
            }
        }
        for i in 0..self.nodes.len() {
            for k in 0..self.nodes[i].instances.len() {
                let inst = &self.nodes[i].instances[k];
                if inst.up && inst.engine.is_none() {
                    // An observer follows the chain.
                    self.follow(i, k)?;
                }
                self.input(i, k, Input::Tick { pending_work: true })?;
            }
        }
        Ok(())
    }

    /// A message of the set above `epoch` from node `from` reaches instance `(i, k)`: fed to
    /// its engine if both are in that set; if the sender's set is a later one, the receiver
    /// lacks the block that started it and syncs to it; an earlier set's message is dropped.
    fn deliver(
        &mut self,
        i: usize,
        k: usize,
        from: usize,
        epoch: Height,
        msg: E::Message,
    ) -> Result<(), Violation> {
        if !self.nodes[i].instances[k].up {
            return Ok(());
        }
        let mine = self.epoch_of(i, k);
        if epoch > mine.base {
            return self.sync(i, k, from, epoch);
        }
        if epoch < mine.base {
            // The sender is behind: it hears where this set starts (a node answers an old
            // set's message with its tip) and syncs to it.
            for s in 0..self.nodes[from].instances.len() {
                if self.nodes[from].instances[s].up && self.epoch_of(from, s).base < mine.base {
                    self.sync(from, s, i, mine.base)?;
                }
            }
            return Ok(());
        }
        let Some(from) = mine.id_of(from) else {
            return Ok(());
        };
        self.input(i, k, Input::Message { from, msg })
    }

    /// Steps instance `k` of node `i` with `input`, executes its outputs (and the inputs they
    /// lead to), and checks the invariants after each step.
    fn input(&mut self, i: usize, k: usize, input: Input<E::Message>) -> Result<(), Violation> {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let generation = self.nodes[i].instances[k].generation;
            let Some(engine) = self.nodes[i].instances[k].engine.as_mut() else {
                return Ok(());
            };
            let mut out: Step<E> = Vec::new();
            engine.step(input, &mut out);
            // A crash may tear the step: only a prefix of its outputs is executed.
            let cut = if self.faults_on && !self.cfg.quiet && self.rng.chance(0.002) {
                self.report.torn_steps += 1;
                Some(self.rng.range(0, out.len() as u64 + 1) as usize)
            } else {
                None
            };
            for (n, o) in out.into_iter().enumerate() {
                if cut == Some(n) {
                    break;
                }
                self.execute(i, k, o, &mut queue)?;
                if self.nodes[i].instances[k].generation != generation {
                    // A new validator set's engine took over: the rest was the old one's.
                    queue.clear();
                    break;
                }
            }
            if let Some(w) = self.broken_certificates.take() {
                return Err(self.violation(w));
            }
            if cut.is_some() {
                self.crash(i);
                return Ok(());
            }
            if k == 0 && self.honest(i) {
                self.check_step(i)?;
            }
        }
        Ok(())
    }

    fn execute(
        &mut self,
        i: usize,
        k: usize,
        o: Output<E::Message, E::PersistOp>,
        queue: &mut VecDeque<Input<E::Message>>,
    ) -> Result<(), Violation> {
        match o {
            Output::Send { to, msg } => {
                let epoch = self.epoch_of(i, k);
                if let Some(to) = epoch.node(to) {
                    self.send(i, to, msg, &epoch);
                }
            }
            Output::Broadcast { msg } => {
                let epoch = self.epoch_of(i, k);
                for &to in &epoch.members {
                    if to != i {
                        self.send(i, to, msg.clone(), &epoch);
                    }
                }
            }
            Output::Persist { op } => {
                let inst = &mut self.nodes[i].instances[k];
                inst.model.apply(&op);
                let mut writes = Vec::new();
                E::Durable::writes(&op, &mut writes);
                write_keys(&mut inst.keys, writes);
            }
            Output::Commit { block, certificate } => self.commit(i, k, block, certificate)?,
            Output::RequestProposal { height, round } => {
                // Blocks built at or above the height asked for lost (a new term): the next
                // one goes on the ledger or on those below it.
                let inst = &mut self.nodes[i].instances[k];
                inst.ahead.retain(|b| b.header.height < height);
                let tip = inst.chain.len() as Height;
                // The handover gate: nothing is built above an uncommitted set change.
                if height == tip + inst.ahead.len() as Height + 1 && !self.gated(tip, height) {
                    let block = self.build_block(i, k, round);
                    self.nodes[i].instances[k].ahead.push(block.clone());
                    queue.push_back(Input::Propose {
                        block: Box::new(block),
                    });
                }
            }
            Output::Validate { block } => {
                let valid = self.valid_at(i, k, &block).is_ok();
                if valid {
                    self.remember_valid(i, k, &block);
                }
                queue.push_back(Input::Validated {
                    block_hash: block.hash(),
                    valid,
                });
            }
            Output::NotLeader { .. } => {}
            Output::SyncTo { peer, height } => {
                let peer = self.epoch_of(i, k).node(peer).unwrap_or(i);
                self.sync(i, k, peer, height)?;
                let tip = self.tip(i, k);
                queue.push_back(Input::Synced {
                    height: tip.height,
                    tip: tip.hash,
                });
            }
        }
        Ok(())
    }

    /// The checks after each step of honest node `i`: election safety, bounded state, and
    /// whether a restarted node is back in the round the others are in.
    fn check_step(&mut self, i: usize) -> Result<(), Violation> {
        let Some(e) = &self.nodes[i].instances[0].engine else {
            return Ok(());
        };
        let (status, held) = (e.status(), e.footprint());
        let base = self.epoch_of(i, 0).base;
        self.election
            .check(i, base, &status)
            .and_then(|()| bounds::check(i, &held, &mut self.report.peak))
            .map_err(|w| self.violation(w))?;
        if let Some(&since) = self.rejoining.get(&i)
            && status.leader.is_some()
            && self.in_quorum_round(i, status.round)
        {
            self.rejoining.remove(&i);
            self.report.rejoins.record(self.now - since);
        }
        Ok(())
    }

    /// Whether a majority of the live honest nodes other than `i` know a leader in `round`.
    fn in_quorum_round(&self, i: usize, round: u64) -> bool {
        let base = self.epoch_of(i, 0).base;
        let others: Vec<_> = (0..self.nodes.len())
            .filter(|&j| j != i && self.honest(j) && self.epoch_of(j, 0).base == base)
            .filter_map(|j| self.nodes[j].instances[0].engine.as_ref())
            .map(|e| e.status())
            .collect();
        let same = others
            .iter()
            .filter(|s| s.leader.is_some() && s.round == round)
            .count();
        !others.is_empty() && 2 * same > others.len()
    }

    fn crash(&mut self, i: usize) {
        let mut any = false;
        for inst in &mut self.nodes[i].instances {
            inst.ahead.clear();
            inst.validated.clear();
            inst.engine = None;
            any |= std::mem::replace(&mut inst.up, false);
        }
        self.rejoining.remove(&i);
        if any {
            self.report.crashes += 1;
        }
    }

    /// Restarts node `i` from its durable state and ledger. Durability (DESIGN §9.3): an
    /// honest engine resumes at exactly the height its own ledger holds.
    fn restart(&mut self, i: usize) -> Result<(), Violation> {
        for k in 0..self.nodes[i].instances.len() {
            let inst = &mut self.nodes[i].instances[k];
            if inst.up {
                continue;
            }
            inst.up = true;
            inst.restarts += 1;
            let seed = self.cfg.seed ^ (inst.restarts << 40) ^ (k as u64) << 20 ^ i as u64;
            // Restart from the keys, as a node reads its store: they must give back exactly
            // the state the persisted ops built.
            let entries: Vec<(Vec<u8>, Vec<u8>)> = inst
                .keys
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let loaded = E::Durable::load(&entries);
            let durable =
                durability::layout(i, loaded, &inst.model).map_err(|w| self.violation(w))?;
            let epoch = self.epoch_of(i, k);
            let inst = &mut self.nodes[i].instances[k];
            let Some(me) = epoch.id_of(i) else {
                // Not a validator of the set in force: an observer.
                continue;
            };
            let engine = E::restore(
                E::config(&self.cluster, &epoch, me, seed, &self.cfg.knobs),
                self.cluster.keys[i].clone(),
                &durable,
                inst.chain.len() as Height,
            );
            let (resumed, held) = (engine.status().commit_height, inst.chain.len() as Height);
            inst.engine = Some(engine);
            if k == 0 && self.honest(i) {
                durability::resume(i, resumed, held).map_err(|w| self.violation(w))?;
                self.rejoining.insert(i, self.now);
            }
        }
        Ok(())
    }

    fn heal(&mut self) -> Result<(), Violation> {
        self.faults_on = false;
        self.links.partition = Partition::None;
        for i in 0..self.nodes.len() {
            self.restart(i)?;
        }
        Ok(())
    }
}

/// Applies consensus writes to a key map, as a store does.
fn write_keys(keys: &mut BTreeMap<Vec<u8>, Vec<u8>>, writes: Vec<ConsensusWrite>) {
    for w in writes {
        match w {
            ConsensusWrite::Put { key, value } => {
                keys.insert(key, value);
            }
            ConsensusWrite::Delete { key } => {
                keys.remove(&key);
            }
            ConsensusWrite::DeleteRange { from, to } => {
                keys.retain(|k, _| *k < from || *k >= to);
            }
        }
    }
}

/// Runs one Raft seed.
pub fn run_raft(cfg: RunConfig) -> Result<RunReport, Violation> {
    Sim::<Raft>::new(cfg, ConsensusKind::Raft).run()
}

/// Runs one PBFT seed.
pub fn run_pbft(cfg: RunConfig) -> Result<RunReport, Violation> {
    Sim::<Pbft>::new(cfg, ConsensusKind::Pbft).run()
}
