//! The consensus task (DESIGN §5): it owns the engine, the ledger writer and the mempool, and
//! its loop only routes. Each concern is a module with one owner:
//!
//! | module | owns |
//! |---|---|
//! | [`driver`] | the engine; step, persist barrier, follow-up inputs |
//! | [`chain`] | the ledger writer; validate → execute → commit for consensus and sync |
//! | [`proposer`] | the parked proposal request and when to build |
//! | [`admission`] | the mempool, gossip verification, re-announcement |
//! | [`waiters`] | clients waiting for a commit |
//! | [`sync`] | peers' heights and the request in flight |
//! | [`status`] | readiness, the role shown, the operator's log lines |
//!
//! [`work`] holds these parts and carries out the engine's outputs on them; [`fetch`] runs
//! block sync with them. This file only routes events.
//!
//! Committed reads never come here: the API and the sync server read the store through a
//! `RocksReader` on the reader threads. Every event is handled with one reading of the clock.
//! A [`Fatal`] error ends the task, and the node with it.

pub mod admission;
pub mod chain;
pub mod compact;
pub mod driver;
pub mod epoch;
mod fetch;
mod handover;
pub mod proposer;
mod standby;
pub mod status;
pub mod sync;
pub mod waiters;
mod work;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_consensus::Input;
use cairn_crypto::{PublicKey, SigningKey};
use cairn_ledger::{Ledger, RocksReader, RocksStore, TxId, VerifiedTransaction};
use cairn_p2p::{Client, Event, Topic};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};

use crate::config::Config;
use crate::engines::NodeEngine;
use crate::fatal::Fatal;
use crate::metrics::Metrics;
use crate::views::{ApiError, ChainEvent, Published, TxView};
use crate::wire::{self, TxBatch};
use admission::Admission;
use chain::Chain;
use driver::Driver;
use proposer::{Policy, Proposer};
use status::Health;
use sync::Sync;
pub use waiters::TxOutcome;
use waiters::Waiters;
use work::{Clock, VerifiedBatch, Work};

/// Sync requests served at once (each reads up to 16 MiB of blocks off the core task).
const SYNC_SERVES_MAX: usize = 4;
/// Pending transactions are re-announced this often.
const REANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// A transaction the core admitted: its pending view and, if asked, a receiver of its final
/// outcome.
#[derive(Debug)]
pub struct Admit {
    /// What the client is told now.
    pub view: TxView,
    /// The outcome, when the client waits for it.
    pub waiter: Option<oneshot::Receiver<TxOutcome>>,
}

/// What the API asks the core: only what needs the mempool.
pub enum Request {
    /// Verified transactions to admit, in order, each with whether its client waits for the
    /// outcome. One request per intake batch.
    Admit {
        /// The transactions and their wait flags.
        txs: Vec<(VerifiedTransaction, bool)>,
        /// One answer per transaction, in order.
        reply: oneshot::Sender<Vec<Result<Admit, ApiError>>>,
    },
    /// A transaction that is not committed: pending here, or recently rejected.
    Uncommitted {
        /// Id.
        id: TxId,
        /// Answer.
        reply: oneshot::Sender<Option<TxView>>,
    },
}

/// Everything the core needs to start.
pub struct CoreParts {
    /// Settings.
    pub config: Config,
    /// This node's key.
    pub key: SigningKey,
    /// The opened ledger (the store's one writer).
    pub ledger: Ledger<RocksStore>,
    /// A read handle on the same store, for serving block sync off this task.
    pub reader: RocksReader,
    /// The reader threads that serve it.
    pub reads: crate::read_pool::ReadPool,
    /// The network.
    pub network: Client,
    /// Network events.
    pub net_events: mpsc::Receiver<Event>,
    /// API requests.
    pub requests: mpsc::Receiver<Request>,
    /// Live events for SSE.
    pub events: broadcast::Sender<ChainEvent>,
    /// Status for the API and readiness.
    pub status: watch::Sender<Published>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// `p2p.observers`: allowed to connect whatever the validator set.
    pub observers: Vec<PublicKey>,
    /// Pending validator changes and votes, as read at start.
    pub changes: crate::views::ValidatorChangesView,
}

/// The consensus task.
pub struct Core<P: NodeEngine> {
    /// `None` on an observer.
    driver: Option<Driver<P>>,
    work: Work,
    net_events: mpsc::Receiver<Event>,
    requests: mpsc::Receiver<Request>,
    verified_rx: mpsc::Receiver<VerifiedBatch>,
    tick_ms: u64,
    /// This node's key, for the engine of each new validator set.
    key: SigningKey,
    /// The engine was restored from a reset state at its set's start: it learns the tip
    /// before anything else.
    catch_up: bool,
}

impl<P: NodeEngine> Core<P> {
    /// Builds the core; `engine` is the restored engine of the set in force (`None` on an
    /// observer), `fresh` if its state was reset at the set's start.
    pub fn new(p: CoreParts, engine: Option<P>, fresh: bool) -> Core<P> {
        let genesis = p.ledger.genesis().clone();
        let set = p.ledger.validators_in_force().clone();
        let validators: Vec<PublicKey> = set.list().iter().map(|v| v.public_key).collect();
        let names = set.list().iter().map(|v| v.name.clone()).collect();
        let quorum = set.set().quorum(genesis.consensus.kind());
        let stall_after = stall_bound(&genesis.consensus);
        let me = p.key.public_key();
        let tip = p.ledger.tip().height;
        let (verified_tx, verified_rx) = mpsc::channel(16);
        let now = Instant::now();
        let admission = Admission::new(
            cairn_ledger::MempoolConfig {
                txs_max: p.config.mempool.txs_max,
                bytes_max: p.config.mempool.bytes_max,
                ..Default::default()
            },
            &genesis.chain_id,
            p.metrics.clone(),
        );
        let proposer = Proposer::new(Policy {
            block_txs_max: p.config.consensus.block_txs_max,
            block_interval: Duration::from_millis(p.config.consensus.block_interval_ms),
            empty_blocks: p.config.consensus.empty_blocks,
        });
        let mut admission = admission;
        admission.set_validators(&validators);
        Core {
            driver: engine.map(Driver::new),
            tick_ms: p.config.consensus.tick_ms,
            key: p.key,
            catch_up: fresh,
            work: Work {
                me,
                validators,
                epoch: set.since(),
                observers: p.observers,
                membership_changed: false,
                pending_keys: epoch::pending_keys(&p.changes),
                validator_list: set.list().into(),
                changes: Arc::new(p.changes),
                chain: Chain::new(p.ledger),
                admission,
                proposer,
                waiters: Waiters::new(),
                sync: Sync::new(me, tip),
                health: Health::new(
                    names,
                    quorum,
                    match genesis.consensus.kind() {
                        cairn_ledger::ConsensusKind::Raft => "term",
                        cairn_ledger::ConsensusKind::Pbft => "view",
                    },
                    stall_after,
                ),
                net: p.network,
                reader: p.reader,
                reads: p.reads,
                serving: Arc::new(Semaphore::new(SYNC_SERVES_MAX)),
                events: p.events,
                status: p.status,
                metrics: p.metrics,
                verified_tx,
                clock: Clock::read(),
                tip_since: now,
                last_block_at: None,
                nothing_to_build: None,
                last_announce: now,
                announced: 0,
                last_reannounce: now,
                engine: None,
                executable_since: None,
                trust_leader: genesis.consensus.kind() == cairn_ledger::ConsensusKind::Raft,
                compact: compact::Compactor::new(p.config.consensus.compact_blocks),
                cfg: p.config,
            },
            net_events: p.net_events,
            requests: p.requests,
            verified_rx,
        }
    }

    /// Runs until `shutdown` flips to true; a fatal failure ends it early with the cause.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), Fatal> {
        let mut tick = tokio::time::interval(Duration::from_millis(self.tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.catch_up_engine()?;
        self.work
            .publish_status(self.driver.as_ref().map(Driver::status));
        loop {
            // Unbiased: a flood of network events cannot starve the tick or the API.
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(batch) = self.verified_rx.recv() => {
                    self.work.clock = Clock::read();
                    self.on_verified(batch)?;
                }
                Some(ev) = self.net_events.recv() => {
                    self.work.clock = Clock::read();
                    self.on_net(ev)?;
                }
                Some(req) = self.requests.recv() => {
                    self.work.clock = Clock::read();
                    self.on_request(req)?;
                }
                _ = tick.tick() => {
                    self.work.clock = Clock::read();
                    self.on_tick()?;
                }
                else => break,
            }
        }
        self.shut_down();
        tracing::info!(height = self.work.chain.tip().height, "core stopped");
        Ok(())
    }

    /// Admission stops first; submissions already queued are answered and, with everything
    /// admitted, handed to the network before the task ends.
    fn shut_down(&mut self) {
        self.work.admission.stop_accepting();
        self.requests.close();
        while let Ok(req) = self.requests.try_recv() {
            self.work.clock = Clock::read();
            if let Err(e) = self.on_request(req) {
                tracing::error!(error = %e, "while shutting down");
            }
        }
        self.work.admission.flush();
        self.work.publish_gossip();
    }

    fn step(&mut self, input: Input<P::Message>) -> Result<(), Fatal> {
        self.follow_the_set()?;
        self.run_engine(input)?;
        self.follow_the_set()
    }

    fn run_engine(&mut self, input: Input<P::Message>) -> Result<(), Fatal> {
        let Some(d) = self.driver.as_mut() else {
            return Ok(());
        };
        let from = match &input {
            Input::Message { from, .. } => Some(*from),
            _ => None,
        };
        let before = d.status().refused;
        let result = d.run(input, &mut self.work);
        let after = d.status().refused;
        for (reason, count) in after.since(&before) {
            self.work
                .metrics
                .consensus_refused
                .get_or_create(&vec![("reason".to_string(), reason.as_str().to_string())])
                .inc_by(count);
            match from {
                Some(peer) => tracing::debug!(
                    peer = %self.work.health.name(peer.index()),
                    %reason,
                    "consensus refused a message"
                ),
                None => tracing::debug!(%reason, "consensus refused an input"),
            }
        }
        result
    }

    /// Transactions another node announced (directly, or relayed by gossip).
    fn on_txs(
        &mut self,
        txs: Vec<cairn_ledger::SignedTransaction>,
        now: Instant,
    ) -> Result<(), Fatal> {
        // A Raft follower holds others' transactions unverified (standby): the leader
        // verifies them, and this node trusts its blocks.
        let standby = self.follows_a_leader();
        let w = &mut self.work;
        let admitted = w.admission.on_gossip(txs, standby, w.chain.ledger(), now)?;
        w.start_verification();
        if admitted {
            self.try_propose()?;
        }
        Ok(())
    }

    /// A Raft follower that knows its leader (another node).
    fn follows_a_leader(&self) -> bool {
        let Some(d) = self.driver.as_ref().filter(|_| self.work.trust_leader) else {
            return false;
        };
        let st = d.status();
        st.role == cairn_consensus::Role::Follower
            && st
                .leader
                .and_then(|l| self.work.validators.get(l.index()))
                .is_some_and(|k| *k != self.work.me)
    }

    fn steps(&mut self, inputs: Vec<Input<P::Message>>) -> Result<(), Fatal> {
        for i in inputs {
            self.step(i)?;
        }
        Ok(())
    }

    fn try_propose(&mut self) -> Result<(), Fatal> {
        if self.driver.is_some()
            && let Some(block) = self.work.try_build()?
        {
            self.step(Input::Propose {
                block: Box::new(block),
            })?;
        }
        Ok(())
    }

    fn on_tick(&mut self) -> Result<(), Fatal> {
        if self.work.trust_leader && !self.follows_a_leader() {
            // An election, or this node leads: what it held for the leader is now its own to
            // verify and order.
            self.work.admission.take_over_standby();
            self.work.start_verification();
        }
        let pending_work = self.work.admission.mempool().has_executable();
        self.step(Input::Tick { pending_work })?;
        self.try_propose()?;
        let now = self.work.clock.at;
        if now.saturating_duration_since(self.work.last_reannounce) >= REANNOUNCE_EVERY {
            self.work.last_reannounce = now;
            let w = &mut self.work;
            let dropped = w.admission.reannounce(&w.chain, now)?;
            w.on_dropped(&dropped);
        }
        self.work.admission.flush();
        self.work.publish_gossip();
        self.work.request_sync();
        if self.work.sync.engine_gave_up(self.work.chain.tip().height) {
            // Nobody has more to give: the sync the engine asked for is over where it is.
            let tip = self.work.chain.tip();
            self.step(Input::Synced {
                height: tip.height,
                tip: tip.hash,
            })?;
        }
        self.work.maybe_announce_tip();
        self.work
            .publish_status(self.driver.as_ref().map(Driver::status));
        Ok(())
    }

    fn on_verified(&mut self, batch: VerifiedBatch) -> Result<(), Fatal> {
        let now = self.work.clock.at;
        self.work
            .admission
            .on_verified(batch, self.work.chain.ledger(), now)?;
        self.work.start_verification();
        self.try_propose()
    }

    fn on_request(&mut self, req: Request) -> Result<(), Fatal> {
        match req {
            Request::Admit { txs, reply } => {
                let now = self.work.clock.at;
                let w = &mut self.work;
                let answers = txs
                    .into_iter()
                    .map(|(tx, wait)| {
                        let a = w.admission.submit(tx, &w.chain, now)?;
                        // Admitted either way: if no waiter can be registered (too many
                        // clients wait), the client hears "pending" rather than a refusal
                        // of a transaction that is in the mempool.
                        let waiter = if wait {
                            w.waiters.register(a.view.id).ok()
                        } else {
                            None
                        };
                        Ok(Admit {
                            view: a.view,
                            waiter,
                        })
                    })
                    .collect();
                let _ = reply.send(answers);
                // Announced now rather than at the next tick (the intake already batches),
                // and before any block that may carry them goes out.
                self.work.admission.flush();
                self.work.publish_gossip();
                self.try_propose()?;
            }
            Request::Uncommitted { id, reply } => {
                let _ = reply.send(self.work.admission.lookup(&id));
            }
        }
        Ok(())
    }

    fn on_net(&mut self, ev: Event) -> Result<(), Fatal> {
        let now = self.work.clock.at;
        match ev {
            // The network logs its own addresses.
            Event::Listening { .. } => {}
            Event::Connected { peer } => self.work.probe(peer),
            Event::Disconnected { peer } => {
                let tip = self.work.chain.tip().height;
                self.work.sync.on_disconnect(&peer, tip);
            }
            Event::Direct { from, bytes } => {
                let message = match wire::decode_direct(&bytes) {
                    Ok(wire::Direct::Txs(TxBatch { txs })) => return self.on_txs(txs, now),
                    Ok(wire::Direct::Engine(m)) => m,
                    Ok(wire::Direct::Compact(c)) => {
                        // Nothing is fetched for a message the engine would not take.
                        if !self.of_this_instance(from, c.message.epoch)
                            || !self.work.validators.contains(&from)
                        {
                            return Ok(());
                        }
                        match self.work.receive_compact(from, c) {
                            Some(m) => m,
                            None => return Ok(()),
                        }
                    }
                    Ok(wire::Direct::WantTxs(w)) => {
                        self.work.answer_want(from, w);
                        return Ok(());
                    }
                    Ok(wire::Direct::BlockTxs(b)) => {
                        let (whole, unused) = self.work.compact.on_block_txs(from, b);
                        if !unused.is_empty() {
                            self.on_txs(unused, now)?;
                        }
                        match whole {
                            Some(m) => m,
                            None => return Ok(()),
                        }
                    }
                    Err(e) => {
                        self.work.metrics.bad_messages.inc();
                        let _ = self
                            .work
                            .net
                            .report(from, format!("undecodable consensus message: {e}"));
                        return Ok(());
                    }
                };
                self.on_engine_message(from, message, now)?;
            }
            Event::Gossip { from, topic, bytes } => match topic {
                Topic::Txs => match wire::decode_tx_batch(&bytes) {
                    Ok(TxBatch { txs }) => self.on_txs(txs, now)?,
                    Err(e) => {
                        self.work.metrics.bad_messages.inc();
                        let _ = self
                            .work
                            .net
                            .report(from, format!("undecodable transactions: {e}"));
                    }
                },
                Topic::Blocks => match wire::decode_announce(&bytes) {
                    Ok(a) => {
                        let tip = self.work.chain.tip().height;
                        if a.height > tip {
                            self.work.sync.note_height(a.height, Some(from), tip, now);
                            self.work.request_sync();
                        }
                    }
                    Err(e) => {
                        self.work.metrics.bad_messages.inc();
                        let _ = self
                            .work
                            .net
                            .report(from, format!("undecodable announcement: {e}"));
                    }
                },
            },
            Event::SyncRequest { from, id, bytes } => self.work.serve_sync(from, id, &bytes),
            Event::SyncResponse {
                from,
                request,
                result,
            } => {
                let inputs = self.work.on_sync_response(from, request, result)?;
                self.steps(inputs)?;
                let inputs = self.work.after_sync()?;
                self.steps(inputs)?;
                // An observer steps no engine: it follows the set here.
                self.follow_the_set()?;
            }
        }
        Ok(())
    }
}

/// How long the tip may stay still while executable transactions wait before the node calls
/// itself stalled: four of the engine's failover timeouts, and at least 5 s.
fn stall_bound(c: &cairn_ledger::ConsensusConfig) -> Duration {
    let ms = match c {
        cairn_ledger::ConsensusConfig::Raft(p) => p.election_timeout_max_ms,
        cairn_ledger::ConsensusConfig::Pbft(p) => p.view_change_timeout_ms,
    };
    Duration::from_millis(ms.saturating_mul(4).max(5_000))
}
