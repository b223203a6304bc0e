//! The wallet's keystore: one JSON file per key in a directory.
//!
//! A key is encrypted by default: the passphrase goes through Argon2id (memory-hard; 64 MiB,
//! 3 passes) to a 32-byte key that seals the ed25519 seed with XChaCha20-Poly1305, the key's
//! name and public key bound in as associated data (a file whose public key was swapped does
//! not open). `Plaintext` exists for scripts and local demos, and says so in the file.

use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use cairn_crypto::{PublicKey, SigningKey};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// Why a key could not be stored or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// No key of that name.
    #[error("no key named {name:?} in {dir} (see `cairn key list`)")]
    NotFound {
        /// Name.
        name: String,
        /// Keystore.
        dir: String,
    },
    /// A key of that name exists.
    #[error("a key named {0:?} already exists; pick another name")]
    Exists(String),
    /// Names are file names: keep them simple.
    #[error("key names use letters, digits, '.', '_' and '-' (1 to 64 of them), not {0:?}")]
    BadName(String),
    /// No passphrase could be read.
    #[error("cannot read a passphrase for key {name:?}: {reason}")]
    Passphrase {
        /// Key.
        name: String,
        /// Why.
        reason: String,
    },
    /// The passphrase does not open the key (or the file was altered).
    #[error("wrong passphrase for key {0:?} (or the key file was altered)")]
    WrongPassphrase(String),
    /// The file is not a key file this wallet understands.
    #[error("{path}: not a Cairn key file: {reason}")]
    Malformed {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
    /// An unencrypted key file others can read: whoever reads it holds the account.
    #[error(
        "{path} holds an unencrypted key and others can read it: `chmod 600 {path}` (and \
         consider the key exposed), or import it again encrypted"
    )]
    Exposed {
        /// File.
        path: String,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// How the seed is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Secret {
    /// Argon2id + XChaCha20-Poly1305.
    Encrypted {
        /// Argon2id memory, KiB.
        m_cost_kib: u32,
        /// Argon2id passes.
        t_cost: u32,
        /// Argon2id lanes.
        p_cost: u32,
        /// Salt (hex).
        salt: String,
        /// Nonce (hex, 24 bytes).
        nonce: String,
        /// Sealed seed (hex).
        ciphertext: String,
    },
    /// Unencrypted: anyone who can read the file holds the key.
    InsecurePlaintext {
        /// The seed (hex).
        seed: String,
    },
}

/// A key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Format version (1).
    pub version: u32,
    /// The key's name (its file name without `.json`).
    pub name: String,
    /// The public key: the account id.
    pub public_key: PublicKey,
    /// The seed, sealed or not.
    pub secret: Secret,
}

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (OWASP's first recommended setting).
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;
/// The weakest Argon2id memory cost a key file may ask for (OWASP's floor, 19 MiB).
const MIN_M_COST_KIB: u32 = 19 * 1024;

fn aad(name: &str, pk: &PublicKey) -> Vec<u8> {
    format!("cairn-key/v1/{name}/{pk}").into_bytes()
}

fn derive(pass: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Result<[u8; 32], String> {
    let params = Params::new(m, t, p, Some(32)).map_err(|e| e.to_string())?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pass.as_bytes(), salt, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

impl KeyFile {
    /// Seals `key` under `passphrase` (`None`: plaintext).
    pub fn new(name: &str, key: &SigningKey, passphrase: Option<&str>) -> Result<KeyFile, String> {
        let public_key = key.public_key();
        let secret = match passphrase {
            None => Secret::InsecurePlaintext {
                seed: hex::encode(key.to_seed()),
            },
            Some("") => {
                return Err(
                    "an empty passphrase protects nothing (use --insecure-plaintext if that is what you want)"
                        .into(),
                );
            }
            Some(pass) => {
                let mut salt = [0u8; 16];
                let mut nonce = [0u8; 24];
                OsRng.fill_bytes(&mut salt);
                OsRng.fill_bytes(&mut nonce);
                let k = derive(pass, &salt, M_COST_KIB, T_COST, P_COST)?;
                let cipher = XChaCha20Poly1305::new(&k.into());
                let seed = key.to_seed();
                let ciphertext = cipher
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: &seed,
                            aad: &aad(name, &public_key),
                        },
                    )
                    .map_err(|_| "encryption failed".to_string())?;
                Secret::Encrypted {
                    m_cost_kib: M_COST_KIB,
                    t_cost: T_COST,
                    p_cost: P_COST,
                    salt: hex::encode(salt),
                    nonce: hex::encode(nonce),
                    ciphertext: hex::encode(ciphertext),
                }
            }
        };
        Ok(KeyFile {
            version: 1,
            name: name.to_string(),
            public_key,
            secret,
        })
    }

    /// Whether opening it needs a passphrase.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.secret, Secret::Encrypted { .. })
    }

    /// Opens the key. `passphrase` is asked for only when the key is encrypted.
    pub fn open(
        &self,
        passphrase: impl FnOnce() -> Result<String, String>,
    ) -> Result<SigningKey, KeystoreError> {
        let malformed = |reason: &str| KeystoreError::Malformed {
            path: self.name.clone(),
            reason: reason.into(),
        };
        let seed: Vec<u8> = match &self.secret {
            Secret::InsecurePlaintext { seed } => {
                hex::decode(seed).map_err(|_| malformed("seed is not hex"))?
            }
            Secret::Encrypted {
                m_cost_kib,
                t_cost,
                p_cost,
                salt,
                nonce,
                ciphertext,
            } => {
                // Refuse costs too weak to protect a seed, or so high that opening a planted
                // file would stall the wallet.
                if !(MIN_M_COST_KIB..=1024 * 1024).contains(m_cost_kib)
                    || !(2..=16).contains(t_cost)
                    || !(1..=16).contains(p_cost)
                {
                    return Err(malformed("KDF cost out of range"));
                }
                let pass = passphrase().map_err(|reason| KeystoreError::Passphrase {
                    name: self.name.clone(),
                    reason,
                })?;
                let salt = hex::decode(salt).map_err(|_| malformed("salt is not hex"))?;
                let nonce = hex::decode(nonce).map_err(|_| malformed("nonce is not hex"))?;
                let ct = hex::decode(ciphertext).map_err(|_| malformed("ciphertext is not hex"))?;
                if nonce.len() != 24 {
                    return Err(malformed("nonce must be 24 bytes"));
                }
                let k = derive(&pass, &salt, *m_cost_kib, *t_cost, *p_cost)
                    .map_err(|e| malformed(&e))?;
                XChaCha20Poly1305::new(&k.into())
                    .decrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: &ct,
                            aad: &aad(&self.name, &self.public_key),
                        },
                    )
                    .map_err(|_| KeystoreError::WrongPassphrase(self.name.clone()))?
            }
        };
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| malformed("seed must be 32 bytes"))?;
        let key = SigningKey::from_seed(seed);
        if key.public_key() != self.public_key {
            return Err(malformed("the seed does not match the public key"));
        }
        Ok(key)
    }
}

/// A directory of key files.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with('.')
}

impl Keystore {
    /// The keystore in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Keystore {
        Keystore { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> Result<PathBuf, KeystoreError> {
        if !valid_name(name) {
            return Err(KeystoreError::BadName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
        move |source| KeystoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Writes a new key file (mode 0600); refuses to replace one. The file appears whole or
    /// not at all: it is written and synced under a temporary name, then linked into place
    /// (linking fails if the name exists), and the directory is synced.
    pub fn save(&self, file: &KeyFile) -> Result<PathBuf, KeystoreError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = self.path(&file.name)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(Self::io(&self.dir))?;
        if path.exists() {
            return Err(KeystoreError::Exists(file.name.clone()));
        }
        let text = serde_json::to_string_pretty(file).map_err(|e| KeystoreError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut nonce = [0u8; 8];
        OsRng.fill_bytes(&mut nonce);
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", file.name, hex::encode(nonce)));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::hard_link(&tmp, &path)
        })();
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KeystoreError::Exists(file.name.clone()));
            }
            Err(e) => return Err(Self::io(&path)(e)),
        }
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(path)
    }

    /// Reads a key file by name; refuses an unencrypted one that others can read.
    pub fn load(&self, name: &str) -> Result<KeyFile, KeystoreError> {
        let file = self.read(name)?;
        let path = self.path(name)?;
        if !file.is_encrypted() && readable_by_others(&path) {
            return Err(KeystoreError::Exposed {
                path: path.display().to_string(),
            });
        }
        Ok(file)
    }

    /// Reads a key file by name, however exposed.
    fn read(&self, name: &str) -> Result<KeyFile, KeystoreError> {
        let path = self.path(name)?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                KeystoreError::NotFound {
                    name: name.to_string(),
                    dir: self.dir.display().to_string(),
                }
            } else {
                KeystoreError::Io {
                    path: path.display().to_string(),
                    source: e,
                }
            }
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeystoreError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if file.name != name || file.version != 1 {
            return Err(KeystoreError::Malformed {
                path: path.display().to_string(),
                reason: "name or version does not match".into(),
            });
        }
        Ok(file)
    }

    /// Every key file, by name (files that do not parse are skipped; exposed ones are listed,
    /// and refused when used).
    pub fn list(&self) -> Result<Vec<KeyFile>, KeystoreError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Self::io(&self.dir)(e)),
        };
        for e in entries.flatten() {
            let p = e.path();
            if let Some(name) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                && let Ok(f) = self.read(name)
            {
                out.push(f);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Whether a file's mode lets its group or others read it.
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_keys_open_with_their_passphrase_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = Keystore::new(dir.path().join("keys"));
        let key = SigningKey::generate();
        let file = KeyFile::new("alice", &key, Some("correct horse")).expect("seal");
        ks.save(&file).expect("save");
        let back = ks.load("alice").expect("load");
        assert!(back.is_encrypted());
        let opened = back.open(|| Ok("correct horse".into())).expect("open");
        assert_eq!(opened.public_key(), key.public_key());
        assert!(matches!(
            back.open(|| Ok("wrong".into())),
            Err(KeystoreError::WrongPassphrase(_))
        ));
        // A swapped public key does not open (it is bound into the AEAD).
        let mut swapped = back.clone();
        swapped.public_key = SigningKey::generate().public_key();
        assert!(swapped.open(|| Ok("correct horse".into())).is_err());
        // No overwrite, names are checked, missing keys say where they looked.
        assert!(matches!(ks.save(&file), Err(KeystoreError::Exists(_))));
        assert!(matches!(ks.load("../x"), Err(KeystoreError::BadName(_))));
        assert!(matches!(
            ks.load("bob"),
            Err(KeystoreError::NotFound { .. })
        ));
        assert_eq!(ks.list().expect("list").len(), 1);
    }

    #[test]
    fn an_unencrypted_key_others_can_read_is_listed_but_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = Keystore::new(dir.path().join("keys"));
        let key = SigningKey::generate();
        let path = ks
            .save(&KeyFile::new("demo", &key, None).expect("file"))
            .expect("save");
        assert!(ks.load("demo").is_ok(), "0600 as saved");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            ks.load("demo"),
            Err(KeystoreError::Exposed { .. })
        ));
        assert_eq!(ks.list().expect("list").len(), 1);
        // An encrypted file is safe to read: its passphrase still guards it.
        let sealed = ks
            .save(&KeyFile::new("sealed", &key, Some("pw")).expect("seal"))
            .expect("save");
        std::fs::set_permissions(&sealed, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(ks.load("sealed").is_ok());
    }

    #[test]
    fn empty_passphrases_and_weak_kdf_settings_are_refused() {
        let key = SigningKey::generate();
        assert!(KeyFile::new("k", &key, Some("")).is_err());
        let mut f = KeyFile::new("k", &key, Some("pw")).expect("seal");
        if let Secret::Encrypted { m_cost_kib, .. } = &mut f.secret {
            *m_cost_kib = 8;
        }
        assert!(matches!(
            f.open(|| Ok("pw".into())),
            Err(KeystoreError::Malformed { .. })
        ));
        let f = KeyFile::new("k", &key, Some("pw")).expect("seal");
        assert!(matches!(
            f.open(|| Err("no terminal".into())),
            Err(KeystoreError::Passphrase { .. })
        ));
    }

    #[test]
    fn plaintext_keys_need_no_passphrase_and_say_what_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = Keystore::new(dir.path());
        let key = SigningKey::generate();
        ks.save(&KeyFile::new("demo", &key, None).expect("file"))
            .expect("save");
        let text = std::fs::read_to_string(dir.path().join("demo.json")).expect("read");
        assert!(text.contains("insecure_plaintext"));
        let f = ks.load("demo").expect("load");
        let k = f
            .open(|| Err("no passphrase should be asked".into()))
            .expect("open");
        assert_eq!(k.public_key(), key.public_key());
    }
}
