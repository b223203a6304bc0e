//! Mempool behaviour: per-sender nonce order, gaps, pruning on commit, dropped reasons.

use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    BlockParams, ConsensusKind, Ledger, MemoryStore, Mempool, MempoolConfig, Payload,
    SignedTransaction, TxRejection, VerifiedTransaction,
};

fn v(t: SignedTransaction) -> VerifiedTransaction {
    VerifiedTransaction::trusted(t)
}

#[test]
fn candidates_follow_nonce_order_and_wait_at_gaps() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 3, 1_000);
    let l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let mut pool = Mempool::new(MempoolConfig::default());
    let (a, b) = (&c.accounts[1], &c.accounts[2]);
    let to = c.accounts[0].public_key();
    // a's nonces arrive out of order; b has a gap at 1.
    for t in [
        c.transfer(a, 2, to, 1),
        c.transfer(b, 0, to, 1),
        c.transfer(a, 0, to, 1),
        c.transfer(b, 2, to, 1),
        c.transfer(a, 1, to, 1),
    ] {
        pool.insert(v(t), &l).expect("io").expect("admitted");
    }
    let picked: Vec<(u8, u64)> = pool
        .candidates(&l, 100)
        .expect("io")
        .iter()
        .map(|t| {
            (
                if t.tx().sender == a.public_key() {
                    b'a'
                } else {
                    b'b'
                },
                t.tx().nonce,
            )
        })
        .collect();
    // a first (its oldest transaction arrived first), all three in order; b only nonce 0.
    assert_eq!(picked, vec![(b'a', 0), (b'a', 1), (b'a', 2), (b'b', 0)]);
    assert_eq!(
        pool.candidates(&l, 2).expect("io").len(),
        2,
        "max_txs holds"
    );
}

#[test]
fn commit_prunes_included_and_stale_and_keeps_reasons() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 3, 10);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let mut pool = Mempool::new(MempoolConfig::default());
    let (admin, a, b) = (&c.accounts[0], &c.accounts[1], &c.accounts[2]);
    let to = admin.public_key();
    let a0 = v(c.transfer(a, 0, to, 4));
    let a1 = v(c.transfer(a, 1, to, 4));
    let a2_too_much = v(c.transfer(a, 2, to, 4)); // only 2 left by then
    let a3 = v(c.transfer(a, 3, to, 1));
    let b0 = v(c.transfer(b, 0, to, 1));
    for t in [&a0, &a1, &a2_too_much, &a3, &b0] {
        pool.insert(t.clone(), &l).expect("io").expect("admitted");
    }
    assert_eq!(pool.len(), 5);
    let bytes_before = pool.bytes();
    let cands = pool.candidates(&l, 100).expect("io");
    let built = l
        .build_block(
            &cands,
            BlockParams {
                proposer: c.validators[0].public_key(),
                round: 1,
                timestamp_ms: 0,
                max_txs: 100,
            },
        )
        .expect("build");
    // a2 fails on balance; a3 then has a nonce gap; both are dropped with reasons.
    assert_eq!(built.block.txs.len(), 3);
    let cascaded = pool.drop_rejected(&built.dropped);
    assert!(
        cascaded
            .iter()
            .all(|(_, r)| matches!(r, TxRejection::PredecessorDropped { .. }))
    );
    assert_eq!(
        pool.rejection(&a2_too_much.id()),
        Some(&TxRejection::InsufficientBalance {
            available: 2,
            needed: 4
        })
    );
    assert_eq!(
        pool.rejection(&a3.id()),
        Some(&TxRejection::PredecessorDropped {
            dropped_nonce: 2,
            got: 3
        })
    );
    let ids = built.execution.tx_ids().to_vec();
    let block = built.block.clone();
    let cert = c.certify(&built.block);
    l.commit(built.block, cert, built.execution)
        .expect("commit");
    pool.on_block_committed(&block, &ids, &l).expect("io");
    assert!(pool.is_empty(), "everything included or dropped");
    assert_eq!(pool.bytes(), 0);
    assert!(bytes_before > 0);

    // A transaction replaced by a different one with the same nonce is pruned as stale, and
    // senders that lose membership lose their pending transactions.
    let b1_local = v(c.transfer(b, 1, to, 1));
    pool.insert(b1_local.clone(), &l)
        .expect("io")
        .expect("admitted");
    let b1_elsewhere = v(c.transfer(b, 1, to, 2));
    let remove_b = v(c.tx(
        admin,
        0,
        Payload::RemoveMember {
            account: b.public_key(),
        },
    ));
    let a_next = v(c.transfer(a, 2, to, 1));
    pool.insert(a_next.clone(), &l)
        .expect("io")
        .expect("admitted");
    let (block, ids) = c.commit(&mut l, &[b1_elsewhere, remove_b]).expect("commit");
    let dropped = pool.on_block_committed(&block, &ids, &l).expect("io");
    assert_eq!(
        dropped,
        vec![(
            b1_local.id(),
            TxRejection::NotMember {
                sender: b.public_key()
            }
        )]
    );
    assert!(pool.contains(&a_next.id()), "other senders are untouched");
}

#[test]
fn rejection_memory_is_bounded() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 2, 10);
    let mut pool = Mempool::new(MempoolConfig {
        rejections_kept: 3,
        ..MempoolConfig::default()
    });
    let ids: Vec<_> = (0..5)
        .map(|n| v(c.transfer(&c.accounts[1], n, c.accounts[0].public_key(), 1)).id())
        .collect();
    let _ = pool.drop_rejected(
        &ids.iter()
            .map(|id| (*id, TxRejection::BadSignature))
            .collect::<Vec<_>>(),
    );
    assert!(pool.rejection(&ids[0]).is_none() && pool.rejection(&ids[1]).is_none());
    assert!(ids[2..].iter().all(|id| pool.rejection(id).is_some()));
}

#[test]
fn a_competing_commit_drops_only_the_stale_nonce() {
    // The pool holds nonces 1 and 2 of a sender; another transaction with nonce 1 (gossiped
    // elsewhere) commits. Our nonce 1 is stale; our nonce 2 is now exactly next and must stay.
    let c = TestChain::new(ConsensusKind::Raft, 1, 2, 100);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let a = &c.accounts[1];
    let to = c.accounts[0].public_key();
    c.commit(&mut l, &[v(c.transfer(a, 0, to, 1))])
        .expect("commit");
    let mut pool = Mempool::new(MempoolConfig::default());
    let ours1 = v(c.transfer(a, 1, to, 1));
    let ours2 = v(c.transfer(a, 2, to, 1));
    pool.insert(ours1.clone(), &l)
        .expect("io")
        .expect("admitted");
    pool.insert(ours2.clone(), &l)
        .expect("io")
        .expect("admitted");
    let (block, ids) = c
        .commit(&mut l, &[v(c.transfer(a, 1, to, 2))])
        .expect("commit");
    let dropped = pool.on_block_committed(&block, &ids, &l).expect("io");
    assert_eq!(
        dropped,
        vec![(
            ours1.id(),
            TxRejection::StaleNonce {
                expected: 2,
                got: 1
            }
        )]
    );
    assert!(pool.contains(&ours2.id()), "the next nonce stays");
    assert_eq!(pool.candidates(&l, 10).expect("io"), vec![ours2]);
}

#[test]
fn only_transactions_at_their_senders_next_nonce_count_as_executable() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 3, 1_000);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let mut pool = Mempool::new(MempoolConfig::default());
    let a = &c.accounts[1];
    let to = c.accounts[0].public_key();
    assert!(!pool.has_executable(), "empty");
    // A nonce gap: pending, but nothing a block could take.
    pool.insert(v(c.transfer(a, 1, to, 1)), &l)
        .expect("io")
        .expect("admitted");
    assert!(!pool.has_executable(), "only a gap");
    // The missing nonce arrives: executable.
    let t0 = c.transfer(a, 0, to, 1);
    pool.insert(v(t0.clone()), &l)
        .expect("io")
        .expect("admitted");
    assert!(pool.has_executable());
    // Nonce 0 commits elsewhere (a block from another proposer): nonce 1 is next, executable.
    let (block, ids) = c.commit(&mut l, &[v(t0)]).expect("commit");
    pool.on_block_committed(&block, &ids, &l).expect("io");
    assert_eq!(pool.len(), 1);
    assert!(pool.has_executable(), "the former gap is next now");
    // Dropping it leaves nothing.
    let id = pool.oldest(1).next().expect("one").id();
    pool.drop_rejected(&[(id, TxRejection::MempoolFull)]);
    assert!(!pool.has_executable() && pool.is_empty());
}
