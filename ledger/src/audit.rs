//! Audit of a whole store: replays every block from genesis into memory and checks that the
//! store agrees with the replay at every height.

use cairn_crypto::Hash;

use crate::block::Height;
use crate::genesis::Genesis;
use crate::ledger::{BlockError, Ledger, Trust};
use crate::state::state_digest;
use crate::store::{ChainRead, MemoryStore, StoreError};

/// What an audit found in a consistent store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Tip height.
    pub height: Height,
    /// State root at the tip (stored and recomputed: equal).
    pub state_root: Hash,
    /// Digest of the whole state (stored and replayed: equal).
    pub state_digest: Hash,
}

/// An inconsistency.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A height between 1 and the tip has no block or no certificate.
    #[error("height {0} is missing a block or certificate")]
    Missing(Height),
    /// A stored block failed verification or replay.
    #[error("block {height}: {source}")]
    Block {
        /// Height.
        height: Height,
        /// What failed.
        source: BlockError,
    },
    /// Replay ended at another tip than the store's.
    #[error("replayed tip {replayed:?} differs from the stored tip {stored:?}")]
    TipMismatch {
        /// From replay.
        replayed: Box<crate::block::Tip>,
        /// From the store.
        stored: Box<crate::block::Tip>,
    },
    /// The stored state differs from the replayed state.
    #[error("stored state digest {stored} differs from replayed {replayed}")]
    StateMismatch {
        /// From the store.
        stored: Hash,
        /// From replay.
        replayed: Hash,
    },
    /// The genesis is invalid or replay could not start.
    #[error(transparent)]
    Open(#[from] crate::ledger::OpenError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replays `store` from `genesis`, verifying every certificate and signature, and compares
/// tips and whole states.
pub fn audit_store<S: ChainRead>(store: &S, genesis: &Genesis) -> Result<AuditReport, AuditError> {
    let stored_tip = store.tip()?;
    let mut replay = Ledger::open(MemoryStore::new(), genesis.clone())?;
    for height in 1..=stored_tip.height {
        let (Some(block), Some(cert)) = (store.block(height)?, store.certificate(height)?) else {
            return Err(AuditError::Missing(height));
        };
        replay
            .apply_block(block, cert, Trust::Verify)
            .map_err(|source| AuditError::Block { height, source })?;
    }
    if replay.tip() != stored_tip {
        return Err(AuditError::TipMismatch {
            replayed: Box::new(replay.tip()),
            stored: Box::new(stored_tip),
        });
    }
    let digest = |entries: crate::store::StateEntries| {
        state_digest(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    };
    let stored = digest(store.state_entries()?);
    let replayed = digest(replay.store().state_entries()?);
    if stored != replayed {
        return Err(AuditError::StateMismatch { stored, replayed });
    }
    Ok(AuditReport {
        height: stored_tip.height,
        state_root: stored_tip.state_root,
        state_digest: stored,
    })
}
