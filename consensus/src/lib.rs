//! `cairn-consensus`: the engines that order blocks, as pure state machines.
//!
//! Every engine implements [`Protocol`]: the caller feeds it [`Input`]s (ticks, messages,
//! proposals, validation results) through [`Protocol::step`] and executes the [`Output`]s it
//! pushes, **in order**. The engine does no IO, reads no clock (time is a count of `Tick`s),
//! and draws randomness only from a seeded [`DetRng`], so a run is a function of its inputs.
//!
//! The engine's lifecycle is part of the trait: [`Protocol::restore`] starts an engine from
//! its [`Protocol::Durable`] state (the default for a new node) and its ledger's height, and
//! the durable state type says how `Persist` ops change it, in memory and as keys in a store
//! ([`DurableState`]). The node and the simulator share that lifecycle.
//!
//! The caller's contract, which every engine relies on for safety:
//! - `Persist` is a barrier: the op must be durable before any later output of the same step
//!   is executed (persist, then send, as in raft-rs' `Ready`);
//! - `Commit` outputs arrive once per height, in height order; the caller applies the block
//!   to its ledger before executing the next output, so a later `RequestProposal` builds on it;
//! - messages reach the engine only after the caller checked their size and that `from` is the
//!   validator the connection is authenticated as.
//!
//! Bad, stale or duplicate input is refused with a reason ([`Refusal`]) and counted
//! (`Status::refused`), never a panic. What peers' messages can make an engine keep is bounded
//! whatever they send ([`Held`]; each bound is written next to its field and in
//! ARCHITECTURE.md). Must not depend on tokio, libp2p, rocksdb, the clock or the thread RNG.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod durable;
pub mod pbft;
pub mod raft;
mod refusal;
mod rng;
mod types;

use cairn_crypto::SigningKey;
use cairn_ledger::{Block, BlockHash, CommitCertificate, Height};
use serde::{Deserialize, Serialize};

pub use durable::{DurableError, DurableState};
pub use refusal::{Refusal, Refusals};
pub use rng::DetRng;
pub use types::{LogIndex, Seq, Term, View};

/// A validator's position in the genesis validator list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl NodeId {
    /// As an index into the validator list.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// What the caller tells an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<M> {
    /// One unit of time has passed.
    Tick {
        /// Whether the caller holds requests (transactions) that could be ordered now. PBFT
        /// runs a backup's request timer only then, or while a proposal is in flight (§4.4):
        /// with nothing to order, a quiet primary is idle, not faulty. Raft ignores it.
        pending_work: bool,
    },
    /// A message from another validator.
    Message {
        /// The sender (authenticated by the transport).
        from: NodeId,
        /// The message.
        msg: M,
    },
    /// The block the caller built after a `RequestProposal`.
    Propose {
        /// The block (boxed: the other inputs are small).
        block: Box<Block>,
    },
    /// The result of a `Validate` request.
    Validated {
        /// The block's hash.
        block_hash: BlockHash,
        /// Whether it is a valid next block.
        valid: bool,
    },
    /// The caller's ledger now holds every block up to `height` (after a `SyncTo`, or on its
    /// own through block sync).
    Synced {
        /// The ledger's tip height.
        height: Height,
        /// The hash of the ledger's tip block (the genesis hash at height 0).
        tip: BlockHash,
    },
}

/// What an engine asks the caller to do. Execute in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<M, P> {
    /// Send to one validator.
    Send {
        /// Receiver.
        to: NodeId,
        /// Message.
        msg: M,
    },
    /// Send to every other validator.
    Broadcast {
        /// Message.
        msg: M,
    },
    /// Make this durable before executing any later output.
    Persist {
        /// The change to the engine's durable state.
        op: P,
    },
    /// The block is committed: apply it to the ledger with its certificate.
    Commit {
        /// The block.
        block: Block,
        /// Proof of the commit, checkable offline.
        certificate: CommitCertificate,
    },
    /// Build the block at `height` on the ledger's tip and answer with `Input::Propose`.
    RequestProposal {
        /// Height of the block to build.
        height: Height,
        /// Term or view to put in its header.
        round: u64,
    },
    /// Check that `block` is a valid next block and answer with `Input::Validated`.
    Validate {
        /// The block.
        block: Block,
    },
    /// A proposal reached a node that is not the leader.
    NotLeader {
        /// The leader, if known.
        hint: Option<NodeId>,
    },
    /// The ledger is behind what the engine can replay: fetch certified blocks up to
    /// `height` (from `peer` or anyone) and answer with `Input::Synced`.
    SyncTo {
        /// A peer that has them.
        peer: NodeId,
        /// Height to reach.
        height: Height,
    },
}

/// An engine's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Raft follower or PBFT backup.
    Follower,
    /// Raft pre-candidate (PreVote phase).
    PreCandidate,
    /// Raft candidate.
    Candidate,
    /// Raft leader or PBFT primary.
    Leader,
}

/// A snapshot of an engine's state, for metrics, the API and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Role.
    pub role: Role,
    /// Raft term or PBFT view.
    pub round: u64,
    /// Leader or primary, if known.
    pub leader: Option<NodeId>,
    /// Height of the last block committed (and applied by the caller).
    pub commit_height: Height,
    /// Inputs refused, by reason.
    pub refused: Refusals,
}

/// One store of an engine that other validators' messages can make grow (votes,
/// checkpoints, view changes, log entries, ...): how much it holds now, and the most it may
/// hold, stated from the configuration and the engine's own progress alone, never from what
/// peers send. Messages count once whatever their size (the transport bounds a message's
/// size). The simulator checks every store of every honest replica after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Which store.
    pub what: &'static str,
    /// Whether it holds log entries or blocks (else messages).
    pub entries: bool,
    /// How many it holds now.
    pub count: usize,
    /// The most it may hold.
    pub bound: usize,
}

impl Held {
    /// A store of messages.
    pub fn messages(what: &'static str, count: usize, bound: usize) -> Held {
        Held {
            what,
            entries: false,
            count,
            bound,
        }
    }

    /// A store of log entries or blocks.
    pub fn entries(what: &'static str, count: usize, bound: usize) -> Held {
        Held {
            what,
            entries: true,
            count,
            bound,
        }
    }
}

/// A consensus engine.
pub trait Protocol: Sized {
    /// Messages between validators.
    type Message: Clone + std::fmt::Debug + Serialize + for<'de> Deserialize<'de>;
    /// Changes to durable state, carried by `Output::Persist`.
    type PersistOp: Clone + std::fmt::Debug + Serialize + for<'de> Deserialize<'de>;
    /// Fixed parameters: the validators, this node's index, timing in ticks.
    type Config: Clone + std::fmt::Debug;
    /// What survives a restart: the state `Persist` ops build.
    type Durable: DurableState<Op = Self::PersistOp>;

    /// An engine starting from its durable state (the default for a new node) and the height
    /// of its ledger's tip. Nothing else survives a restart.
    fn restore(
        config: Self::Config,
        key: SigningKey,
        durable: &Self::Durable,
        ledger_height: Height,
    ) -> Self;

    /// Advances the engine by one input, pushing the resulting work onto `out`.
    fn step(
        &mut self,
        input: Input<Self::Message>,
        out: &mut Vec<Output<Self::Message, Self::PersistOp>>,
    );

    /// Where the engine stands.
    fn status(&self) -> Status;

    /// Each store that peers' messages can grow, with what it holds and its bound.
    fn footprint(&self) -> Vec<Held>;
}
