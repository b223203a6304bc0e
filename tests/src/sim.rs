//! A deterministic simulator of N consensus engines over a faulty network.
//!
//! Per tick: due messages are delivered (in delivery-time order; equal times in send order),
//! then every live engine gets a `Tick`, then the fault schedule may act. Outputs are executed
//! in order like a node would: `Persist` into the node's durable state, `Commit` into its
//! ledger (a list of certified blocks that survives crashes, as RocksDB would), sends into the
//! network. A crash may cut a step's outputs at any point, so anything an engine sends before
//! persisting what it depends on is caught.
//!
//! Checkers run after every step (DESIGN §9): agreement, validity, integrity (certificate and
//! hash link), commits in height order exactly once, durability (a ledger never shrinks),
//! and election safety (one leader per term). After the fault phase every fault heals and
//! each node must commit new blocks within a bound (liveness).

use std::collections::{BTreeMap, VecDeque};

use cairn_consensus::raft::{Raft, RaftConfig, RaftDurable, RaftPersist};
use cairn_consensus::{DetRng, Input, NodeId, Output, Protocol, Role};
use cairn_crypto::{Hash, SigningKey};
use cairn_ledger::testkit::{TestChain, key};
use cairn_ledger::{
    Block, BlockHash, BlockHeader, CommitCertificate, ConsensusKind, Genesis, Height,
};

/// The simulated cluster's fixed facts.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Genesis (validators, chain id, consensus kind).
    pub genesis: Genesis,
    /// Validator keys, by node index.
    pub keys: Vec<SigningKey>,
}

impl Cluster {
    /// A cluster of `n` validators running `kind`.
    pub fn new(kind: ConsensusKind, n: usize) -> Cluster {
        let chain = TestChain::new(kind, n, 1, 1);
        Cluster {
            genesis: chain.genesis,
            keys: chain.validators,
        }
    }
}

/// What the simulator needs from an engine beyond [`Protocol`].
pub trait SimEngine: Protocol + Sized {
    /// The engine's durable state.
    type Durable: Default + Clone + std::fmt::Debug;
    /// Applies one `Persist` op to the durable state.
    fn apply_persist(durable: &mut Self::Durable, op: &Self::PersistOp);
    /// Starts an engine from durable state only (and its ledger's height).
    fn restore(
        cluster: &Cluster,
        me: NodeId,
        durable: &Self::Durable,
        ledger_height: Height,
        seed: u64,
        knobs: &Knobs,
    ) -> Self;
}

/// Test-only switches: planted bugs that prove the checkers can fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct Knobs {
    /// Raft: grant votes without regard to an earlier vote in the same term.
    pub raft_vote_twice: bool,
}

impl SimEngine for Raft {
    type Durable = RaftDurable;

    fn apply_persist(durable: &mut RaftDurable, op: &RaftPersist) {
        durable.apply(op);
    }

    fn restore(
        cluster: &Cluster,
        me: NodeId,
        durable: &RaftDurable,
        ledger_height: Height,
        seed: u64,
        knobs: &Knobs,
    ) -> Raft {
        let cfg = RaftConfig {
            chain_id: cluster.genesis.chain_id.clone(),
            validators: cluster.genesis.validator_set(),
            me,
            election_ticks_min: 10,
            election_ticks_max: 20,
            heartbeat_ticks: 3,
            max_entries_per_message: 8,
            compact_after: 6,
            seed,
            planted_bug_vote_twice: knobs.raft_vote_twice,
        };
        Raft::restore(
            cfg,
            cluster.keys[me.index()].clone(),
            durable,
            ledger_height,
        )
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
}

impl RunConfig {
    /// Defaults for a seed: 3 or 5 validators, 1,500 fault ticks, 1,000 liveness ticks.
    pub fn for_seed(seed: u64) -> RunConfig {
        let mut r = DetRng::new(seed);
        RunConfig {
            seed,
            nodes: if r.chance(0.5) { 3 } else { 5 },
            fault_ticks: 1_500,
            liveness_ticks: 1_000,
            liveness_blocks: 3,
            knobs: Knobs::default(),
        }
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partition {
    None,
    /// Two sides that cannot talk.
    Split(u64),
    /// Messages from `a` to `b` are lost; `b` to `a` pass.
    OneWay(usize, usize),
    /// One node cut off.
    Isolate(usize),
    /// Two sides, except `bridge`, which talks to both.
    Bridge(u64, usize),
}

impl Partition {
    fn blocks(&self, from: usize, to: usize) -> bool {
        let side = |mask: u64, i: usize| mask >> i & 1 == 1;
        match *self {
            Partition::None => false,
            Partition::Split(m) => side(m, from) != side(m, to),
            Partition::OneWay(a, b) => from == a && to == b,
            Partition::Isolate(x) => from == x || to == x,
            Partition::Bridge(m, b) => from != b && to != b && side(m, from) != side(m, to),
        }
    }
}

struct Node<E: SimEngine> {
    engine: Option<E>,
    durable: E::Durable,
    /// The node's ledger: certified blocks, height i+1 at position i.
    chain: Vec<(Block, CommitCertificate)>,
    restarts: u64,
}

struct Envelope<M> {
    from: usize,
    to: usize,
    msg: M,
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
    partition: Partition,
    drop_p: f64,
    dup_p: f64,
    max_delay: u64,
    /// Height → hash of the first commit at that height, by anyone.
    committed: BTreeMap<Height, BlockHash>,
    /// Term → the node that led it.
    leaders: BTreeMap<u64, usize>,
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
                let durable = E::Durable::default();
                let engine = E::restore(
                    &cluster,
                    NodeId(i as u32),
                    &durable,
                    0,
                    rng.next_u64(),
                    &cfg.knobs,
                );
                Node {
                    engine: Some(engine),
                    durable,
                    chain: Vec::new(),
                    restarts: 0,
                }
            })
            .collect();
        let drop_p = rng.range(0, 15) as f64 / 100.0;
        let dup_p = rng.range(0, 8) as f64 / 100.0;
        let max_delay = rng.range(1, 8);
        Sim {
            cfg,
            cluster,
            rng,
            nodes,
            net: BTreeMap::new(),
            seq: 0,
            now: 0,
            partition: Partition::None,
            drop_p,
            dup_p,
            max_delay,
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
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

    /// Runs the fault phase, heals, and checks liveness.
    pub fn run(mut self) -> Result<RunReport, Violation> {
        for _ in 0..self.cfg.fault_ticks {
            self.tick()?;
            self.maybe_fault();
        }
        self.heal()?;
        let start: Vec<Height> = self.nodes.iter().map(|n| n.chain.len() as Height).collect();
        let target = start.iter().max().copied().unwrap_or(0) + self.cfg.liveness_blocks;
        for _ in 0..self.cfg.liveness_ticks {
            self.tick()?;
            if self.nodes.iter().all(|n| n.chain.len() as Height >= target) {
                self.report.height = target;
                return Ok(self.report);
            }
        }
        let heights: Vec<usize> = self.nodes.iter().map(|n| n.chain.len()).collect();
        Err(self.violation(format!(
            "liveness: after healing, nodes reached heights {heights:?}, needed {target} within {} ticks",
            self.cfg.liveness_ticks
        )))
    }

    fn tick(&mut self) -> Result<(), Violation> {
        self.now += 1;
        while let Some((&(at, seq), _)) = self.net.first_key_value() {
            if at > self.now {
                break;
            }
            let Some(env) = self.net.remove(&(at, seq)) else {
                break;
            };
            self.input(
                env.to,
                Input::Message {
                    from: NodeId(env.from as u32),
                    msg: env.msg,
                },
            )?;
        }
        for i in 0..self.nodes.len() {
            self.input(i, Input::Tick)?;
        }
        Ok(())
    }

    /// Steps node `i` with `input`, executes its outputs (and the inputs they lead to), and
    /// checks the invariants after each step.
    fn input(&mut self, i: usize, input: Input<E::Message>) -> Result<(), Violation> {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let Some(engine) = self.nodes[i].engine.as_mut() else {
                return Ok(());
            };
            let mut out: Step<E> = Vec::new();
            engine.step(input, &mut out);
            // A crash may tear the step: only a prefix of its outputs is executed.
            let cut = if self.faults_on && self.rng.chance(0.002) {
                self.report.torn_steps += 1;
                Some(self.rng.range(0, out.len() as u64 + 1) as usize)
            } else {
                None
            };
            for (k, o) in out.into_iter().enumerate() {
                if cut == Some(k) {
                    break;
                }
                self.execute(i, o, &mut queue)?;
            }
            if cut.is_some() {
                self.crash(i);
                return Ok(());
            }
            self.check_leaders(i)?;
        }
        Ok(())
    }

    fn execute(
        &mut self,
        i: usize,
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
            Output::Persist { op } => E::apply_persist(&mut self.nodes[i].durable, &op),
            Output::Commit { block, certificate } => self.commit(i, block, certificate)?,
            Output::RequestProposal { height, round } => {
                if height == self.nodes[i].chain.len() as Height + 1 {
                    let block = self.build_block(i, round);
                    queue.push_back(Input::Propose { block });
                }
            }
            Output::Validate { block } => {
                let valid = self.valid_next(i, &block).is_ok();
                queue.push_back(Input::Validated {
                    block_hash: block.hash(),
                    valid,
                });
            }
            Output::NotLeader { .. } => {}
            Output::SyncTo { peer, height } => {
                self.sync(i, peer.index(), height)?;
                queue.push_back(Input::Synced {
                    height: self.nodes[i].chain.len() as Height,
                });
            }
        }
        Ok(())
    }

    fn send(&mut self, from: usize, to: usize, msg: E::Message) {
        if to >= self.nodes.len() {
            return;
        }
        if self.faults_on {
            if self.partition.blocks(from, to) || self.rng.chance(self.drop_p) {
                self.report.dropped += 1;
                return;
            }
            if self.rng.chance(self.dup_p) {
                self.report.duplicated += 1;
                let at = self.now + self.rng.range(1, self.max_delay + 1);
                self.seq += 1;
                self.net.insert(
                    (at, self.seq),
                    Envelope {
                        from,
                        to,
                        msg: msg.clone(),
                    },
                );
            }
        }
        let delay = if self.faults_on {
            self.rng.range(1, self.max_delay + 1)
        } else {
            1
        };
        self.seq += 1;
        self.net
            .insert((self.now + delay, self.seq), Envelope { from, to, msg });
    }

    fn tip(&self, i: usize) -> (BlockHash, Hash, u64) {
        match self.nodes[i].chain.last() {
            Some((b, _)) => (b.hash(), b.header.state_root, b.header.timestamp_ms),
            None => (
                self.cluster.genesis.hash(),
                Hash::ZERO,
                self.cluster.genesis.genesis_time_ms,
            ),
        }
    }

    /// The simulated application's rule for the next state root.
    fn next_root(prev: &Hash, height: Height) -> Hash {
        Hash::sha256(&[prev.0.as_slice(), &height.to_le_bytes()].concat())
    }

    fn build_block(&mut self, i: usize, round: u64) -> Block {
        let (prev_hash, prev_root, ts) = self.tip(i);
        let height = self.nodes[i].chain.len() as Height + 1;
        Block {
            header: BlockHeader {
                chain_id: self.cluster.genesis.chain_id.clone(),
                height,
                prev_hash,
                // Distinct proposals at one height differ in their timestamp.
                timestamp_ms: ts + 1 + self.rng.range(0, 1000),
                tx_root: Block::tx_root_of(&[]),
                tx_count: 0,
                state_root: Self::next_root(&prev_root, height),
                proposer: self.cluster.keys[i].public_key(),
                round,
            },
            txs: Vec::new(),
        }
    }

    /// Validity (DESIGN §9.2, for the simulated application): the block extends node `i`'s
    /// ledger and follows the state rule.
    fn valid_next(&self, i: usize, b: &Block) -> Result<(), String> {
        let (prev_hash, prev_root, ts) = self.tip(i);
        let h = &b.header;
        let height = self.nodes[i].chain.len() as Height + 1;
        if h.height != height {
            return Err(format!("height {} after {}", h.height, height - 1));
        }
        if h.prev_hash != prev_hash {
            return Err(format!(
                "block {} does not link to the ledger tip",
                h.height
            ));
        }
        if h.state_root != Self::next_root(&prev_root, height) || h.timestamp_ms < ts {
            return Err(format!("block {} breaks the state rule", h.height));
        }
        if !self.cluster.genesis.validator_set().contains(&h.proposer) {
            return Err(format!("block {} proposed by a non-validator", h.height));
        }
        Ok(())
    }

    fn commit(&mut self, i: usize, block: Block, cert: CommitCertificate) -> Result<(), Violation> {
        if let Err(e) = self.valid_next(i, &block) {
            return Err(self.violation(format!("node {i} committed an invalid block: {e}")));
        }
        let hash = block.hash();
        let g = &self.cluster.genesis;
        if let Err(e) = cert.verify(
            &g.chain_id,
            g.consensus.kind(),
            &g.validator_set(),
            block.header.height,
            &hash,
        ) {
            return Err(self.violation(format!(
                "node {i} committed height {} with a bad certificate: {e}",
                block.header.height
            )));
        }
        match self.committed.get(&block.header.height) {
            Some(h) if *h != hash => {
                return Err(self.violation(format!(
                    "agreement: node {i} committed {hash} at height {}, another node committed {h}",
                    block.header.height
                )));
            }
            Some(_) => {}
            None => {
                self.committed.insert(block.header.height, hash);
            }
        }
        self.nodes[i].chain.push((block, cert));
        Ok(())
    }

    /// Block sync: copies certified blocks from `peer` (or anyone ahead) up to `height`,
    /// checking each as a node would.
    fn sync(&mut self, i: usize, peer: usize, height: Height) -> Result<(), Violation> {
        self.report.syncs += 1;
        let source = if self.nodes[peer].chain.len() as Height >= height {
            peer
        } else {
            match (0..self.nodes.len()).max_by_key(|&j| self.nodes[j].chain.len()) {
                Some(j) => j,
                None => return Ok(()),
            }
        };
        while (self.nodes[i].chain.len() as Height) < height {
            let next = self.nodes[i].chain.len();
            let Some((b, c)) = self.nodes[source].chain.get(next).cloned() else {
                break;
            };
            self.commit(i, b, c)?;
        }
        Ok(())
    }

    /// Election safety (Raft §5.2; a PBFT view has one primary by construction).
    fn check_leaders(&mut self, i: usize) -> Result<(), Violation> {
        let Some(e) = &self.nodes[i].engine else {
            return Ok(());
        };
        let s = e.status();
        if s.role != Role::Leader {
            return Ok(());
        }
        match self.leaders.get(&s.round) {
            Some(&other) if other != i => Err(self.violation(format!(
                "election safety: nodes {other} and {i} both lead term {}",
                s.round
            ))),
            _ => {
                self.leaders.insert(s.round, i);
                Ok(())
            }
        }
    }

    fn crash(&mut self, i: usize) {
        if self.nodes[i].engine.take().is_some() {
            self.report.crashes += 1;
        }
    }

    fn restart(&mut self, i: usize) {
        if self.nodes[i].engine.is_some() {
            return;
        }
        let n = &mut self.nodes[i];
        n.restarts += 1;
        let seed = self.cfg.seed ^ (n.restarts << 40) ^ i as u64;
        n.engine = Some(E::restore(
            &self.cluster,
            NodeId(i as u32),
            &n.durable,
            n.chain.len() as Height,
            seed,
            &self.cfg.knobs,
        ));
    }

    fn maybe_fault(&mut self) {
        let n = self.nodes.len();
        // Keep a majority up most of the time, so there is progress to disturb.
        let down = self.nodes.iter().filter(|x| x.engine.is_none()).count();
        if self.rng.chance(0.004) && down < n.div_ceil(2) {
            let i = self.rng.range(0, n as u64) as usize;
            self.crash(i);
        }
        if self.rng.chance(0.01) {
            for i in 0..n {
                if self.nodes[i].engine.is_none() && self.rng.chance(0.5) {
                    self.restart(i);
                }
            }
        }
        if self.rng.chance(0.004) {
            self.report.partitions += 1;
            let a = self.rng.range(0, n as u64) as usize;
            let b = (a + 1 + self.rng.range(0, n as u64 - 1) as usize) % n;
            let mask = self.rng.range(1, (1u64 << n) - 1);
            self.partition = match self.rng.range(0, 4) {
                0 => Partition::Split(mask),
                1 => Partition::OneWay(a, b),
                2 => Partition::Isolate(a),
                _ => Partition::Bridge(mask, a),
            };
        }
        if self.rng.chance(0.006) {
            self.partition = Partition::None;
        }
    }

    fn heal(&mut self) -> Result<(), Violation> {
        self.faults_on = false;
        self.partition = Partition::None;
        for i in 0..self.nodes.len() {
            self.restart(i);
        }
        Ok(())
    }
}

/// Runs one Raft seed.
pub fn run_raft(cfg: RunConfig) -> Result<RunReport, Violation> {
    Sim::<Raft>::new(cfg, ConsensusKind::Raft).run()
}

/// Keys for tests that need a validator key outside any cluster.
pub fn outsider_key() -> SigningKey {
    key("outsider", 0)
}
