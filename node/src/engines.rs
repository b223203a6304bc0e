//! The two engines as the node runs them: parameters from the genesis, the validator set in
//! force and the node's tick length, and their messages in the wire envelope
//! ([`EngineBody`]), which tags the engine so a message of the other kind is refused when it
//! is decoded.

use cairn_consensus::pbft::{Pbft, PbftConfig, PbftMessage};
use cairn_consensus::raft::{Raft, RaftConfig, RaftMessage};
use cairn_consensus::{NodeId, Protocol, Seq};
use cairn_ledger::{ConsensusConfig, Genesis, Height, ValidatorSet};

use crate::config::ConsensusConfig as ConsensusSettings;
use crate::wire::EngineBody;

/// What the node needs from an engine beyond [`Protocol`].
pub trait NodeEngine:
    Protocol<Message: Send, PersistOp: Send, Config: Send> + Send + 'static
{
    /// The parameters of the instance that orders the heights above `base` with `validators`,
    /// for member `me`, with genesis timing turned into ticks of the node's `tick_ms`. `None`
    /// if the genesis names the other engine.
    fn config(
        genesis: &Genesis,
        validators: &ValidatorSet,
        base: Height,
        me: NodeId,
        node: &ConsensusSettings,
    ) -> Option<Self::Config>;
    /// The message as the wire tags it.
    fn wrap(msg: Self::Message) -> EngineBody;
    /// The message out of the envelope, if it is this engine's.
    fn unwrap(body: EngineBody) -> Option<Self::Message>;
    /// The term or view a message shows its sender working in, if it shows one.
    fn round_of(msg: &Self::Message) -> Option<u64>;
}

/// Genesis milliseconds as engine ticks (at least one).
fn ticks(ms: u64, tick_ms: u64) -> u64 {
    ms.div_ceil(tick_ms.max(1)).max(1)
}

impl NodeEngine for Raft {
    fn config(
        genesis: &Genesis,
        validators: &ValidatorSet,
        _base: Height,
        me: NodeId,
        node: &ConsensusSettings,
    ) -> Option<RaftConfig> {
        let ConsensusConfig::Raft(p) = &genesis.consensus else {
            return None;
        };
        let tick_ms = node.tick_ms;
        let min = ticks(p.election_timeout_min_ms, tick_ms).max(2);
        Some(RaftConfig {
            chain_id: genesis.chain_id.clone(),
            validators: validators.clone(),
            me,
            election_ticks_min: min,
            election_ticks_max: ticks(p.election_timeout_max_ms, tick_ms).max(min + 1),
            heartbeat_ticks: ticks(p.heartbeat_interval_ms, tick_ms),
            max_entries_per_message: 3,
            // Applied blocks kept for followers a little behind: 16 to 32 of them, each up to
            // `block_txs_max` transactions (about 0.5 MB in memory at 2,000). A follower further
            // behind fetches certified blocks instead.
            compact_after: 16,
            blocks_in_flight: node.blocks_in_flight,
            // Only spreads election timeouts between nodes: the time is a fine seed.
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            planted_bug_vote_twice: false,
        })
    }

    fn wrap(msg: RaftMessage) -> EngineBody {
        EngineBody::Raft(msg)
    }

    fn unwrap(body: EngineBody) -> Option<RaftMessage> {
        match body {
            EngineBody::Raft(m) => Some(m),
            _ => None,
        }
    }

    fn round_of(msg: &RaftMessage) -> Option<u64> {
        Some(msg.term().0)
    }
}

impl NodeEngine for Pbft {
    fn config(
        genesis: &Genesis,
        validators: &ValidatorSet,
        base: Height,
        me: NodeId,
        node: &ConsensusSettings,
    ) -> Option<PbftConfig> {
        let ConsensusConfig::Pbft(p) = &genesis.consensus else {
            return None;
        };
        let tick_ms = node.tick_ms;
        Some(PbftConfig {
            chain_id: genesis.chain_id.clone(),
            validators: validators.clone(),
            base: Seq(base),
            me,
            checkpoint_interval: p.checkpoint_interval,
            view_change_ticks: ticks(p.view_change_timeout_ms, tick_ms),
            retransmit_ticks: ticks(p.view_change_timeout_ms / 4, tick_ms),
            blocks_in_flight: node.blocks_in_flight,
            planted_bug_small_quorum: false,
            planted_bug_unbounded_checkpoints: false,
        })
    }

    fn wrap(msg: PbftMessage) -> EngineBody {
        EngineBody::Pbft(msg)
    }

    fn unwrap(body: EngineBody) -> Option<PbftMessage> {
        match body {
            EngineBody::Pbft(m) => Some(m),
            _ => None,
        }
    }

    fn round_of(msg: &PbftMessage) -> Option<u64> {
        msg.view().map(u64::from)
    }
}
