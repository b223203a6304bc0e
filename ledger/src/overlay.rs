//! Executing transactions on top of a state without changing it: the changes one block makes,
//! checked rule by rule, kept in memory until the block commits (or is only being built or
//! validated).

use std::collections::BTreeMap;

use cairn_crypto::{PublicKey, codec};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::block::Height;
use crate::genesis::{ConsensusKind, Validator};
use crate::governance::{
    ChangePolicy, PendingChange, SetInForce, SetRecord, ValidatorChange, Vote,
    boundary_at_or_after, vote_counts,
};
use crate::state::{Account, StateKey, StateView, WriteSet};
use crate::store::StoreError;
use crate::transaction::{Payload, Role, Transaction};
use crate::validation::TxRejection;

/// What executing a block needs besides the state: its height, the validator set in force at
/// it, and the chain's rules for changing that set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockContext<'a> {
    pub kind: ConsensusKind,
    pub policy: ChangePolicy,
    pub epoch_length: u64,
    pub height: Height,
    pub validators: &'a SetInForce,
}

/// Uncommitted changes on top of the committed state, for executing one block.
pub(crate) struct Overlay<'a, V> {
    base: &'a V,
    ctx: BlockContext<'a>,
    /// Validator-set keys this block wrote (`None` deletes).
    governance: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Accounts read from the base, so each is read once per block.
    read: BTreeMap<PublicKey, Account>,
    /// Accounts changed by this block.
    accounts: BTreeMap<PublicKey, Account>,
    /// Records written by this block.
    records: BTreeMap<(PublicKey, String), Vec<u8>>,
}

impl<'a, V: StateView> Overlay<'a, V> {
    pub(crate) fn new(base: &'a V, ctx: BlockContext<'a>) -> Self {
        Self {
            base,
            ctx,
            governance: BTreeMap::new(),
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
        // A validator votes from its validator key, which need not be a member's.
        let vote = matches!(tx.payload, Payload::ChangeValidators { .. })
            && self.ctx.policy == ChangePolicy::Validators;
        if vote {
            if !self.ctx.validators.set().contains(&tx.sender) {
                return Ok(Err(TxRejection::SenderNotValidator { sender: tx.sender }));
            }
        } else if sender.role.is_none() {
            return Ok(Err(TxRejection::NotMember { sender: tx.sender }));
        }
        let admin = sender.role == Some(Role::Admin);
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
                if !admin {
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
                if !admin {
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
            Payload::ChangeValidators { change } => {
                if !vote && !admin {
                    return Ok(Err(TxRejection::NotAdmin { sender: tx.sender }));
                }
                if let Err(reason) = self.change_validators(tx.sender, change, vote)? {
                    return Ok(Err(reason));
                }
            }
        }
        sender.nonce += 1;
        self.accounts.insert(tx.sender, sender);
        Ok(Ok(sender))
    }

    /// Approves `change` (an admin's transaction), or counts `sender`'s vote for it and
    /// approves it when the votes reach a quorum of the set in force.
    fn change_validators(
        &mut self,
        sender: PublicKey,
        change: &ValidatorChange,
        vote: bool,
    ) -> Result<Result<(), TxRejection>, StoreError> {
        let ctx = self.ctx;
        if let Some(p) = self.read::<PendingChange>(&StateKey::PendingChange)? {
            return Ok(Err(TxRejection::ChangePending {
                in_force_from: p.boundary.saturating_add(1),
            }));
        }
        let validators = match change.apply_to(ctx.validators.list(), ctx.kind) {
            Ok(list) => list,
            Err(reason) => return Ok(Err(reason)),
        };
        let counts =
            |v: &Vote| v.change == *change && vote_counts(v.height, ctx.height, ctx.epoch_length);
        if vote {
            if let Some(v) = self.read::<Vote>(&StateKey::Vote(sender))?
                && counts(&v)
            {
                return Ok(Err(TxRejection::AlreadyVoted));
            }
            let cast = Vote {
                change: change.clone(),
                height: ctx.height,
            };
            self.write(StateKey::Vote(sender), Some(&cast));
            let mut votes = 0;
            for key in ctx.validators.set().keys() {
                if let Some(v) = self.read::<Vote>(&StateKey::Vote(*key))?
                    && counts(&v)
                {
                    votes += 1;
                }
            }
            if votes < ctx.validators.set().quorum(ctx.kind) {
                return Ok(Ok(()));
            }
            // Approved: every vote of the set is spent (votes for other changes too, so
            // votes only ever exist for validators in force).
            for key in ctx.validators.set().keys() {
                if self.read_raw(&StateKey::Vote(*key))?.is_some() {
                    self.write::<Vote>(StateKey::Vote(*key), None);
                }
            }
        }
        let pending = PendingChange {
            change: change.clone(),
            validators,
            approved_at: ctx.height,
            boundary: boundary_at_or_after(ctx.height, ctx.epoch_length),
        };
        self.write(StateKey::PendingChange, Some(&pending));
        Ok(Ok(()))
    }

    /// Ends the block: at the boundary of a pending change, the new set goes in force after
    /// this block, and is returned (the header's `next_validators`).
    pub(crate) fn finish(&mut self) -> Result<Option<Vec<Validator>>, StoreError> {
        let Some(p) = self.read::<PendingChange>(&StateKey::PendingChange)? else {
            return Ok(None);
        };
        if p.boundary > self.ctx.height {
            return Ok(None);
        }
        let record = SetRecord {
            since: self.ctx.height,
            validators: p.validators,
        };
        self.write(StateKey::Validators, Some(&record));
        self.write::<PendingChange>(StateKey::PendingChange, None);
        Ok(Some(record.validators))
    }

    fn read_raw(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
        match self.governance.get(&key.to_bytes()) {
            Some(v) => Ok(v.clone()),
            None => self.base.entry(key),
        }
    }

    fn read<T: DeserializeOwned + Serialize>(
        &self,
        key: &StateKey,
    ) -> Result<Option<T>, StoreError> {
        match self.read_raw(key)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn write<T: Serialize>(&mut self, key: StateKey, value: Option<&T>) {
        self.governance
            .insert(key.to_bytes(), value.map(|v| codec::encode(v)));
    }

    pub(crate) fn into_writes(self) -> WriteSet {
        let mut w = WriteSet::new();
        w.extend(self.governance);
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
        fn entry(&self, _: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
    }

    fn with_overlay(view: &Rich, f: impl FnOnce(Overlay<'_, Rich>)) {
        let set = SetInForce::new(Vec::new(), 0);
        let ctx = BlockContext {
            kind: ConsensusKind::Raft,
            policy: ChangePolicy::Admins,
            epoch_length: 10,
            height: 1,
            validators: &set,
        };
        f(Overlay::new(view, ctx))
    }

    #[test]
    fn receiver_overflow_is_refused_and_changes_nothing() {
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let view = Rich(b);
        with_overlay(&view, |mut o| {
            let tx = Transaction {
                chain_id: "c".into(),
                sender: a,
                nonce: 0,
                payload: Payload::Transfer { to: b, amount: 1 },
            };
            assert_eq!(o.apply(&tx).expect("io"), Err(TxRejection::BalanceOverflow));
            assert!(o.into_writes().is_empty());
        });
    }

    #[test]
    fn self_transfer_only_uses_the_nonce() {
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let view = Rich(b);
        with_overlay(&view, |mut o| {
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
        });
    }
}
