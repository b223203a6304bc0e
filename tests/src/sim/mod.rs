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

mod adversary;
mod app;
mod checkers;
mod config;
mod engines;
mod network;

use std::collections::{BTreeMap, VecDeque};

use cairn_consensus::pbft::Pbft;
use cairn_consensus::raft::Raft;
use cairn_consensus::{DetRng, DurableState, Input, NodeId, Output, Protocol};
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
pub use engines::{Cluster, PBFT_CHECKPOINT_INTERVAL, SimEngine};
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
        let cluster = Cluster::new(kind, cfg.nodes);
        let mut rng = DetRng::new(cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
        let nodes = (0..cfg.nodes)
            .map(|i| {
                let byzantine = cfg.byzantine.iter().find(|(j, _)| *j == i).map(|(_, b)| *b);
                let copies = if byzantine == Some(Behaviour::Twin) {
                    2
                } else {
                    1
                };
                let instances = (0..copies)
                    .map(|_| {
                        let me = NodeId(i as u32);
                        let model = E::Durable::default();
                        Instance {
                            engine: Some(E::restore(
                                E::config(&cluster, me, rng.next_u64(), &cfg.knobs),
                                cluster.keys[i].clone(),
                                &model,
                                0,
                            )),
                            keys: BTreeMap::new(),
                            model,
                            chain: Vec::new(),
                            ahead: Vec::new(),
                            validated: BTreeMap::new(),
                            restarts: 0,
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
                self.input(
                    env.to,
                    k,
                    Input::Message {
                        from: NodeId(env.from as u32),
                        msg: env.msg.clone(),
                    },
                )?;
            }
        }
        for i in 0..self.nodes.len() {
            for k in 0..self.nodes[i].instances.len() {
                self.input(i, k, Input::Tick { pending_work: true })?;
            }
        }
        Ok(())
    }

    /// Steps instance `k` of node `i` with `input`, executes its outputs (and the inputs they
    /// lead to), and checks the invariants after each step.
    fn input(&mut self, i: usize, k: usize, input: Input<E::Message>) -> Result<(), Violation> {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
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
            Output::Send { to, msg } => self.send(i, to.index(), msg),
            Output::Broadcast { msg } => {
                for to in 0..self.nodes.len() {
                    if to != i {
                        self.send(i, to, msg.clone());
                    }
                }
            }
            Output::Persist { op } => {
                let inst = &mut self.nodes[i].instances[k];
                inst.model.apply(&op);
                let mut writes = Vec::new();
                E::Durable::writes(&op, &mut writes);
                for w in writes {
                    match w {
                        ConsensusWrite::Put { key, value } => {
                            inst.keys.insert(key, value);
                        }
                        ConsensusWrite::Delete { key } => {
                            inst.keys.remove(&key);
                        }
                        ConsensusWrite::DeleteRange { from, to } => {
                            inst.keys.retain(|k, _| *k < from || *k >= to);
                        }
                    }
                }
            }
            Output::Commit { block, certificate } => self.commit(i, k, block, certificate)?,
            Output::RequestProposal { height, round } => {
                // Blocks built at or above the height asked for lost (a new term): the next
                // one goes on the ledger or on those below it.
                let inst = &mut self.nodes[i].instances[k];
                inst.ahead.retain(|b| b.header.height < height);
                if height == (inst.chain.len() + inst.ahead.len()) as Height + 1 {
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
                self.sync(i, k, peer.index(), height)?;
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
        self.election
            .check(i, &status)
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
        let others: Vec<_> = (0..self.nodes.len())
            .filter(|&j| j != i && self.honest(j))
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
            any |= inst.engine.take().is_some();
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
            if inst.engine.is_some() {
                continue;
            }
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
            let inst = &mut self.nodes[i].instances[k];
            let me = NodeId(i as u32);
            let engine = E::restore(
                E::config(&self.cluster, me, seed, &self.cfg.knobs),
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

/// Runs one Raft seed.
pub fn run_raft(cfg: RunConfig) -> Result<RunReport, Violation> {
    Sim::<Raft>::new(cfg, ConsensusKind::Raft).run()
}

/// Runs one PBFT seed.
pub fn run_pbft(cfg: RunConfig) -> Result<RunReport, Violation> {
    Sim::<Pbft>::new(cfg, ConsensusKind::Pbft).run()
}
