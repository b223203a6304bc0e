//! Transactions: what a member asks the ledger to do, signed by that member.

use cairn_crypto::{Hash, PublicKey, Signature, SignatureError, SigningKey, codec};
use serde::{Deserialize, Serialize};

use crate::domains;
use crate::governance::ValidatorChange;

/// Largest encoded [`SignedTransaction`], in bytes.
pub const TX_BYTES_MAX: usize = 4096;
/// Largest record key, in bytes of UTF-8.
pub const RECORD_KEY_BYTES_MAX: usize = 128;
/// Largest record value, in bytes.
pub const RECORD_VALUE_BYTES_MAX: usize = 2048;

/// A transaction id: `SHA-256(tag "cairn/tx/id/v1" ‖ encoded unsigned transaction)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct TxId(pub Hash);

impl std::fmt::Display for TxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for TxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TxId({}…)", &self.0.to_hex()[..12])
    }
}

impl std::str::FromStr for TxId {
    type Err = cairn_crypto::ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(TxId)
    }
}

/// What an account may do. Only members (accounts with a role) may send transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May transfer and write records.
    User,
    /// May also add and remove members.
    Admin,
}

/// The operation a transaction performs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// Move `amount` from the sender to `to` (any key; the receiver need not be a member).
    Transfer {
        /// Receiver.
        to: PublicKey,
        /// Amount, > 0.
        amount: u64,
    },
    /// Set `key` to `value` in the sender's own record namespace.
    PutRecord {
        /// 1..=128 bytes of UTF-8.
        key: String,
        /// Up to 2048 bytes; hex in JSON.
        #[serde(with = "cairn_crypto::hex_bytes")]
        #[cfg_attr(
            feature = "openapi",
            schema(value_type = String, pattern = "^([0-9a-fA-F]{2}){0,2048}$")
        )]
        value: Vec<u8>,
    },
    /// Make `account` a member with `role`, or change its role (admins only).
    AddMember {
        /// The account.
        account: PublicKey,
        /// Its new role.
        role: Role,
    },
    /// Take membership away from `account` (admins only; its balance stays).
    RemoveMember {
        /// The account.
        account: PublicKey,
    },
    /// Approve a change to the validator set, or vote for it: who may is the genesis policy
    /// (an admin approves alone; a validator, sending from its validator key, casts one vote
    /// of the quorum needed). It takes effect after the next epoch boundary.
    ChangeValidators {
        /// The change.
        change: ValidatorChange,
    },
}

/// An unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transaction {
    /// The chain it is meant for; a transaction for another chain is rejected.
    pub chain_id: String,
    /// Who sends it and signs it.
    pub sender: PublicKey,
    /// The sender's next nonce: 0 for its first transaction, then 1, 2, …
    pub nonce: u64,
    /// What it does.
    pub payload: Payload,
}

impl Transaction {
    /// The id of this transaction.
    pub fn id(&self) -> TxId {
        TxId(Hash::tagged(domains::TX_ID, &[&codec::encode(self)]))
    }

    /// Signs with the sender's key. The key must be the sender's (checked in debug builds).
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        debug_assert_eq!(key.public_key(), self.sender, "signing with another key");
        let signature = key.sign(domains::TX_SIGN, &self.chain_id, &codec::encode(&self));
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

/// A transaction with its sender's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// `sign(sender, "cairn/tx/sign/v1", chain_id, encode(tx))`.
    pub signature: Signature,
}

impl SignedTransaction {
    /// The transaction id (the signature is not part of it).
    pub fn id(&self) -> TxId {
        self.tx.id()
    }

    /// Verifies the sender's signature, alone. Prefer [`crate::verify_transactions`], which
    /// batches.
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        self.tx.sender.verify(
            domains::TX_SIGN,
            &self.tx.chain_id,
            &codec::encode(&self.tx),
            &self.signature,
        )
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        codec::encoded_len(self)
    }

    /// Decodes a signed transaction, refusing more than [`TX_BYTES_MAX`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<SignedTransaction, codec::CodecError> {
        codec::decode_limited(bytes, TX_BYTES_MAX)
    }
}

/// A transaction whose signature and stateless rules were checked on this node, with its id
/// and size computed once. Only [`crate::verify_transactions`] and
/// [`VerifiedTransaction::trusted`] make one, so holding one means "checked once, here".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTransaction {
    tx: SignedTransaction,
    id: TxId,
    size: u32,
}

impl VerifiedTransaction {
    pub(crate) fn new_checked(tx: SignedTransaction, id: TxId, size: usize) -> Self {
        Self {
            tx,
            id,
            size: size as u32,
        }
    }

    /// Wraps a transaction without checking its signature, for transactions that already
    /// passed verification on this node (read back from the local store, or inside a block
    /// whose certificate vouches for it). Computes the id and size.
    pub fn trusted(tx: SignedTransaction) -> Self {
        let id = tx.id();
        let size = tx.encoded_len();
        Self::new_checked(tx, id, size)
    }

    /// The id.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Encoded size in bytes.
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// The signed transaction.
    pub fn signed(&self) -> &SignedTransaction {
        &self.tx
    }

    /// The unsigned transaction.
    pub fn tx(&self) -> &Transaction {
        &self.tx.tx
    }

    /// Unwraps the signed transaction.
    pub fn into_signed(self) -> SignedTransaction {
        self.tx
    }
}
