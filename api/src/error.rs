//! The API's one error shape, `{"error":{"code","message"}}`, and every code it can carry.

use cairn_ledger::TxRejection;
use serde::{Deserialize, Serialize};

/// Every error code the API answers with. Stable: clients match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // The request itself.
    /// The body is not JSON.
    InvalidJson,
    /// The body is JSON but not a signed transaction.
    InvalidTransaction,
    /// The body could not be read.
    BadBody,
    /// The body is larger than the node accepts.
    BodyTooLarge,
    /// The body did not arrive in time.
    BodyTimeout,
    /// A query parameter is malformed or out of range.
    BadQuery,
    /// A path segment does not decode.
    BadPath,
    /// Not an account id.
    BadAccountId,
    /// Neither a height nor a block hash.
    BadBlockId,
    /// Not a transaction id.
    BadTxId,
    /// No such route.
    NoRoute,
    /// The route does not take that method.
    MethodNotAllowed,
    // What was asked for.
    /// No such block, transaction, account record…
    NotFound,
    /// The transaction is committed already.
    AlreadyCommitted,
    /// `?wait=commit` gave up; the transaction is still pending.
    WaitTimeout,
    // The node.
    /// Shutting down or at a limit; retry.
    Unavailable,
    /// The node failed (storage), not the client.
    Internal,
    /// `/ready`: not ready (the message says why).
    NotReady,
    /// `/health`: a part of the node failed.
    Unhealthy,
    // A transaction's rejection (`TxRejection`).
    /// Encoded larger than a transaction may be.
    TooLarge,
    /// Signed for another chain.
    WrongChain,
    /// The signature does not verify.
    BadSignature,
    /// A transfer of nothing.
    ZeroAmount,
    /// A record key that breaks the rules.
    BadRecordKey,
    /// A record value over the limit.
    RecordValueTooLarge,
    /// A validator name that breaks the rules.
    BadValidatorName,
    /// A validator key that is not a valid ed25519 public key.
    BadValidatorKey,
    /// A rotation to the key the validator has.
    RotationToSameKey,
    /// The sender is not a member.
    NotMember,
    /// The sender is not an admin.
    NotAdmin,
    /// The nonce is used already.
    StaleNonce,
    /// The nonce is ahead of the sender's next.
    FutureNonce,
    /// The sender's balance does not cover it.
    InsufficientBalance,
    /// The receiver's balance would overflow.
    BalanceOverflow,
    /// The account to change is not a member.
    AccountNotMember,
    /// The account has that role already.
    RoleUnchanged,
    /// An admin cannot remove itself.
    CannotRemoveSelf,
    /// Only validators in force vote on validator changes.
    SenderNotValidator,
    /// The key is not a validator.
    NotValidator,
    /// The key is a validator already.
    AlreadyValidator,
    /// Another validator has that name.
    ValidatorNameTaken,
    /// The validator set is full.
    TooManyValidators,
    /// The removal would break the engine's fault model.
    TooFewValidators,
    /// Another validator change is pending.
    ChangePending,
    /// This validator's vote for the change is counted already.
    AlreadyVoted,
    /// The node holds this transaction already.
    Duplicate,
    /// The node holds another transaction with this nonce.
    NonceInUse,
    /// The nonce is too far ahead to wait in the mempool.
    NonceTooFarAhead,
    /// An earlier nonce of the sender was dropped.
    PredecessorDropped,
    /// The mempool is full.
    MempoolFull,
}

impl ErrorCode {
    /// The code of a transaction's rejection.
    pub fn of(r: &TxRejection) -> ErrorCode {
        match r {
            TxRejection::TooLarge { .. } => ErrorCode::TooLarge,
            TxRejection::WrongChain { .. } => ErrorCode::WrongChain,
            TxRejection::BadSignature => ErrorCode::BadSignature,
            TxRejection::ZeroAmount => ErrorCode::ZeroAmount,
            TxRejection::BadRecordKey { .. } => ErrorCode::BadRecordKey,
            TxRejection::RecordValueTooLarge { .. } => ErrorCode::RecordValueTooLarge,
            TxRejection::BadValidatorName { .. } => ErrorCode::BadValidatorName,
            TxRejection::BadValidatorKey { .. } => ErrorCode::BadValidatorKey,
            TxRejection::RotationToSameKey { .. } => ErrorCode::RotationToSameKey,
            TxRejection::NotMember { .. } => ErrorCode::NotMember,
            TxRejection::NotAdmin { .. } => ErrorCode::NotAdmin,
            TxRejection::StaleNonce { .. } => ErrorCode::StaleNonce,
            TxRejection::FutureNonce { .. } => ErrorCode::FutureNonce,
            TxRejection::InsufficientBalance { .. } => ErrorCode::InsufficientBalance,
            TxRejection::BalanceOverflow => ErrorCode::BalanceOverflow,
            TxRejection::AccountNotMember { .. } => ErrorCode::AccountNotMember,
            TxRejection::RoleUnchanged { .. } => ErrorCode::RoleUnchanged,
            TxRejection::CannotRemoveSelf => ErrorCode::CannotRemoveSelf,
            TxRejection::SenderNotValidator { .. } => ErrorCode::SenderNotValidator,
            TxRejection::NotValidator { .. } => ErrorCode::NotValidator,
            TxRejection::AlreadyValidator { .. } => ErrorCode::AlreadyValidator,
            TxRejection::ValidatorNameTaken { .. } => ErrorCode::ValidatorNameTaken,
            TxRejection::TooManyValidators { .. } => ErrorCode::TooManyValidators,
            TxRejection::TooFewValidators { .. } => ErrorCode::TooFewValidators,
            TxRejection::ChangePending { .. } => ErrorCode::ChangePending,
            TxRejection::AlreadyVoted => ErrorCode::AlreadyVoted,
            TxRejection::Duplicate => ErrorCode::Duplicate,
            TxRejection::NonceInUse { .. } => ErrorCode::NonceInUse,
            TxRejection::NonceTooFarAhead { .. } => ErrorCode::NonceTooFarAhead,
            TxRejection::PredecessorDropped { .. } => ErrorCode::PredecessorDropped,
            TxRejection::MempoolFull => ErrorCode::MempoolFull,
        }
    }

    /// The code as it appears in JSON.
    pub fn as_str(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// An API error: an HTTP status, a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable code.
    pub code: ErrorCode,
    /// What went wrong and, where it helps, what to do.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An error with this status and code.
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, ErrorCode::NotFound, message)
    }
    /// 500: the node failed (storage), not the client.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(500, ErrorCode::Internal, message.to_string())
    }
    /// 503: the node is shutting down or overloaded.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, ErrorCode::Unavailable, message)
    }
    /// A transaction's rejection, with the status that fits it.
    pub fn rejected(r: &TxRejection) -> ApiError {
        let status = match r {
            TxRejection::NotMember { .. }
            | TxRejection::NotAdmin { .. }
            | TxRejection::SenderNotValidator { .. } => 403,
            TxRejection::StaleNonce { .. }
            | TxRejection::ChangePending { .. }
            | TxRejection::AlreadyVoted
            | TxRejection::Duplicate
            | TxRejection::NonceInUse { .. } => 409,
            TxRejection::MempoolFull => 503,
            TxRejection::TooLarge { .. } => 413,
            _ => 422,
        };
        ApiError::new(status, ErrorCode::of(r), r.to_string())
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        }
    }
}

/// The `Retry-After` every 503 carries, in seconds.
pub const RETRY_AFTER_SECS: &str = "1";

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(self.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(self.body())).into_response();
        if status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is "at a limit or shutting down": a client may come back in a second.
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        r
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_has_its_code_and_the_json_form_matches_the_ledger() {
        let k = cairn_crypto::PublicKey([7; 32]);
        let all = [
            TxRejection::TooLarge { size: 1, max: 1 },
            TxRejection::WrongChain {
                expected: "a".into(),
                got: "b".into(),
            },
            TxRejection::BadSignature,
            TxRejection::ZeroAmount,
            TxRejection::BadRecordKey { len: 0, max: 1 },
            TxRejection::RecordValueTooLarge { len: 2, max: 1 },
            TxRejection::BadValidatorName {
                name: String::new(),
                max: 64,
            },
            TxRejection::BadValidatorKey { key: k },
            TxRejection::RotationToSameKey { key: k },
            TxRejection::NotMember { sender: k },
            TxRejection::NotAdmin { sender: k },
            TxRejection::StaleNonce {
                expected: 2,
                got: 1,
            },
            TxRejection::FutureNonce {
                expected: 1,
                got: 2,
            },
            TxRejection::InsufficientBalance {
                available: 1,
                needed: 2,
            },
            TxRejection::BalanceOverflow,
            TxRejection::AccountNotMember { account: k },
            TxRejection::RoleUnchanged { account: k },
            TxRejection::CannotRemoveSelf,
            TxRejection::SenderNotValidator { sender: k },
            TxRejection::NotValidator { key: k },
            TxRejection::AlreadyValidator { key: k },
            TxRejection::ValidatorNameTaken { name: "a".into() },
            TxRejection::TooManyValidators { max: 256 },
            TxRejection::TooFewValidators {
                engine: cairn_ledger::ConsensusKind::Pbft,
                min: 4,
                now: 4,
            },
            TxRejection::ChangePending { in_force_from: 11 },
            TxRejection::AlreadyVoted,
            TxRejection::Duplicate,
            TxRejection::NonceInUse { nonce: 1 },
            TxRejection::NonceTooFarAhead {
                expected: 1,
                got: 9,
                max_gap: 4,
            },
            TxRejection::PredecessorDropped {
                dropped_nonce: 1,
                got: 2,
            },
            TxRejection::MempoolFull,
        ];
        for r in &all {
            // The code, its JSON form, and the ledger's own name for it agree.
            assert_eq!(ErrorCode::of(r).as_str(), r.code(), "{r:?}");
            let json = serde_json::to_value(r).expect("json");
            assert_eq!(json["code"], r.code(), "{r:?}");
        }
        let e = ApiError::rejected(&TxRejection::MempoolFull);
        let json = serde_json::to_value(e.body()).expect("json");
        assert_eq!(json["error"]["code"], "mempool_full");
        let back: ErrorBody = serde_json::from_value(json).expect("back");
        assert_eq!(back.error.code, ErrorCode::MempoolFull);
    }
}
