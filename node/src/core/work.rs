//! Everything the engine's outputs act on ([`Work`]), and how they act: sends, commits and
//! their fan-out (mempool, waiters, events, announcements), proposals, validations, the
//! published status. The core's loop owns a `Work` beside the engine's driver and lends it to
//! the driver as the engine's [`Effects`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_consensus::{Input, Output};
use cairn_crypto::{PublicKey, codec};
use cairn_ledger::{
    BlockParams, BlockStore, ChainRead, ConsensusWrite, RocksReader, RocksStore, TxId, TxRejection,
    VerifiedTransaction,
};
use cairn_p2p::{Client, Topic};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};

use super::admission::{Admission, Route};
use super::chain::{Chain, CommitOutcome, Committed, TrustLeader, Validation};
use super::compact::{self, Compactor, Received};
use super::driver::{Effect, Effects};
use super::proposer::{Pending, Proposer};
use super::status::{Health, Observed, Peer};
use super::sync::{self, Sync};
use super::waiters::Waiters;
use crate::config::Config;
use crate::engines::NodeEngine;
use crate::fatal::Fatal;
use crate::metrics::Metrics;
use crate::views::{BlockSummary, ChainEvent, Published, ReasonView, ReceiptView, StatusView};
use crate::wire::{self, Announce, Direct, EngineMessage, TxBatch};

/// Most bytes of transactions in a block this node builds: a block must fit in one consensus
/// message (`wire::DIRECT_BYTES_MAX`, 8 MiB, which a Raft append shares among up to three
/// entries) and comfortably in a sync response.
const BLOCK_TX_BYTES_MAX: usize = 2 << 20;

/// A batch of gossiped transactions, verified off the core task.
pub(super) type VerifiedBatch = Vec<Result<VerifiedTransaction, TxRejection>>;

/// The clock, read once per event.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub(super) at: Instant,
    pub(super) unix_ms: u64,
}

impl Clock {
    pub(super) fn read() -> Clock {
        Clock {
            at: Instant::now(),
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

/// Everything the engine's outputs act on.
pub(super) struct Work {
    pub(super) cfg: Config,
    pub(super) me: PublicKey,
    /// The validators in force, in order (an engine's `NodeId` is an index into it).
    pub(super) validators: Vec<PublicKey>,
    /// The same with their names, as the API shows them (replaced when the set changes).
    pub(super) validator_list: Arc<[cairn_ledger::Validator]>,
    /// The instance this node runs: the `since` of the set it was started for. When the
    /// ledger's set in force moves past it, the instance is over: its outputs are dropped
    /// until the core starts the next one.
    pub(super) epoch: cairn_ledger::Height,
    /// `p2p.observers`.
    pub(super) observers: Vec<PublicKey>,
    /// A committed block approved or activated a validator change: the allow-list and the
    /// validators' names are read again.
    pub(super) membership_changed: bool,
    /// What the API shows of pending changes and votes.
    pub(super) changes: Arc<crate::views::ValidatorChangesView>,
    /// The keys of the set a pending change makes: besides the set in force, whose messages
    /// of a later instance this node takes as a sign it is behind.
    pub(super) pending_keys: Vec<PublicKey>,
    pub(super) chain: Chain<RocksStore>,
    pub(super) admission: Admission,
    pub(super) proposer: Proposer,
    pub(super) waiters: Waiters,
    pub(super) sync: Sync,
    pub(super) health: Health,
    pub(super) net: Client,
    pub(super) reader: RocksReader,
    pub(super) reads: crate::read_pool::ReadPool,
    pub(super) serving: Arc<Semaphore>,
    pub(super) events: broadcast::Sender<ChainEvent>,
    pub(super) status: watch::Sender<Published>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) verified_tx: mpsc::Sender<VerifiedBatch>,
    pub(super) clock: Clock,
    pub(super) tip_since: Instant,
    pub(super) last_block_at: Option<Instant>,
    /// What the last build that found nothing to propose saw: (tip height, height built
    /// to, mempool arrivals). Building again is pointless until one of them changes.
    pub(super) nothing_to_build: Option<(cairn_ledger::Height, cairn_ledger::Height, u64)>,
    pub(super) last_announce: Instant,
    /// The height last announced.
    pub(super) announced: cairn_ledger::Height,
    pub(super) last_reannounce: Instant,
    /// The engine's status as last published (commits republish the status with it).
    pub(super) engine: Option<cairn_consensus::Status>,
    /// Since when transactions that could execute have been waiting (for the stall check).
    pub(super) executable_since: Option<Instant>,
    /// Raft: blocks consensus commits come from the leader, which verified every signature in
    /// them (the crash-fault model trusts it), so a follower does not verify them again.
    /// Blocks from block sync are verified whatever the engine.
    pub(super) trust_leader: bool,
    /// Blocks sent as ids, and received ones waiting for transactions.
    pub(super) compact: Compactor,
}

impl<P: NodeEngine> Effects<P> for Work {
    fn persist(&mut self, writes: &[ConsensusWrite]) -> Result<(), Fatal> {
        self.chain
            .store_mut()
            .consensus_write(writes)
            .map_err(|source| Fatal::Persist { source })
    }

    fn execute(
        &mut self,
        o: Effect<P>,
        follow_up: &mut VecDeque<Input<P::Message>>,
    ) -> Result<(), Fatal> {
        let now = self.clock.at;
        if self.instance_over() {
            // A block this instance committed changed the set: nothing more of it counts
            // (the core starts the next instance when this step ends).
            return Ok(());
        }
        let epoch = self.epoch;
        let wrap = |msg| EngineMessage {
            epoch,
            body: P::wrap(msg),
        };
        match o {
            Output::Send { to, msg } => {
                if let Some(k) = self.validators.get(to.index()).copied() {
                    let bytes = codec::encode(&self.compact.compact(wrap(msg)));
                    self.send(k, bytes);
                }
            }
            Output::Broadcast { msg } => {
                let bytes = codec::encode(&self.compact.compact(wrap(msg)));
                for k in self.validators.clone() {
                    self.send(k, bytes.clone());
                }
            }
            Output::Persist { .. } => {}
            Output::Commit { block, certificate } => {
                let outcome = if self.trust_leader {
                    self.chain.commit(block, certificate, &mut TrustLeader)?
                } else {
                    self.chain.commit(block, certificate, &mut self.admission)?
                };
                match outcome {
                    CommitOutcome::Applied(done) => {
                        for c in done {
                            self.after_commit(c)?;
                        }
                        self.ready_validations(follow_up)?;
                        // A request parked behind the block that just committed may be due.
                        if self.proposer.is_parked()
                            && let Some(block) = self.try_build()?
                        {
                            follow_up.push_back(Input::Propose {
                                block: Box::new(block),
                            });
                        }
                    }
                    CommitOutcome::Held(h) => {
                        // The ledger is behind the engine: fetch the gap.
                        let tip = self.chain.tip().height;
                        self.sync.note_height(h, None, tip, now);
                        self.request_sync();
                    }
                    CommitOutcome::AlreadyHeld => {}
                }
            }
            Output::RequestProposal { height, round } => {
                if height > self.chain.tip().height {
                    // Blocks built at or above it will not commit (a new term or view).
                    self.chain.drop_ahead_from(height);
                    self.proposer.park(height, round, now);
                    if let Some(block) = self.try_build()? {
                        follow_up.push_back(Input::Propose {
                            block: Box::new(block),
                        });
                    }
                }
            }
            Output::Validate { block } => {
                let hash = block.hash();
                let h = block.header.height;
                match self
                    .chain
                    .validate(block, self.clock.unix_ms, &mut self.admission)?
                {
                    Validation::Valid => follow_up.push_back(Input::Validated {
                        block_hash: hash,
                        valid: true,
                    }),
                    Validation::Invalid(why) => {
                        tracing::warn!(height = h, %why, "proposed block is invalid");
                        follow_up.push_back(Input::Validated {
                            block_hash: hash,
                            valid: false,
                        });
                    }
                    Validation::Later => {
                        let tip = self.chain.tip().height;
                        self.sync.note_height(h - 1, None, tip, now);
                        self.request_sync();
                    }
                }
            }
            Output::NotLeader { .. } => {}
            Output::SyncTo { peer, height } => {
                let hint = self.validators.get(peer.index()).copied();
                let tip = self.chain.tip().height;
                self.sync.engine_wants(height, hint, tip, now);
                if tip >= height {
                    // Already there: answer with exactly the height asked for (PBFT syncs
                    // checkpoint by checkpoint and signs each one it reaches).
                    self.sync.engine_answered();
                    let (height, hash) = match self.chain.hash_at(height)? {
                        Some(h) => (height, h),
                        None => (tip, self.chain.tip().hash),
                    };
                    follow_up.push_back(Input::Synced { height, tip: hash });
                } else {
                    self.request_sync();
                }
            }
        }
        Ok(())
    }
}

impl Work {
    /// Reads the set in force, the pending change and the votes again: hands the network its
    /// new allow-list, and the API what it shows.
    pub(super) fn refresh_membership(&mut self) -> Result<(), Fatal> {
        let ledger = self.chain.ledger();
        let changes =
            super::epoch::changes_view(ledger).map_err(|source| Fatal::Read { source })?;
        let keys = super::epoch::allowed(
            ledger.validators_in_force(),
            changes.pending.as_ref().map(|p| &p.change),
            &self.observers,
        );
        self.pending_keys = super::epoch::pending_keys(&changes);
        self.changes = Arc::new(changes);
        if let Err(e) = self.net.set_allowed(keys) {
            // The network's command queue is full: tried again at the next step or tick.
            tracing::warn!(error = %e, "cannot update the network's allow-list yet");
            self.membership_changed = true;
        }
        Ok(())
    }

    /// Whether the ledger's set in force is no longer the one this node's instance orders.
    pub(super) fn instance_over(&self) -> bool {
        self.chain.ledger().validators_in_force().since() != self.epoch
    }

    /// A compact message from a validator: whole if this node holds every transaction in it;
    /// otherwise it waits, and the sender is asked for the rest.
    pub(super) fn receive_compact(
        &mut self,
        from: PublicKey,
        c: wire::Compact,
    ) -> Option<wire::EngineMessage> {
        let admission = &self.admission;
        match self.compact.receive(from, c, |ids| admission.find_txs(ids)) {
            Received::Whole(m) => Some(m),
            Received::Asks(asks) => {
                self.metrics.compact_asks.inc_by(asks.len() as u64);
                for w in asks {
                    self.send(from, codec::encode(&Direct::WantTxs(w)));
                }
                None
            }
        }
    }

    /// A validator misses transactions of a block this node sent: from the blocks kept, or,
    /// for one of the last [`compact::STORE_ANSWERS`] committed blocks, from the store, read
    /// on the reader threads like a block sync request (and, like one, not answered when four
    /// are being served or the readers' queue is full: the engines send again what is in
    /// flight, and the asker asks again).
    pub(super) fn answer_want(&mut self, from: PublicKey, want: wire::WantTxs) {
        if let Some(a) = self.compact.answer(&want) {
            self.send(from, codec::encode(&Direct::BlockTxs(a)));
            return;
        }
        let tip = self.chain.tip().height;
        if want.height > tip || tip - want.height >= compact::STORE_ANSWERS {
            return;
        }
        let Ok(permit) = self.serving.clone().try_acquire_owned() else {
            return;
        };
        let (reader, net) = (self.reader.clone(), self.net.clone());
        let _ = self.reads.try_spawn(move || {
            let _permit = permit;
            match reader.block(want.height) {
                Ok(Some(b)) if b.hash() == want.block => {
                    let answer = compact::pick(&want, &b.txs);
                    let _ = net.send(from, codec::encode(&Direct::BlockTxs(answer)));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read a block for a peer"),
            }
        });
    }

    pub(super) fn send(&self, to: PublicKey, bytes: Vec<u8>) {
        if to != self.me && self.net.is_connected(&to) {
            let _ = self.net.send(to, bytes);
        }
    }

    /// Sends the announcements ready: first ones straight to each other validator (each
    /// transaction crosses each link once, encoded once), later ones through gossip, whose
    /// mesh relays them to a validator this node has no link to.
    pub(super) fn publish_gossip(&mut self) {
        // An observer's direct messages are not taken by validators: it gossips only.
        let validator = self.validators.contains(&self.me);
        for (txs, route) in self.admission.take_ready() {
            match route {
                Route::Direct if validator => {
                    let bytes = codec::encode(&Direct::Txs(TxBatch { txs }));
                    for k in &self.validators {
                        self.send(*k, bytes.clone());
                    }
                }
                Route::Direct | Route::Gossip => {
                    let _ = self
                        .net
                        .publish(Topic::Txs, codec::encode(&TxBatch { txs }));
                }
            }
        }
    }

    /// Announces the tip if it is new and the last announcement is [`sync::ANNOUNCE_GAP`]
    /// old, or whatever it is once the last is [`sync::ANNOUNCE_EVERY`] old.
    pub(super) fn maybe_announce_tip(&mut self) {
        let since = self.clock.at.saturating_duration_since(self.last_announce);
        let new = self.chain.tip().height != self.announced;
        if (new && since >= sync::ANNOUNCE_GAP) || since >= sync::ANNOUNCE_EVERY {
            self.announce_tip();
        }
    }

    fn announce_tip(&mut self) {
        let tip = self.chain.tip();
        self.last_announce = self.clock.at;
        self.announced = tip.height;
        let _ = self.net.publish(
            Topic::Blocks,
            codec::encode(&Announce {
                height: tip.height,
                hash: tip.hash,
            }),
        );
    }

    pub(super) fn start_verification(&mut self) {
        while let Some(batch) = self.admission.next_batch() {
            let chain = self.chain.ledger().chain_id().to_string();
            let out = self.verified_tx.clone();
            let metrics = self.metrics.clone();
            tokio::task::spawn_blocking(move || {
                let r = cairn_ledger::verify_transactions(batch, &chain);
                metrics.verified(&r);
                let _ = out.blocking_send(r);
            });
        }
    }

    /// Builds the block the engine asked for, if the policy says it is time.
    pub(super) fn try_build(&mut self) -> Result<Option<cairn_ledger::Block>, Fatal> {
        let mempool = self.admission.mempool();
        // Transactions in blocks built here and not committed yet are still in the mempool
        // (until their block commits), but no later block can take them.
        let txs = mempool.len().saturating_sub(self.chain.ahead_txs());
        let pending = Pending {
            txs,
            executable: mempool.has_executable() && txs > 0,
        };
        let (tip, built_to) = (self.chain.tip().height, self.chain.built_to());
        let Some((height, round)) = self.proposer.due(tip, built_to, pending, self.clock.at) else {
            return Ok(None);
        };
        // What the last try saw: the tip, the blocks built ahead, and arrivals.
        let seen = (tip, built_to, mempool.arrivals());
        if !self.proposer.policy().empty_blocks && self.nothing_to_build == Some(seen) {
            // The last try found nothing that executes, and nothing has changed since.
            return Ok(None);
        }
        let policy = self.proposer.policy();
        let candidates = self.admission.candidates(
            &self.chain.view_ahead(),
            policy.block_txs_max,
            BLOCK_TX_BYTES_MAX,
        )?;
        let Some(built) = self.chain.build(
            &candidates,
            BlockParams {
                proposer: self.me,
                round,
                timestamp_ms: self.clock.unix_ms,
                max_txs: policy.block_txs_max,
            },
        )?
        else {
            return Ok(None);
        };
        debug_assert_eq!(built.block.header.height, height);
        let dropped = self.admission.drop_rejected(&built.dropped);
        self.on_dropped(&dropped);
        if built.block.txs.is_empty() && !policy.empty_blocks {
            // Everything pending was dropped or waits behind a nonce gap (or is in the blocks
            // built ahead): nothing to propose until a commit or an arrival changes that.
            self.nothing_to_build = Some(seen);
            return Ok(None);
        }
        self.nothing_to_build = None;
        self.chain.built(built.execution);
        self.proposer.built();
        Ok(Some(built.block))
    }

    pub(super) fn on_dropped(&mut self, dropped: &[(TxId, TxRejection)]) {
        for (id, reason) in dropped {
            self.metrics.rejected(reason.code());
            self.waiters.rejected(id, reason);
            let _ = self.events.send(ChainEvent::TxRejected {
                id: *id,
                reason: ReasonView::of(reason),
            });
        }
    }

    /// Fans a new block out to everyone who cares.
    pub(super) fn after_commit(&mut self, c: Committed) -> Result<(), Fatal> {
        let now = self.clock.at;
        let h = c.block.header.height;
        self.proposer.on_commit(h);
        // Votes expire at boundaries, changes come with transactions and take effect with
        // boundary blocks: the listing and the allow-list are read again after each.
        let epoch_length = self.chain.ledger().genesis().consensus.epoch_length();
        if h.is_multiple_of(epoch_length.max(1))
            || c.block
                .txs
                .iter()
                .any(|t| matches!(t.tx.payload, cairn_ledger::Payload::ChangeValidators { .. }))
        {
            self.membership_changed = true;
        }
        let dropped = self
            .admission
            .on_block_committed(&c.block, &c.ids, &self.chain, now)?;
        for (i, id) in c.ids.iter().enumerate() {
            self.waiters.committed(
                id,
                &ReceiptView {
                    height: h,
                    index: i as u32,
                    block_hash: c.hash,
                    block_time_ms: c.block.header.timestamp_ms,
                },
            );
        }
        self.on_dropped(&dropped);
        if let Some(prev) = self.last_block_at {
            self.metrics
                .block_interval
                .observe(now.saturating_duration_since(prev).as_secs_f64());
        }
        self.last_block_at = Some(now);
        self.tip_since = now;
        self.metrics.blocks.inc();
        self.metrics.committed_txs.inc_by(c.ids.len() as u64);
        self.metrics
            .cached_accounts
            .set(self.chain.ledger().accounts_kept() as i64);
        self.metrics
            .cached_keys
            .set(cairn_crypto::cached_keys() as i64);
        self.metrics
            .verified_kept
            .set(self.admission.verified_kept() as i64);
        let _ = self.events.send(ChainEvent::Block {
            block: BlockSummary::of(&c.block),
            txs: c.ids,
        });
        self.maybe_announce_tip();
        if let Some(run) = self.sync.on_tip(h) {
            tracing::info!(
                from = run.from,
                to = h,
                seconds = now.saturating_duration_since(run.since).as_secs_f64(),
                "synced: caught up by block sync"
            );
        }
        tracing::debug!(height = h, txs = c.block.txs.len(), "committed");
        // Readers of the status (API, readiness) see a commit as soon as a waiter does.
        self.publish_status(self.engine);
        Ok(())
    }

    /// Validations held until the ledger caught up, answered now.
    pub(super) fn ready_validations<M>(
        &mut self,
        follow_up: &mut VecDeque<Input<M>>,
    ) -> Result<(), Fatal> {
        for block in self.chain.take_ready_validations() {
            let hash = block.hash();
            let valid = matches!(
                self.chain
                    .validate(block, self.clock.unix_ms, &mut self.admission)?,
                Validation::Valid
            );
            follow_up.push_back(Input::Validated {
                block_hash: hash,
                valid,
            });
        }
        Ok(())
    }

    pub(super) fn publish_status(&mut self, engine: Option<cairn_consensus::Status>) {
        self.engine = engine;
        let tip = self.chain.tip();
        let now = self.clock.at;
        let peers: Vec<Peer> = self
            .validators
            .iter()
            .map(|k| Peer {
                silent_for: if *k == self.me {
                    Some(Duration::ZERO)
                } else {
                    self.net.silent_for(k)
                },
            })
            .collect();
        let mempool = self.admission.mempool();
        let executable = mempool.has_executable();
        self.executable_since = match (executable, self.executable_since) {
            (false, _) => None,
            (true, None) => Some(now),
            (true, since) => since,
        };
        // A stall is measured from the later of the last block and the moment work appeared:
        // the first transaction after an idle hour is not an hour late.
        let waiting_since = self
            .executable_since
            .map_or(self.tip_since, |e| e.max(self.tip_since));
        let observed = Observed {
            engine,
            height: tip.height,
            known: self.sync.known(),
            peers,
            executable,
            pending: mempool.len(),
            tip_since: waiting_since,
            now,
        };
        let readiness = self.health.assess(&observed);
        self.health.log_changes(&observed, &readiness);
        let shown = self.health.shown(&observed, &readiness);
        let connected = self.net.connected().len();
        let m = &self.metrics;
        m.height.set(tip.height as i64);
        m.peers.set(connected as i64);
        m.mempool_txs.set(mempool.len() as i64);
        m.mempool_bytes.set(mempool.bytes() as i64);
        m.standby_txs.set(self.admission.standby_len() as i64);
        m.standby_bytes.set(self.admission.standby_bytes() as i64);
        m.verify_queue.set(self.admission.verify_queue_len() as i64);
        m.waiters.set(self.waiters.len() as i64);
        m.heard_validators.set(readiness.heard as i64);
        m.ready.set(i64::from(readiness.ready));
        let syncing = self.sync.is_behind(tip.height);
        m.syncing.set(i64::from(syncing));
        if let Some(s) = engine {
            if s.round > m.round.get() as u64 && m.round.get() > 0 {
                m.round_changes.inc();
            }
            m.round.set(s.round as i64);
            m.role.set(crate::views::role_code(s.role));
        }
        let view = StatusView {
            chain_id: self.chain.ledger().chain_id().to_string(),
            genesis_hash: self.chain.ledger().genesis_hash(),
            moniker: self.cfg.moniker.clone(),
            version: crate::VERSION.to_string(),
            public_key: self.me,
            consensus: self.chain.ledger().genesis().consensus.kind(),
            height: tip.height,
            head_hash: tip.hash,
            state_root: tip.state_root,
            head_time_ms: tip.timestamp_ms,
            role: crate::views::node_role(shown.map(|(r, _)| r)),
            round: engine.map_or(0, |s| s.round),
            leader: shown
                .and_then(|(_, l)| l)
                .and_then(|l| self.validators.get(l).copied()),
            peers: connected,
            heard: readiness.heard,
            validators: self.validators.len(),
            mempool_txs: mempool.len(),
            mempool_bytes: mempool.bytes(),
            syncing,
            known_height: self.sync.known(),
            ready: readiness.ready,
            not_ready: readiness.reasons,
        };
        // Stamped now, not at the event's start: one long event (a large sync answer)
        // republishes after every block and must not look like a stuck core.
        self.status.send_replace(Published {
            validators: self.validator_list.clone(),
            changes: self.changes.clone(),
            view,
            at: Some(Instant::now()),
        });
    }
}
