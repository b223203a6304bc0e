//! Step tests, named after the sections of the Raft paper they check, one file per part:
//! [`election`] (§5.2), [`replication`] (§5.3–5.4), [`snapshot`] (§7), and [`refusals`].

mod election;
mod refusals;
mod replication;
mod snapshot;

use cairn_crypto::Hash;
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    Block, BlockHash, BlockHeader, CommitCertificate, ConsensusKind, RaftCertificate,
    RaftCommitStatement,
};

use super::*;
use crate::DurableState;
pub(super) use crate::Refusal;

pub(super) fn chain(n: usize) -> TestChain {
    TestChain::new(ConsensusKind::Raft, n, 1, 1)
}

pub(super) fn cfg(c: &TestChain, me: u32) -> RaftConfig {
    RaftConfig {
        chain_id: c.genesis.chain_id.clone(),
        validators: c.genesis.validator_set(),
        me: NodeId(me),
        election_ticks_min: 10,
        election_ticks_max: 20,
        heartbeat_ticks: 3,
        max_entries_per_message: 16,
        compact_after: 1000,
        blocks_in_flight: 1,
        seed: 7,
        planted_bug_vote_twice: false,
    }
}

pub(super) fn node(c: &TestChain, me: u32, durable: &RaftDurable, height: Height) -> Raft {
    Raft::restore(
        cfg(c, me),
        c.validators[me as usize].clone(),
        durable,
        height,
    )
}

pub(super) fn step(r: &mut Raft, input: Input<RaftMessage>) -> Out {
    let mut out = Vec::new();
    r.step(input, &mut out);
    out
}

pub(super) fn msg(from: u32, m: RaftMessage) -> Input<RaftMessage> {
    Input::Message {
        from: NodeId(from),
        msg: m,
    }
}

pub(super) fn block(height: Height, tag: u64) -> Block {
    Block {
        header: BlockHeader {
            chain_id: "cairn-test".into(),
            height,
            prev_hash: BlockHash(Hash::ZERO),
            timestamp_ms: tag,
            tx_root: Hash::ZERO,
            tx_count: 0,
            state_root: Hash::ZERO,
            proposer: cairn_crypto::PublicKey([0; 32]),
            round: 0,
            validators_hash: Hash::ZERO,
            next_validators: None,
        },
        txs: vec![],
    }
}

pub(super) fn entry(term: u64, height: Option<Height>) -> Entry {
    Entry {
        term: Term(term),
        block: height.map(|h| block(h, term)),
    }
}

/// Ticks until the node does something other than count time.
pub(super) fn tick_until_output(r: &mut Raft) -> Out {
    for _ in 0..100 {
        let out = step(r, Input::Tick { pending_work: true });
        if !out.is_empty() {
            return out;
        }
    }
    panic!("no output after 100 ticks");
}

pub(super) fn position(
    out: &Out,
    pred: impl Fn(&Output<RaftMessage, RaftPersist>) -> bool,
) -> Option<usize> {
    out.iter().position(pred)
}

pub(super) fn is_persist(o: &Output<RaftMessage, RaftPersist>) -> bool {
    matches!(o, Output::Persist { .. })
}

pub(super) fn sent(out: &Out) -> Vec<RaftMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { msg, .. } | Output::Broadcast { msg } => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// A node made leader of `term` in a 3-node cluster, with its outputs.
pub(super) fn leader(c: &TestChain, durable: &RaftDurable) -> (Raft, Out) {
    elect(node(c, 0, durable, 0))
}

/// Node 0 of a 3-node cluster, made leader of the next term, with its outputs.
pub(super) fn elect(mut r: Raft) -> (Raft, Out) {
    tick_until_output(&mut r); // PreVote
    let t = r.term;
    step(
        &mut r,
        msg(
            1,
            RaftMessage::PreVoteResponse {
                term: t.next(),
                granted: true,
            },
        ),
    );
    let out = step(
        &mut r,
        msg(
            1,
            RaftMessage::RequestVoteResponse {
                term: t.next(),
                granted: true,
            },
        ),
    );
    assert_eq!(r.status().role, Role::Leader);
    (r, out)
}
