//! The engines under simulation: the cluster they run in and each engine's parameters.

use std::collections::BTreeMap;

use cairn_consensus::pbft::{Pbft, PbftConfig, PbftMessage};
use cairn_consensus::raft::{Raft, RaftConfig};
use cairn_consensus::{NodeId, Protocol, Seq};
use cairn_crypto::{Hash, SigningKey};
use cairn_ledger::testkit::{TestChain, key};
use cairn_ledger::{BlockHash, ConsensusKind, Genesis, Height, Validator, ValidatorSet};

use super::adversary::{Adversary, Behaviour, corrupt_pbft};
use super::config::Knobs;

/// Blocks per epoch in simulated networks: validator-set changes take effect at its
/// multiples (PBFT's checkpoint interval).
pub const EPOCH_LENGTH: u64 = PBFT_CHECKPOINT_INTERVAL;

/// The simulated cluster's fixed facts.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Genesis (the first validators, chain id, consensus kind).
    pub genesis: Genesis,
    /// Every node's key, by node index: the genesis validators', then the spares'.
    pub keys: Vec<SigningKey>,
    /// Validator-set changes: boundary height → the members in force after it.
    pub changes: BTreeMap<Height, Vec<usize>>,
}

/// A validator set of the simulated chain and the heights it orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// The last height of the set before it (0 for the genesis set).
    pub base: Height,
    /// Its members, as node indices in set order.
    pub members: Vec<usize>,
}

impl Epoch {
    /// The position of node `node` in the set, its engine's `NodeId`.
    pub fn id_of(&self, node: usize) -> Option<NodeId> {
        self.members
            .iter()
            .position(|m| *m == node)
            .map(|p| NodeId(p as u32))
    }

    /// The node behind a `NodeId` of this set.
    pub fn node(&self, id: NodeId) -> Option<usize> {
        self.members.get(id.index()).copied()
    }
}

impl Cluster {
    /// A cluster of `n` validators running `kind`.
    pub fn new(kind: ConsensusKind, n: usize) -> Cluster {
        Cluster::with_changes(kind, n, 0, &[])
    }

    /// A cluster of `n` validators and `spares` further nodes, whose validator set changes
    /// as `changes` says.
    pub fn with_changes(
        kind: ConsensusKind,
        n: usize,
        spares: usize,
        changes: &[(Height, Vec<usize>)],
    ) -> Cluster {
        let chain = TestChain::new(kind, n, 1, 1);
        let mut keys = chain.validators;
        keys.extend((0..spares as u64).map(|i| key("spare", i)));
        Cluster {
            genesis: chain.genesis,
            keys,
            changes: changes.iter().cloned().collect(),
        }
    }

    /// The validator list of `members`, as headers commit to it.
    pub fn validators(&self, members: &[usize]) -> Vec<Validator> {
        members
            .iter()
            .map(|&m| Validator {
                name: format!("node{m}"),
                public_key: self.keys[m].public_key(),
            })
            .collect()
    }

    /// The keys of `members`, with the quorum arithmetic.
    pub fn set_of(&self, members: &[usize]) -> ValidatorSet {
        ValidatorSet::new(members.iter().map(|&m| self.keys[m].public_key()).collect())
    }

    /// The epoch in force for the block at `height`.
    pub fn epoch_at(&self, height: Height) -> Epoch {
        match self.changes.range(..height).next_back() {
            Some((base, members)) => Epoch {
                base: *base,
                members: members.clone(),
            },
            None => Epoch {
                base: 0,
                members: (0..self.genesis.validators.len()).collect(),
            },
        }
    }

    /// The epoch that starts after `base`.
    pub fn epoch_after(&self, base: Height) -> Epoch {
        self.epoch_at(base.saturating_add(1))
    }

    /// What the header at `height` must carry: the hash of the list in force, and the next
    /// list where the set changes after it.
    pub fn header_sets(&self, height: Height) -> (Hash, Option<Vec<Validator>>) {
        let list = self.validators(&self.epoch_at(height).members);
        let next = self.changes.get(&height).map(|m| self.validators(m));
        (cairn_ledger::genesis::validators_hash(&list), next)
    }

    /// Whether the set changes after a height above `tip` and below `height`: a block at
    /// `height` would be above an uncommitted handover.
    pub fn handover_between(&self, tip: Height, height: Height) -> bool {
        tip + 1 < height && self.changes.range(tip + 1..height).next().is_some()
    }

    /// The context PBFT messages of `epoch` are signed in.
    pub fn context(&self, epoch: &Epoch) -> String {
        if epoch.base == 0 {
            self.genesis.chain_id.clone()
        } else {
            format!("{}#{}", self.genesis.chain_id, epoch.base)
        }
    }
}

/// What the simulator needs from an engine beyond [`Protocol`] (whose lifecycle, `restore`
/// and the durable state's keyed layout, it runs exactly as the node does).
pub trait SimEngine: Protocol {
    /// The engine's parameters for member `me` of `epoch`.
    fn config(
        cluster: &Cluster,
        epoch: &Epoch,
        me: NodeId,
        seed: u64,
        knobs: &Knobs,
    ) -> Self::Config;

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
    fn config(
        cluster: &Cluster,
        epoch: &Epoch,
        me: NodeId,
        seed: u64,
        knobs: &Knobs,
    ) -> RaftConfig {
        RaftConfig {
            chain_id: cluster.genesis.chain_id.clone(),
            validators: cluster.set_of(&epoch.members),
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
    fn config(
        cluster: &Cluster,
        epoch: &Epoch,
        me: NodeId,
        _seed: u64,
        knobs: &Knobs,
    ) -> PbftConfig {
        PbftConfig {
            chain_id: cluster.genesis.chain_id.clone(),
            validators: cluster.set_of(&epoch.members),
            base: Seq(epoch.base),
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
