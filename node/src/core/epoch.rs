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

/// What `GET /api/v1/validators/changes` shows, read from the ledger.
pub fn changes_view<S: BlockStore>(
    ledger: &cairn_ledger::Ledger<S>,
) -> Result<crate::views::ValidatorChangesView, StoreError> {
    use cairn_ledger::governance::change_id;
    let consensus = &ledger.genesis().consensus;
    Ok(crate::views::ValidatorChangesView {
        policy: consensus.change_policy(),
        epoch_length: consensus.epoch_length(),
        in_force_since: ledger.validators_in_force().since(),
        pending: ledger
            .pending_change()?
            .map(|change| crate::views::PendingView {
                id: change_id(&change.change),
                change,
            }),
        votes: ledger
            .validator_votes()?
            .into_iter()
            .map(|(voter, v)| crate::views::VoteView {
                voter,
                id: change_id(&v.change),
                change: v.change,
                height: v.height,
            })
            .collect(),
    })
}

/// The keys of the set a pending change makes (none without one).
pub fn pending_keys(changes: &crate::views::ValidatorChangesView) -> Vec<PublicKey> {
    changes
        .pending
        .as_ref()
        .map(|p| p.change.validators.iter().map(|v| v.public_key).collect())
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::raft::{Raft, RaftPersist};
    use cairn_consensus::{LogIndex, Term};
    use cairn_crypto::Hash;
    use cairn_ledger::BlockHash;

    fn store(dir: &std::path::Path) -> RocksStore {
        RocksStore::open(dir, &BlockHash(Hash::ZERO)).expect("open")
    }

    fn raft_writes(op: &RaftPersist) -> Vec<ConsensusWrite> {
        let mut w = Vec::new();
        <Raft as Protocol>::Durable::writes(op, &mut w);
        w
    }

    #[test]
    fn a_state_of_another_set_is_reset_once_and_then_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        // Nothing marked yet: the genesis set's state, loaded as it is.
        let vote = RaftPersist::HardState {
            term: Term(7),
            voted_for: None,
        };
        s.consensus_write(&raft_writes(&vote)).expect("write");
        let l = load::<Raft>(&mut s, 0).expect("load");
        assert!(!l.fresh);
        assert_eq!(l.durable.term, Term(7));

        // The ledger's set changed above 20 (a crash came between the commit and the reset):
        // the old instance's vote is gone, the log starts at the boundary, and the marker
        // says so, durably.
        let l = load::<Raft>(&mut s, 20).expect("load");
        assert!(l.fresh);
        assert_eq!(l.durable.term, Term(0));
        assert_eq!(
            (l.durable.snapshot_index, l.durable.snapshot_height),
            (LogIndex(0), 20)
        );
        drop(s);
        let mut s = store(dir.path());
        s.consensus_write(&raft_writes(&vote)).expect("write");
        let l = load::<Raft>(&mut s, 20).expect("load");
        assert!(!l.fresh, "the same set's state is kept across restarts");
        assert_eq!(l.durable.term, Term(7));
    }

    #[test]
    fn a_damaged_marker_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = store(dir.path());
        s.consensus_write(&[ConsensusWrite::Put {
            key: MARKER.to_vec(),
            value: vec![1, 2, 3],
        }])
        .expect("write");
        assert!(matches!(
            load::<Raft>(&mut s, 0),
            Err(LoadError::BadMarker { len: 3 })
        ));
    }
}
