//! The replicated state: accounts (balance, nonce, role), per-account records and the
//! validator-set keys; how they are keyed and written. The state root over them is the root of
//! a sparse Merkle tree ([`crate::state_tree`]); [`state_digest`] hashes the whole state for
//! audits and tests.

use std::collections::BTreeMap;

use cairn_crypto::{Hash, PublicKey, codec};
use serde::{Deserialize, Serialize};

use crate::domains;
use crate::store::StoreError;
use crate::transaction::Role;

/// An account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    /// Balance.
    pub balance: u64,
    /// Next nonce the account must use.
    pub nonce: u64,
    /// Membership role; `None` for accounts that only hold funds.
    pub role: Option<Role>,
}

impl Account {
    /// Whether the account may send transactions.
    pub fn is_member(&self) -> bool {
        self.role.is_some()
    }
}

/// First byte of an account's key.
pub(crate) const ACCOUNT_PREFIX: u8 = 0x01;
const RECORD_PREFIX: u8 = 0x02;
/// First byte of the validator-set keys.
const GOVERNANCE_PREFIX: u8 = 0x03;

/// A key of the state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    /// `0x01 ‖ public key`.
    Account(PublicKey),
    /// `0x02 ‖ owner public key ‖ record key bytes`.
    Record(PublicKey, String),
    /// `0x03 0x01`: the validator list in force and since when (absent: the genesis list).
    Validators,
    /// `0x03 0x02`: the approved change waiting for its boundary, if any.
    PendingChange,
    /// `0x03 0x03 ‖ validator public key`: that validator's vote for a change.
    Vote(PublicKey),
}

impl StateKey {
    /// The key's bytes in the store (and in the state root).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            StateKey::Account(pk) => {
                let mut k = Vec::with_capacity(33);
                k.push(ACCOUNT_PREFIX);
                k.extend_from_slice(&pk.0);
                k
            }
            StateKey::Record(pk, key) => {
                let mut k = Vec::with_capacity(33 + key.len());
                k.push(RECORD_PREFIX);
                k.extend_from_slice(&pk.0);
                k.extend_from_slice(key.as_bytes());
                k
            }
            StateKey::Validators => vec![GOVERNANCE_PREFIX, 0x01],
            StateKey::PendingChange => vec![GOVERNANCE_PREFIX, 0x02],
            StateKey::Vote(pk) => {
                let mut k = Vec::with_capacity(34);
                k.extend_from_slice(&[GOVERNANCE_PREFIX, 0x03]);
                k.extend_from_slice(&pk.0);
                k
            }
        }
    }
}

/// Changes to the state, keyed by the store's key bytes, kept sorted. `None` deletes.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Read access to the committed state.
pub trait StateView {
    /// An account, if it exists.
    fn account(&self, id: &PublicKey) -> Result<Option<Account>, StoreError>;
    /// A record, if set.
    fn record(&self, owner: &PublicKey, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The encoded value under any state key (the validator-set keys are read this way).
    fn entry(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The writes that create the genesis accounts.
pub fn genesis_writes(genesis: &crate::genesis::Genesis) -> WriteSet {
    genesis
        .accounts
        .iter()
        .map(|a| {
            let account = Account {
                balance: a.balance,
                nonce: 0,
                role: a.role,
            };
            (
                StateKey::Account(a.public_key).to_bytes(),
                Some(codec::encode(&account)),
            )
        })
        .collect()
}

/// A digest of a whole state, given as sorted `(key, value)` pairs: for audits and tests that
/// compare two stores entry by entry.
pub fn state_digest<'a, I>(entries: I) -> Hash
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut buf = Vec::new();
    for (k, v) in entries {
        buf.extend_from_slice(&codec::encode(k));
        buf.extend_from_slice(&codec::encode(v));
    }
    Hash::tagged(domains::STATE_DIGEST, &[&buf])
}
