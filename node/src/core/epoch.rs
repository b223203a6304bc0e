//! Which engine instance this node runs: one per validator set (ARCHITECTURE.md,
//! "Reconfiguration"). The instance of the set in force orders the heights above the set's
//! `since` (its *epoch*); when a committed block changes the set, the node drops its instance
//! and starts the next one from an empty durable state, or none if it is not a member.
//!
//! On disk the consensus column family holds the instance's durable state and a marker
//! ([`MARKER`]) naming its epoch. The reset and the marker go in one synced write, and a
//! start whose marker differs from the ledger's set in force resets again, so a crash between
//! committing a set change and resetting never runs the old set's instance above its
//! boundary.

use std::collections::HashMap;

use cairn_consensus::{DurableState, NodeId, Protocol};
use cairn_crypto::{PublicKey, SigningKey};
use cairn_ledger::{
    BlockStore, ChainRead, ConsensusWrite, Genesis, Height, PendingChange, RocksStore, SetInForce,
    StoreError,
};

use crate::config::ConsensusConfig as ConsensusSettings;
use crate::engines::NodeEngine;

/// The consensus key holding the epoch of the instance whose state the column family holds
/// (absent: the genesis set's, 0). Outside both engines' key ranges (`raft/`, `pbft/`).
pub const MARKER: &[u8] = b"node/epoch";

/// Why the consensus state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store failed.
    #[error("cannot read or reset the consensus state: {0}")]
    Store(#[from] StoreError),
    /// The marker is not 8 bytes.
    #[error("the consensus epoch marker is {len} bytes, not 8")]
    BadMarker {
        /// Its length.
        len: usize,
    },
    /// The engine's entries do not load.
    #[error("the consensus state does not load: {0}")]
    Durable(#[from] cairn_consensus::DurableError),
}

/// The engine's durable state for the instance of the set in force (which begins above
/// `since`), as stored; or, when the store holds another instance's state (or none yet
/// marked), a fresh one, written before this returns. `fresh` says which.
pub struct Loaded<D> {
    /// The state.
    pub durable: D,
    /// Whether it was reset (the engine starts at `since` and learns the tip by sync).
    pub fresh: bool,
}

/// Loads (or resets) the durable state of the instance that begins above `since`.
pub fn load<P: Protocol>(
    store: &mut RocksStore,
    since: Height,
) -> Result<Loaded<P::Durable>, LoadError> {
    let entries = store.consensus_scan(b"")?;
    let mut marker = 0;
    let mut engine = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        if k == MARKER {
            let bytes: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| LoadError::BadMarker { len: v.len() })?;
            marker = Height::from_be_bytes(bytes);
        } else {
            engine.push((k, v));
        }
    }
    if marker == since {
        return Ok(Loaded {
            durable: P::Durable::load(&engine)?,
            fresh: false,
        });
    }
    Ok(Loaded {
        durable: reset::<P>(store, since)?,
        fresh: true,
    })
}

/// Replaces the consensus state with an empty one for the instance that begins above
/// `since`, marked, in one synced write.
pub fn reset<P: Protocol>(store: &mut RocksStore, since: Height) -> Result<P::Durable, StoreError> {
    let mut writes = Vec::new();
    let durable = P::Durable::starting_at(since, &mut writes);
    writes.push(ConsensusWrite::Put {
        key: MARKER.to_vec(),
        value: since.to_be_bytes().to_vec(),
    });
    store.consensus_write(&writes)?;
    Ok(durable)
}

/// This node's place in `set`, if it is a member.
pub fn member(set: &SetInForce, me: &PublicKey) -> Option<NodeId> {
    set.list()
        .iter()
        .position(|v| v.public_key == *me)
        .map(|i| NodeId(i as u32))
}

/// The engine of the instance for `set`, restored from `durable` at `height`; `None` when this
/// node is not a member (an observer) or the genesis names the other engine.
pub fn engine<P: NodeEngine>(
    genesis: &Genesis,
    set: &SetInForce,
    key: &SigningKey,
    durable: &P::Durable,
    height: Height,
    settings: &ConsensusSettings,
) -> Option<P> {
    let me = member(set, &key.public_key())?;
    let cfg = P::config(genesis, set.set(), set.since(), me, settings)?;
    Some(P::restore(cfg, key.clone(), durable, height))
}

/// Who may connect: the set in force, the set a pending change makes (an added validator
/// syncs before its first vote) and the configured observers. A removed validator is on it
/// until its removal takes effect.
pub fn allowed(
    set: &SetInForce,
    pending: Option<&PendingChange>,
    observers: &[PublicKey],
) -> Vec<PublicKey> {
    let mut keys: Vec<PublicKey> = set.list().iter().map(|v| v.public_key).collect();
    if let Some(p) = pending {
        keys.extend(p.validators.iter().map(|v| v.public_key));
    }
    keys.extend(observers.iter().copied());
    keys.sort();
    keys.dedup();
    keys
}

/// The validators' names this node knows, for the network's log lines: the genesis set's,
/// the set in force's and a pending set's.
pub fn names(
    genesis: &Genesis,
    set: &SetInForce,
    pending: Option<&PendingChange>,
) -> HashMap<PublicKey, String> {
    genesis
        .validators
        .iter()
        .chain(set.list())
        .chain(pending.into_iter().flat_map(|p| p.validators.iter()))
        .map(|v| (v.public_key, v.name.clone()))
        .collect()
}
