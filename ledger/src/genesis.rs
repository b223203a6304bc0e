//! The genesis document: the chain's identity, consensus, validators and first accounts.
//!
//! Written as JSON by people and tools; identified by the hash of its canonical binary
//! encoding (so whitespace and key order in the JSON do not change the chain's identity).
//!
//! It names validators by key, never by network address: where a validator runs is node
//! configuration (`[p2p] bootstrap`), so moving one to another host changes no hash.

use std::collections::BTreeSet;
use std::path::Path;

use cairn_crypto::{Hash, PublicKey, codec};
use serde::{Deserialize, Serialize};

use crate::block::BlockHash;
use crate::domains;
use crate::governance::ChangePolicy;
use crate::transaction::Role;

/// Longest chain id, in bytes.
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// Most validators in one network.
pub const VALIDATORS_MAX: usize = 256;
/// Longest validator name, in bytes.
pub const VALIDATOR_NAME_BYTES_MAX: usize = 64;

/// The genesis document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Names the chain; part of every signature. `[A-Za-z0-9._-]`, 1..=64 bytes.
    pub chain_id: String,
    /// Time of the genesis state, ms since the Unix epoch; block 1 may not be older.
    pub genesis_time_ms: u64,
    /// The consensus engine and its parameters.
    pub consensus: ConsensusConfig,
    /// The validators, in order: index `i` is validator `i` (PBFT primary of view `v` is
    /// validator `v mod n`).
    pub validators: Vec<Validator>,
    /// Accounts that exist at height 0.
    pub accounts: Vec<GenesisAccount>,
}

/// Which engine orders transactions, and how it is tuned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsensusConfig {
    /// Raft: crash faults, n = 2f+1.
    Raft(RaftParams),
    /// PBFT: Byzantine faults, n = 3f+1.
    Pbft(PbftParams),
}

/// Which engine, without its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsensusKind {
    /// Raft.
    Raft,
    /// PBFT.
    Pbft,
}

impl std::fmt::Display for ConsensusKind {
    /// As it is written in a genesis file: `raft` or `pbft`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConsensusKind::Raft => "raft",
            ConsensusKind::Pbft => "pbft",
        })
    }
}

impl ConsensusConfig {
    /// The engine.
    pub fn kind(&self) -> ConsensusKind {
        match self {
            ConsensusConfig::Raft(_) => ConsensusKind::Raft,
            ConsensusConfig::Pbft(_) => ConsensusKind::Pbft,
        }
    }

    /// Blocks per epoch: validator-set changes take effect at its multiples (PBFT: the
    /// checkpoint interval).
    pub fn epoch_length(&self) -> u64 {
        match self {
            ConsensusConfig::Raft(p) => p.epoch_length,
            ConsensusConfig::Pbft(p) => p.checkpoint_interval,
        }
    }

    /// Who may change the validator set.
    pub fn change_policy(&self) -> ChangePolicy {
        match self {
            ConsensusConfig::Raft(p) => p.validator_changes,
            ConsensusConfig::Pbft(p) => p.validator_changes,
        }
    }
}

/// Raft timing, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RaftParams {
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max_ms: u64,
    /// Leader heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// Validator-set changes take effect at multiples of this height (blocks per epoch).
    #[serde(default = "default_epoch_length")]
    pub epoch_length: u64,
    /// Who may change the validator set (default: admins).
    #[serde(default = "default_raft_policy")]
    pub validator_changes: ChangePolicy,
}

fn default_epoch_length() -> u64 {
    100
}

fn default_raft_policy() -> ChangePolicy {
    ChangePolicy::Admins
}

fn default_pbft_policy() -> ChangePolicy {
    ChangePolicy::Validators
}

impl Default for RaftParams {
    fn default() -> Self {
        Self {
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            heartbeat_interval_ms: 200,
            epoch_length: default_epoch_length(),
            validator_changes: default_raft_policy(),
        }
    }
}

/// PBFT tuning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PbftParams {
    /// A checkpoint every this many blocks (K). Each replica keeps the blocks prepared since
    /// the last stable checkpoint, in memory and in its store, so K bounds that: with blocks
    /// of ~2,000 transfers, K = 50 kept 24–48 MB of them and flushed them to disk before the
    /// checkpoint deleted them (ARCHITECTURE.md, "Storage").
    pub checkpoint_interval: u64,
    /// Request timer before a replica asks for a view change, in milliseconds (doubles with
    /// each consecutive view change).
    pub view_change_timeout_ms: u64,
    /// Who may change the validator set (default: a quorum of the validators). Changes take
    /// effect at checkpoints.
    #[serde(default = "default_pbft_policy")]
    pub validator_changes: ChangePolicy,
}

impl Default for PbftParams {
    fn default() -> Self {
        Self {
            checkpoint_interval: 10,
            view_change_timeout_ms: 2000,
            validator_changes: default_pbft_policy(),
        }
    }
}

/// A validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// A human name, for logs and tables.
    pub name: String,
    /// Its ed25519 key: signs votes and certificates, and is its libp2p identity.
    pub public_key: PublicKey,
}

/// An account at height 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// The account's key.
    pub public_key: PublicKey,
    /// Starting balance.
    pub balance: u64,
    /// Membership role, if a member.
    pub role: Option<Role>,
}

/// A genesis document that cannot start a chain.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The JSON does not describe a genesis document.
    #[error("genesis is not valid JSON for a genesis document: {0}")]
    Json(#[from] serde_json::Error),
    /// The chain id is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("chain id {0:?} must be 1..=64 characters of [A-Za-z0-9._-]")]
    BadChainId(String),
    /// No validators, or too many.
    #[error("a chain needs 1..=256 validators, genesis has {0}")]
    ValidatorCount(usize),
    /// A validator name that is empty, too long, has control characters, or is taken.
    #[error("validator name {name:?}: {why}")]
    BadValidatorName {
        /// The name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key that is not a curve point could never sign.
    #[error("{what} key {key} is not a valid ed25519 public key")]
    BadKey {
        /// Validator or account.
        what: &'static str,
        /// The key.
        key: PublicKey,
    },
    /// The same key twice.
    #[error("{what} key {key} appears twice")]
    DuplicateKey {
        /// Validator or account.
        what: &'static str,
        /// The key.
        key: PublicKey,
    },
    /// Balances add up to more than a u64 holds.
    #[error("genesis balances add up to more than 2^64-1")]
    SupplyOverflow,
    /// Nobody could ever send a transaction.
    #[error("genesis has no member accounts: nobody could send a transaction")]
    NoMembers,
    /// Consensus parameters that cannot work.
    #[error("bad consensus parameters: {0}")]
    BadParams(&'static str),
    /// A genesis written before addresses left it.
    #[error(
        "validator {validator:?} has an `address`: network addresses are not part of the \
         genesis (they would change the chain's identity whenever a validator moved). Remove \
         every validator's `address` and list the other validators under `[p2p] bootstrap` in \
         each node's config.toml, as /ip4/<host>/tcp/<port>/p2p/<peer id> (`cairn-node \
         show-key` prints a node's peer id)"
    )]
    AddressInGenesis {
        /// The validator's name.
        validator: String,
    },
}

impl Genesis {
    /// Parses and checks a genesis document.
    pub fn from_json(text: &str) -> Result<Genesis, GenesisError> {
        let g = Genesis::from_json_draft(text)?;
        g.validate()?;
        Ok(g)
    }

    /// Parses a genesis that is still being written (`cairn-node genesis …`): the JSON must
    /// describe a genesis, but it may lack validators and accounts, so [`Genesis::validate`]
    /// is not run.
    pub fn from_json_draft(text: &str) -> Result<Genesis, GenesisError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        if let Some(validators) = value.get("validators").and_then(|v| v.as_array()) {
            for v in validators {
                if v.get("address").is_some() {
                    let name = v.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                    return Err(GenesisError::AddressInGenesis {
                        validator: name.to_string(),
                    });
                }
            }
        }
        Ok(serde_json::from_value(value)?)
    }

    /// Reads, parses and checks a genesis file.
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Genesis::from_json(&text)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and numbers to JSON cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The chain's identity: `SHA-256(tag "cairn/genesis/v4" ‖ encoded genesis)`.
    pub fn hash(&self) -> BlockHash {
        BlockHash(Hash::tagged(domains::GENESIS_HASH, &[&codec::encode(self)]))
    }

    /// The hash the headers of the genesis validators' blocks carry
    /// ([`validators_hash`] of the genesis list).
    pub fn validators_hash(&self) -> Hash {
        validators_hash(&self.validators)
    }

    /// The validator set.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet {
            keys: self.validators.iter().map(|v| v.public_key).collect(),
        }
    }

    /// Checks every rule a genesis must meet.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if !valid_chain_id(&self.chain_id) {
            return Err(GenesisError::BadChainId(self.chain_id.clone()));
        }
        let n = self.validators.len();
        if n == 0 || n > VALIDATORS_MAX {
            return Err(GenesisError::ValidatorCount(n));
        }
        let mut seen = BTreeSet::new();
        let mut names = BTreeSet::new();
        for v in &self.validators {
            check_key("validator", &v.public_key, &mut seen)?;
            check_validator_name_in(&v.name, &mut names)?;
        }
        let mut seen = BTreeSet::new();
        let mut supply: u64 = 0;
        for a in &self.accounts {
            check_key("account", &a.public_key, &mut seen)?;
            supply = supply
                .checked_add(a.balance)
                .ok_or(GenesisError::SupplyOverflow)?;
        }
        if !self.accounts.iter().any(|a| a.role.is_some()) {
            return Err(GenesisError::NoMembers);
        }
        self.consensus.check()
    }
}

impl ConsensusConfig {
    /// Checks that the parameters can work.
    pub fn check(&self) -> Result<(), GenesisError> {
        match self {
            ConsensusConfig::Raft(p) => {
                if p.election_timeout_min_ms == 0
                    || p.election_timeout_min_ms >= p.election_timeout_max_ms
                {
                    return Err(GenesisError::BadParams(
                        "raft needs 0 < election_timeout_min_ms < election_timeout_max_ms",
                    ));
                }
                if p.heartbeat_interval_ms == 0
                    || p.heartbeat_interval_ms >= p.election_timeout_min_ms
                {
                    return Err(GenesisError::BadParams(
                        "raft needs 0 < heartbeat_interval_ms < election_timeout_min_ms",
                    ));
                }
                if p.epoch_length == 0 {
                    return Err(GenesisError::BadParams("raft needs epoch_length > 0"));
                }
            }
            ConsensusConfig::Pbft(p) => {
                if p.checkpoint_interval == 0 {
                    return Err(GenesisError::BadParams(
                        "pbft needs checkpoint_interval > 0",
                    ));
                }
                if p.view_change_timeout_ms == 0 {
                    return Err(GenesisError::BadParams(
                        "pbft needs view_change_timeout_ms > 0",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_key(
    what: &'static str,
    key: &PublicKey,
    seen: &mut BTreeSet<PublicKey>,
) -> Result<(), GenesisError> {
    if !key.is_valid_point() {
        return Err(GenesisError::BadKey { what, key: *key });
    }
    if !seen.insert(*key) {
        return Err(GenesisError::DuplicateKey { what, key: *key });
    }
    Ok(())
}

/// Checks a validator name: 1..=64 bytes, no control characters.
pub fn check_validator_name(name: &str) -> Result<(), GenesisError> {
    let mut taken = BTreeSet::new();
    check_validator_name_in(name, &mut taken)
}

fn check_validator_name_in(name: &str, taken: &mut BTreeSet<String>) -> Result<(), GenesisError> {
    let bad = |why| GenesisError::BadValidatorName {
        name: name.to_string(),
        why,
    };
    if name.is_empty() || name.len() > VALIDATOR_NAME_BYTES_MAX {
        return Err(bad("must be 1..=64 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("has control characters"));
    }
    if !taken.insert(name.to_string()) {
        return Err(bad("two validators have it"));
    }
    Ok(())
}

/// What a block header's `validators_hash` is: `SHA-256(tag "cairn/validators/v1" ‖
/// encoded list)`, names and keys in order (PROTOCOL.md §5).
pub fn validators_hash(list: &[Validator]) -> Hash {
    Hash::tagged(domains::VALIDATORS, &[&codec::encode(&list.to_vec())])
}

/// Whether `s` is a valid chain id.
pub fn valid_chain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= CHAIN_ID_BYTES_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The validators' keys in genesis order, with the quorum arithmetic both engines use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    keys: Vec<PublicKey>,
}

impl ValidatorSet {
    /// A set from keys in order.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Self { keys }
    }

    /// Number of validators, n.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty (never, for a valid genesis).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in genesis order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Position of a validator.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// Whether `key` is a validator.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.index_of(key).is_some()
    }

    /// Byzantine faults tolerated: f = ⌊(n-1)/3⌋.
    pub fn max_byzantine(&self) -> usize {
        self.keys.len().saturating_sub(1) / 3
    }

    /// PBFT quorum: n - f (2f+1 when n = 3f+1). Any two quorums share at least f+1
    /// validators, so at least one honest one.
    pub fn byzantine_quorum(&self) -> usize {
        self.keys.len() - self.max_byzantine()
    }

    /// Raft majority: ⌊n/2⌋ + 1.
    pub fn majority(&self) -> usize {
        self.keys.len() / 2 + 1
    }

    /// How many validators it takes to commit a block under `kind`: a majority for Raft,
    /// n − f for PBFT (what the engines count; readiness counts the same).
    pub fn quorum(&self, kind: ConsensusKind) -> usize {
        match kind {
            ConsensusKind::Raft => self.majority(),
            ConsensusKind::Pbft => self.byzantine_quorum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_arithmetic() {
        let set = |n: usize| ValidatorSet::new(vec![PublicKey([0; 32]); n]);
        // (n, f, pbft quorum, raft majority)
        for (n, f, q, m) in [
            (1, 0, 1, 1),
            (3, 0, 3, 2),
            (4, 1, 3, 3),
            (5, 1, 4, 3),
            (7, 2, 5, 4),
            (10, 3, 7, 6),
        ] {
            let s = set(n);
            assert_eq!(s.max_byzantine(), f, "f for n = {n}");
            assert_eq!(s.byzantine_quorum(), q, "quorum for n = {n}");
            assert_eq!(s.majority(), m, "majority for n = {n}");
            // Two quorums intersect in at least f + 1 validators.
            // Two quorums share 2q - n validators; at least f + 1 of them.
            assert!(2 * q > n + f, "intersection for n = {n}");
        }
    }

    #[test]
    fn chain_ids() {
        assert!(valid_chain_id("cairn-local.1_a"));
        assert!(!valid_chain_id(""));
        assert!(!valid_chain_id("has space"));
        assert!(!valid_chain_id(&"a".repeat(65)));
    }
}
