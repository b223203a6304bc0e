//! Clients waiting for a transaction's fate (`POST /txs?wait=commit`).
//!
//! Bounded twice: at most [`WAITERS_MAX`] waiters in all and [`WAITERS_PER_TX`] per
//! transaction. Clients that gave up leave closed channels behind; those are dropped whenever
//! a bound is reached, before anyone is turned away.

use std::collections::HashMap;

use cairn_ledger::{TxId, TxRejection};
use tokio::sync::oneshot;

use crate::views::{ApiError, ReceiptView};

/// Most waiters at once.
pub const WAITERS_MAX: usize = 50_000;
/// Most waiters for one transaction.
pub const WAITERS_PER_TX: usize = 64;

/// The final fate of a transaction someone waits for.
#[derive(Debug, Clone)]
pub enum TxOutcome {
    /// Committed here.
    Committed(ReceiptView),
    /// Dropped.
    Rejected(TxRejection),
}

/// Who waits for what.
#[derive(Debug, Default)]
pub struct Waiters {
    by_tx: HashMap<TxId, Vec<oneshot::Sender<TxOutcome>>>,
    /// Senders in `by_tx`.
    count: usize,
}

impl Waiters {
    /// Nobody waits.
    pub fn new() -> Waiters {
        Waiters::default()
    }

    /// Waiters registered (including ones that gave up and were not pruned yet).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn prune(&mut self) {
        self.by_tx.retain(|_, ws| {
            ws.retain(|w| !w.is_closed());
            !ws.is_empty()
        });
        self.count = self.by_tx.values().map(Vec::len).sum();
    }

    /// Registers a waiter for `id`, or says why not (503: try without waiting).
    pub fn register(&mut self, id: TxId) -> Result<oneshot::Receiver<TxOutcome>, ApiError> {
        if self.count >= WAITERS_MAX {
            self.prune();
        }
        if self.count >= WAITERS_MAX {
            return Err(ApiError::unavailable(
                "too many clients are waiting for commits; retry without wait",
            ));
        }
        let ws = self.by_tx.entry(id).or_default();
        let before = ws.len();
        ws.retain(|w| !w.is_closed());
        self.count -= before - ws.len();
        if ws.len() >= WAITERS_PER_TX {
            return Err(ApiError::unavailable(format!(
                "too many clients wait for this transaction; follow it with GET /api/v1/txs/{id}"
            )));
        }
        let (tx, rx) = oneshot::channel();
        ws.push(tx);
        self.count += 1;
        Ok(rx)
    }

    fn take(&mut self, id: &TxId) -> Vec<oneshot::Sender<TxOutcome>> {
        let ws = self.by_tx.remove(id).unwrap_or_default();
        self.count -= ws.len();
        ws
    }

    /// `id` committed: tell everyone waiting for it.
    pub fn committed(&mut self, id: &TxId, receipt: &ReceiptView) {
        for w in self.take(id) {
            let _ = w.send(TxOutcome::Committed(receipt.clone()));
        }
    }

    /// `id` was dropped: tell everyone waiting for it.
    pub fn rejected(&mut self, id: &TxId, reason: &TxRejection) {
        for w in self.take(id) {
            let _ = w.send(TxOutcome::Rejected(reason.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_crypto::Hash;
    use cairn_ledger::BlockHash;

    fn id(n: u8) -> TxId {
        TxId(Hash([n; 32]))
    }

    fn receipt() -> ReceiptView {
        ReceiptView {
            height: 3,
            index: 1,
            block_hash: BlockHash(Hash::ZERO),
            block_time_ms: 9,
        }
    }

    #[test]
    fn every_waiter_hears_the_outcome_once() {
        let mut w = Waiters::new();
        let mut a = w.register(id(1)).expect("room");
        let mut b = w.register(id(1)).expect("room");
        let mut c = w.register(id(2)).expect("room");
        assert_eq!(w.len(), 3);
        w.committed(&id(1), &receipt());
        w.rejected(&id(2), &TxRejection::MempoolFull);
        assert!(matches!(a.try_recv(), Ok(TxOutcome::Committed(r)) if r.height == 3));
        assert!(matches!(b.try_recv(), Ok(TxOutcome::Committed(_))));
        assert!(matches!(
            c.try_recv(),
            Ok(TxOutcome::Rejected(TxRejection::MempoolFull))
        ));
        assert!(w.is_empty());
        w.committed(&id(1), &receipt());
        assert!(w.is_empty(), "nothing left to tell");
    }

    #[test]
    fn bounds_hold_and_clients_that_left_make_room() {
        let mut w = Waiters::new();
        let mut held = Vec::new();
        for _ in 0..WAITERS_PER_TX {
            held.push(w.register(id(7)).expect("room"));
        }
        assert_eq!(w.register(id(7)).map(|_| ()).expect_err("full").status, 503);
        // Clients give up: their places free up.
        held.truncate(10);
        assert!(w.register(id(7)).is_ok());
        assert_eq!(w.len(), 11);
        // The global bound, with all slots held by live clients.
        let mut w = Waiters::new();
        let mut held = Vec::new();
        for i in 0..WAITERS_MAX {
            let k = TxId(Hash::sha256(&i.to_le_bytes()));
            held.push(w.register(k).expect("room"));
        }
        assert!(w.register(id(9)).is_err(), "global bound");
        held.clear();
        assert!(w.register(id(9)).is_ok(), "pruned when the bound is hit");
        assert_eq!(w.len(), 1);
    }
}
