//! The engines under simulation: the cluster they run in and each engine's parameters.

use cairn_consensus::pbft::{Pbft, PbftConfig, PbftMessage};
use cairn_consensus::raft::{Raft, RaftConfig};
use cairn_consensus::{NodeId, Protocol};
use cairn_crypto::SigningKey;
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{BlockHash, ConsensusKind, Genesis, Height};

use super::adversary::{Adversary, Behaviour, corrupt_pbft};
use super::config::Knobs;

/// The simulated cluster's fixed facts.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Genesis (validators, chain id, consensus kind).
    pub genesis: Genesis,
    /// Validator keys, by node index.
    pub keys: Vec<SigningKey>,
}

impl Cluster {
    /// A cluster of `n` validators running `kind`.
    pub fn new(kind: ConsensusKind, n: usize) -> Cluster {
        let chain = TestChain::new(kind, n, 1, 1);
        Cluster {
            genesis: chain.genesis,
            keys: chain.validators,
        }
    }
}

/// What the simulator needs from an engine beyond [`Protocol`] (whose lifecycle, `restore`
/// and the durable state's keyed layout, it runs exactly as the node does).
pub trait SimEngine: Protocol {
    /// The engine's parameters for node `me` of the cluster.
    fn config(cluster: &Cluster, me: NodeId, seed: u64, knobs: &Knobs) -> Self::Config;

    /// A commit vote's height, block and signer, if `msg` is one (PBFT's COMMIT).
    fn commit_vote(_msg: &Self::Message) -> Option<(Height, BlockHash, NodeId)> {
        None
    }

    /// What a Byzantine node with `behaviour` sends instead of `msg` to `to`, into `out`
    /// (nothing, the message, or several). The default is an engine that has no Byzantine
    /// model (Raft: crash faults only).
    fn corrupt(
        msg: &Self::Message,
        _behaviour: Behaviour,
        _ctx: &mut Adversary<'_, Self::Message>,
        _to: usize,
        out: &mut Vec<Self::Message>,
    ) {
        out.push(msg.clone());
    }
}

impl SimEngine for Raft {
    fn config(cluster: &Cluster, me: NodeId, seed: u64, knobs: &Knobs) -> RaftConfig {
        RaftConfig {
            chain_id: cluster.genesis.chain_id.clone(),
            validators: cluster.genesis.validator_set(),
            me,
            election_ticks_min: 10,
            election_ticks_max: 20,
            heartbeat_ticks: 3,
            max_entries_per_message: 8,
            compact_after: 6,
            blocks_in_flight: knobs.blocks_in_flight,
            seed,
            planted_bug_vote_twice: knobs.raft_vote_twice,
        }
    }
}

/// The checkpoint interval of simulated PBFT networks.
pub const PBFT_CHECKPOINT_INTERVAL: u64 = 5;

impl SimEngine for Pbft {
    fn config(cluster: &Cluster, me: NodeId, _seed: u64, knobs: &Knobs) -> PbftConfig {
        PbftConfig {
            chain_id: cluster.genesis.chain_id.clone(),
            validators: cluster.genesis.validator_set(),
            me,
            checkpoint_interval: PBFT_CHECKPOINT_INTERVAL,
            view_change_ticks: 40,
            retransmit_ticks: 6,
            blocks_in_flight: knobs.blocks_in_flight,
            planted_bug_small_quorum: knobs.pbft_small_quorum,
            planted_bug_unbounded_checkpoints: knobs.pbft_unbounded_checkpoints,
        }
    }

    fn commit_vote(msg: &PbftMessage) -> Option<(Height, BlockHash, NodeId)> {
        match msg {
            PbftMessage::Commit(c) => Some((c.body.seq, c.body.block_hash, c.author)),
            _ => None,
        }
    }

    fn corrupt(
        msg: &PbftMessage,
        behaviour: Behaviour,
        adv: &mut Adversary<'_, PbftMessage>,
        to: usize,
        out: &mut Vec<PbftMessage>,
    ) {
        corrupt_pbft(msg, behaviour, adv, to, PBFT_CHECKPOINT_INTERVAL, out);
    }
}
