//! Announcing transactions: the outbox batched by route, and re-announcement of what
//! lingers (see the module above for the rules).

use std::time::Instant;

use cairn_ledger::{BlockStore, SignedTransaction, TxId, TxRejection};

use super::{Admission, REANNOUNCE_AFTER, REANNOUNCE_BUDGET, RESUBMIT_ANNOUNCE_EVERY, Route};
use crate::core::chain::Chain;
use crate::fatal::Fatal;
use crate::wire;

impl Admission {
    pub(super) fn announce(&mut self, tx: SignedTransaction, now: Instant, route: Route) {
        let id = tx.id();
        self.announced.insert(id, now);
        self.schedule.push_back((id, now));
        let size = tx.encoded_len();
        if self.outbox.len() >= wire::TX_BATCH_MAX
            || self.outbox_bytes + size > wire::GOSSIP_BYTES_MAX - 4096
            || route != self.outbox_route
        {
            self.flush();
        }
        self.outbox_route = route;
        self.outbox_bytes += size;
        self.outbox.push(tx);
    }

    /// Whether `id` was announced within the last [`RESUBMIT_ANNOUNCE_EVERY`].
    pub(super) fn announced_lately(&self, id: &TxId, now: Instant) -> bool {
        self.announced
            .get(id)
            .is_some_and(|at| now.saturating_duration_since(*at) < RESUBMIT_ANNOUNCE_EVERY)
    }

    /// Moves the outbox into a batch ready to publish.
    pub fn flush(&mut self) {
        if !self.outbox.is_empty() {
            self.ready
                .push((std::mem::take(&mut self.outbox), self.outbox_route));
            self.outbox_bytes = 0;
        }
    }

    /// Batches to publish now.
    pub fn take_ready(&mut self) -> Vec<(Vec<SignedTransaction>, Route)> {
        std::mem::take(&mut self.ready)
    }

    /// Re-announces transactions pending since [`REANNOUNCE_AFTER`], within the budget. One at
    /// its sender's next nonce is tried against the state first: if it would not execute (its
    /// state changed since it was admitted), it is dropped instead. Returns the drops.
    pub fn reannounce<S: BlockStore>(
        &mut self,
        chain: &Chain<S>,
        now: Instant,
    ) -> Result<Vec<(TxId, TxRejection)>, Fatal> {
        let mut sent = 0;
        let mut dropped = Vec::new();
        while sent < REANNOUNCE_BUDGET {
            let Some(&(id, at)) = self.schedule.front() else {
                break;
            };
            if now.saturating_duration_since(at) < REANNOUNCE_AFTER {
                break;
            }
            self.schedule.pop_front();
            if self.announced.get(&id) != Some(&at) {
                continue; // announced again since
            }
            let Some(tx) = self.mempool.get(&id).cloned() else {
                if let Some(t) = self.standby.get(&id).cloned() {
                    if !self.drop_standby_if_stuck(&t, chain)? {
                        self.announce(t, now, Route::Gossip);
                        sent += 1;
                    }
                } else {
                    self.announced.remove(&id);
                }
                continue;
            };
            let head = self
                .mempool
                .executable_of(&tx.tx().sender)
                .is_some_and(|h| h.id() == id);
            if head && let Some(reason) = chain.dry_run(&tx)? {
                let gone = self.drop_rejected(&[(id, reason)]);
                for (g, _) in &gone {
                    self.announced.remove(g);
                }
                dropped.extend(gone);
                continue;
            }
            self.announce(tx.into_signed(), now, Route::Gossip);
            sent += 1;
        }
        if sent > 0 {
            self.flush();
        }
        Ok(dropped)
    }
}
