//! An independent model of the ledger's accounts, written from the rules in PROTOCOL.md, not
//! from the node's code: replaying a chain through it must succeed transaction by transaction
//! and end where every node says its accounts are.

use std::collections::BTreeMap;

use cairn_crypto::PublicKey;
use cairn_ledger::{Genesis, Payload, Role, Transaction};

/// One account as the model sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acct {
    pub balance: u64,
    pub nonce: u64,
    pub member: bool,
    pub admin: bool,
}

/// Accounts by key.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub accounts: BTreeMap<PublicKey, Acct>,
}

impl Model {
    /// The genesis state.
    pub fn new(genesis: &Genesis) -> Model {
        let accounts = genesis
            .accounts
            .iter()
            .map(|a| {
                (
                    a.public_key,
                    Acct {
                        balance: a.balance,
                        nonce: 0,
                        member: a.role.is_some(),
                        admin: a.role == Some(Role::Admin),
                    },
                )
            })
            .collect();
        Model { accounts }
    }

    /// Applies a committed transaction, or says why it could not have executed.
    pub fn apply(&mut self, tx: &Transaction) -> Result<(), String> {
        let sender = self.accounts.get(&tx.sender).copied().unwrap_or_default();
        if tx.nonce != sender.nonce {
            return Err(format!(
                "nonce {} where the model expects {}",
                tx.nonce, sender.nonce
            ));
        }
        let mut after = sender;
        after.nonce += 1;
        match &tx.payload {
            Payload::Transfer { to, amount } => {
                if !sender.member {
                    return Err("the sender is not a member".into());
                }
                if *amount == 0 || sender.balance < *amount {
                    return Err(format!(
                        "transfer of {amount} from a balance of {}",
                        sender.balance
                    ));
                }
                if *to != tx.sender {
                    after.balance -= amount;
                    let r = self.accounts.entry(*to).or_default();
                    r.balance = r
                        .balance
                        .checked_add(*amount)
                        .ok_or("the receiver's balance overflows")?;
                }
            }
            Payload::AddMember { account, role } => {
                if !sender.admin {
                    return Err("AddMember from a non-admin".into());
                }
                let a = self.accounts.entry(*account).or_default();
                a.member = true;
                a.admin = *role == Role::Admin;
            }
            Payload::RemoveMember { account } => {
                if !sender.admin {
                    return Err("RemoveMember from a non-admin".into());
                }
                let a = self.accounts.entry(*account).or_default();
                a.member = false;
                a.admin = false;
            }
            Payload::PutRecord { .. } | Payload::ChangeValidators { .. } => {
                // Records and validator votes move no balance; chaos sends neither.
            }
        }
        // The sender's entry is written last: a transfer to itself changed nothing else.
        let s = self.accounts.entry(tx.sender).or_default();
        s.nonce = after.nonce;
        s.balance = after.balance;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_crypto::SigningKey;

    fn tx(from: &SigningKey, nonce: u64, payload: Payload) -> Transaction {
        Transaction {
            chain_id: "t".into(),
            sender: from.public_key(),
            nonce,
            payload,
        }
    }

    #[test]
    fn the_model_refuses_a_replay_a_gap_and_an_overdraft() {
        let (a, b) = (SigningKey::generate(), SigningKey::generate());
        let mut m = Model::default();
        m.accounts.insert(
            a.public_key(),
            Acct {
                balance: 10,
                nonce: 0,
                member: true,
                admin: false,
            },
        );
        let pay = |amount| Payload::Transfer {
            to: b.public_key(),
            amount,
        };
        let t0 = tx(&a, 0, pay(4));
        m.apply(&t0).expect("first");
        assert!(m.apply(&t0).is_err(), "the same transaction twice");
        assert!(m.apply(&tx(&a, 2, pay(1))).is_err(), "a nonce gap");
        assert!(
            m.apply(&tx(&a, 1, pay(7))).is_err(),
            "more than the balance"
        );
        m.apply(&tx(&a, 1, pay(6))).expect("exactly the balance");
        assert_eq!(m.accounts[&a.public_key()].balance, 0);
        assert_eq!(m.accounts[&b.public_key()].balance, 10);
        assert!(
            m.apply(&tx(&b, 0, pay(1))).is_err(),
            "b received funds but is no member"
        );
    }
}
