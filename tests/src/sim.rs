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

use cairn_consensus::pbft::{PRE_PREPARE, PREPARE, Pbft, PbftConfig, PbftMessage, Signed, Vote};
use cairn_consensus::raft::{Raft, RaftConfig};
use cairn_consensus::{DetRng, DurableState, Input, NodeId, Output, Protocol, Role};
use cairn_crypto::{Domain, Hash, SigningKey, codec};
use cairn_ledger::ConsensusWrite;
use cairn_ledger::testkit::TestChain;
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

/// What the simulator needs from an engine beyond [`Protocol`] (whose lifecycle, `restore`
/// and the durable state's keyed layout, it runs exactly as the node does).
pub trait SimEngine: Protocol {
    /// The engine's parameters for node `me` of the cluster.
    fn config(cluster: &Cluster, me: NodeId, seed: u64, knobs: &Knobs) -> Self::Config;

    /// What a Byzantine node with `behaviour` sends instead of `msg` to `to` (`None`: nothing).
    /// The default is an engine that has no Byzantine model (Raft: crash faults only).
    fn corrupt(
        msg: &Self::Message,
        _behaviour: Behaviour,
        _ctx: &mut Adversary<'_, Self::Message>,
        _to: usize,
    ) -> Option<Self::Message> {
        Some(msg.clone())
    }
}

/// How a Byzantine validator misbehaves (its engine runs honest code; a proxy rewrites what it
/// sends, as in malachite's and Twins' test harnesses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Sends nothing.
    Silent,
    /// Corrupts every signature.
    BadSignature,
    /// Re-signs its votes for digests of blocks that do not exist.
    WrongDigest,
    /// As primary, sends different blocks to different replicas; as replica, votes for
    /// different digests to different replicas.
    Equivocate,
    /// Replays its own old messages instead of (or besides) new ones.
    Replay,
    /// Runs twice with the same key (two honest engines that together equivocate).
    Twin,
}

impl Behaviour {
    const ALL: [Behaviour; 6] = [
        Behaviour::Silent,
        Behaviour::BadSignature,
        Behaviour::WrongDigest,
        Behaviour::Equivocate,
        Behaviour::Replay,
        Behaviour::Twin,
    ];
}

/// What the adversary proxy has to work with.
pub struct Adversary<'a, M> {
    /// The Byzantine node's key.
    pub key: &'a SigningKey,
    /// The chain id, for signing.
    pub chain_id: &'a str,
    /// Randomness.
    pub rng: &'a mut DetRng,
    /// Messages this node sent before.
    pub history: &'a [M],
}

impl<M> Adversary<'_, M> {
    /// Signs `body` as the Byzantine node.
    pub fn sign<T: serde::Serialize + Clone>(
        &self,
        author: u32,
        domain: Domain,
        body: &T,
    ) -> Signed<T> {
        Signed {
            author,
            body: body.clone(),
            signature: self.key.sign(domain, self.chain_id, &codec::encode(body)),
        }
    }
}

/// Test-only switches: planted bugs that prove the checkers can fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct Knobs {
    /// Raft: grant votes without regard to an earlier vote in the same term.
    pub raft_vote_twice: bool,
    /// PBFT: quorums of f+1 instead of 2f+1.
    pub pbft_small_quorum: bool,
}

impl SimEngine for Raft {
    fn config(cluster: &Cluster, me: NodeId, seed: u64, knobs: &Knobs) -> RaftConfig {
        RaftConfig {
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
        }
    }
}

impl SimEngine for Pbft {
    fn config(cluster: &Cluster, me: NodeId, _seed: u64, knobs: &Knobs) -> PbftConfig {
        PbftConfig {
            chain_id: cluster.genesis.chain_id.clone(),
            validators: cluster.genesis.validator_set(),
            me,
            checkpoint_interval: 5,
            view_change_ticks: 40,
            retransmit_ticks: 6,
            planted_bug_small_quorum: knobs.pbft_small_quorum,
        }
    }

    fn corrupt(
        msg: &PbftMessage,
        behaviour: Behaviour,
        adv: &mut Adversary<'_, PbftMessage>,
        to: usize,
    ) -> Option<PbftMessage> {
        let fake_digest = |adv: &mut Adversary<'_, PbftMessage>| {
            BlockHash(Hash::sha256(&adv.rng.next_u64().to_le_bytes()))
        };
        match behaviour {
            Behaviour::Silent => None,
            Behaviour::Twin => Some(msg.clone()),
            Behaviour::Replay => {
                if !adv.history.is_empty() && adv.rng.chance(0.5) {
                    let i = adv.rng.range(0, adv.history.len() as u64) as usize;
                    Some(adv.history[i].clone())
                } else {
                    Some(msg.clone())
                }
            }
            Behaviour::BadSignature => {
                let mut m = msg.clone();
                let sig = match &mut m {
                    PbftMessage::PrePrepare { vote, .. } | PbftMessage::Prepare(vote) => {
                        &mut vote.signature
                    }
                    PbftMessage::Commit(c) => &mut c.signature,
                    PbftMessage::Checkpoint(c) => &mut c.signature,
                    PbftMessage::ViewChange(v) => &mut v.signature,
                    PbftMessage::NewView(v) => &mut v.signature,
                };
                sig.0[7] ^= 0x20;
                Some(m)
            }
            Behaviour::WrongDigest | Behaviour::Equivocate => {
                // Equivocation lies to every other replica; wrong digests lie to everyone.
                if behaviour == Behaviour::Equivocate && to.is_multiple_of(2) {
                    return Some(msg.clone());
                }
                match msg {
                    PbftMessage::PrePrepare { vote, block } => {
                        // A different block at the same height, properly signed.
                        let mut b = block.clone();
                        b.header.timestamp_ms += 1 + adv.rng.range(0, 1000);
                        let body = Vote {
                            digest: b.hash(),
                            ..vote.body
                        };
                        Some(PbftMessage::PrePrepare {
                            vote: adv.sign(vote.author, PRE_PREPARE, &body),
                            block: b,
                        })
                    }
                    PbftMessage::Prepare(p) => {
                        let body = Vote {
                            digest: fake_digest(adv),
                            ..p.body
                        };
                        Some(PbftMessage::Prepare(adv.sign(p.author, PREPARE, &body)))
                    }
                    PbftMessage::Commit(c) => {
                        let mut body = c.body.clone();
                        body.block_hash = fake_digest(adv);
                        Some(PbftMessage::Commit(adv.sign(
                            c.author,
                            cairn_ledger::domains::PBFT_COMMIT,
                            &body,
                        )))
                    }
                    other => Some(other.clone()),
                }
            }
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
                let b = Behaviour::ALL[r.range(0, Behaviour::ALL.len() as u64) as usize];
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
    /// Highest term or view an honest node reached.
    pub max_round: u64,
    /// Byzantine validators in the run.
    pub byzantine: Vec<Behaviour>,
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
        self.max_round = self.max_round.max(r.max_round);
        self.byzantine.extend(r.byzantine);
    }
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

/// One engine instance and what it keeps on "disk".
struct Instance<E: SimEngine> {
    engine: Option<E>,
    /// The consensus column family, as the node lays it out (`DurableState::writes`).
    keys: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The same state built by `DurableState::apply`: what `load` must give back.
    model: E::Durable,
    /// The instance's ledger: certified blocks, height i+1 at position i.
    chain: Vec<(Block, CommitCertificate)>,
    restarts: u64,
}

struct Node<E: SimEngine> {
    /// Instance 0 is the node; a Byzantine twin has a second instance with the same key.
    instances: Vec<Instance<E>>,
    byzantine: Option<Behaviour>,
    /// What the node sent, for replay attacks.
    history: Vec<E::Message>,
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
    /// Height → hash of the first commit at that height, by an honest node.
    committed: BTreeMap<Height, BlockHash>,
    /// Term or view → the honest node that led it.
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
            if honest.iter().all(|&i| self.chain_len(i) >= target) {
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
        Err(self.violation(format!(
            "liveness: after healing, honest nodes {honest:?} reached heights {heights:?}, needed {target} within {} ticks",
            self.cfg.liveness_ticks
        )))
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
                self.partition,
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
            let cut = if self.faults_on && self.rng.chance(0.002) {
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
            if cut.is_some() {
                self.crash(i);
                return Ok(());
            }
            if k == 0 && self.honest(i) {
                self.check_leaders(i)?;
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
                if height == self.nodes[i].instances[k].chain.len() as Height + 1 {
                    let block = self.build_block(i, k, round);
                    queue.push_back(Input::Propose { block });
                }
            }
            Output::Validate { block } => {
                let valid = self.valid_at(i, k, &block).is_ok();
                queue.push_back(Input::Validated {
                    block_hash: block.hash(),
                    valid,
                });
            }
            Output::NotLeader { .. } => {}
            Output::SyncTo { peer, height } => {
                self.sync(i, k, peer.index(), height)?;
                let (tip, _, _) = self.tip(i, k);
                queue.push_back(Input::Synced {
                    height: self.nodes[i].instances[k].chain.len() as Height,
                    tip,
                });
            }
        }
        Ok(())
    }

    fn send(&mut self, from: usize, to: usize, msg: E::Message) {
        if to >= self.nodes.len() {
            return;
        }
        let msg = match self.nodes[from].byzantine {
            None => msg,
            Some(b) => {
                let key = self.cluster.keys[from].clone();
                let history = std::mem::take(&mut self.nodes[from].history);
                let mut adv = Adversary {
                    key: &key,
                    chain_id: &self.cluster.genesis.chain_id,
                    rng: &mut self.rng,
                    history: &history,
                };
                let corrupted = E::corrupt(&msg, b, &mut adv, to);
                self.nodes[from].history = history;
                if self.nodes[from].history.len() < 256 {
                    self.nodes[from].history.push(msg);
                }
                match corrupted {
                    Some(m) => m,
                    None => return,
                }
            }
        };
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

    fn tip(&self, i: usize, k: usize) -> (BlockHash, Hash, u64) {
        match self.nodes[i].instances[k].chain.last() {
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

    fn build_block(&mut self, i: usize, k: usize, round: u64) -> Block {
        let (prev_hash, prev_root, ts) = self.tip(i, k);
        let height = self.nodes[i].instances[k].chain.len() as Height + 1;
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

    /// Validity (DESIGN §9.2, for the simulated application): the block extends the ledger
    /// of instance `(i, k)` and follows the state rule.
    fn valid_next(&self, i: usize, k: usize, b: &Block) -> Result<(), String> {
        let (prev_hash, prev_root, ts) = self.tip(i, k);
        let h = &b.header;
        let height = self.nodes[i].instances[k].chain.len() as Height + 1;
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

    /// What a node answers to `Validate`: a block at a height it holds is valid if it is the
    /// block it holds; at the next height, if it is a valid next block.
    fn valid_at(&self, i: usize, k: usize, b: &Block) -> Result<(), String> {
        let chain = &self.nodes[i].instances[k].chain;
        let h = b.header.height;
        if h >= 1 && h <= chain.len() as Height {
            return if chain[h as usize - 1].0.hash() == b.hash() {
                Ok(())
            } else {
                Err(format!("another block is committed at {h}"))
            };
        }
        self.valid_next(i, k, b)
    }

    fn commit(
        &mut self,
        i: usize,
        k: usize,
        block: Block,
        cert: CommitCertificate,
    ) -> Result<(), Violation> {
        let checked = k == 0 && self.honest(i);
        if let Err(e) = self.valid_next(i, k, &block)
            && checked
        {
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
        ) && checked
            && self.cfg.check_certificates
        {
            return Err(self.violation(format!(
                "node {i} committed height {} with a bad certificate: {e}",
                block.header.height
            )));
        }
        if checked {
            match self.committed.get(&block.header.height) {
                Some(h) if *h != hash => {
                    return Err(self.violation(format!(
                        "agreement: node {i} committed {hash} at height {}, another honest node committed {h}",
                        block.header.height
                    )));
                }
                Some(_) => {}
                None => {
                    self.committed.insert(block.header.height, hash);
                }
            }
        }
        self.nodes[i].instances[k].chain.push((block, cert));
        Ok(())
    }

    /// Block sync: copies certified blocks from `peer` (or the honest node furthest ahead)
    /// up to `height`, checking each as a node would.
    fn sync(&mut self, i: usize, k: usize, peer: usize, height: Height) -> Result<(), Violation> {
        self.report.syncs += 1;
        let source = if peer != i && self.chain_len(peer) >= height {
            peer
        } else {
            match (0..self.nodes.len())
                .filter(|&j| j != i && self.honest(j))
                .max_by_key(|&j| self.chain_len(j))
            {
                Some(j) => j,
                None => return Ok(()),
            }
        };
        while (self.nodes[i].instances[k].chain.len() as Height) < height {
            let next = self.nodes[i].instances[k].chain.len();
            let Some((b, c)) = self.nodes[source].instances[0].chain.get(next).cloned() else {
                break;
            };
            // A node checks what it fetches: the link to its tip and the certificate.
            let g = &self.cluster.genesis;
            if self.valid_next(i, k, &b).is_err()
                || c.verify(
                    &g.chain_id,
                    g.consensus.kind(),
                    &g.validator_set(),
                    b.header.height,
                    &b.hash(),
                )
                .is_err()
            {
                break;
            }
            self.commit(i, k, b, c)?;
        }
        Ok(())
    }

    /// Election safety (Raft §5.2; in PBFT, one primary per view by construction).
    fn check_leaders(&mut self, i: usize) -> Result<(), Violation> {
        let Some(e) = &self.nodes[i].instances[0].engine else {
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
        let mut any = false;
        for inst in &mut self.nodes[i].instances {
            any |= inst.engine.take().is_some();
        }
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
            let durable = match loaded {
                Ok(d) if d == inst.model => d,
                Ok(d) => {
                    let model = format!("{:?}", inst.model);
                    return Err(self.violation(format!(
                        "durable layout: node {i} loaded {d:?}, persisted {model}"
                    )));
                }
                Err(e) => {
                    return Err(
                        self.violation(format!("durable layout: node {i}'s keys do not load: {e}"))
                    );
                }
            };
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
            if k == 0 && self.honest(i) && resumed != held {
                return Err(self.violation(format!(
                    "durability: node {i} restarted at height {resumed}, its ledger holds {held}"
                )));
            }
        }
        Ok(())
    }

    fn maybe_fault(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        // Keep a majority up most of the time, so there is progress to disturb.
        let down = self
            .nodes
            .iter()
            .filter(|x| x.instances[0].engine.is_none())
            .count();
        if self.rng.chance(0.004) && down < n.div_ceil(2) {
            let i = self.rng.range(0, n as u64) as usize;
            self.crash(i);
        }
        if self.rng.chance(0.01) {
            for i in 0..n {
                if self.nodes[i].instances[0].engine.is_none() && self.rng.chance(0.5) {
                    self.restart(i)?;
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
        Ok(())
    }

    fn heal(&mut self) -> Result<(), Violation> {
        self.faults_on = false;
        self.partition = Partition::None;
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
