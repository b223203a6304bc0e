//! Transaction validity: stateless rules (size, chain, payload bounds, signature), stateful
//! rules (membership, role, nonce, balance), and the one typed list of rejection reasons that
//! the executor, the mempool and the API share.

use cairn_crypto::{BatchVerifier, PublicKey, codec};
use serde::{Deserialize, Serialize};

use crate::domains;
use crate::transaction::{
    Payload, RECORD_KEY_BYTES_MAX, RECORD_VALUE_BYTES_MAX, SignedTransaction, TX_BYTES_MAX,
    VerifiedTransaction,
};

/// Why a transaction was not accepted, executed or kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum TxRejection {
    // --- stateless ---
    /// Encoded transaction larger than allowed.
    #[error("transaction is {size} bytes, the limit is {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Meant for another chain.
    #[error("transaction is for chain {got:?}, this is {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The transaction's.
        got: String,
    },
    /// The signature does not verify for the sender.
    #[error("bad signature")]
    BadSignature,
    /// A transfer of nothing.
    #[error("transfer amount must be greater than zero")]
    ZeroAmount,
    /// Record key empty or too long.
    #[error("record key must be 1..={max} bytes, got {len}")]
    BadRecordKey {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Record value too long.
    #[error("record value is {len} bytes, the limit is {max}")]
    RecordValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A validator name that is empty, too long or has control characters.
    #[error("validator name {name:?} must be 1..={max} bytes without control characters")]
    BadValidatorName {
        /// The name.
        name: String,
        /// The longest allowed, in bytes.
        max: usize,
    },
    /// A validator key that is not a valid ed25519 public key.
    #[error("{key} is not a valid ed25519 public key")]
    BadValidatorKey {
        /// The key.
        key: PublicKey,
    },
    /// A rotation to the key the validator already has.
    #[error("rotation to the same key {key}")]
    RotationToSameKey {
        /// The key.
        key: PublicKey,
    },
    // --- stateful ---
    /// The sender is not a member.
    #[error("sender {sender} is not a member")]
    NotMember {
        /// The sender.
        sender: PublicKey,
    },
    /// Only admins may change membership.
    #[error("sender {sender} is not an admin")]
    NotAdmin {
        /// The sender.
        sender: PublicKey,
    },
    /// Nonce already used.
    #[error("nonce {got} already used; the sender's next nonce is {expected}")]
    StaleNonce {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Nonce ahead of the sender's next nonce (an earlier one is missing).
    #[error("nonce {got} is ahead; the sender's next nonce is {expected}")]
    FutureNonce {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Not enough funds.
    #[error("balance {available} is less than {needed}")]
    InsufficientBalance {
        /// Balance.
        available: u64,
        /// Amount.
        needed: u64,
    },
    /// The receiver's balance would overflow.
    #[error("receiver balance would overflow")]
    BalanceOverflow,
    /// Removing a non-member.
    #[error("account {account} is not a member")]
    AccountNotMember {
        /// The account.
        account: PublicKey,
    },
    /// Setting the role an account already has.
    #[error("account {account} already has that role")]
    RoleUnchanged {
        /// The account.
        account: PublicKey,
    },
    /// An admin may not remove itself (a chain must never lose its last admin by accident).
    #[error("an admin cannot remove itself")]
    CannotRemoveSelf,
    /// The sender may not vote on validator changes: under the `validators` policy only the
    /// validators in force may, each from its validator key.
    #[error("sender {sender} is not a validator in force, so it cannot vote on validator changes")]
    SenderNotValidator {
        /// The sender.
        sender: PublicKey,
    },
    /// Removing or rotating a key that is not a validator.
    #[error("{key} is not a validator")]
    NotValidator {
        /// The key.
        key: PublicKey,
    },
    /// Adding (or rotating to) a key that is already a validator.
    #[error("{key} is already a validator")]
    AlreadyValidator {
        /// The key.
        key: PublicKey,
    },
    /// Adding a validator under a name another validator has.
    #[error("another validator is named {name:?}")]
    ValidatorNameTaken {
        /// The name.
        name: String,
    },
    /// The set is full.
    #[error("the validator set already has the most validators a chain may have ({max})")]
    TooManyValidators {
        /// The limit.
        max: usize,
    },
    /// A removal that would leave fewer validators than the engine's fault model needs.
    #[error(
        "{engine} needs at least {min} validators: removing one of {now} would break its fault \
         model (add one first)"
    )]
    TooFewValidators {
        /// The engine.
        engine: crate::genesis::ConsensusKind,
        /// The fewest it may have.
        min: usize,
        /// How many it has.
        now: usize,
    },
    /// Another change is approved and not in force yet.
    #[error("a validator change is already pending, in force from height {in_force_from}")]
    ChangePending {
        /// The first height of the pending set.
        in_force_from: u64,
    },
    /// The sender's vote for this change is already counted.
    #[error("this validator already voted for this change")]
    AlreadyVoted,
    // --- mempool ---
    /// Already in the mempool.
    #[error("transaction already pending")]
    Duplicate,
    /// Another pending transaction has the same sender and nonce.
    #[error("another pending transaction uses nonce {nonce}")]
    NonceInUse {
        /// The nonce.
        nonce: u64,
    },
    /// Nonce too far beyond the sender's next nonce to be kept.
    #[error("nonce {got} is more than {max_gap} ahead of the next nonce {expected}")]
    NonceTooFarAhead {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
        /// The allowed gap.
        max_gap: u64,
    },
    /// An earlier transaction of the same sender was dropped, so this one can never execute
    /// as signed; the sender must resubmit from the dropped nonce.
    #[error("dropped: this sender's transaction with nonce {dropped_nonce} was dropped before it")]
    PredecessorDropped {
        /// The dropped predecessor's nonce.
        dropped_nonce: u64,
        /// This transaction's nonce.
        got: u64,
    },
    /// The mempool is at its count or byte limit.
    #[error("mempool is full")]
    MempoolFull,
}

impl TxRejection {
    /// A stable snake_case code, for API errors and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            TxRejection::TooLarge { .. } => "too_large",
            TxRejection::WrongChain { .. } => "wrong_chain",
            TxRejection::BadSignature => "bad_signature",
            TxRejection::ZeroAmount => "zero_amount",
            TxRejection::BadRecordKey { .. } => "bad_record_key",
            TxRejection::RecordValueTooLarge { .. } => "record_value_too_large",
            TxRejection::BadValidatorName { .. } => "bad_validator_name",
            TxRejection::BadValidatorKey { .. } => "bad_validator_key",
            TxRejection::RotationToSameKey { .. } => "rotation_to_same_key",
            TxRejection::NotMember { .. } => "not_member",
            TxRejection::NotAdmin { .. } => "not_admin",
            TxRejection::StaleNonce { .. } => "stale_nonce",
            TxRejection::FutureNonce { .. } => "future_nonce",
            TxRejection::InsufficientBalance { .. } => "insufficient_balance",
            TxRejection::BalanceOverflow => "balance_overflow",
            TxRejection::AccountNotMember { .. } => "account_not_member",
            TxRejection::RoleUnchanged { .. } => "role_unchanged",
            TxRejection::CannotRemoveSelf => "cannot_remove_self",
            TxRejection::SenderNotValidator { .. } => "sender_not_validator",
            TxRejection::NotValidator { .. } => "not_validator",
            TxRejection::AlreadyValidator { .. } => "already_validator",
            TxRejection::ValidatorNameTaken { .. } => "validator_name_taken",
            TxRejection::TooManyValidators { .. } => "too_many_validators",
            TxRejection::TooFewValidators { .. } => "too_few_validators",
            TxRejection::ChangePending { .. } => "change_pending",
            TxRejection::AlreadyVoted => "already_voted",
            TxRejection::Duplicate => "duplicate",
            TxRejection::NonceInUse { .. } => "nonce_in_use",
            TxRejection::NonceTooFarAhead { .. } => "nonce_too_far_ahead",
            TxRejection::PredecessorDropped { .. } => "predecessor_dropped",
            TxRejection::MempoolFull => "mempool_full",
        }
    }
}

/// Stateless rules except the signature: size, chain id, payload bounds. Returns the encoded
/// size.
pub fn check_stateless(tx: &SignedTransaction, chain_id: &str) -> Result<usize, TxRejection> {
    check_stateless_sized(tx, tx.encoded_len(), chain_id)
}

/// [`check_stateless`] for a transaction whose encoded size is already known.
pub fn check_stateless_sized(
    tx: &SignedTransaction,
    size: usize,
    chain_id: &str,
) -> Result<usize, TxRejection> {
    if size > TX_BYTES_MAX {
        return Err(TxRejection::TooLarge {
            size,
            max: TX_BYTES_MAX,
        });
    }
    if tx.tx.chain_id != chain_id {
        return Err(TxRejection::WrongChain {
            expected: chain_id.to_string(),
            got: tx.tx.chain_id.clone(),
        });
    }
    match &tx.tx.payload {
        Payload::Transfer { amount, .. } if *amount == 0 => Err(TxRejection::ZeroAmount),
        Payload::PutRecord { key, .. } if key.is_empty() || key.len() > RECORD_KEY_BYTES_MAX => {
            Err(TxRejection::BadRecordKey {
                len: key.len(),
                max: RECORD_KEY_BYTES_MAX,
            })
        }
        Payload::PutRecord { value, .. } if value.len() > RECORD_VALUE_BYTES_MAX => {
            Err(TxRejection::RecordValueTooLarge {
                len: value.len(),
                max: RECORD_VALUE_BYTES_MAX,
            })
        }
        Payload::ChangeValidators { change } => change.check_stateless().map(|()| size),
        _ => Ok(size),
    }
}

/// Checks the stateless rules and the signatures of many transactions, signatures in one
/// batch. One result per input, in order. This is the one way transactions from outside
/// become [`VerifiedTransaction`]s.
pub fn verify_transactions(
    txs: Vec<SignedTransaction>,
    chain_id: &str,
) -> Vec<Result<VerifiedTransaction, TxRejection>> {
    let mut out: Vec<Result<VerifiedTransaction, TxRejection>> = Vec::with_capacity(txs.len());
    let mut batch = BatchVerifier::with_capacity(txs.len());
    // Position in `out` of each queued signature.
    let mut queued = Vec::with_capacity(txs.len());
    for tx in txs {
        match check_stateless(&tx, chain_id) {
            Err(e) => out.push(Err(e)),
            Ok(size) => {
                let encoded = codec::encode(&tx.tx);
                batch.push(
                    &tx.tx.sender,
                    domains::TX_SIGN,
                    chain_id,
                    &encoded,
                    &tx.signature,
                );
                let id = crate::transaction::TxId(cairn_crypto::Hash::tagged(
                    domains::TX_ID,
                    &[&encoded],
                ));
                queued.push(out.len());
                out.push(Ok(VerifiedTransaction::new_checked(tx, id, size)));
            }
        }
    }
    if let Err(bad) = batch.verify() {
        for (i, _) in bad {
            out[queued[i]] = Err(TxRejection::BadSignature);
        }
    }
    out
}
