//! The one task that owns the engine, the ledger and the mempool (DESIGN §5).
//!
//! It `select!`s over network events, a tick, API requests, verified transaction batches and
//! shutdown. Everything from outside is decoded, size-checked and membership-checked before the
//! engine sees it; transaction signatures are verified once per node, in batches, off this task.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_consensus::{Input, NodeId, Output, Role as EngineRole};
use cairn_crypto::{PublicKey, SigningKey, codec};
use cairn_ledger::{
    Block, BlockHash, BlockStore, CommitCertificate, ConsensusKind, Execution, Height, Ledger,
    Mempool, RocksStore, SignedTransaction, StateView, Trust, TxId, TxRejection,
    VerifiedTransaction, verify_transactions,
};
use cairn_p2p::{Client, Event, RequestId, Topic};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::Config;
use crate::engine::{Durable, Engine, EngineOutput};
use crate::metrics::Metrics;
use crate::views::*;
use crate::wire::{self, Announce, Direct, SyncRequest, SyncResponse, TxBatch};

/// A block reference from a URL.
#[derive(Debug, Clone, Copy)]
pub enum BlockRef {
    /// By height.
    Height(Height),
    /// By hash.
    Hash(BlockHash),
}

/// The final fate of a transaction someone waits for.
#[derive(Debug, Clone)]
pub enum TxOutcome {
    /// Committed here.
    Committed(ReceiptView),
    /// Dropped.
    Rejected(TxRejection),
}

type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// What the API asks the core.
pub enum Request {
    /// A page of blocks, newest first.
    Blocks {
        /// Only blocks below this height.
        before: Option<Height>,
        /// Page size.
        limit: usize,
        /// Answer.
        reply: Reply<BlockPage>,
    },
    /// Blocks from a height on, oldest first, with their transaction ids (event replay).
    Range {
        /// First height.
        from: Height,
        /// Most blocks.
        limit: usize,
        /// Answer.
        reply: Reply<Vec<ChainEvent>>,
    },
    /// One block with its certificate.
    Block {
        /// Which.
        at: BlockRef,
        /// Answer.
        reply: Reply<BlockView>,
    },
    /// A transaction.
    Tx {
        /// Id.
        id: TxId,
        /// Answer.
        reply: Reply<TxView>,
    },
    /// A verified transaction to admit; with `wait`, also a receiver for its final outcome.
    Submit {
        /// The transaction.
        tx: VerifiedTransaction,
        /// Register a waiter.
        wait: bool,
        /// Answer.
        reply: Reply<(TxView, Option<oneshot::Receiver<TxOutcome>>)>,
    },
    /// An account.
    Account {
        /// Key.
        id: PublicKey,
        /// Answer.
        reply: Reply<AccountView>,
    },
    /// An account's committed transactions, newest first.
    AccountTxs {
        /// Key.
        id: PublicKey,
        /// Only blocks below this height.
        before: Option<Height>,
        /// Page size.
        limit: usize,
        /// Answer.
        reply: Reply<AccountTxPage>,
    },
    /// The validators and whether this node reaches them.
    Validators {
        /// Answer.
        reply: Reply<Vec<ValidatorView>>,
    },
}

/// Most blocks an account-history request scans (the store has no per-account index yet).
const ACCOUNT_SCAN_BLOCKS: u64 = 1_000;
/// Most waiters for `?wait=commit` at once.
const WAITERS_MAX: usize = 50_000;
/// Most waiters for one transaction.
const WAITERS_PER_TX: usize = 64;
/// Most transaction ids remembered as verified (so a block of known transactions is not
/// verified twice).
const VERIFIED_CACHE: usize = 200_000;
/// Most bytes of transactions in a block this node builds: a block must fit in one consensus
/// message (`wire::DIRECT_BYTES_MAX`, 8 MiB, which a Raft append shares among up to three
/// entries) and comfortably in a sync response.
const BLOCK_TX_BYTES_MAX: usize = 2 << 20;
/// How far ahead of this node's clock a proposed block's timestamp may be.
const CLOCK_DRIFT_MAX_MS: u64 = 30_000;
/// Verification batches running at once (the machine has few cores; the core task needs one).
const VERIFY_JOBS: usize = 2;
/// Gossiped transactions waiting for verification, at most.
const TO_VERIFY_MAX: usize = 50_000;
/// A sync request with no answer after this long is given up.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Transactions this node admitted are gossiped again if still pending after this long.
const REGOSSIP_AFTER: Duration = Duration::from_secs(3);

struct SyncState {
    /// Highest height this node has heard exists.
    known: Height,
    /// Peer to ask first (the engine's hint or the announcer).
    hint: Option<PublicKey>,
    /// Request in flight: (our id, peer, sent at).
    inflight: Option<(u64, PublicKey, Instant)>,
    /// The engine asked for `SyncTo` and waits for `Synced`.
    engine_waiting: bool,
    /// Peers' claimed heights.
    heights: HashMap<PublicKey, Height>,
    /// Rotates the peer asked when the preferred one fails.
    rotation: usize,
}

struct Proposal {
    height: Height,
    round: u64,
    since: Instant,
}

/// Everything the core needs to start.
pub struct CoreParts {
    /// Settings.
    pub config: Config,
    /// This node's key.
    pub key: SigningKey,
    /// The opened ledger.
    pub ledger: Ledger<RocksStore>,
    /// The network.
    pub net: Client,
    /// Network events.
    pub net_events: mpsc::Receiver<Event>,
    /// API requests.
    pub requests: mpsc::Receiver<Request>,
    /// Live events for SSE.
    pub events: broadcast::Sender<ChainEvent>,
    /// Status for the API and readiness.
    pub status: watch::Sender<StatusView>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The core task's state.
pub struct Core {
    cfg: Config,
    key: SigningKey,
    kind: ConsensusKind,
    ledger: Ledger<RocksStore>,
    mempool: Mempool,
    engine: Option<Engine>,
    durable: Durable,
    net: Client,
    net_events: mpsc::Receiver<Event>,
    requests: mpsc::Receiver<Request>,
    events: broadcast::Sender<ChainEvent>,
    status: watch::Sender<StatusView>,
    metrics: Arc<Metrics>,
    validators: Vec<PublicKey>,
    proposal: Option<Proposal>,
    /// Executions of blocks built or validated here, by hash (reused at commit).
    executions: HashMap<BlockHash, Execution>,
    /// `Validate` requests above the tip, answered once the ledger gets there.
    deferred_validations: BTreeMap<Height, Vec<Block>>,
    /// `Commit`s above the tip + 1, applied once the gap is synced.
    deferred_commits: BTreeMap<Height, (Block, CommitCertificate)>,
    sync: SyncState,
    verified: HashSet<TxId>,
    verified_order: VecDeque<TxId>,
    /// Gossip batches being verified off this task.
    verifying: usize,
    /// Gossiped transactions waiting for a verification slot.
    to_verify: Vec<SignedTransaction>,
    verified_tx: mpsc::Sender<Vec<Result<VerifiedTransaction, TxRejection>>>,
    verified_rx: mpsc::Receiver<Vec<Result<VerifiedTransaction, TxRejection>>>,
    /// Transactions admitted here and not yet gossiped.
    outbox: Vec<SignedTransaction>,
    outbox_bytes: usize,
    /// Transactions admitted through this node's API: when, for re-gossip and latency.
    own: HashMap<TxId, Instant>,
    waiters: HashMap<TxId, Vec<oneshot::Sender<TxOutcome>>>,
    /// Senders in `waiters`.
    waiting: usize,
    last_block_at: Option<Instant>,
    last_round: u64,
    ticks: u64,
}

/// This machine's clock, in ms since the Unix epoch (0 if it is set before 1970).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

impl Core {
    /// Builds the core: loads the engine's durable state and restores it at the ledger's tip.
    pub fn new(p: CoreParts) -> Result<Core, cairn_ledger::StoreError> {
        let genesis = p.ledger.genesis().clone();
        let validators: Vec<PublicKey> = genesis.validators.iter().map(|v| v.public_key).collect();
        let me = validators
            .iter()
            .position(|k| *k == p.key.public_key())
            .map(|i| NodeId(i as u32));
        let durable = Durable::load(&genesis, p.ledger.store())?;
        let engine = match me {
            Some(me) => Some(durable.engine(
                &genesis,
                p.key.clone(),
                me,
                p.config.consensus.tick_ms,
                p.ledger.tip().height,
            )?),
            None => None,
        };
        let mempool = Mempool::new(cairn_ledger::MempoolConfig {
            txs_max: p.config.mempool.txs_max,
            bytes_max: p.config.mempool.bytes_max,
            ..Default::default()
        });
        let (verified_tx, verified_rx) = mpsc::channel(16);
        let tip = p.ledger.tip().height;
        Ok(Core {
            kind: genesis.consensus.kind(),
            cfg: p.config,
            key: p.key,
            ledger: p.ledger,
            mempool,
            engine,
            durable,
            net: p.net,
            net_events: p.net_events,
            requests: p.requests,
            events: p.events,
            status: p.status,
            metrics: p.metrics,
            validators,
            proposal: None,
            executions: HashMap::new(),
            deferred_validations: BTreeMap::new(),
            deferred_commits: BTreeMap::new(),
            sync: SyncState {
                known: tip,
                hint: None,
                inflight: None,
                engine_waiting: false,
                heights: HashMap::new(),
                rotation: 0,
            },
            verified: HashSet::new(),
            verified_order: VecDeque::new(),
            verifying: 0,
            to_verify: Vec::new(),
            verified_tx,
            verified_rx,
            outbox: Vec::new(),
            outbox_bytes: 0,
            own: HashMap::new(),
            waiters: HashMap::new(),
            waiting: 0,
            last_block_at: None,
            last_round: 0,
            ticks: 0,
        })
    }

    /// Runs until `shutdown` flips to true (or every sender is gone).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.consensus.tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish_status();
        loop {
            // Unbiased: a flood of network events cannot starve the tick or the API.
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(batch) = self.verified_rx.recv() => {
                    self.verifying = self.verifying.saturating_sub(1);
                    self.on_verified(batch);
                    self.start_verification();
                }
                Some(ev) = self.net_events.recv() => self.on_net(ev),
                Some(req) = self.requests.recv() => self.on_request(req),
                _ = tick.tick() => self.on_tick(),
                else => break,
            }
        }
        tracing::info!(height = self.ledger.tip().height, "core stopped");
    }

    // ---------------------------------------------------------------- engine plumbing

    fn step(&mut self, input: Input<Direct>) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let Some(engine) = self.engine.as_mut() else {
                return;
            };
            let mut out = Vec::new();
            engine.step(input, &mut out);
            let mut writes = Vec::new();
            for o in out {
                if let Output::Persist { op } = &o {
                    self.durable.apply(op, &mut writes);
                    continue;
                }
                // Persist is a barrier: what the engine persisted is durable before anything
                // it asked for afterwards happens.
                if !self.flush(&mut writes) {
                    return;
                }
                self.execute(o, &mut queue);
            }
            if !self.flush(&mut writes) {
                return;
            }
        }
    }

    /// Writes persisted engine state; on failure stops the engine (a node that cannot keep
    /// its promises must not make more).
    fn flush(&mut self, writes: &mut Vec<cairn_ledger::ConsensusOp>) -> bool {
        if writes.is_empty() {
            return true;
        }
        if let Err(e) = self.ledger.store_mut().consensus_write(writes) {
            tracing::error!(error = %e, "cannot persist consensus state: stopping the engine");
            self.engine = None;
            return false;
        }
        writes.clear();
        true
    }

    fn execute(&mut self, o: EngineOutput, queue: &mut VecDeque<Input<Direct>>) {
        match o {
            Output::Send { to, msg } => {
                if let Some(k) = self.validators.get(to.index()).copied() {
                    self.send(k, &msg);
                }
            }
            Output::Broadcast { msg } => {
                let bytes = codec::encode(&msg);
                for k in self.validators.clone() {
                    if k != self.key.public_key() && self.net.is_connected(&k) {
                        let _ = self.net.send(k, bytes.clone());
                    }
                }
            }
            Output::Persist { .. } => {}
            Output::Commit { block, certificate } => self.on_commit(block, certificate, queue),
            Output::RequestProposal { height, round } => {
                // Above the next height (the ledger is catching up with the engine): kept, and
                // built once the ledger gets there, since the engine will not ask again.
                if height > self.ledger.tip().height {
                    self.proposal = Some(Proposal {
                        height,
                        round,
                        since: Instant::now(),
                    });
                    if let Some(block) = self.maybe_build() {
                        queue.push_back(Input::Propose { block });
                    }
                }
            }
            Output::Validate { block } => {
                let h = block.header.height;
                if h > self.ledger.tip().height + 1 {
                    self.note_height(h - 1, None);
                    // Bounded: a faulty proposer cannot grow this without limit.
                    if self.deferred_validations.len() < 64
                        || self.deferred_validations.contains_key(&h)
                    {
                        let v = self.deferred_validations.entry(h).or_default();
                        if v.len() < 8 {
                            v.push(block);
                        }
                    }
                } else {
                    let valid = self.validate(&block);
                    queue.push_back(Input::Validated {
                        block_hash: block.hash(),
                        valid,
                    });
                }
            }
            Output::NotLeader { .. } => {}
            Output::SyncTo { peer, height } => {
                let hint = self.validators.get(peer.index()).copied();
                self.sync.engine_waiting = true;
                self.note_height(height, hint);
                if self.ledger.tip().height >= height {
                    // Already there: answer with exactly the height asked for (PBFT syncs
                    // checkpoint by checkpoint and signs each one it reaches).
                    self.sync.engine_waiting = false;
                    let hash = if height == 0 {
                        Some(self.ledger.genesis_hash())
                    } else {
                        self.ledger
                            .store()
                            .block(height)
                            .ok()
                            .flatten()
                            .map(|b| b.hash())
                    };
                    let tip = self.ledger.tip();
                    let (height, tip) = match hash {
                        Some(h) => (height, h),
                        None => (tip.height, tip.hash),
                    };
                    queue.push_back(Input::Synced { height, tip });
                } else {
                    self.request_sync();
                }
            }
        }
    }

    fn send(&self, to: PublicKey, msg: &Direct) {
        if to != self.key.public_key() && self.net.is_connected(&to) {
            let _ = self.net.send(to, codec::encode(msg));
        }
    }

    // ---------------------------------------------------------------- blocks

    /// Checks a block at or below the next height: at a held height it must be the block held;
    /// at the next it must execute. Transactions not verified here before are verified now.
    fn validate(&mut self, block: &Block) -> bool {
        let tip = self.ledger.tip();
        let h = block.header.height;
        if h == 0 {
            return false;
        }
        if h <= tip.height {
            return matches!(self.ledger.store().block(h), Ok(Some(b)) if b.hash() == block.hash());
        }
        // Proposed by a validator, with a sane clock. (Not necessarily by the current
        // primary: a new PBFT view re-proposes blocks prepared in an earlier one, unchanged.)
        if !self.validators.contains(&block.header.proposer) {
            tracing::warn!(
                height = h,
                "proposed block names a proposer that is not a validator"
            );
            return false;
        }
        let now_ms = now_ms();
        if block.header.timestamp_ms > now_ms.saturating_add(CLOCK_DRIFT_MAX_MS) {
            tracing::warn!(height = h, "proposed block is timestamped in the future");
            return false;
        }
        match self.execute_block(block) {
            Ok(exec) => {
                if self.executions.len() > 16 {
                    self.executions.clear();
                }
                self.executions.insert(block.hash(), exec);
                true
            }
            Err(e) => {
                tracing::warn!(height = h, error = %e, "proposed block is invalid");
                false
            }
        }
    }

    /// Executes the next block, verifying (in one batch) the signatures of transactions this
    /// node has not verified yet.
    fn execute_block(&mut self, block: &Block) -> Result<Execution, String> {
        let unknown: Vec<SignedTransaction> = block
            .txs
            .iter()
            .filter(|t| {
                let id = t.id();
                !self.verified.contains(&id) && !self.mempool.contains(&id)
            })
            .cloned()
            .collect();
        if !unknown.is_empty() {
            let n = unknown.len();
            for r in verify_transactions(unknown, self.ledger.chain_id()) {
                match r {
                    Ok(v) => self.remember_verified(v.id()),
                    Err(e) => return Err(format!("transaction rejected: {e}")),
                }
            }
            self.metrics.verified_txs.inc_by(n as u64);
        }
        self.ledger
            .execute_block(block, Trust::PreVerified)
            .map_err(|e| e.to_string())
    }

    fn remember_verified(&mut self, id: TxId) {
        if self.verified.insert(id) {
            self.verified_order.push_back(id);
            while self.verified_order.len() > VERIFIED_CACHE {
                if let Some(old) = self.verified_order.pop_front() {
                    self.verified.remove(&old);
                }
            }
        }
    }

    fn on_commit(
        &mut self,
        block: Block,
        cert: CommitCertificate,
        queue: &mut VecDeque<Input<Direct>>,
    ) {
        let tip = self.ledger.tip().height;
        let h = block.header.height;
        if h <= tip {
            if let Ok(Some(b)) = self.ledger.store().block(h)
                && b.hash() != block.hash()
            {
                tracing::error!(
                    height = h,
                    "engine committed a different block than the ledger holds"
                );
            }
            return;
        }
        if h > tip + 1 {
            // The ledger is behind the engine: fetch the gap, apply this one after it (or
            // fetch it too, if it could not be kept).
            self.note_height(h, None);
            if self.deferred_commits.len() < 64 {
                self.deferred_commits.insert(h, (block, cert));
            }
            self.request_sync();
            return;
        }
        let hash = block.hash();
        let exec = match self.executions.remove(&hash) {
            Some(e) => Ok(e),
            None => self.execute_block(&block),
        };
        let result = exec.and_then(|exec| {
            self.ledger
                .commit(block.clone(), cert, exec)
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(_) => {
                self.after_commit(&block);
                self.drain_deferred(queue);
            }
            Err(e) => {
                tracing::error!(height = h, error = %e, "cannot apply a committed block; will try block sync");
                self.note_height(h, None);
                self.request_sync();
            }
        }
    }

    /// Bookkeeping after the ledger got a block (from consensus or sync).
    fn after_commit(&mut self, block: &Block) {
        let now = Instant::now();
        let h = block.header.height;
        let hash = block.hash();
        let ids = block.tx_ids();
        self.executions.clear();
        self.proposal = self.proposal.take().filter(|p| p.height > h);
        self.sync.known = self.sync.known.max(h);
        let dropped = match self.mempool.on_block_committed(block, &ids, &self.ledger) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "mempool prune failed");
                Vec::new()
            }
        };
        for (i, id) in ids.iter().enumerate() {
            self.verified.remove(id);
            if let Some(at) = self.own.remove(id) {
                self.metrics
                    .commit_latency
                    .observe(now.duration_since(at).as_secs_f64());
            }
            if let Some(ws) = self.waiters.remove(id) {
                self.waiting = self.waiting.saturating_sub(ws.len());
                let r = ReceiptView {
                    height: h,
                    index: i as u32,
                    block_hash: hash,
                    block_time_ms: block.header.timestamp_ms,
                };
                for w in ws {
                    let _ = w.send(TxOutcome::Committed(r.clone()));
                }
            }
        }
        self.on_dropped(&dropped);
        if let Some(prev) = self.last_block_at {
            self.metrics
                .block_interval
                .observe(now.duration_since(prev).as_secs_f64());
        }
        self.last_block_at = Some(now);
        self.metrics.blocks.inc();
        self.metrics.committed_txs.inc_by(ids.len() as u64);
        let _ = self.events.send(ChainEvent::Block {
            block: BlockSummary::of(block),
            txs: ids,
        });
        let _ = self
            .net
            .publish(Topic::Blocks, codec::encode(&Announce { height: h, hash }));
        tracing::debug!(height = h, txs = block.txs.len(), "committed");
        // Readers of the status (API, readiness) see a commit as soon as a waiter does.
        self.publish_status();
    }

    fn on_dropped(&mut self, dropped: &[(TxId, TxRejection)]) {
        for (id, reason) in dropped {
            self.own.remove(id);
            self.metrics.rejected(reason.code());
            if let Some(ws) = self.waiters.remove(id) {
                self.waiting = self.waiting.saturating_sub(ws.len());
                for w in ws {
                    let _ = w.send(TxOutcome::Rejected(reason.clone()));
                }
            }
            let _ = self.events.send(ChainEvent::TxRejected {
                id: *id,
                reason: ReasonView::of(reason),
            });
        }
    }

    /// Applies commits and answers validations that waited for the ledger to catch up.
    fn drain_deferred(&mut self, queue: &mut VecDeque<Input<Direct>>) {
        loop {
            let next = self.ledger.tip().height + 1;
            self.deferred_commits = self.deferred_commits.split_off(&next);
            let Some((block, cert)) = self.deferred_commits.remove(&next) else {
                break;
            };
            let before = self.ledger.tip().height;
            self.on_commit(block, cert, queue);
            if self.ledger.tip().height == before {
                break;
            }
        }
        let tip = self.ledger.tip().height;
        let ready: Vec<Height> = self
            .deferred_validations
            .range(..=tip + 1)
            .map(|(h, _)| *h)
            .collect();
        for h in ready {
            for block in self.deferred_validations.remove(&h).unwrap_or_default() {
                let valid = self.validate(&block);
                queue.push_back(Input::Validated {
                    block_hash: block.hash(),
                    valid,
                });
            }
        }
    }

    /// Builds the block the engine asked for, if the mempool (or the clock) says it is time.
    fn maybe_build(&mut self) -> Option<Block> {
        let p = self.proposal.as_ref()?;
        let tip = self.ledger.tip();
        if p.height <= tip.height {
            self.proposal = None;
            return None;
        }
        if p.height > tip.height + 1 {
            return None;
        }
        let waited = p.since.elapsed();
        let interval = Duration::from_millis(self.cfg.consensus.block_interval_ms);
        let pending = self.mempool.len();
        let full = pending >= self.cfg.consensus.block_txs_max;
        let due = waited >= interval;
        let go = full || (pending > 0 && due) || (self.cfg.consensus.empty_blocks && due);
        if !go {
            return None;
        }
        let round = p.round;
        let candidates = match self
            .mempool
            .candidates(&self.ledger, self.cfg.consensus.block_txs_max)
        {
            Ok(mut c) => {
                let mut bytes = 0;
                let fit = c
                    .iter()
                    .take_while(|t| {
                        bytes += t.size();
                        bytes <= BLOCK_TX_BYTES_MAX
                    })
                    .count();
                c.truncate(fit);
                c
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the mempool's candidates");
                return None;
            }
        };
        let now_ms = now_ms();
        let built = match self.ledger.build_block(
            &candidates,
            cairn_ledger::BlockParams {
                proposer: self.key.public_key(),
                round,
                timestamp_ms: now_ms,
                max_txs: self.cfg.consensus.block_txs_max,
            },
        ) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot build a block");
                return None;
            }
        };
        let cascaded = self.mempool.drop_rejected(&built.dropped);
        self.on_dropped(&built.dropped);
        self.on_dropped(&cascaded);
        if built.block.txs.is_empty() && !self.cfg.consensus.empty_blocks {
            // Everything pending was dropped: nothing to propose after all.
            return None;
        }
        self.proposal = None;
        self.executions.insert(built.block.hash(), built.execution);
        Some(built.block)
    }

    // ---------------------------------------------------------------- block sync

    fn note_height(&mut self, h: Height, from: Option<PublicKey>) {
        if let Some(p) = from {
            let e = self.sync.heights.entry(p).or_insert(0);
            *e = (*e).max(h);
            if h > self.ledger.tip().height {
                self.sync.hint = Some(p);
            }
        }
        self.sync.known = self.sync.known.max(h);
    }

    /// What we know exists, from the claims of connected peers (and our own tip).
    fn recompute_known(&mut self) {
        let tip = self.ledger.tip().height;
        self.sync.known = self
            .sync
            .heights
            .values()
            .copied()
            .max()
            .unwrap_or(tip)
            .max(tip);
    }

    fn syncing(&self) -> bool {
        self.sync.known > self.ledger.tip().height
    }

    fn request_sync(&mut self) {
        if !self.syncing() {
            return;
        }
        if let Some((_, _, at)) = self.sync.inflight {
            if at.elapsed() < SYNC_TIMEOUT {
                return;
            }
            self.sync.inflight = None;
            self.sync.hint = None;
        }
        let tip = self.ledger.tip().height;
        let me = self.key.public_key();
        let mut candidates: Vec<PublicKey> = self
            .net
            .connected()
            .into_iter()
            .filter(|p| *p != me)
            .collect();
        if candidates.is_empty() {
            return;
        }
        candidates.sort();
        let peer = match self.sync.hint.filter(|h| self.net.is_connected(h)) {
            Some(p) => p,
            None => {
                // Peers known to be ahead first, then anyone, rotating on failures.
                let ahead: Vec<PublicKey> = candidates
                    .iter()
                    .copied()
                    .filter(|p| self.sync.heights.get(p).is_some_and(|h| *h > tip))
                    .collect();
                let pool = if ahead.is_empty() {
                    &candidates
                } else {
                    &ahead
                };
                self.sync.rotation = self.sync.rotation.wrapping_add(1);
                pool[self.sync.rotation % pool.len()]
            }
        };
        let req = SyncRequest {
            from: tip + 1,
            max_blocks: wire::SYNC_BLOCKS_MAX,
        };
        match self.net.request(peer, codec::encode(&req)) {
            Ok(id) => self.sync.inflight = Some((id, peer, Instant::now())),
            Err(e) => tracing::debug!(error = %e, "cannot send a sync request"),
        }
    }

    fn serve_sync(&mut self, from: PublicKey, id: RequestId, bytes: &[u8]) {
        let req = match wire::decode_sync_request(bytes) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.net.report(from, format!("bad sync request: {e}"));
                return;
            }
        };
        let tip = self.ledger.tip().height;
        let mut blocks = Vec::new();
        let mut size = 0usize;
        let last = tip.min(
            req.from
                .saturating_add(u64::from(req.max_blocks.min(wire::SYNC_BLOCKS_MAX)))
                .saturating_sub(1),
        );
        let mut h = req.from.max(1);
        while h <= last {
            let (Ok(Some(b)), Ok(Some(c))) = (
                self.ledger.store().block(h),
                self.ledger.store().certificate(h),
            ) else {
                break;
            };
            size += b.encoded_len() + 1024;
            if !blocks.is_empty() && size > wire::SYNC_RESPONSE_BYTES_MAX / 2 {
                break;
            }
            blocks.push((b, c));
            h += 1;
        }
        let resp = SyncResponse { tip, blocks };
        let _ = self.net.respond(id, codec::encode(&resp));
    }

    fn on_sync_response(&mut self, from: PublicKey, request: u64, result: Result<Vec<u8>, String>) {
        match self.sync.inflight {
            Some((id, _, _)) if id == request => self.sync.inflight = None,
            _ => return,
        }
        let resp = match result.map_err(|e| e.to_string()).and_then(|b| {
            wire::decode_sync_response(&b).map_err(|e| {
                let _ = self.net.report(from, format!("bad sync response: {e}"));
                e.to_string()
            })
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(peer = %from, error = %e, "sync request failed");
                self.sync.hint = None;
                return;
            }
        };
        let our_tip = self.ledger.tip().height;
        if resp.blocks.is_empty() && self.sync.heights.get(&from).is_some_and(|h| *h > our_tip) {
            // It said it was ahead and has nothing to show: forget the claim, and recompute
            // what we know from the others (a lying member cannot keep us "syncing").
            self.sync.heights.insert(from, our_tip);
            self.recompute_known();
            self.sync.hint = None;
        } else {
            self.note_height(resp.tip, Some(from));
        }
        let mut applied = 0;
        let mut queue = VecDeque::new();
        for (block, cert) in resp.blocks {
            let tip = self.ledger.tip();
            let h = block.header.height;
            if h <= tip.height {
                continue;
            }
            if h != tip.height + 1 {
                break;
            }
            // A fetched block proves itself: its certificate against the genesis validators,
            // its link to our tip, its transactions' signatures and its state root.
            if let Err(e) = self.ledger.verify_certificate(&block, &cert) {
                tracing::warn!(peer = %from, height = h, error = %e, "synced block has a bad certificate");
                let _ = self.net.report(from, "bad certificate in sync response");
                self.sync.hint = None;
                break;
            }
            let exec = self.execute_block(&block);
            match exec.and_then(|ex| {
                self.ledger
                    .commit(block.clone(), cert, ex)
                    .map_err(|e| e.to_string())
            }) {
                Ok(_) => {
                    applied += 1;
                    self.after_commit(&block);
                    // Tell the engine each height reached: PBFT signs checkpoints it syncs to.
                    let t = self.ledger.tip();
                    queue.push_back(Input::Synced {
                        height: t.height,
                        tip: t.hash,
                    });
                }
                Err(e) => {
                    tracing::warn!(peer = %from, height = h, error = %e, "synced block does not apply");
                    self.sync.hint = None;
                    break;
                }
            }
        }
        if applied > 0 {
            tracing::info!(peer = %from, blocks = applied, height = self.ledger.tip().height, "synced");
            if self.ledger.tip().height >= self.sync.known {
                self.sync.engine_waiting = false;
            }
            self.drain_deferred(&mut queue);
        }
        for input in queue {
            self.step(input);
        }
        // More right away only if this answer helped; otherwise the next tick retries (no
        // tight loop against peers with nothing to give).
        if applied > 0 {
            self.request_sync();
        }
    }

    // ---------------------------------------------------------------- network

    fn on_net(&mut self, ev: Event) {
        match ev {
            Event::Listening { addr } => tracing::info!(%addr, "p2p listening"),
            Event::Connected { peer } => {
                // Learn the peer's height (and catch up if behind) with an empty sync request.
                if self.sync.inflight.is_none() {
                    let req = SyncRequest {
                        from: self.ledger.tip().height + 1,
                        max_blocks: wire::SYNC_BLOCKS_MAX,
                    };
                    if let Ok(id) = self.net.request(peer, codec::encode(&req)) {
                        self.sync.inflight = Some((id, peer, Instant::now()));
                    }
                }
            }
            Event::Disconnected { peer } => {
                // Its height claim goes with it.
                if self.sync.heights.remove(&peer).is_some() {
                    self.recompute_known();
                }
                if self.sync.inflight.is_some_and(|(_, p, _)| p == peer) {
                    self.sync.inflight = None;
                }
            }
            Event::Direct { from, bytes } => {
                let Some(idx) = self.validators.iter().position(|k| *k == from) else {
                    // Observers have no say in consensus.
                    return;
                };
                match wire::decode_direct(&bytes) {
                    Ok(msg) => self.step(Input::Message {
                        from: NodeId(idx as u32),
                        msg,
                    }),
                    Err(e) => {
                        self.metrics.bad_messages.inc();
                        let _ = self
                            .net
                            .report(from, format!("undecodable consensus message: {e}"));
                    }
                }
            }
            Event::Gossip { from, topic, bytes } => match topic {
                Topic::Txs => match wire::decode_tx_batch(&bytes) {
                    Ok(b) => self.verify_gossip(b),
                    Err(e) => {
                        self.metrics.bad_messages.inc();
                        let _ = self
                            .net
                            .report(from, format!("undecodable transactions: {e}"));
                    }
                },
                Topic::Blocks => match wire::decode_announce(&bytes) {
                    Ok(a) => {
                        if a.height > self.ledger.tip().height {
                            self.note_height(a.height, Some(from));
                            // Consensus usually delivers the block itself; fall back to sync
                            // when the ledger is more than a block behind.
                            if a.height > self.ledger.tip().height + 1 {
                                self.request_sync();
                            }
                        }
                    }
                    Err(e) => {
                        self.metrics.bad_messages.inc();
                        let _ = self
                            .net
                            .report(from, format!("undecodable announcement: {e}"));
                    }
                },
            },
            Event::SyncRequest { from, id, bytes } => self.serve_sync(from, id, &bytes),
            Event::SyncResponse {
                from,
                request,
                result,
            } => self.on_sync_response(from, request, result),
        }
    }

    /// Queues gossiped transactions for verification; a bounded number of batches run off
    /// this task at once, and whatever arrives meanwhile joins the next batch (so the busier
    /// the node, the bigger and cheaper per signature its batches get).
    fn verify_gossip(&mut self, batch: TxBatch) {
        for t in batch.txs {
            let id = t.id();
            if self.mempool.contains(&id) || self.verified.contains(&id) {
                continue;
            }
            if self.to_verify.len() >= TO_VERIFY_MAX {
                // Bounded work: the senders gossip again what stays pending.
                self.metrics.dropped_gossip.inc();
                continue;
            }
            self.to_verify.push(t);
        }
        self.start_verification();
    }

    fn start_verification(&mut self) {
        while self.verifying < VERIFY_JOBS && !self.to_verify.is_empty() {
            let take = self.to_verify.len().min(wire::TX_BATCH_MAX);
            let fresh: Vec<SignedTransaction> = self.to_verify.drain(..take).collect();
            self.verifying += 1;
            let chain = self.ledger.chain_id().to_string();
            let out = self.verified_tx.clone();
            let metrics = self.metrics.clone();
            tokio::task::spawn_blocking(move || {
                metrics.verified_txs.inc_by(fresh.len() as u64);
                let r = verify_transactions(fresh, &chain);
                let _ = out.blocking_send(r);
            });
        }
    }

    fn on_verified(&mut self, batch: Vec<Result<VerifiedTransaction, TxRejection>>) {
        for r in batch {
            match r {
                Ok(tx) => {
                    let id = tx.id();
                    if let Ok(Err(reason)) = self.mempool.insert(tx, &self.ledger) {
                        // Duplicates and stale nonces are routine in gossip.
                        if !matches!(
                            reason,
                            TxRejection::Duplicate | TxRejection::StaleNonce { .. }
                        ) {
                            tracing::debug!(%id, %reason, "gossiped transaction not admitted");
                        }
                    }
                }
                Err(reason) => {
                    self.metrics.rejected(reason.code());
                }
            }
        }
        self.try_propose();
    }

    fn flush_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let txs = std::mem::take(&mut self.outbox);
        self.outbox_bytes = 0;
        let _ = self
            .net
            .publish(Topic::Txs, codec::encode(&TxBatch { txs }));
    }

    fn queue_gossip(&mut self, tx: SignedTransaction) {
        let size = tx.encoded_len();
        if self.outbox.len() >= wire::TX_BATCH_MAX
            || self.outbox_bytes + size > wire::GOSSIP_BYTES_MAX - 4096
        {
            self.flush_outbox();
        }
        self.outbox_bytes += size;
        self.outbox.push(tx);
    }

    // ---------------------------------------------------------------- tick

    fn on_tick(&mut self) {
        self.ticks += 1;
        let pending = !self.mempool.is_empty() || !self.to_verify.is_empty() || self.verifying > 0;
        if let Some(e) = self.engine.as_mut() {
            e.set_pending_work(pending);
        }
        self.step(Input::Tick);
        self.try_propose();
        self.flush_outbox();
        if self.ticks.is_multiple_of(20) {
            self.regossip();
        }
        self.request_sync();
        if self.sync.engine_waiting && !self.syncing() {
            // Nobody has more to give: the sync the engine asked for is over where it is.
            self.sync.engine_waiting = false;
            let tip = self.ledger.tip();
            self.step(Input::Synced {
                height: tip.height,
                tip: tip.hash,
            });
        }
        let status = self.engine.as_ref().map(|e| e.status());
        if let Some(s) = status
            && s.round > self.last_round
        {
            if self.last_round != 0 || s.round > 1 {
                self.metrics.round_changes.inc();
            }
            self.last_round = s.round;
        }
        self.publish_status();
    }

    fn try_propose(&mut self) {
        if self.proposal.is_some()
            && let Some(block) = self.maybe_build()
        {
            self.step(Input::Propose { block });
        }
    }

    /// Gossips again this node's own transactions that are still pending: a peer may have
    /// dropped the first copy (full queue, restart), and the leader must see them.
    fn regossip(&mut self) {
        let now = Instant::now();
        let stale: Vec<TxId> = self
            .own
            .iter()
            .filter(|(_, at)| now.duration_since(**at) > REGOSSIP_AFTER)
            .map(|(id, _)| *id)
            .take(wire::TX_BATCH_MAX)
            .collect();
        for id in stale {
            match self.mempool.get(&id) {
                Some(tx) => {
                    let tx = tx.signed().clone();
                    self.queue_gossip(tx);
                }
                None => {
                    self.own.remove(&id);
                }
            }
        }
        self.flush_outbox();
    }

    fn publish_status(&mut self) {
        let tip = self.ledger.tip();
        let s = self.engine.as_ref().map(|e| e.status());
        let quorum = match self.kind {
            ConsensusKind::Raft => self.validators.len() / 2 + 1,
            ConsensusKind::Pbft => {
                let f = (self.validators.len().saturating_sub(1)) / 3;
                2 * f + 1
            }
        };
        let connected_validators = self
            .validators
            .iter()
            .filter(|k| **k == self.key.public_key() || self.net.is_connected(k))
            .count();
        let syncing = self.syncing();
        let ready = !syncing && connected_validators >= quorum;
        self.metrics.height.set(tip.height as i64);
        self.metrics.peers.set(self.net.connected().len() as i64);
        self.metrics.mempool_txs.set(self.mempool.len() as i64);
        self.metrics.mempool_bytes.set(self.mempool.bytes() as i64);
        if let Some(s) = s {
            self.metrics.round.set(s.round as i64);
            self.metrics.role.set(match s.role {
                EngineRole::Follower => 0,
                EngineRole::PreCandidate => 1,
                EngineRole::Candidate => 2,
                EngineRole::Leader => 3,
            });
        }
        let view = StatusView {
            chain_id: self.ledger.chain_id().to_string(),
            genesis_hash: self.ledger.genesis_hash(),
            moniker: self.cfg.moniker.clone(),
            public_key: self.key.public_key(),
            consensus: self.kind,
            height: tip.height,
            head_hash: tip.hash,
            state_root: tip.state_root,
            head_time_ms: tip.timestamp_ms,
            role: role_name(s.map(|s| s.role)),
            round: s.map(|s| s.round).unwrap_or(0),
            leader: s
                .and_then(|s| s.leader)
                .and_then(|l| self.validators.get(l.index()).copied()),
            peers: self.net.connected().len(),
            validators: self.validators.len(),
            mempool_txs: self.mempool.len(),
            mempool_bytes: self.mempool.bytes(),
            syncing,
            known_height: self.sync.known,
            ready,
        };
        self.status.send_replace(view);
    }

    // ---------------------------------------------------------------- API

    fn on_request(&mut self, req: Request) {
        match req {
            Request::Blocks {
                before,
                limit,
                reply,
            } => {
                let _ = reply.send(self.blocks(before, limit));
            }
            Request::Range { from, limit, reply } => {
                let _ = reply.send(self.range(from, limit));
            }
            Request::Block { at, reply } => {
                let _ = reply.send(self.block(at));
            }
            Request::Tx { id, reply } => {
                let _ = reply.send(self.tx(id));
            }
            Request::Submit { tx, wait, reply } => {
                let r = self.submit(tx, wait);
                let _ = reply.send(r);
                self.try_propose();
            }
            Request::Account { id, reply } => {
                let _ = reply.send(self.account(id));
            }
            Request::AccountTxs {
                id,
                before,
                limit,
                reply,
            } => {
                let _ = reply.send(self.account_txs(id, before, limit));
            }
            Request::Validators { reply } => {
                let leader = self
                    .engine
                    .as_ref()
                    .and_then(|e| e.status().leader)
                    .map(|l| l.index());
                let me = self.key.public_key();
                let v = self
                    .ledger
                    .genesis()
                    .validators
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ValidatorView {
                        index: i,
                        name: v.name.clone(),
                        public_key: v.public_key,
                        address: v.address.clone(),
                        connected: v.public_key == me || self.net.is_connected(&v.public_key),
                        leader: leader == Some(i),
                    })
                    .collect();
                let _ = reply.send(Ok(v));
            }
        }
    }

    fn blocks(&self, before: Option<Height>, limit: usize) -> Result<BlockPage, ApiError> {
        let tip = self.ledger.tip().height;
        let top = before.map(|b| b.saturating_sub(1)).unwrap_or(tip).min(tip);
        let mut blocks = Vec::new();
        let mut h = top;
        while h >= 1 && blocks.len() < limit {
            match self.ledger.store().block(h).map_err(internal)? {
                Some(b) => blocks.push(BlockSummary::of(&b)),
                None => break,
            }
            h -= 1;
        }
        let next = blocks.last().map(|b| b.height).filter(|h| *h > 1);
        Ok(BlockPage { blocks, next })
    }

    fn range(&self, from: Height, limit: usize) -> Result<Vec<ChainEvent>, ApiError> {
        let tip = self.ledger.tip().height;
        let mut out = Vec::new();
        let mut h = from.max(1);
        while h <= tip && out.len() < limit {
            match self.ledger.store().block(h).map_err(internal)? {
                Some(b) => out.push(ChainEvent::Block {
                    block: BlockSummary::of(&b),
                    txs: b.tx_ids(),
                }),
                None => break,
            }
            h += 1;
        }
        Ok(out)
    }

    fn block(&self, at: BlockRef) -> Result<BlockView, ApiError> {
        let store = self.ledger.store();
        let h = match at {
            BlockRef::Height(h) => h,
            BlockRef::Hash(hash) => store
                .height_of(&hash)
                .map_err(internal)?
                .ok_or_else(|| ApiError::not_found(format!("no block with hash {hash}")))?,
        };
        let not_found = || {
            ApiError::not_found(format!(
                "no block at height {h} (the tip is {})",
                self.ledger.tip().height
            ))
        };
        if h == 0 {
            return Err(ApiError::not_found(
                "height 0 is the genesis state, not a block: see genesis.json",
            ));
        }
        let block = store.block(h).map_err(internal)?.ok_or_else(not_found)?;
        let certificate = store
            .certificate(h)
            .map_err(internal)?
            .ok_or_else(not_found)?;
        Ok(BlockView {
            height: h,
            hash: block.hash(),
            block,
            certificate,
        })
    }

    fn tx(&self, id: TxId) -> Result<TxView, ApiError> {
        let store = self.ledger.store();
        if let Some(loc) = store.tx_location(&id).map_err(internal)? {
            let block = store
                .block(loc.height)
                .map_err(internal)?
                .ok_or_else(|| ApiError::internal("indexed transaction's block is missing"))?;
            let tx = block.txs.get(loc.index as usize).cloned();
            return Ok(TxView {
                id,
                status: "committed".into(),
                tx,
                receipt: Some(ReceiptView {
                    height: loc.height,
                    index: loc.index,
                    block_hash: block.hash(),
                    block_time_ms: block.header.timestamp_ms,
                }),
                proof: block.inclusion_proof(loc.index as usize),
                reason: None,
            });
        }
        if let Some(tx) = self.mempool.get(&id) {
            return Ok(TxView {
                id,
                status: "pending".into(),
                tx: Some(tx.signed().clone()),
                receipt: None,
                proof: None,
                reason: None,
            });
        }
        if let Some(r) = self.mempool.rejection(&id) {
            return Ok(TxView {
                id,
                status: "rejected".into(),
                tx: None,
                receipt: None,
                proof: None,
                reason: Some(ReasonView::of(r)),
            });
        }
        Err(ApiError::not_found(format!(
            "transaction {id} is not pending, committed or recently rejected on this node"
        )))
    }

    fn submit(
        &mut self,
        tx: VerifiedTransaction,
        wait: bool,
    ) -> Result<(TxView, Option<oneshot::Receiver<TxOutcome>>), ApiError> {
        let id = tx.id();
        let signed = tx.signed().clone();
        // Already committed: say so (the nonce would say "stale" less helpfully).
        if self
            .ledger
            .store()
            .tx_location(&id)
            .map_err(internal)?
            .is_some()
        {
            return Err(ApiError::new(
                409,
                "already_committed",
                format!("transaction {id} is already committed: GET /api/v1/txs/{id}"),
            ));
        }
        // A transaction that would execute next is tried against the state now, so the client
        // hears "insufficient balance" or "not an admin" at once rather than from a later block.
        let next_nonce = self
            .ledger
            .account(&signed.tx.sender)
            .map_err(internal)?
            .map(|a| a.nonce)
            .unwrap_or(0);
        if signed.tx.nonce == next_nonce && !self.mempool.contains(&id) {
            let dry = self
                .ledger
                .build_block(
                    std::slice::from_ref(&tx),
                    cairn_ledger::BlockParams {
                        proposer: self.key.public_key(),
                        round: 0,
                        timestamp_ms: 0,
                        max_txs: 1,
                    },
                )
                .map_err(internal)?;
            if let Some((_, r)) = dry.dropped.first() {
                self.metrics.rejected(r.code());
                return Err(ApiError::rejected(r));
            }
        }
        match self.mempool.insert(tx, &self.ledger).map_err(internal)? {
            Ok(_) => {
                self.own.insert(id, Instant::now());
                // Gossiped with the next tick's batch (or sooner when the batch fills).
                self.queue_gossip(signed.clone());
            }
            Err(TxRejection::Duplicate) => {}
            Err(r) => {
                self.metrics.rejected(r.code());
                return Err(ApiError::rejected(&r));
            }
        }
        let rx = if wait {
            if self.waiting >= WAITERS_MAX {
                // Recount, forgetting clients that went away.
                self.waiters.retain(|_, ws| {
                    ws.retain(|w| !w.is_closed());
                    !ws.is_empty()
                });
                self.waiting = self.waiters.values().map(Vec::len).sum();
            }
            if self.waiting >= WAITERS_MAX {
                return Err(ApiError::unavailable(
                    "too many clients are waiting for commits; retry without wait",
                ));
            }
            let (tx, rx) = oneshot::channel();
            let ws = self.waiters.entry(id).or_default();
            // Clients that gave up leave closed senders behind: drop them, and bound the rest.
            ws.retain(|w| !w.is_closed());
            if ws.len() >= WAITERS_PER_TX {
                return Err(ApiError::unavailable(
                    "too many clients wait for this transaction; follow it with GET /api/v1/txs/{id}",
                ));
            }
            ws.push(tx);
            self.waiting += 1;
            Some(rx)
        } else {
            None
        };
        Ok((
            TxView {
                id,
                status: "pending".into(),
                tx: Some(signed),
                receipt: None,
                proof: None,
                reason: None,
            },
            rx,
        ))
    }

    fn account(&self, id: PublicKey) -> Result<AccountView, ApiError> {
        let a = self.ledger.account(&id).map_err(internal)?;
        Ok(AccountView {
            id,
            exists: a.is_some(),
            balance: a.as_ref().map(|a| a.balance).unwrap_or(0),
            nonce: a.as_ref().map(|a| a.nonce).unwrap_or(0),
            role: a.and_then(|a| a.role),
            height: self.ledger.tip().height,
        })
    }

    fn account_txs(
        &self,
        id: PublicKey,
        before: Option<Height>,
        limit: usize,
    ) -> Result<AccountTxPage, ApiError> {
        let tip = self.ledger.tip().height;
        let mut h = before.map(|b| b.saturating_sub(1)).unwrap_or(tip).min(tip);
        let stop = h.saturating_sub(ACCOUNT_SCAN_BLOCKS);
        let mut txs = Vec::new();
        while h >= 1 && h > stop {
            let Some(b) = self.ledger.store().block(h).map_err(internal)? else {
                break;
            };
            for (i, t) in b.txs.iter().enumerate().rev() {
                let involved = t.tx.sender == id
                    || match &t.tx.payload {
                        cairn_ledger::Payload::Transfer { to, .. } => *to == id,
                        cairn_ledger::Payload::AddMember { account, .. }
                        | cairn_ledger::Payload::RemoveMember { account } => *account == id,
                        cairn_ledger::Payload::PutRecord { .. } => false,
                    };
                if involved {
                    txs.push(AccountTx {
                        id: t.id(),
                        height: h,
                        index: i as u32,
                        tx: t.clone(),
                    });
                }
            }
            h -= 1;
            if txs.len() >= limit {
                break;
            }
        }
        // Whole blocks per page: the cursor is a height, so a page may exceed `limit` a little.
        let next = if h >= 1 { Some(h + 1) } else { None };
        Ok(AccountTxPage { txs, next })
    }
}
