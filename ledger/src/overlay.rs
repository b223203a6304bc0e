//! Executing transactions on top of a state without changing it: the changes one block makes,
//! checked rule by rule, kept in memory until the block commits (or is only being built or
//! validated).

use std::collections::BTreeMap;

use cairn_crypto::{PublicKey, codec};

use crate::state::{Account, StateKey, StateView, WriteSet};
use crate::store::StoreError;
use crate::transaction::{Payload, Role, Transaction};
use crate::validation::TxRejection;

/// Uncommitted changes on top of the committed state, for executing one block.
pub(crate) struct Overlay<'a, V> {
    base: &'a V,
    /// Accounts read from the base, so each is read once per block.
    read: BTreeMap<PublicKey, Account>,
    /// Accounts changed by this block.
    accounts: BTreeMap<PublicKey, Account>,
    /// Records written by this block.
    records: BTreeMap<(PublicKey, String), Vec<u8>>,
}

impl<'a, V: StateView> Overlay<'a, V> {
    pub(crate) fn new(base: &'a V) -> Self {
        Self {
            base,
            read: BTreeMap::new(),
            accounts: BTreeMap::new(),
            records: BTreeMap::new(),
        }
    }

    /// The account as this block has left it so far (default if it does not exist).
    fn get(&mut self, id: &PublicKey) -> Result<Account, StoreError> {
        if let Some(a) = self.accounts.get(id) {
            return Ok(*a);
        }
        if let Some(a) = self.read.get(id) {
            return Ok(*a);
        }
        let a = self.base.account(id)?.unwrap_or_default();
        self.read.insert(*id, a);
        Ok(a)
    }

    /// Checks the stateful rules and, only if all pass, applies the transaction. The outer
    /// error is a storage failure; the inner one a rejection that changed nothing. Returns the
    /// sender's account after the transaction.
    pub(crate) fn apply(
        &mut self,
        tx: &Transaction,
    ) -> Result<Result<Account, TxRejection>, StoreError> {
        let mut sender = self.get(&tx.sender)?;
        let Some(role) = sender.role else {
            return Ok(Err(TxRejection::NotMember { sender: tx.sender }));
        };
        if tx.nonce != sender.nonce {
            let (expected, got) = (sender.nonce, tx.nonce);
            return Ok(Err(if got < expected {
                TxRejection::StaleNonce { expected, got }
            } else {
                TxRejection::FutureNonce { expected, got }
            }));
        }
        match &tx.payload {
            Payload::Transfer { to, amount } => {
                if sender.balance < *amount {
                    return Ok(Err(TxRejection::InsufficientBalance {
                        available: sender.balance,
                        needed: *amount,
                    }));
                }
                if *to != tx.sender {
                    let mut receiver = self.get(to)?;
                    let Some(b) = receiver.balance.checked_add(*amount) else {
                        return Ok(Err(TxRejection::BalanceOverflow));
                    };
                    receiver.balance = b;
                    sender.balance -= amount;
                    self.accounts.insert(*to, receiver);
                }
            }
            Payload::PutRecord { key, value } => {
                self.records.insert((tx.sender, key.clone()), value.clone());
            }
            Payload::AddMember { account, role: new } => {
                if role != Role::Admin {
                    return Ok(Err(TxRejection::NotAdmin { sender: tx.sender }));
                }
                if *account == tx.sender {
                    // An admin setting its own role: unchanged, or a demotion, which would be
                    // removing its own admin rights.
                    return Ok(Err(if *new == Role::Admin {
                        TxRejection::RoleUnchanged { account: *account }
                    } else {
                        TxRejection::CannotRemoveSelf
                    }));
                }
                let mut target = self.get(account)?;
                if target.role == Some(*new) {
                    return Ok(Err(TxRejection::RoleUnchanged { account: *account }));
                }
                target.role = Some(*new);
                self.accounts.insert(*account, target);
            }
            Payload::RemoveMember { account } => {
                if role != Role::Admin {
                    return Ok(Err(TxRejection::NotAdmin { sender: tx.sender }));
                }
                if *account == tx.sender {
                    return Ok(Err(TxRejection::CannotRemoveSelf));
                }
                let mut target = self.get(account)?;
                if target.role.is_none() {
                    return Ok(Err(TxRejection::AccountNotMember { account: *account }));
                }
                target.role = None;
                self.accounts.insert(*account, target);
            }
        }
        sender.nonce += 1;
        self.accounts.insert(tx.sender, sender);
        Ok(Ok(sender))
    }

    pub(crate) fn into_writes(self) -> WriteSet {
        let mut w = WriteSet::new();
        for (id, a) in self.accounts {
            w.insert(StateKey::Account(id).to_bytes(), Some(codec::encode(&a)));
        }
        for ((owner, key), value) in self.records {
            w.insert(StateKey::Record(owner, key).to_bytes(), Some(value));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state where every account is a member with 5, except one rich account holding
    /// u64::MAX: unreachable from a valid genesis (which caps supply), so it is faked here.
    struct Rich(PublicKey);

    impl StateView for Rich {
        fn account(&self, id: &PublicKey) -> Result<Option<Account>, StoreError> {
            Ok(Some(Account {
                balance: if *id == self.0 { u64::MAX } else { 5 },
                nonce: 0,
                role: Some(Role::User),
            }))
        }
        fn record(&self, _: &PublicKey, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
    }

    #[test]
    fn receiver_overflow_is_refused_and_changes_nothing() {
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let view = Rich(b);
        let mut o = Overlay::new(&view);
        let tx = Transaction {
            chain_id: "c".into(),
            sender: a,
            nonce: 0,
            payload: Payload::Transfer { to: b, amount: 1 },
        };
        assert_eq!(o.apply(&tx).expect("io"), Err(TxRejection::BalanceOverflow));
        assert!(o.into_writes().is_empty());
    }

    #[test]
    fn self_transfer_only_uses_the_nonce() {
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let view = Rich(b);
        let mut o = Overlay::new(&view);
        let to_self = |nonce, amount| Transaction {
            chain_id: "c".into(),
            sender: a,
            nonce,
            payload: Payload::Transfer { to: a, amount },
        };
        let after = o.apply(&to_self(0, 5)).expect("io").expect("valid");
        assert_eq!((after.balance, after.nonce), (5, 1));
        assert_eq!(
            o.apply(&to_self(1, 6)).expect("io"),
            Err(TxRejection::InsufficientBalance {
                available: 5,
                needed: 6
            })
        );
    }
}
