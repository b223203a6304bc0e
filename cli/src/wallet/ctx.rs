//! What every command shares: the node's client, the keystore, the passphrase source, the
//! output mode.

use std::path::PathBuf;

use cairn_api::client::Client;
use cairn_cli::keystore::{Keystore, KeystoreError, readable_by_others};
use cairn_crypto::{PublicKey, SigningKey};

use super::fail::{R, USAGE, fail};

/// The shared context.
pub struct Ctx {
    /// The node.
    pub client: Client,
    /// The keystore.
    pub keystore: Keystore,
    /// Where the passphrase comes from, if not a prompt or the environment.
    pub passphrase_file: Option<PathBuf>,
    /// Print JSON.
    pub json: bool,
}

/// `~/.cairn/keys`.
pub fn default_keystore() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cairn")
        .join("keys")
}

impl Ctx {
    /// A passphrase: from the file, the environment, or a prompt (twice with `confirm`).
    pub fn passphrase(&self, prompt: &str, confirm: bool) -> Result<String, String> {
        if let Some(p) = &self.passphrase_file {
            if readable_by_others(p) {
                eprintln!(
                    "warning: {} can be read by others: `chmod 600 {}`",
                    p.display(),
                    p.display()
                );
            }
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            return Ok(text.lines().next().unwrap_or("").to_string());
        }
        if let Ok(p) = std::env::var("CAIRN_PASSPHRASE") {
            return Ok(p);
        }
        let p = rpassword::prompt_password(prompt).map_err(|e| {
            format!("cannot read a passphrase ({e}); use --passphrase-file or CAIRN_PASSPHRASE")
        })?;
        if confirm {
            let again = rpassword::prompt_password("Repeat it: ").map_err(|e| e.to_string())?;
            if again != p {
                return Err("the passphrases differ".into());
            }
        }
        if p.is_empty() {
            return Err("an empty passphrase protects nothing (use --insecure-plaintext if that is what you want)".into());
        }
        Ok(p)
    }

    /// A key from the keystore, opened.
    pub fn key(&self, name: &str) -> R<SigningKey> {
        let f = self.keystore.load(name)?;
        Ok(f.open(|| self.passphrase(&format!("Passphrase for {name}: "), false))?)
    }

    /// An account id, or a key name in the keystore.
    pub fn account_id(&self, s: &str) -> R<PublicKey> {
        if let Ok(k) = s.parse::<PublicKey>() {
            return Ok(k);
        }
        match self.keystore.load(s) {
            Ok(f) => Ok(f.public_key),
            Err(e @ KeystoreError::Exposed { .. }) => Err(e.into()),
            Err(_) => Err(fail(
                USAGE,
                format!(
                    "{s:?} is neither an account id (64 hex digits) nor a key name in {}",
                    self.keystore.dir().display()
                ),
            )),
        }
    }
}
