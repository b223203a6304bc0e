//! Validator-set changes on a running chain: what a change is, who approves it, when it takes
//! effect, and the set in force at each height (ARCHITECTURE.md, "Reconfiguration").
//!
//! A change is approved by a [`Payload::ChangeValidators`](crate::Payload) transaction: under
//! [`ChangePolicy::Admins`] one admin's transaction approves it; under
//! [`ChangePolicy::Validators`] each such transaction is its sender's vote (the sender is a
//! validator key of the set in force) and the change is approved by the vote that brings it
//! to a quorum of that set. An approved change is *pending* until the next epoch boundary `E`
//! (the first multiple of the epoch length at or after the approving height); block `E`
//! announces the new set in its header (`next_validators`) and the new set is in force from
//! `E + 1`. One change may be pending at a time.
//!
//! Everything here lives in the replicated state (keys under `0x03`), so every replica derives
//! the same sets from the chain alone, and a restarted node reads its set back from its store.

use cairn_crypto::{Hash, PublicKey, codec};
use serde::{Deserialize, Serialize};

use crate::block::Height;
use crate::genesis::{
    ConsensusKind, Genesis, VALIDATOR_NAME_BYTES_MAX, VALIDATORS_MAX, Validator, ValidatorSet,
    validators_hash,
};
use crate::validation::TxRejection;

/// Fewest validators a PBFT change may leave (n = 3f + 1 with f = 1). A smaller PBFT set can
/// still grow; it may not shrink.
pub const PBFT_VALIDATORS_MIN: usize = 4;

/// Who may change the validator set: fixed in the genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangePolicy {
    /// One admin's transaction approves a change. Raft's default (crash faults: the operators
    /// are trusted).
    Admins,
    /// A quorum of the validators in force must vote for it, each vote a transaction signed
    /// with the validator's key. PBFT's default: one faulty admin must not be able to take
    /// over a network built to survive faulty members.
    Validators,
}

impl std::fmt::Display for ChangePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangePolicy::Admins => "admins",
            ChangePolicy::Validators => "validators",
        })
    }
}

/// A change to the validator set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ValidatorChange {
    /// Add a validator at the end of the list.
    Add {
        /// The new validator: a name not taken, a key not in the set.
        validator: Validator,
    },
    /// Take a validator out of the set.
    Remove {
        /// Its key.
        public_key: PublicKey,
    },
    /// Replace a validator's key, keeping its name and place in the list.
    Rotate {
        /// Its key now.
        public_key: PublicKey,
        /// Its key from the change on.
        new_key: PublicKey,
    },
}

impl ValidatorChange {
    /// Rules that need no state: a valid name and keys that are curve points.
    pub fn check_stateless(&self) -> Result<(), TxRejection> {
        let bad_key = |key: &PublicKey| {
            if key.is_valid_point() {
                Ok(())
            } else {
                Err(TxRejection::BadValidatorKey { key: *key })
            }
        };
        match self {
            ValidatorChange::Add { validator } => {
                let name = &validator.name;
                if name.is_empty()
                    || name.len() > VALIDATOR_NAME_BYTES_MAX
                    || name.chars().any(char::is_control)
                {
                    return Err(TxRejection::BadValidatorName {
                        name: name.clone(),
                        max: VALIDATOR_NAME_BYTES_MAX,
                    });
                }
                bad_key(&validator.public_key)
            }
            ValidatorChange::Remove { public_key } => bad_key(public_key),
            ValidatorChange::Rotate {
                public_key,
                new_key,
            } => {
                if public_key == new_key {
                    return Err(TxRejection::RotationToSameKey { key: *new_key });
                }
                bad_key(public_key)?;
                bad_key(new_key)
            }
        }
    }

    /// The list after this change, or why the change cannot be made to `list` under `kind`.
    pub fn apply_to(
        &self,
        list: &[Validator],
        kind: ConsensusKind,
    ) -> Result<Vec<Validator>, TxRejection> {
        let position = |key: &PublicKey| list.iter().position(|v| v.public_key == *key);
        let mut out = list.to_vec();
        match self {
            ValidatorChange::Add { validator } => {
                if position(&validator.public_key).is_some() {
                    return Err(TxRejection::AlreadyValidator {
                        key: validator.public_key,
                    });
                }
                if list.iter().any(|v| v.name == validator.name) {
                    return Err(TxRejection::ValidatorNameTaken {
                        name: validator.name.clone(),
                    });
                }
                if list.len() >= VALIDATORS_MAX {
                    return Err(TxRejection::TooManyValidators {
                        max: VALIDATORS_MAX,
                    });
                }
                out.push(validator.clone());
            }
            ValidatorChange::Remove { public_key } => {
                let i =
                    position(public_key).ok_or(TxRejection::NotValidator { key: *public_key })?;
                let min = match kind {
                    ConsensusKind::Pbft => PBFT_VALIDATORS_MIN,
                    ConsensusKind::Raft => 1,
                };
                if list.len() <= min {
                    return Err(TxRejection::TooFewValidators {
                        engine: kind,
                        min,
                        now: list.len(),
                    });
                }
                out.remove(i);
            }
            ValidatorChange::Rotate {
                public_key,
                new_key,
            } => {
                let i =
                    position(public_key).ok_or(TxRejection::NotValidator { key: *public_key })?;
                if position(new_key).is_some() {
                    return Err(TxRejection::AlreadyValidator { key: *new_key });
                }
                out[i].public_key = *new_key;
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for ValidatorChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValidatorChange::Add { validator } => {
                write!(f, "add {} ({})", validator.name, validator.public_key)
            }
            ValidatorChange::Remove { public_key } => write!(f, "remove {public_key}"),
            ValidatorChange::Rotate {
                public_key,
                new_key,
            } => write!(f, "rotate {public_key} to {new_key}"),
        }
    }
}

/// An approved change waiting for its epoch boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingChange {
    /// The change.
    pub change: ValidatorChange,
    /// The set it makes.
    pub validators: Vec<Validator>,
    /// The height of the block that approved it.
    pub approved_at: Height,
    /// The boundary block that announces the new set; the set is in force from the next.
    pub boundary: Height,
}

/// A validator's vote for a change (policy [`ChangePolicy::Validators`]): one per validator,
/// a new vote replacing its last. Counted while cast in the current epoch or the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vote {
    /// What it votes for.
    pub change: ValidatorChange,
    /// The height of the block it was cast in.
    pub height: Height,
}

/// The validator list in force, as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SetRecord {
    /// In force for heights above this (0 for the genesis set).
    pub since: Height,
    /// The list.
    pub validators: Vec<Validator>,
}

/// The validator set in force for a range of heights: the list (names and keys, in order),
/// its keys for quorum arithmetic, the hash headers carry, and the height after which it is
/// in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInForce {
    list: Vec<Validator>,
    set: ValidatorSet,
    hash: Hash,
    since: Height,
}

impl SetInForce {
    /// `list`, in force for heights above `since`.
    pub fn new(list: Vec<Validator>, since: Height) -> Self {
        let set = ValidatorSet::new(list.iter().map(|v| v.public_key).collect());
        let hash = validators_hash(&list);
        Self {
            list,
            set,
            hash,
            since,
        }
    }

    /// The genesis set.
    pub fn genesis(genesis: &Genesis) -> Self {
        Self::new(genesis.validators.clone(), 0)
    }

    /// The validators, in order.
    pub fn list(&self) -> &[Validator] {
        &self.list
    }

    /// Their keys, with the quorum arithmetic.
    pub fn set(&self) -> &ValidatorSet {
        &self.set
    }

    /// What headers of its blocks carry as `validators_hash`.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// In force for heights above this (0 for the genesis set).
    pub fn since(&self) -> Height {
        self.since
    }
}

/// The first epoch boundary at or after `height`: the smallest multiple of `epoch_length`
/// that is `≥ height`.
pub fn boundary_at_or_after(height: Height, epoch_length: u64) -> Height {
    let k = epoch_length.max(1);
    height.div_ceil(k).saturating_mul(k)
}

/// Whether a vote cast at `cast` still counts at `now`: cast in the epoch of `now` or the one
/// before it.
pub(crate) fn vote_counts(cast: Height, now: Height, epoch_length: u64) -> bool {
    let k = epoch_length.max(1);
    boundary_at_or_after(cast, k).saturating_add(k) >= boundary_at_or_after(now, k)
}

/// Hashes a change, for naming it in listings (`cairn validator list`).
pub fn change_id(change: &ValidatorChange) -> Hash {
    Hash::tagged(crate::domains::VALIDATOR_CHANGE, &[&codec::encode(change)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(i: u8) -> Validator {
        let key = cairn_crypto::SigningKey::from_seed([i; 32]).public_key();
        Validator {
            name: format!("v{i}"),
            public_key: key,
        }
    }

    #[test]
    fn boundaries_and_vote_expiry() {
        assert_eq!(boundary_at_or_after(1, 10), 10);
        assert_eq!(boundary_at_or_after(10, 10), 10);
        assert_eq!(boundary_at_or_after(11, 10), 20);
        // Cast in epoch (10, 20]: counts through epoch (20, 30], not after.
        assert!(vote_counts(11, 20, 10));
        assert!(vote_counts(11, 30, 10));
        assert!(!vote_counts(11, 31, 10));
        assert!(!vote_counts(20, 31, 10));
    }

    #[test]
    fn changes_keep_the_fault_model() {
        let four: Vec<_> = (1..=4).map(v).collect();
        let pbft = ConsensusKind::Pbft;
        let remove = ValidatorChange::Remove {
            public_key: four[0].public_key,
        };
        assert_eq!(
            remove.apply_to(&four, pbft),
            Err(TxRejection::TooFewValidators {
                engine: pbft,
                min: 4,
                now: 4
            })
        );
        let after = remove.apply_to(&four, ConsensusKind::Raft).expect("raft");
        assert_eq!(after, four[1..].to_vec());
        let add = ValidatorChange::Add { validator: v(5) };
        assert_eq!(add.apply_to(&four, pbft).expect("add")[4], v(5));
        let mut same_name = v(6);
        same_name.name = "v1".into();
        assert_eq!(
            ValidatorChange::Add {
                validator: same_name
            }
            .apply_to(&four, pbft),
            Err(TxRejection::ValidatorNameTaken { name: "v1".into() })
        );
        let rotate = ValidatorChange::Rotate {
            public_key: four[2].public_key,
            new_key: v(9).public_key,
        };
        let rotated = rotate.apply_to(&four, pbft).expect("rotate");
        assert_eq!(rotated[2].name, "v3");
        assert_eq!(rotated[2].public_key, v(9).public_key);
        let onto_member = ValidatorChange::Rotate {
            public_key: four[2].public_key,
            new_key: four[3].public_key,
        };
        assert_eq!(
            onto_member.apply_to(&four, pbft),
            Err(TxRejection::AlreadyValidator {
                key: four[3].public_key
            })
        );
    }
}
