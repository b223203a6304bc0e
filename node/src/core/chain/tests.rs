//! The chain's validate → execute → commit path: reuse of executions, held heights, block
//! sync's checks, and pipelined blocks.
use super::*;
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{ConsensusKind, MemoryStore};

/// Verifies every transaction it is shown and counts them.
#[derive(Default)]
struct CountingCheck {
    verified: usize,
}

impl TxCheck for CountingCheck {
    fn check_block_txs(&mut self, txs: &[SignedTransaction]) -> Result<(), (TxId, TxRejection)> {
        for t in txs {
            t.verify_signature()
                .map_err(|_| (t.id(), TxRejection::BadSignature))?;
            self.verified += 1;
        }
        Ok(())
    }
}

fn setup() -> (TestChain, Chain<MemoryStore>, Chain<MemoryStore>) {
    let c = TestChain::new(ConsensusKind::Pbft, 4, 3, 1_000);
    let a = Chain::new(Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("a"));
    let b = Chain::new(Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("b"));
    (c, a, b)
}

fn next(c: &TestChain, chain: &mut Chain<MemoryStore>, nonce: u64) -> Block {
    let tx = c.transfer(&c.accounts[1], nonce, c.accounts[2].public_key(), 1);
    let h = chain.built_to() + 1;
    let built = chain
        .build(&[VerifiedTransaction::trusted(tx)], c.params(h))
        .expect("build")
        .expect("room ahead");
    chain.built(built.execution);
    built.block
}

#[test]
fn a_validated_block_executes_once_and_commits() {
    let (c, mut a, mut b) = setup();
    let block = next(&c, &mut a, 0);
    let mut check = CountingCheck::default();
    assert_eq!(
        b.validate(block.clone(), u64::MAX / 2, &mut check)
            .expect("io"),
        Validation::Valid
    );
    let cert = c.certify(&block);
    match b.commit(block.clone(), cert, &mut check).expect("io") {
        CommitOutcome::Applied(done) => {
            assert_eq!(done.len(), 1);
            assert_eq!(done[0].hash, block.hash());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        check.verified, 1,
        "verified at validation, not again at commit"
    );
    // The same block again is already held; another block at that height is invalid.
    assert!(matches!(
        b.commit(block.clone(), c.certify(&block), &mut check)
            .expect("io"),
        CommitOutcome::AlreadyHeld
    ));
    let mut other = block.clone();
    other.header.timestamp_ms += 1;
    assert!(matches!(
        b.validate(other, u64::MAX / 2, &mut check).expect("io"),
        Validation::Invalid(_)
    ));
}

#[test]
fn pipelined_blocks_validate_on_the_ones_below_and_commit_in_order() {
    let (c, mut a, mut b) = setup();
    let mut check = CountingCheck::default();
    // `a` leads: it builds block 2 on block 1 before 1 commits.
    let one = next(&c, &mut a, 0);
    let two = next(&c, &mut a, 1);
    assert_eq!(a.built_to(), 2);
    assert_eq!(two.header.prev_hash, one.hash());
    // `b` validates 2 only on its execution of 1; without it, 2 waits.
    assert_eq!(
        b.validate(two.clone(), u64::MAX / 2, &mut check)
            .expect("io"),
        Validation::Later
    );
    for block in [&one, &two] {
        assert_eq!(
            b.validate(block.clone(), u64::MAX / 2, &mut check)
                .expect("io"),
            Validation::Valid
        );
    }
    // A block on a validated block 1 that lost its height is invalid.
    let mut other_one = one.clone();
    other_one.header.timestamp_ms += 1;
    for block in [&one, &two] {
        for chain in [&mut a, &mut b] {
            let cert = c.certify(block);
            assert!(matches!(
                chain.commit(block.clone(), cert, &mut check).expect("io"),
                CommitOutcome::Applied(_)
            ));
        }
    }
    assert_eq!(a.tip(), b.tip());
    assert_eq!(a.built_to(), 2, "nothing left ahead");
    assert_eq!(
        check.verified, 2,
        "each transaction verified once, at validation"
    );
    let mut three = next(&c, &mut a, 2);
    three.header.prev_hash = other_one.hash();
    three.header.height = 2;
    assert!(matches!(
        b.validate(three, u64::MAX / 2, &mut check).expect("io"),
        Validation::Invalid(_)
    ));
}

#[test]
fn blocks_built_ahead_are_dropped_when_another_block_takes_their_height() {
    let (c, mut a, mut b) = setup();
    let mut check = CountingCheck::default();
    let mine = next(&c, &mut a, 0);
    let _on_mine = next(&c, &mut a, 1);
    assert_eq!((a.built_to(), a.ahead_txs()), (2, 2));
    // Another leader's block 1 commits (another transaction).
    let tx = c.transfer(&c.accounts[2], 0, c.accounts[1].public_key(), 1);
    let theirs = b
        .build(&[VerifiedTransaction::trusted(tx)], c.params(1))
        .expect("build")
        .expect("room ahead")
        .block;
    assert_ne!(theirs.hash(), mine.hash());
    let cert = c.certify(&theirs);
    a.commit(theirs, cert, &mut check).expect("io");
    assert_eq!(
        (a.built_to(), a.ahead_txs()),
        (1, 0),
        "both built ahead lost"
    );
    // A new request for a height drops what was built at and above it.
    let _ = next(&c, &mut a, 1);
    let _ = next(&c, &mut a, 2);
    a.drop_ahead_from(3);
    assert_eq!(a.built_to(), 2);
}

#[test]
fn blocks_ahead_of_the_ledger_are_held_then_applied_in_order() {
    let (c, mut a, mut b) = setup();
    let mut check = CountingCheck::default();
    let mut blocks = Vec::new();
    for n in 0..3 {
        let block = next(&c, &mut a, n);
        let cert = c.certify(&block);
        a.commit(block.clone(), cert.clone(), &mut check)
            .expect("io");
        blocks.push((block, cert));
    }
    // Validation of 3 and commit of 3 arrive before the ledger has 1 and 2.
    assert_eq!(
        b.validate(blocks[2].0.clone(), u64::MAX / 2, &mut check)
            .expect("io"),
        Validation::Later
    );
    assert!(matches!(
        b.commit(blocks[2].0.clone(), blocks[2].1.clone(), &mut check)
            .expect("io"),
        CommitOutcome::Held(3)
    ));
    // Block sync brings 1; a wrong certificate is the peer's fault; then 2 unblocks 3.
    let (b1, c1) = blocks[0].clone();
    let mut forged = c1.clone();
    if let CommitCertificate::Pbft(p) = &mut forged {
        p.votes.truncate(1);
    }
    assert!(
        b.apply_synced(b1.clone(), forged, &mut check)
            .expect("io")
            .is_err()
    );
    b.apply_synced(b1, c1, &mut check).expect("io").expect("ok");
    assert!(b.take_ready_validations().is_empty(), "3 is not next yet");
    let (b2, c2) = blocks[1].clone();
    b.apply_synced(b2, c2, &mut check).expect("io").expect("ok");
    assert_eq!(b.take_ready_validations().len(), 1, "3 is next now");
    let done = b.apply_held(&mut check).expect("io");
    assert_eq!(done.len(), 1);
    assert_eq!(b.tip().height, 3);
    assert_eq!(b.tip().hash, a.tip().hash);
}

#[test]
fn a_synced_block_with_an_altered_signature_blames_the_peer() {
    let (c, mut a, mut b) = setup();
    let mut check = CountingCheck::default();
    let block = next(&c, &mut a, 0);
    let cert = c.certify(&block);
    let mut altered = block.clone();
    altered.txs[0].signature.0[63] ^= 0x40;
    assert_eq!(
        altered.hash(),
        block.hash(),
        "the hash does not cover signatures"
    );
    assert!(
        b.apply_synced(altered, cert.clone(), &mut check)
            .expect("not fatal")
            .is_err()
    );
    assert_eq!(b.tip().height, 0);
    b.apply_synced(block, cert, &mut check)
        .expect("io")
        .expect("the real one applies");
    // Consensus committing another block at a height the ledger holds is fatal.
    let mut other = next(&c, &mut a, 1);
    other.header.height = 1;
    let cert = c.certify(&other);
    assert!(matches!(
        b.commit(other, cert, &mut check),
        Err(Fatal::Fork { height: 1, .. })
    ));
}

#[test]
fn a_committed_block_that_does_not_execute_is_fatal() {
    let (c, mut a, mut b) = setup();
    let mut check = CountingCheck::default();
    let block = next(&c, &mut a, 0);
    let mut bad = block.clone();
    bad.header.state_root = cairn_crypto::Hash::ZERO;
    let cert = c.certify(&bad);
    assert!(matches!(
        b.commit(bad, cert, &mut check),
        Err(Fatal::Diverged { height: 1, .. })
    ));
    assert_eq!(b.tip().height, 0);
}
