//! Failures with their exit codes, and what the user should do next.
//!
//! Exit codes are part of the interface (README): 1 a local failure, 2 bad usage or input,
//! 3 the node is unreachable or does not answer as a Cairn node, 4 the node rejected the
//! request, 5 not found, 6 a key or passphrase problem, 7 timed out waiting, 8 a block failed
//! verification.

use cairn_api::client::ClientError;
use cairn_api::{ApiError, ErrorCode};
use cairn_cli::keystore::KeystoreError;

/// A local failure.
pub const LOCAL: u8 = 1;
/// Bad usage or input.
pub const USAGE: u8 = 2;
/// The node cannot be reached, or does not answer as a Cairn node.
pub const NODE: u8 = 3;
/// The node rejected the request.
pub const REJECTED: u8 = 4;
/// Not found.
pub const NOT_FOUND: u8 = 5;
/// A key or passphrase problem.
pub const KEY: u8 = 6;
/// Timed out waiting.
pub const TIMEOUT: u8 = 7;
/// Verification failed.
pub const INVALID: u8 = 8;

/// An error with its exit code, a stable code for `--json`, and a sentence.
#[derive(Debug)]
pub struct Fail {
    /// Exit code.
    pub exit: u8,
    /// The node's error code, or the wallet's own (`usage`, `unreachable`, …).
    pub code: String,
    /// What went wrong and what to do.
    pub msg: String,
}

/// A wallet result.
pub type R<T> = Result<T, Fail>;

impl Fail {
    /// A failure whose details the command already printed (one JSON document per run): only
    /// its exit code remains to be given.
    pub fn reported(exit: u8) -> Fail {
        Fail {
            exit,
            code: String::new(),
            msg: String::new(),
        }
    }

    /// Whether the details were already printed.
    pub fn is_reported(&self) -> bool {
        self.code.is_empty()
    }
}

/// A failure of the wallet's own.
pub fn fail(exit: u8, msg: impl Into<String>) -> Fail {
    let code = match exit {
        USAGE => "usage",
        NODE => "node",
        NOT_FOUND => "not_found",
        KEY => "key",
        TIMEOUT => "timeout",
        INVALID => "invalid",
        _ => "local",
    };
    Fail {
        exit,
        code: code.into(),
        msg: msg.into(),
    }
}

impl From<KeystoreError> for Fail {
    fn from(e: KeystoreError) -> Fail {
        let exit = if matches!(e, KeystoreError::NotFound { .. }) {
            NOT_FOUND
        } else {
            KEY
        };
        fail(exit, e.to_string())
    }
}

/// What to do after the node refused, by its code.
fn hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InsufficientBalance => " (check it with `cairn account`)",
        ErrorCode::NotMember => " (an admin must add the account: `cairn member add`)",
        ErrorCode::NotAdmin => " (only admin accounts may change membership)",
        ErrorCode::StaleNonce | ErrorCode::AlreadyCommitted => {
            " (it, or another with this nonce, is already committed)"
        }
        ErrorCode::NonceInUse => {
            " (another transaction with this nonce is pending: wait for it, or sign with another --nonce)"
        }
        ErrorCode::NonceTooFarAhead => " (send the transactions with the nonces before it first)",
        ErrorCode::WaitTimeout => " (still pending: follow it with `cairn tx ID`)",
        _ => "",
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Fail {
        let exit = match (e.status, e.code) {
            (404, _) => NOT_FOUND,
            (_, ErrorCode::WaitTimeout | ErrorCode::BodyTimeout) => TIMEOUT,
            // The node cannot serve now (shutting down, full, failing): not the request's fault.
            (500.., _) => NODE,
            (400, _) => USAGE,
            _ => REJECTED,
        };
        Fail {
            exit,
            code: e.code.to_string(),
            msg: format!("{}: {}{}", e.code, e.message, hint(e.code)),
        }
    }
}

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Fail {
        match e {
            ClientError::Api(a) => a.into(),
            ClientError::BadAddress { .. } => Fail {
                exit: USAGE,
                code: "bad_address".into(),
                msg: format!("{e}; pass the API's URL with --node or CAIRN_NODE"),
            },
            ClientError::Unreachable { .. } => Fail {
                exit: NODE,
                code: "unreachable".into(),
                msg: format!("{e}: is it running? Pick another with --node URL or CAIRN_NODE"),
            },
            ClientError::Timeout { .. } => Fail {
                exit: TIMEOUT,
                code: "timeout".into(),
                msg: format!(
                    "{e}; a transaction may still have been accepted: check with `cairn tx ID` before sending it again"
                ),
            },
            ClientError::NotCairn { .. } => Fail {
                exit: NODE,
                code: "not_cairn".into(),
                msg: format!("{e}: is --node the API of a Cairn node?"),
            },
        }
    }
}
