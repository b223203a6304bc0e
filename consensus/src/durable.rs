//! What an engine keeps across restarts, and how it lies in a key-value store.
//!
//! An engine says what must survive a crash with `Output::Persist { op }`. Its durable state
//! type ([`DurableState`]) gives two views of the same thing:
//! - [`DurableState::apply`]: the op applied to the state in memory (the model);
//! - [`DurableState::writes`] and [`DurableState::load`]: the op as puts and (range) deletes of
//!   keys in a store's consensus column family, and the state read back from those keys.
//!
//! `writes` looks only at the op, never at the state already stored: each op names the keys
//! it replaces and the key ranges it removes. So a caller (the node) keeps no copy of the
//! durable state (no second Raft log, no second set of prepared certificates) to know what
//! to delete, and the simulator runs the very layout the node writes. For every sequence of
//! ops an engine emits, `load` of the keys left by `writes` equals the state `apply` builds
//! (property tests in each engine check it).

use cairn_crypto::codec::{self, CodecError};
use cairn_ledger::{ConsensusWrite, Height};

/// An engine's durable state: the model and its keyed layout.
pub trait DurableState: Default + Clone + std::fmt::Debug + PartialEq + Sized {
    /// The change an engine persists (`Output::Persist`).
    type Op;

    /// Applies one op to the state in memory.
    fn apply(&mut self, op: &Self::Op);

    /// The store writes that make `op` durable, appended to `out` in order.
    fn writes(op: &Self::Op, out: &mut Vec<ConsensusWrite>);

    /// Rebuilds the state from every key the writes left, sorted by key (an empty store gives
    /// the default state).
    fn load(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<Self, DurableError>;

    /// The state of an instance for a validator set in force above `height` (its first block
    /// is `height + 1`), with the writes, appended to `out`, that replace whatever the store
    /// held for an earlier set. Nothing of an earlier set's instance carries over: its votes
    /// and log concern heights up to `height`, all committed.
    fn starting_at(height: Height, out: &mut Vec<ConsensusWrite>) -> Self;
}

/// Why stored consensus state could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// A value does not decode.
    #[error("consensus state key {key:?} does not decode: {source}")]
    Decode {
        /// The key, as text where it is text.
        key: String,
        /// Why.
        source: CodecError,
    },
    /// A key this engine never writes (another engine's state, or damage).
    #[error("consensus state holds a key this engine never writes: {key:?}")]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A sequence of keys has a hole or starts in the wrong place.
    #[error("consensus state: {what} (expected {expected}, found {found})")]
    Gap {
        /// What is out of order.
        what: &'static str,
        /// The index expected.
        expected: u64,
        /// The index found.
        found: u64,
    },
}

/// A key as text for messages (lossy where it is binary).
pub(crate) fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Decodes a stored value, naming its key on failure.
pub(crate) fn decode<T: serde::Serialize + serde::de::DeserializeOwned>(
    key: &[u8],
    value: &[u8],
) -> Result<T, DurableError> {
    codec::decode(value).map_err(|source| DurableError::Decode {
        key: show(key),
        source,
    })
}

/// `prefix ‖ n` (big-endian), so key order is number order.
pub(crate) fn numbered(prefix: &[u8], n: u64) -> Vec<u8> {
    [prefix, &n.to_be_bytes()].concat()
}

/// The number in a key made by [`numbered`].
pub(crate) fn number_of(prefix: &[u8], key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    let b: [u8; 8] = rest.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// The first key after every key that starts with `prefix` (`prefix` must not end in 0xff).
pub(crate) fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = last.saturating_add(1);
    }
    end
}

/// A put of an encoded value.
pub(crate) fn put<T: serde::Serialize>(key: Vec<u8>, value: &T) -> ConsensusWrite {
    ConsensusWrite::Put {
        key,
        value: codec::encode(value),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::collections::BTreeMap;

    /// A consensus column family in memory: applies writes as a store does.
    #[derive(Debug, Default)]
    pub(crate) struct Keys(pub BTreeMap<Vec<u8>, Vec<u8>>);

    impl Keys {
        pub(crate) fn write(&mut self, writes: &[ConsensusWrite]) {
            for w in writes {
                match w {
                    ConsensusWrite::Put { key, value } => {
                        self.0.insert(key.clone(), value.clone());
                    }
                    ConsensusWrite::Delete { key } => {
                        self.0.remove(key);
                    }
                    ConsensusWrite::DeleteRange { from, to } => {
                        self.0.retain(|k, _| k < from || k >= to);
                    }
                }
            }
        }

        pub(crate) fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
    }
}
