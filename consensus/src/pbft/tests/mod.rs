//! Step tests, named after the sections of Castro & Liskov's PBFT paper they check, one file
//! per section: [`normal`] (§4.2), [`checkpoints`] (§4.3), [`view_change`] (§4.4).

mod checkpoints;
mod epochs;
mod normal;
mod view_change;

use cairn_crypto::{Domain, Hash, codec};
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    Block, BlockHash, BlockHeader, CommitCertificate, ConsensusKind, PbftCommitStatement,
};

use super::*;
pub(super) use crate::Refusal;

pub(super) fn chain() -> TestChain {
    TestChain::new(ConsensusKind::Pbft, 4, 1, 1)
}

pub(super) fn cfg(c: &TestChain, me: u32) -> PbftConfig {
    PbftConfig {
        chain_id: c.genesis.chain_id.clone(),
        validators: c.genesis.validator_set(),
        base: Seq(0),
        me: NodeId(me),
        checkpoint_interval: 2,
        view_change_ticks: 10,
        retransmit_ticks: 1000,
        blocks_in_flight: 1,
        planted_bug_small_quorum: false,
        planted_bug_unbounded_checkpoints: false,
    }
}

pub(super) fn replica(c: &TestChain, me: u32, height: Height) -> Pbft {
    Pbft::restore(
        cfg(c, me),
        c.validators[me as usize].clone(),
        &PbftDurable::default(),
        height,
    )
}

pub(super) fn step(r: &mut Pbft, input: Input<PbftMessage>) -> Out {
    let mut out = Vec::new();
    r.step(input, &mut out);
    out
}

pub(super) fn from(n: u32, msg: PbftMessage) -> Input<PbftMessage> {
    Input::Message {
        from: NodeId(n),
        msg,
    }
}

pub(super) fn sign<T: serde::Serialize + Clone>(
    c: &TestChain,
    author: u32,
    domain: Domain,
    body: &T,
) -> Signed<T> {
    sign_in(c, c.chain_id(), author, domain, body)
}

/// Signed in `context` (an instance's, see [`PbftConfig::context`]).
pub(super) fn sign_in<T: serde::Serialize + Clone>(
    c: &TestChain,
    context: &str,
    author: u32,
    domain: Domain,
    body: &T,
) -> Signed<T> {
    Signed {
        author: NodeId(author),
        body: body.clone(),
        signature: c.validators[author as usize].sign(domain, context, &codec::encode(body)),
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

pub(super) fn vote(view: u64, b: &Block) -> Vote {
    Vote {
        view: View(view),
        seq: Seq(b.header.height),
        digest: b.hash(),
    }
}

pub(super) fn pre_prepare(c: &TestChain, view: u64, b: &Block) -> PbftMessage {
    let author = primary(View(view), 4).0;
    PbftMessage::PrePrepare {
        vote: sign(c, author, PRE_PREPARE, &vote(view, b)),
        block: b.clone(),
    }
}

pub(super) fn prepare(c: &TestChain, author: u32, view: u64, b: &Block) -> PbftMessage {
    PbftMessage::Prepare(sign(c, author, PREPARE, &vote(view, b)))
}

pub(super) fn commit(c: &TestChain, author: u32, view: u64, b: &Block) -> PbftMessage {
    let body = PbftCommitStatement {
        view,
        seq: b.header.height,
        block_hash: b.hash(),
    };
    PbftMessage::Commit(sign(c, author, cairn_ledger::domains::PBFT_COMMIT, &body))
}

pub(super) fn broadcasts(out: &Out) -> Vec<&PbftMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast { msg } => Some(msg),
            _ => None,
        })
        .collect()
}

pub(super) fn first(
    out: &Out,
    pred: impl Fn(&Output<PbftMessage, PbftPersist>) -> bool,
) -> Option<usize> {
    out.iter().position(pred)
}

/// Replica 1 with block 1 pre-prepared by primary 0 and validated.
/// Exactly one refusal so far, for `reason`.
pub(super) fn refused_once(r: &Pbft, reason: Refusal, desc: &str) {
    let refused = r.status().refused;
    let all: Vec<_> = refused.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(all, vec![(reason, 1)], "{desc}");
}

pub(super) fn validated_replica(c: &TestChain) -> (Pbft, Block) {
    let mut r = replica(c, 1, 0);
    let b = block(1, 1);
    let out = step(&mut r, from(0, pre_prepare(c, 0, &b)));
    assert!(matches!(out[..], [Output::Validate { .. }]), "{out:?}");
    (r, b)
}
