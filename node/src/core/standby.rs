//! A Raft follower's standby: transactions other nodes admitted, held *unverified*.
//!
//! Under Raft only the leader orders transactions, and a follower trusts the blocks it
//! commits, so a follower that verified every gossiped transaction would spend its share of
//! the machine on signatures it never needs. It keeps them here instead, for two jobs only:
//! - **No stranded transaction.** It announces them again like its own pending ones (every
//!   [`REANNOUNCE_AFTER`](super::admission::REANNOUNCE_AFTER) while pending), so a
//!   transaction whose admitting node and leader both restarted still reaches the next
//!   leader.
//! - **Taking over.** When it stops following (an election, or it leads), everything here is
//!   queued for verification, in batches, into the mempool.
//!
//! Bounded by count and bytes (the mempool's limits); full means new ones are not held (the
//! admitting node still holds and announces them). Committed and stale nonces leave with each
//! block.

use std::collections::{BTreeMap, HashMap};

use cairn_crypto::PublicKey;
use cairn_ledger::{SignedTransaction, TxId};

/// Unverified transactions held for the leader.
#[derive(Debug)]
pub struct Standby {
    txs: HashMap<TxId, (SignedTransaction, usize)>,
    by_sender: HashMap<PublicKey, BTreeMap<u64, TxId>>,
    bytes: usize,
    txs_max: usize,
    bytes_max: usize,
}

impl Standby {
    /// Empty, holding at most `txs_max` transactions and `bytes_max` encoded bytes.
    pub fn new(txs_max: usize, bytes_max: usize) -> Standby {
        Standby {
            txs: HashMap::new(),
            by_sender: HashMap::new(),
            bytes: 0,
            txs_max,
            bytes_max,
        }
    }

    /// Holds `tx` (its id given) unless it is held already, its sender's slot at its nonce is
    /// taken, or the standby is full. Whether it was taken.
    pub fn insert(&mut self, id: TxId, tx: SignedTransaction) -> bool {
        let size = tx.encoded_len();
        if self.txs.contains_key(&id)
            || self.txs.len() >= self.txs_max
            || self.bytes + size > self.bytes_max
        {
            return false;
        }
        let slots = self.by_sender.entry(tx.tx.sender).or_default();
        if slots.contains_key(&tx.tx.nonce) {
            return false;
        }
        slots.insert(tx.tx.nonce, id);
        self.bytes += size;
        self.txs.insert(id, (tx, size));
        true
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &TxId) -> bool {
        self.txs.contains_key(id)
    }

    /// The held transaction `id`.
    pub fn get(&self, id: &TxId) -> Option<&SignedTransaction> {
        self.txs.get(id).map(|(t, _)| t)
    }

    /// Stops holding `id`.
    pub fn remove(&mut self, id: &TxId) -> Option<SignedTransaction> {
        let (tx, size) = self.txs.remove(id)?;
        self.bytes -= size;
        if let Some(slots) = self.by_sender.get_mut(&tx.tx.sender) {
            slots.remove(&tx.tx.nonce);
            if slots.is_empty() {
                self.by_sender.remove(&tx.tx.sender);
            }
        }
        Some(tx)
    }

    /// Drops every transaction of `sender` below `next_nonce` (committed, or replaced by one
    /// that was). Returns their ids.
    pub fn drop_stale(&mut self, sender: &PublicKey, next_nonce: u64) -> Vec<TxId> {
        let stale: Vec<TxId> = self
            .by_sender
            .get(sender)
            .map(|slots| slots.range(..next_nonce).map(|(_, id)| *id).collect())
            .unwrap_or_default();
        for id in &stale {
            self.remove(id);
        }
        stale
    }

    /// Drops `sender`'s transactions from `nonce` on (one of them will not execute, so
    /// none after it can). Returns their ids.
    pub fn drop_from(&mut self, sender: &PublicKey, nonce: u64) -> Vec<TxId> {
        let gone: Vec<TxId> = self
            .by_sender
            .get(sender)
            .map(|slots| slots.range(nonce..).map(|(_, id)| *id).collect())
            .unwrap_or_default();
        for id in &gone {
            self.remove(id);
        }
        gone
    }

    /// Up to `n` held transactions, which leave the standby (each sender's lowest nonces
    /// first, so what is taken can execute).
    pub fn take(&mut self, n: usize) -> Vec<(TxId, SignedTransaction)> {
        let ids: Vec<TxId> = self
            .by_sender
            .values()
            .flat_map(|slots| slots.values().copied())
            .take(n)
            .collect();
        ids.iter()
            .filter_map(|id| Some((*id, self.remove(id)?)))
            .collect()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Their encoded bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::ConsensusKind;
    use cairn_ledger::testkit::TestChain;

    #[test]
    fn bounded_by_count_and_bytes_and_one_per_nonce() {
        let c = TestChain::new(ConsensusKind::Raft, 3, 4, 1_000);
        let to = c.accounts[0].public_key();
        let t = |a: usize, n: u64| c.transfer(&c.accounts[a], n, to, 1);
        let size = t(1, 0).encoded_len();
        let mut s = Standby::new(3, 10 * size);
        assert!(s.insert(t(1, 0).id(), t(1, 0)));
        assert!(!s.insert(t(1, 0).id(), t(1, 0)), "held already");
        let other = c.transfer(&c.accounts[1], 0, to, 2);
        assert!(
            !s.insert(other.id(), other),
            "nonce 0 of account 1 is taken"
        );
        assert!(s.insert(t(1, 1).id(), t(1, 1)));
        assert!(s.insert(t(2, 0).id(), t(2, 0)));
        assert!(!s.insert(t(2, 1).id(), t(2, 1)), "full by count");
        let mut small = Standby::new(100, size + 1);
        assert!(small.insert(t(1, 0).id(), t(1, 0)));
        assert!(!small.insert(t(1, 1).id(), t(1, 1)), "full by bytes");
        // Stale nonces leave; a refused nonce takes its successors along.
        let sender = c.accounts[1].public_key();
        assert_eq!(s.drop_stale(&sender, 1), vec![t(1, 0).id()]);
        assert_eq!(s.drop_from(&sender, 1), vec![t(1, 1).id()]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(5).len(), 1);
        assert!(s.is_empty());
        assert!(s.insert(t(1, 5).id(), t(1, 5)), "room again after take");
        assert!(s.insert(t(1, 6).id(), t(1, 6)));
        assert_eq!(
            s.take(1),
            vec![(t(1, 5).id(), t(1, 5))],
            "lowest nonce first"
        );
        assert_eq!(s.len(), 1);
    }
}
