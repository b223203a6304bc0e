//! How transactions get into this node's mempool and out to the others.
//!
//! - **Submissions** arrive verified (the API handler checked the signature). One that is
//!   already committed is refused as such; one at its sender's next nonce is tried against the
//!   state first, so the client hears `insufficient_balance` or `not_admin` at once. An
//!   admitted transaction is gossiped with the next tick's batch (sooner if the batch fills):
//!   `202` means "in this node's mempool, to be gossiped", not durable.
//! - **Gossip** is verified off the core task in batches: at most [`VERIFY_JOBS`] at once,
//!   and whatever arrives meanwhile joins the next batch, so the busier the node the larger
//!   and cheaper its batches. The queue is bounded; what it drops, senders re-announce. A
//!   transaction whose signature was already checked here (in a proposed block that did not
//!   commit) is admitted at once instead.
//! - **Re-announcement**, so that no transaction is stranded on a node that is not the leader
//!   (the leader or admitting node restarted, a gossip message was lost): every transaction a
//!   node holds, however it got it, is gossiped again once it has been pending for
//!   [`REANNOUNCE_AFTER`] since it was last announced, at most [`REANNOUNCE_BUDGET`] per
//!   round, oldest first. A transaction a block makes executable (its sender's next nonce) is
//!   announced again at once, and so is one a client resubmits (each at most once a second).
//! - **Block transactions** this node never verified are verified in one batch before the
//!   block executes ([`TxCheck`]); ids verified here are remembered so nothing is verified
//!   twice.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_crypto::PublicKey;
use cairn_ledger::{
    Block, BlockStore, Mempool, MempoolConfig, Payload, SignedTransaction, StateView, TxId,
    TxRejection, VerifiedTransaction, verify_transactions,
};

use super::chain::{Chain, TxCheck};
use super::standby::Standby;
use crate::fatal::Fatal;
use crate::metrics::Metrics;
use crate::views::{ApiError, ErrorCode, ReasonView, TxStatus, TxView};
use crate::wire;

/// Verification batches running at once (the machine has few cores; the core task needs one).
pub const VERIFY_JOBS: usize = 2;
/// Gossiped transactions waiting for verification, at most.
pub const TO_VERIFY_MAX: usize = 50_000;
/// Most id comparisons spent looking for a compact block's missing transactions in the
/// queue to verify.
const QUEUE_SEARCH_MAX: usize = 1 << 16;
/// A pending transaction is announced again after this long.
pub const REANNOUNCE_AFTER: Duration = Duration::from_secs(3);
/// Most transactions re-announced per round.
pub const REANNOUNCE_BUDGET: usize = wire::TX_BATCH_MAX;
/// A resubmission re-announces at most this often.
const RESUBMIT_ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// How an announcement travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight to each other validator: a transaction's first announcement, so each one
    /// crosses each link once.
    Direct,
    /// Through gossip, whose mesh relays it to validators this node has no link to: every
    /// announcement after the first (the first may have been lost or missed a validator).
    Gossip,
}

/// A verified submission's result.
#[derive(Debug)]
pub struct Admitted {
    /// What `POST /txs` answers.
    pub view: TxView,
}

/// The mempool and everything around it.
pub struct Admission {
    mempool: Mempool,
    chain_id: Arc<str>,
    metrics: Arc<Metrics>,
    verified: VerifiedIds,
    /// Waiting for verification, with their ids (computed once, on arrival).
    to_verify: Vec<(TxId, SignedTransaction)>,
    verifying: usize,
    outbox: Vec<SignedTransaction>,
    outbox_bytes: usize,
    outbox_route: Route,
    /// Batches ready to publish, each with its route.
    ready: Vec<(Vec<SignedTransaction>, Route)>,
    /// When each pending transaction was last announced, and the order to look at them in
    /// (entries superseded by a later announcement are skipped).
    announced: HashMap<TxId, Instant>,
    schedule: VecDeque<(TxId, Instant)>,
    /// Transactions submitted here: when, for the commit latency metric.
    own: HashMap<TxId, Instant>,
    /// A Raft follower's unverified copies of others' transactions.
    standby: Standby,
    /// The validators in force: their validator-change votes are kept although they are not
    /// members.
    validators: Vec<PublicKey>,
    accepting: bool,
}

impl Admission {
    /// Transactions remembered as verified now (at most [`VERIFIED_KEPT`]).
    pub fn verified_kept(&self) -> usize {
        self.verified.len()
    }

    /// An empty mempool with these limits.
    pub fn new(config: MempoolConfig, chain_id: &str, metrics: Arc<Metrics>) -> Admission {
        Admission {
            standby: Standby::new(config.txs_max, config.bytes_max),
            validators: Vec::new(),
            mempool: Mempool::new(config),
            chain_id: chain_id.into(),
            metrics,
            verified: VerifiedIds::default(),
            to_verify: Vec::new(),
            verifying: 0,
            outbox: Vec::new(),
            outbox_bytes: 0,
            outbox_route: Route::Direct,
            ready: Vec::new(),
            announced: HashMap::new(),
            schedule: VecDeque::new(),
            own: HashMap::new(),
            accepting: true,
        }
    }

    /// The mempool, for reads.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The validators in force changed (or are first known).
    pub fn set_validators(&mut self, keys: &[PublicKey]) {
        self.mempool.set_validators(keys);
        self.validators = keys.to_vec();
    }

    /// Refuses submissions from now on (shutdown); what was admitted still goes out.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Admits a verified submission, or says why not.
    pub fn submit<S: BlockStore>(
        &mut self,
        tx: VerifiedTransaction,
        chain: &Chain<S>,
        now: Instant,
    ) -> Result<Admitted, ApiError> {
        if !self.accepting {
            return Err(ApiError::unavailable(
                "the node is shutting down; submit to another node",
            ));
        }
        let id = tx.id();
        let signed = tx.signed().clone();
        let fatal = |e: Fatal| ApiError::internal(e);
        let ledger = chain.ledger();
        let next_nonce = ledger
            .account(&signed.tx.sender)
            .map_err(ApiError::internal)?
            .map_or(0, |a| a.nonce);
        // Already committed: say so (the nonce would say "stale" less helpfully). Every
        // committed transaction used up its nonce, so only a stale one needs the lookup.
        if signed.tx.nonce < next_nonce
            && ledger
                .store()
                .tx_location(&id)
                .map_err(ApiError::internal)?
                .is_some()
        {
            return Err(ApiError::new(
                409,
                ErrorCode::AlreadyCommitted,
                format!("transaction {id} is already committed: GET /api/v1/txs/{id}"),
            ));
        }
        if signed.tx.nonce == next_nonce
            && !self.mempool.contains(&id)
            && let Some(r) = chain.dry_run(&tx).map_err(fatal)?
        {
            self.metrics.rejected(r.code());
            return Err(ApiError::rejected(&r));
        }
        match self
            .mempool
            .insert(tx, ledger)
            .map_err(ApiError::internal)?
        {
            Ok(_) => {
                self.own.insert(id, now);
                self.announce(signed.clone(), now, Route::Direct);
            }
            Err(TxRejection::Duplicate) => {
                // The client may know better than this node that the others never got it.
                if !self.announced_lately(&id, now) {
                    self.announce(signed.clone(), now, Route::Gossip);
                }
            }
            Err(r) => {
                self.metrics.rejected(r.code());
                return Err(ApiError::rejected(&r));
            }
        }
        Ok(Admitted {
            view: TxView {
                id,
                status: TxStatus::Pending,
                tx: Some(signed),
                receipt: None,
                proof: None,
                reason: None,
            },
        })
    }

    /// Queues gossiped transactions this node does not hold yet for verification; a Raft
    /// follower (`standby`) holds them unverified instead (see [`Standby`]). One whose
    /// signature was verified here already is admitted at once. Whether any was.
    pub fn on_gossip(
        &mut self,
        txs: Vec<SignedTransaction>,
        standby: bool,
        state: &impl StateView,
        now: Instant,
    ) -> Result<bool, Fatal> {
        let mut admitted = false;
        // Senders' committed nonces and membership, read once per batch (standby only).
        let mut accounts: HashMap<PublicKey, (u64, bool)> = HashMap::new();
        for t in txs {
            let id = t.id();
            if self.mempool.contains(&id) || self.standby.contains(&id) {
                continue;
            }
            if !standby && self.verified.contains(id, t.signature) {
                // Verified here in a proposed block that has not committed (and may never: a
                // PBFT view change may have passed it by). Not verified again, but admitted: a
                // node that skipped it would leave it to the node that admitted it, and the
                // primary might never hold it.
                admitted |= self.admit_verified(VerifiedTransaction::trusted(t), state, now)?;
                continue;
            }
            if standby {
                let sender = t.tx.sender;
                let (next, member) = match accounts.get(&sender) {
                    Some(a) => *a,
                    None => {
                        let a = state
                            .account(&sender)?
                            .map_or((0, false), |a| (a.nonce, a.is_member()));
                        accounts.insert(sender, a);
                        a
                    }
                };
                // A committed nonce or a non-member would only be announced for nothing (a
                // validator's vote for a change comes from a validator key).
                let voter = self.validators.contains(&sender);
                if t.tx.nonce >= next && (member || voter) && self.standby.insert(id, t) {
                    // Gossip already spread it; announced again only if it lingers.
                    self.announced.insert(id, now);
                    self.schedule.push_back((id, now));
                }
                continue;
            }
            if self.to_verify.len() >= TO_VERIFY_MAX {
                // Bounded work: whoever holds it announces it again.
                self.metrics.dropped_gossip.inc();
                continue;
            }
            self.to_verify.push((id, t));
        }
        Ok(admitted)
    }

    /// No longer a follower: what the standby holds is verified into the mempool, as much as
    /// the verification queue takes now; the rest stays for the next tick.
    pub fn take_over_standby(&mut self) {
        let room = TO_VERIFY_MAX.saturating_sub(self.to_verify.len());
        if room > 0 && !self.standby.is_empty() {
            let taken = self.standby.take(room);
            self.to_verify.extend(taken);
        }
    }

    /// Transactions held unverified for the leader.
    pub fn standby_len(&self) -> usize {
        self.standby.len()
    }

    /// The standby's encoded bytes (at most `mempool.bytes_max`).
    pub fn standby_bytes(&self) -> usize {
        self.standby.bytes()
    }

    /// Transactions waiting for signature verification (at most [`TO_VERIFY_MAX`]).
    pub fn verify_queue_len(&self) -> usize {
        self.to_verify.len()
    }

    /// A standby transaction at its sender's next nonce that would not execute now is dropped,
    /// with its successors (as the leader would drop it): otherwise it would be announced for
    /// good. Whether it was dropped.
    fn drop_standby_if_stuck<S: BlockStore>(
        &mut self,
        tx: &SignedTransaction,
        chain: &Chain<S>,
    ) -> Result<bool, Fatal> {
        let sender = tx.tx.sender;
        let account = chain.ledger().account(&sender)?;
        let next = account.as_ref().map_or(0, |a| a.nonce);
        if tx.tx.nonce < next || !account.is_some_and(|a| a.is_member()) {
            // Committed meanwhile (another transaction took the nonce), or the sender is no
            // longer a member: it can never execute.
            for id in self.standby.drop_stale(&sender, tx.tx.nonce + 1) {
                self.announced.remove(&id);
            }
            return Ok(true);
        }
        if tx.tx.nonce != next {
            return Ok(false);
        }
        // The dry run reads state only; the signature is not what is being judged here.
        if chain
            .dry_run(&VerifiedTransaction::trusted(tx.clone()))?
            .is_none()
        {
            return Ok(false);
        }
        for id in self.standby.drop_from(&sender, next) {
            self.announced.remove(&id);
        }
        Ok(true)
    }

    /// A batch to verify now, if a verification slot is free.
    pub fn next_batch(&mut self) -> Option<Vec<SignedTransaction>> {
        if self.verifying >= VERIFY_JOBS || self.to_verify.is_empty() {
            return None;
        }
        let take = self.to_verify.len().min(wire::TX_BATCH_MAX);
        self.verifying += 1;
        Some(self.to_verify.drain(..take).map(|(_, t)| t).collect())
    }

    /// A verified batch is back: admits what passed.
    pub fn on_verified(
        &mut self,
        batch: Vec<Result<VerifiedTransaction, TxRejection>>,
        state: &impl StateView,
        now: Instant,
    ) -> Result<(), Fatal> {
        self.verifying = self.verifying.saturating_sub(1);
        for r in batch {
            match r {
                Ok(tx) => {
                    self.admit_verified(tx, state, now)?;
                }
                Err(reason) => self.metrics.rejected(reason.code()),
            }
        }
        Ok(())
    }

    /// Admits a gossiped transaction whose signature was verified here; whether it was.
    fn admit_verified(
        &mut self,
        tx: VerifiedTransaction,
        state: &impl StateView,
        now: Instant,
    ) -> Result<bool, Fatal> {
        let id = tx.id();
        match self.mempool.insert(tx, state)? {
            Ok(_) => {
                // Gossip already spread it; this node re-announces it only if it lingers.
                self.announced.insert(id, now);
                self.schedule.push_back((id, now));
                return Ok(true);
            }
            // Duplicates and stale nonces are routine in gossip.
            Err(TxRejection::Duplicate | TxRejection::StaleNonce { .. }) => {}
            Err(reason) => tracing::debug!(%id, %reason, "gossiped transaction not admitted"),
        }
        Ok(false)
    }

    /// The signed transactions named by these keys (id and signature) that this node holds:
    /// in the mempool, a Raft follower's standby, or the queue to verify (searched only while
    /// that costs at most [`QUEUE_SEARCH_MAX`] comparisons, so a peer's compact block naming
    /// unknown transactions costs the consensus task little). One answer per key: to put a
    /// compact block back together. A copy with another signature is not an answer.
    pub fn find_txs(&self, keys: &[wire::TxKey]) -> Vec<Option<SignedTransaction>> {
        let mut found: Vec<Option<SignedTransaction>> = keys
            .iter()
            .map(|(id, sig)| {
                self.mempool
                    .get(id)
                    .map(VerifiedTransaction::signed)
                    .or_else(|| self.standby.get(id))
                    .filter(|t| t.signature == *sig)
                    .cloned()
            })
            .collect();
        let missing = found.iter().filter(|f| f.is_none()).count();
        if missing > 0 && missing.saturating_mul(self.to_verify.len()) <= QUEUE_SEARCH_MAX {
            for (slot, (id, sig)) in found.iter_mut().zip(keys) {
                if slot.is_none() {
                    *slot = self
                        .to_verify
                        .iter()
                        .find(|(i, t)| i == id && t.signature == *sig)
                        .map(|(_, t)| t.clone());
                }
            }
        }
        found
    }

    /// Whether a verification is running or waiting.
    pub fn verifying(&self) -> bool {
        self.verifying > 0 || !self.to_verify.is_empty()
    }

    /// Candidates for the next block, cut to `bytes_max` of transactions.
    pub fn candidates(
        &self,
        state: &impl StateView,
        txs_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<VerifiedTransaction>, Fatal> {
        let mut c = self.mempool.candidates(state, txs_max)?;
        let mut bytes = 0;
        let fit = c
            .iter()
            .take_while(|t| {
                bytes += t.size();
                bytes <= bytes_max
            })
            .count();
        c.truncate(fit);
        Ok(c)
    }

    /// Drops transactions that did not make it into a block; returns those and their
    /// successors (a later nonce cannot execute without them).
    pub fn drop_rejected(&mut self, dropped: &[(TxId, TxRejection)]) -> Vec<(TxId, TxRejection)> {
        let mut all = dropped.to_vec();
        all.extend(self.mempool.drop_rejected(dropped));
        for (id, _) in &all {
            self.own.remove(id);
        }
        all
    }

    /// A block is in the ledger: prunes the mempool. Returns what the block made invalid, and
    /// what it made executable but would not execute (each with its successors).
    pub fn on_block_committed<S: BlockStore>(
        &mut self,
        block: &Block,
        ids: &[TxId],
        chain: &Chain<S>,
        now: Instant,
    ) -> Result<Vec<(TxId, TxRejection)>, Fatal> {
        let mut dropped = self
            .mempool
            .on_block_committed(block, ids, chain.ledger())?;
        for (t, id) in block.txs.iter().zip(ids) {
            self.verified.remove(*id, t.signature);
            self.announced.remove(id);
            if let Some(at) = self.own.remove(id) {
                self.metrics
                    .commit_latency
                    .observe(now.saturating_duration_since(at).as_secs_f64());
            }
        }
        // Transactions the block made executable (their senders' next nonces): one that would
        // not execute now (it spends what its predecessor left, say) is dropped here as the
        // leader drops it at build time, or it would wait here for good, count as work to
        // order, and be announced forever. One that would is announced again at once if it was
        // not just now: the leader may never have had it, and PBFT's backups would otherwise
        // replace primaries until one holds it.
        let mut senders: Vec<_> = block.txs.iter().map(|t| t.tx.sender).collect();
        senders.sort();
        senders.dedup();
        let mut sent = 0;
        if !self.standby.is_empty() {
            for s in &senders {
                let next = chain.ledger().account(s)?.map_or(0, |a| a.nonce);
                for id in self.standby.drop_stale(s, next) {
                    self.announced.remove(&id);
                }
            }
            // A removed member's transactions can no longer execute.
            for t in &block.txs {
                if let Payload::RemoveMember { account } = &t.tx.payload {
                    for id in self.standby.drop_from(account, 0) {
                        self.announced.remove(&id);
                    }
                }
            }
        }
        for s in senders {
            if sent >= REANNOUNCE_BUDGET {
                break;
            }
            let Some(tx) = self.mempool.executable_of(&s).cloned() else {
                continue;
            };
            let id = tx.id();
            if let Some(reason) = chain.dry_run(&tx)? {
                dropped.extend(self.drop_rejected(&[(id, reason)]));
                continue;
            }
            if !self.announced_lately(&id, now) {
                self.announce(tx.into_signed(), now, Route::Gossip);
                sent += 1;
            }
        }
        for (id, _) in &dropped {
            self.own.remove(id);
            self.announced.remove(id);
        }
        Ok(dropped)
    }

    /// A pending or recently rejected transaction, for `GET /txs/{id}`.
    pub fn lookup(&self, id: &TxId) -> Option<TxView> {
        if let Some(tx) = self
            .mempool
            .get(id)
            .map(VerifiedTransaction::signed)
            .or_else(|| self.standby.get(id))
        {
            return Some(TxView {
                id: *id,
                status: TxStatus::Pending,
                tx: Some(tx.clone()),
                receipt: None,
                proof: None,
                reason: None,
            });
        }
        self.mempool.rejection(id).map(|r| TxView {
            id: *id,
            status: TxStatus::Rejected,
            tx: None,
            receipt: None,
            proof: None,
            reason: Some(ReasonView::of(r)),
        })
    }
}

impl TxCheck for Admission {
    fn check_block_txs(&mut self, txs: &[SignedTransaction]) -> Result<(), (TxId, TxRejection)> {
        // Known only if this very signed transaction was verified here: the id does not cover
        // the signature.
        // Each id is computed once (an encoding and a hash).
        let (unknown, ids): (Vec<SignedTransaction>, Vec<TxId>) = txs
            .iter()
            .map(|t| (t, t.id()))
            .filter(|(t, id)| {
                !self.verified.contains(*id, t.signature)
                    && !self.mempool.get(id).is_some_and(|m| m.signed() == *t)
            })
            .map(|(t, id)| (t.clone(), id))
            .unzip();
        if unknown.is_empty() {
            return Ok(());
        }
        let results = verify_transactions(unknown, &self.chain_id);
        self.metrics.verified(&results);
        for (r, id) in results.into_iter().zip(ids) {
            match r {
                Ok(v) => self.verified.insert(id, v.signed().signature),
                Err(e) => return Err((id, e)),
            }
        }
        Ok(())
    }
}

mod announce;
mod verified;
pub use verified::VERIFIED_KEPT;
use verified::VerifiedIds;

#[cfg(test)]
mod tests;
