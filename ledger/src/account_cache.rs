//! Committed accounts kept in memory by the ledger.
//!
//! Every transaction a node sees reads its sender's account several times before it commits:
//! admission (the next nonce), the mempool (which nonces could run), block building or
//! validation, and the commit. Each read was a RocksDB lookup. The ledger is the only writer
//! of the state, so it can keep the accounts it read and bring them up to date itself when a
//! block commits: a cached account is always the committed one.
//!
//! Bounded by entries ([`ACCOUNTS_KEPT`]); when full it is emptied and refills from the reads
//! that follow, so a flood of one-off accounts costs what it cost without the cache. Absent
//! accounts are kept too (as absent) until a block creates them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use cairn_crypto::{PublicKey, codec};

use crate::state::{ACCOUNT_PREFIX, Account, WriteSet};

/// Most accounts kept (about 100 bytes each: some 6.5 MB when full).
pub const ACCOUNTS_KEPT: usize = 1 << 16;

/// Committed accounts by key; `None` for an account known not to exist.
#[derive(Debug, Default)]
pub(crate) struct AccountCache {
    accounts: Mutex<HashMap<PublicKey, Option<Account>>>,
}

impl AccountCache {
    fn map(&self) -> MutexGuard<'_, HashMap<PublicKey, Option<Account>>> {
        // Entries are written whole: a map left by a panicking holder is still consistent.
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The committed account, if kept.
    pub(crate) fn get(&self, id: &PublicKey) -> Option<Option<Account>> {
        self.map().get(id).copied()
    }

    /// Keeps an account just read from the store.
    pub(crate) fn keep(&self, id: PublicKey, account: Option<Account>) {
        let mut map = self.map();
        if map.len() >= ACCOUNTS_KEPT && !map.contains_key(&id) {
            map.clear();
        }
        map.insert(id, account);
    }

    /// A block committed `writes`: every kept account it changed takes its new value. One
    /// whose new value does not decode is dropped (the store's read will say what is wrong).
    pub(crate) fn on_commit(&self, writes: &WriteSet) {
        let mut map = self.map();
        if map.is_empty() {
            return;
        }
        for (key, value) in writes {
            let Some(id) = account_of(key) else {
                continue;
            };
            let Some(kept) = map.get_mut(&id) else {
                continue;
            };
            match value.as_deref().map(codec::decode::<Account>).transpose() {
                Ok(now) => *kept = now,
                Err(_) => {
                    map.remove(&id);
                }
            }
        }
    }

    /// Forgets everything (the store may hold anything after a failed commit).
    pub(crate) fn clear(&self) {
        self.map().clear();
    }

    /// Accounts kept now.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

/// The account a state key belongs to, if it is an account's key.
fn account_of(key: &[u8]) -> Option<PublicKey> {
    match key.split_first() {
        Some((&ACCOUNT_PREFIX, rest)) => rest.try_into().ok().map(PublicKey),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateKey;
    use crate::transaction::Role;

    fn key(b: u8) -> PublicKey {
        PublicKey([b; 32])
    }

    fn account(balance: u64) -> Account {
        Account {
            balance,
            nonce: 1,
            role: Some(Role::User),
        }
    }

    #[test]
    fn a_commit_updates_kept_accounts_and_leaves_others_out() {
        let cache = AccountCache::default();
        cache.keep(key(1), Some(account(5)));
        cache.keep(key(2), None);
        let mut writes = WriteSet::new();
        writes.insert(
            StateKey::Account(key(1)).to_bytes(),
            Some(codec::encode(&account(7))),
        );
        writes.insert(
            StateKey::Account(key(2)).to_bytes(),
            Some(codec::encode(&account(9))),
        );
        writes.insert(
            StateKey::Account(key(3)).to_bytes(),
            Some(codec::encode(&account(1))),
        );
        writes.insert(
            StateKey::Record(key(1), "k".into()).to_bytes(),
            Some(b"v".to_vec()),
        );
        cache.on_commit(&writes);
        assert_eq!(cache.get(&key(1)), Some(Some(account(7))));
        assert_eq!(cache.get(&key(2)), Some(Some(account(9))));
        assert_eq!(cache.get(&key(3)), None, "not kept before, not kept now");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_deleted_account_is_kept_as_absent_and_garbage_is_dropped() {
        let cache = AccountCache::default();
        cache.keep(key(1), Some(account(5)));
        cache.keep(key(2), Some(account(5)));
        let mut writes = WriteSet::new();
        writes.insert(StateKey::Account(key(1)).to_bytes(), None);
        writes.insert(StateKey::Account(key(2)).to_bytes(), Some(vec![0xff]));
        cache.on_commit(&writes);
        assert_eq!(cache.get(&key(1)), Some(None));
        assert_eq!(cache.get(&key(2)), None);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let cache = AccountCache::default();
        for i in 0..(ACCOUNTS_KEPT as u64 + 10) {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&i.to_le_bytes());
            cache.keep(PublicKey(b), None);
            assert!(cache.len() <= ACCOUNTS_KEPT);
        }
    }
}
