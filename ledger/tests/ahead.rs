//! Blocks built and executed on top of blocks not committed yet (pipelined consensus): they
//! see their parents' changes, commit after them with the execution made on top, and an
//! execution on a parent that did not commit is refused.

use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    BlockError, ConsensusKind, Execution, Ledger, MemoryStore, Payload, StateView, Trust,
    VerifiedTransaction,
};

fn setup() -> (TestChain, Ledger<MemoryStore>, Ledger<MemoryStore>) {
    let c = TestChain::new(ConsensusKind::Raft, 3, 3, 100);
    let a = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("a");
    let b = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("b");
    (c, a, b)
}

fn v(tx: cairn_ledger::SignedTransaction) -> VerifiedTransaction {
    VerifiedTransaction::trusted(tx)
}

#[test]
fn a_block_built_on_one_in_flight_sees_its_changes_and_commits_after_it() {
    let (c, mut a, mut b) = setup();
    let (from, to) = (&c.accounts[1], c.accounts[2].public_key());
    // Block 1 spends nonce 0; block 2, built before 1 commits, must start at nonce 1.
    let one = a
        .build_block(&[v(c.transfer(from, 0, to, 10))], c.params(1))
        .expect("build 1");
    assert!(one.dropped.is_empty());
    let ahead: Vec<&Execution> = vec![&one.execution];
    let view = a.view_on(&ahead);
    let after = view
        .account(&from.public_key())
        .expect("io")
        .expect("exists");
    assert_eq!(
        (after.nonce, after.balance),
        (1, 90),
        "the view sees block 1"
    );
    let stale = a
        .build_block_on(&ahead, &[v(c.transfer(from, 0, to, 1))], c.params(2))
        .expect("build");
    assert_eq!(
        stale.dropped.len(),
        1,
        "nonce 0 is used by the block in flight"
    );
    let two = a
        .build_block_on(&ahead, &[v(c.transfer(from, 1, to, 90))], c.params(2))
        .expect("build 2");
    assert!(two.dropped.is_empty(), "{:?}", two.dropped);
    assert_eq!(two.block.header.height, 2);
    assert_eq!(two.block.header.prev_hash, one.block.hash());
    assert_eq!(two.execution.parent(), one.block.hash());

    // Block 2's execution is not block 1's turn.
    let cert2 = c.certify(&two.block);
    assert!(matches!(
        a.commit(two.block.clone(), cert2.clone(), two.execution.clone()),
        Err(BlockError::ExecutionMismatch)
    ));
    let cert1 = c.certify(&one.block);
    a.commit(one.block.clone(), cert1.clone(), one.execution.clone())
        .expect("commit 1");
    a.commit(two.block.clone(), cert2.clone(), two.execution)
        .expect("commit 2 with the execution made on top of 1");

    // Another ledger executes 2 on its own execution of 1, and both agree.
    let e1 = b.execute_block(&one.block, Trust::Verify).expect("exec 1");
    let e2 = b
        .execute_block_on(&[&e1], &two.block, Trust::Verify)
        .expect("exec 2 on 1");
    assert!(matches!(
        b.execute_block(&two.block, Trust::Verify),
        Err(BlockError::WrongHeight { .. })
    ));
    b.commit(one.block, cert1, e1).expect("b commits 1");
    b.commit(two.block, cert2, e2).expect("b commits 2");
    assert_eq!(a.tip(), b.tip());
    let end = b.account(&from.public_key()).expect("io").expect("exists");
    assert_eq!((end.nonce, end.balance), (2, 0));
}

#[test]
fn an_execution_on_a_parent_that_lost_is_refused() {
    let (c, mut a, b) = setup();
    let (from, to) = (&c.accounts[1], c.accounts[2].public_key());
    let one = a
        .build_block(&[v(c.transfer(from, 0, to, 10))], c.params(1))
        .expect("build 1");
    let two = a
        .build_block_on(
            &[&one.execution],
            &[v(c.transfer(from, 1, to, 10))],
            c.params(2),
        )
        .expect("build 2");
    // Another block wins height 1 (another leader's, moving other funds).
    let other = b
        .build_block(
            &[v(c.tx(
                &c.accounts[2],
                0,
                Payload::Transfer {
                    to: from.public_key(),
                    amount: 5,
                },
            ))],
            c.params(1),
        )
        .expect("other 1");
    assert_ne!(other.block.hash(), one.block.hash());
    let cert = c.certify(&other.block);
    a.commit(other.block, cert, other.execution)
        .expect("commit other 1");
    // Block 2 and its execution were made on the block that lost: neither goes in.
    let cert2 = c.certify(&two.block);
    assert!(matches!(
        a.commit(two.block.clone(), cert2, two.execution),
        Err(BlockError::ExecutionMismatch)
    ));
    assert!(matches!(
        a.execute_block(&two.block, Trust::Verify),
        Err(BlockError::WrongParent { .. })
    ));
    assert_eq!(a.tip().height, 1);
}
