//! Failures a node cannot handle and must not outlive.
//!
//! Everything else a node meets (bad input, a peer that lies, a full mempool) is answered and
//! counted. These are different: the node cannot keep a promise it already made (its consensus
//! state, a committed block) or it lost a part of itself. It stops, exits non-zero and says
//! why; a supervisor restarts it, and the restart runs the same recovery a crash does.
//!
//! Why a committed block that cannot be written (a full disk) stops the node instead of being
//! retried in place: the engine already counts the block as applied and goes on from it, so
//! retrying would have to freeze the engine while pretending it is alive; the storage engine
//! may have put itself in a read-only error state after the failed write; and a restart is a
//! path the crash tests already prove (the block comes back from the peers by block sync).

use cairn_ledger::{BlockError, BlockHash, Height, StoreError};

/// A failure that stops the node.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// Consensus state could not be made durable: the engine would act on a promise it
    /// could not keep (a vote, a prepared certificate).
    #[error("cannot persist consensus state: {source}")]
    Persist {
        /// Why.
        source: StoreError,
    },
    /// A committed block could not be written.
    #[error("cannot write committed block {height}: {source}")]
    Commit {
        /// Its height.
        height: Height,
        /// Why.
        source: StoreError,
    },
    /// A block the validators committed does not execute on this node's state: this node's
    /// store differs from theirs (damage, or a bug), and it must not go on from it.
    #[error("committed block {height} does not execute on this node's state: {source}")]
    Diverged {
        /// Its height.
        height: Height,
        /// Why.
        source: BlockError,
    },
    /// Consensus committed a block at a height where the ledger holds another: a safety
    /// failure or a bug.
    #[error(
        "consensus committed block {committed} at height {height}, where the ledger holds {held:?}"
    )]
    Fork {
        /// The height.
        height: Height,
        /// What consensus committed.
        committed: BlockHash,
        /// What the ledger holds.
        held: Option<BlockHash>,
    },
    /// Reading the store failed.
    #[error("cannot read the store: {source}")]
    Read {
        /// Why.
        #[from]
        source: StoreError,
    },
    /// A task the node needs ended.
    #[error("the {task} task stopped: {reason}")]
    TaskEnded {
        /// Which.
        task: &'static str,
        /// How.
        reason: String,
    },
}

impl Fatal {
    /// What an operator should do, appended to the message in logs.
    pub fn advice(&self) -> &'static str {
        let full = |e: &StoreError| matches!(e, StoreError::Engine(m) if m.contains("No space"));
        match self {
            Fatal::Persist { source } | Fatal::Commit { source, .. } if full(source) => {
                "the disk is full: free space and start the node again; it recovers what it \
                 missed from its peers"
            }
            Fatal::Persist { .. } | Fatal::Commit { .. } | Fatal::Read { .. } => {
                "check the disk and the store's directory, then start the node again"
            }
            Fatal::Diverged { .. } | Fatal::Fork { .. } => {
                "this node's store disagrees with the network: move its data directory aside \
                 and start it again to re-sync from the peers"
            }
            Fatal::TaskEnded { .. } => "start the node again; report this if it repeats",
        }
    }
}
