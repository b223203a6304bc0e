//! The transactions this node has verified and not yet seen committed, bounded.

use std::collections::{HashSet, VecDeque};

use cairn_crypto::{Hash, Signature};
use cairn_ledger::TxId;

/// Most transactions remembered as verified: twice the default mempool, so a full mempool's
/// transactions are never verified again when their block comes (about 14 MB when full: two
/// 32-byte digests per entry, in the set and in the order, plus the set's overhead).
pub const VERIFIED_KEPT: usize = 200_000;

/// Signed transactions verified on this node, bounded, oldest forgotten first. Keyed by id
/// *and* signature: the id covers only the unsigned transaction, so a block carrying a known
/// id with another signature must still be verified. Each entry is kept as the SHA-256 of
/// `id ‖ signature` (a key in this node's memory only, never stored or sent): a third of the
/// memory of the pair, and as collision-resistant, so no other signature can pass for it.
#[derive(Debug, Default)]
pub(super) struct VerifiedIds {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl VerifiedIds {
    fn key(id: TxId, signature: Signature) -> Hash {
        let mut both = [0u8; 96];
        both[..32].copy_from_slice(&id.0.0);
        both[32..].copy_from_slice(&signature.0);
        Hash::sha256(&both)
    }

    pub(super) fn insert(&mut self, id: TxId, signature: Signature) {
        let k = Self::key(id, signature);
        if self.set.insert(k) {
            self.order.push_back(k);
            while self.order.len() > VERIFIED_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    pub(super) fn contains(&self, id: TxId, signature: Signature) -> bool {
        self.set.contains(&Self::key(id, signature))
    }

    pub(super) fn remove(&mut self, id: TxId, signature: Signature) {
        self.set.remove(&Self::key(id, signature));
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verified set holds at most `VERIFIED_KEPT` transactions, forgets the oldest first, and
    /// tells a known id with another signature from the one it verified.
    #[test]
    fn the_verified_set_keeps_its_bound_and_forgets_the_oldest() {
        let mut kept = VerifiedIds::default();
        let id = |i: u64| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&i.to_le_bytes());
            TxId(cairn_crypto::Hash(b))
        };
        let sig = Signature([7; 64]);
        for i in 0..VERIFIED_KEPT as u64 + 1_000 {
            kept.insert(id(i), sig);
            assert!(kept.len() <= VERIFIED_KEPT);
            assert!(kept.order.len() <= VERIFIED_KEPT);
        }
        assert_eq!(kept.len(), VERIFIED_KEPT);
        assert!(!kept.contains(id(0), sig), "the oldest went first");
        assert!(kept.contains(id(VERIFIED_KEPT as u64 + 999), sig));
        assert!(
            !kept.contains(id(VERIFIED_KEPT as u64 + 999), Signature([8; 64])),
            "another signature for a known id is not taken as verified"
        );
    }
}
