//! What the wallet prints under `--json` beyond the API's own views (which it prints as the
//! node sent them): its keys, signed files, and failures. Scripts and tests read these types.

use std::path::PathBuf;

use cairn_crypto::PublicKey;
use cairn_ledger::TxId;
use serde::{Deserialize, Serialize};

/// `cairn key list` (one per key) and `cairn key show`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Its name in the keystore.
    pub name: String,
    /// The account id.
    pub public_key: PublicKey,
    /// Whether a passphrase guards it.
    pub encrypted: bool,
}

/// `cairn key new` and `cairn key import`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedKey {
    /// Its name.
    pub name: String,
    /// The account id.
    pub public_key: PublicKey,
    /// The key file written.
    pub file: PathBuf,
    /// Whether a passphrase guards it.
    pub encrypted: bool,
}

/// `cairn key export`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedSeed {
    /// The key's name.
    pub name: String,
    /// Its 32-byte seed, hex: whoever has it owns the account.
    pub seed: String,
}

/// `cairn sign`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedFile {
    /// The transaction's id.
    pub id: TxId,
    /// Where it was written.
    pub file: PathBuf,
}

/// Any failure under `--json`, printed on stdout: `{"error":{"code","message"},"exit":N}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonFailure {
    /// What failed.
    pub error: FailureDetail,
    /// The process's exit code (README: 1 local, 2 usage, 3 node, 4 rejected, 5 not found,
    /// 6 key, 7 timeout, 8 invalid).
    pub exit: u8,
}

/// The code and sentence of a [`JsonFailure`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureDetail {
    /// The node's error code (`insufficient_balance`, …) or the wallet's own (`usage`,
    /// `unreachable`, `timeout`, `not_cairn`, `bad_address`, `key`, `not_found`, `invalid`,
    /// `local`).
    pub code: String,
    /// What went wrong and what to do next.
    pub message: String,
}
