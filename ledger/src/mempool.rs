//! Pending transactions: bounded by count and bytes, deduplicated by id, ordered per sender by
//! nonce, pruned as blocks commit.
//!
//! Admission takes [`VerifiedTransaction`]s only (signature checked once, on this node, in a
//! batch) and checks what can be checked against the committed state without executing:
//! membership and nonce range. Balances are checked when a block is built; a transaction that
//! stops being valid is dropped with its reason, which [`Mempool::rejection`] keeps for the API.
//!
//! **A full mempool still takes what can execute next.** Transactions that wait behind a
//! nonce gap could otherwise fill it (under load, gossip of a sender's later nonces can arrive
//! before an earlier one that was refused for room), and then the one transaction that would
//! unblock them could never get in: a deadlock, not back-pressure. So a transaction that
//! extends its sender's run of consecutive nonces from the committed next nonce may use a
//! reserve above the limits ([`RESERVE_DIVISOR`]: an eighth more); such transactions leave
//! with the next block, so the reserve drains.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use cairn_crypto::PublicKey;

use crate::block::Block;
use crate::state::StateView;
use crate::store::StoreError;
use crate::transaction::{Payload, TxId, VerifiedTransaction};
use crate::validation::TxRejection;

/// Transactions that can execute next may exceed the limits by a `1 / RESERVE_DIVISOR` share
/// of them.
pub const RESERVE_DIVISOR: usize = 8;

/// Mempool limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most pending transactions.
    pub txs_max: usize,
    /// Most pending bytes (encoded transactions).
    pub bytes_max: usize,
    /// How far beyond the sender's next nonce a transaction may be and still wait here.
    pub nonce_gap_max: u64,
    /// How many recent rejections to remember for [`Mempool::rejection`].
    pub rejections_kept: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            txs_max: 100_000,
            bytes_max: 64 << 20,
            nonce_gap_max: 256,
            rejections_kept: 100_000,
        }
    }
}

#[derive(Debug)]
struct Entry {
    tx: VerifiedTransaction,
    /// Arrival order.
    seq: u64,
}

/// The pending transactions of one node.
#[derive(Debug)]
pub struct Mempool {
    config: MempoolConfig,
    by_id: HashMap<TxId, Entry>,
    /// Per sender, nonce → id.
    by_sender: HashMap<PublicKey, BTreeMap<u64, TxId>>,
    /// Arrival order → id; block building serves senders in order of arrival.
    arrival: BTreeMap<u64, TxId>,
    next_seq: u64,
    bytes: usize,
    rejected: HashMap<TxId, TxRejection>,
    rejected_order: VecDeque<TxId>,
    /// Per sender with pending transactions, its committed next nonce as last read. A
    /// sender's nonce moves only in blocks that hold its transactions, which update this.
    next_nonce: HashMap<PublicKey, u64>,
    /// Senders whose lowest pending nonce is their next one: what a block could take now.
    executable: HashSet<PublicKey>,
    /// The validators in force, sorted: they may send validator-change votes from keys that
    /// are not members' ([`Mempool::set_validators`]).
    validators: Vec<PublicKey>,
}

impl Mempool {
    /// An empty mempool.
    pub fn new(config: MempoolConfig) -> Self {
        Self {
            config,
            by_id: HashMap::new(),
            by_sender: HashMap::new(),
            arrival: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            rejected: HashMap::new(),
            rejected_order: VecDeque::new(),
            next_nonce: HashMap::new(),
            executable: HashSet::new(),
            validators: Vec::new(),
        }
    }

    /// The validators in force (at most [`crate::genesis::VALIDATORS_MAX`]): a validator-change
    /// transaction from one of them is kept although its sender is not a member (it is the
    /// validator's vote; the executor decides whether the chain's policy counts it).
    pub fn set_validators(&mut self, keys: &[PublicKey]) {
        self.validators = keys.to_vec();
        self.validators.sort();
    }

    /// How many transactions were ever inserted: it changes whenever one arrives.
    pub fn arrivals(&self) -> u64 {
        self.next_seq
    }

    /// Whether some pending transaction could go into the next block (its sender's next
    /// nonce); transactions behind a nonce gap do not count. O(1).
    pub fn has_executable(&self) -> bool {
        !self.executable.is_empty()
    }

    /// `sender`'s pending transaction at its next nonce, if it has one: what a block could take
    /// from it now.
    pub fn executable_of(&self, sender: &PublicKey) -> Option<&VerifiedTransaction> {
        if !self.executable.contains(sender) {
            return None;
        }
        let (_, id) = self.by_sender.get(sender)?.iter().next()?;
        self.get(id)
    }

    /// Pending transactions, oldest first, at most `max` (for re-announcing them).
    pub fn oldest(&self, max: usize) -> impl Iterator<Item = &VerifiedTransaction> {
        self.arrival
            .values()
            .filter_map(|id| self.by_id.get(id).map(|e| &e.tx))
            .take(max)
    }

    fn refresh(&mut self, sender: PublicKey) {
        let first = self
            .by_sender
            .get(&sender)
            .and_then(|m| m.keys().next().copied());
        match (first, self.next_nonce.get(&sender)) {
            (Some(n), Some(next)) if n == *next => {
                self.executable.insert(sender);
            }
            (Some(_), _) => {
                self.executable.remove(&sender);
            }
            (None, _) => {
                self.executable.remove(&sender);
                self.next_nonce.remove(&sender);
            }
        }
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Pending bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `id` is pending.
    pub fn contains(&self, id: &TxId) -> bool {
        self.by_id.contains_key(id)
    }

    /// A pending transaction.
    pub fn get(&self, id: &TxId) -> Option<&VerifiedTransaction> {
        self.by_id.get(id).map(|e| &e.tx)
    }

    /// Why `id` was dropped, if it was dropped recently.
    pub fn rejection(&self, id: &TxId) -> Option<&TxRejection> {
        self.rejected.get(id)
    }

    /// Admits a transaction, or says why not. Changes nothing on rejection.
    pub fn insert(
        &mut self,
        tx: VerifiedTransaction,
        state: &impl StateView,
    ) -> Result<Result<TxId, TxRejection>, StoreError> {
        let id = tx.id();
        if self.by_id.contains_key(&id) {
            return Ok(Err(TxRejection::Duplicate));
        }
        let sender = tx.tx().sender;
        let nonce = tx.tx().nonce;
        let account = state.account(&sender)?.unwrap_or_default();
        let vote = matches!(tx.tx().payload, Payload::ChangeValidators { .. })
            && self.validators.binary_search(&sender).is_ok();
        if !account.is_member() && !vote {
            return Ok(Err(TxRejection::NotMember { sender }));
        }
        if nonce < account.nonce {
            return Ok(Err(TxRejection::StaleNonce {
                expected: account.nonce,
                got: nonce,
            }));
        }
        if nonce - account.nonce > self.config.nonce_gap_max {
            return Ok(Err(TxRejection::NonceTooFarAhead {
                expected: account.nonce,
                got: nonce,
                max_gap: self.config.nonce_gap_max,
            }));
        }
        if self
            .by_sender
            .get(&sender)
            .is_some_and(|m| m.contains_key(&nonce))
        {
            return Ok(Err(TxRejection::NonceInUse { nonce }));
        }
        // Extends the sender's run of consecutive nonces from its committed next nonce: it can
        // execute in the next block, so it may use the reserve.
        let runs_on = self
            .by_sender
            .get(&sender)
            .map_or(0, |m| m.range(account.nonce..nonce).count() as u64)
            == nonce - account.nonce;
        let (txs_max, bytes_max) = if runs_on {
            (
                self.config.txs_max + self.config.txs_max / RESERVE_DIVISOR,
                self.config.bytes_max + self.config.bytes_max / RESERVE_DIVISOR,
            )
        } else {
            (self.config.txs_max, self.config.bytes_max)
        };
        if self.by_id.len() >= txs_max || self.bytes + tx.size() > bytes_max {
            return Ok(Err(TxRejection::MempoolFull));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += tx.size();
        self.by_sender.entry(sender).or_default().insert(nonce, id);
        self.arrival.insert(seq, id);
        self.by_id.insert(id, Entry { tx, seq });
        self.next_nonce.insert(sender, account.nonce);
        self.refresh(sender);
        Ok(Ok(id))
    }

    /// Candidates for the next block, at most `max_txs`: senders in order of their oldest
    /// pending transaction, each sender's run of consecutive nonces from its committed next
    /// nonce. Transactions behind a nonce gap wait.
    pub fn candidates(
        &self,
        state: &impl StateView,
        max_txs: usize,
    ) -> Result<Vec<VerifiedTransaction>, StoreError> {
        let mut out = Vec::new();
        let mut served = std::collections::HashSet::new();
        for id in self.arrival.values() {
            if out.len() >= max_txs {
                break;
            }
            let Some(entry) = self.by_id.get(id) else {
                continue;
            };
            let sender = entry.tx.tx().sender;
            if !served.insert(sender) {
                continue;
            }
            let mut next = state.account(&sender)?.unwrap_or_default().nonce;
            if let Some(pending) = self.by_sender.get(&sender) {
                for (nonce, id) in pending.range(next..) {
                    if *nonce != next || out.len() >= max_txs {
                        break;
                    }
                    if let Some(e) = self.by_id.get(id) {
                        out.push(e.tx.clone());
                    }
                    next += 1;
                }
            }
        }
        Ok(out)
    }

    /// Removes what a committed block included, and what it made invalid: transactions of its
    /// senders whose nonces are now used, and transactions of senders that lost membership.
    /// Returns the dropped ones with their reasons (also kept for [`Mempool::rejection`]).
    pub fn on_block_committed(
        &mut self,
        block: &Block,
        tx_ids: &[TxId],
        state: &impl StateView,
    ) -> Result<Vec<(TxId, TxRejection)>, StoreError> {
        for id in tx_ids {
            self.remove(id);
        }
        let mut touched: Vec<PublicKey> = block.txs.iter().map(|t| t.tx.sender).collect();
        for t in &block.txs {
            if let crate::transaction::Payload::RemoveMember { account } = &t.tx.payload {
                touched.push(*account);
            }
        }
        touched.sort();
        touched.dedup();
        let mut dropped = Vec::new();
        for sender in &touched {
            let sender = *sender;
            let Some(pending) = self.by_sender.get(&sender) else {
                continue;
            };
            let account = state.account(&sender)?.unwrap_or_default();
            self.next_nonce.insert(sender, account.nonce);
            let doomed: Vec<(TxId, TxRejection)> = if !account.is_member() {
                pending
                    .values()
                    .map(|id| (*id, TxRejection::NotMember { sender }))
                    .collect()
            } else {
                pending
                    .range(..account.nonce)
                    .map(|(nonce, id)| {
                        (
                            *id,
                            TxRejection::StaleNonce {
                                expected: account.nonce,
                                got: *nonce,
                            },
                        )
                    })
                    .collect()
            };
            dropped.extend(doomed);
        }
        // No cascade here: what is left of each sender starts at its next nonce (or the
        // sender lost membership and everything of it is in `dropped`).
        for (id, reason) in &dropped {
            self.remove(id);
            self.remember(*id, reason.clone());
        }
        for sender in touched {
            self.refresh(sender);
        }
        Ok(dropped)
    }

    /// Drops transactions that failed (at block building, say), remembering why. A sender's
    /// later nonces cannot execute without the dropped one, so they are dropped too; those
    /// cascaded drops are returned, so the caller can tell whoever waits for them.
    pub fn drop_rejected(&mut self, rejected: &[(TxId, TxRejection)]) -> Vec<(TxId, TxRejection)> {
        let mut cascaded = Vec::new();
        for (id, reason) in rejected {
            let Some(entry) = self.by_id.get(id) else {
                self.remember(*id, reason.clone());
                continue;
            };
            let sender = entry.tx.tx().sender;
            let nonce = entry.tx.tx().nonce;
            self.remove(id);
            self.remember(*id, reason.clone());
            let later: Vec<(u64, TxId)> = self
                .by_sender
                .get(&sender)
                .map(|m| m.range(nonce + 1..).map(|(n, i)| (*n, *i)).collect())
                .unwrap_or_default();
            for (n, later_id) in later {
                self.remove(&later_id);
                let why = TxRejection::PredecessorDropped {
                    dropped_nonce: nonce,
                    got: n,
                };
                self.remember(later_id, why.clone());
                cascaded.push((later_id, why));
            }
            self.refresh(sender);
        }
        cascaded
    }

    fn remove(&mut self, id: &TxId) -> Option<VerifiedTransaction> {
        let entry = self.by_id.remove(id)?;
        self.bytes -= entry.tx.size();
        self.arrival.remove(&entry.seq);
        let sender = entry.tx.tx().sender;
        if let Some(m) = self.by_sender.get_mut(&sender) {
            m.remove(&entry.tx.tx().nonce);
            if m.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
        self.refresh(sender);
        Some(entry.tx)
    }

    fn remember(&mut self, id: TxId, reason: TxRejection) {
        if self.config.rejections_kept == 0 {
            return;
        }
        // The first reason recorded for an id is the most specific one (a cascade names the
        // predecessor; the executor's later `FutureNonce` for the same id says less).
        if let std::collections::hash_map::Entry::Vacant(e) = self.rejected.entry(id) {
            e.insert(reason);
            self.rejected_order.push_back(id);
        }
        while self.rejected_order.len() > self.config.rejections_kept {
            if let Some(old) = self.rejected_order.pop_front() {
                self.rejected.remove(&old);
            }
        }
    }
}
