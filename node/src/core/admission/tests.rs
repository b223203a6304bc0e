//! Admission, tested without processes: submission checks, re-announcement rules and budget,
//! verify once, the Raft standby, announcement routes.

use super::*;
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{ConsensusKind, Ledger, MemoryStore};

fn setup() -> (TestChain, Chain<MemoryStore>, Admission) {
    let c = TestChain::new(ConsensusKind::Raft, 3, 4, 1_000);
    let chain = Chain::new(Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open"));
    let a = Admission::new(
        MempoolConfig::default(),
        &c.genesis.chain_id,
        Arc::new(Metrics::new()),
    );
    (c, chain, a)
}

fn v(t: SignedTransaction) -> VerifiedTransaction {
    VerifiedTransaction::trusted(t)
}

fn gossiped(a: &mut Admission) -> Vec<TxId> {
    a.flush();
    a.take_ready()
        .into_iter()
        .flat_map(|(b, _)| b)
        .map(|t| t.id())
        .collect()
}

#[test]
fn submissions_are_checked_then_gossiped() {
    let (c, chain, mut a) = setup();
    let t0 = Instant::now();
    let to = c.accounts[0].public_key();
    let ok = c.transfer(&c.accounts[1], 0, to, 5);
    let broke = c.transfer(&c.accounts[2], 0, to, 5_000);
    let gap = c.transfer(&c.accounts[3], 4, to, 5);
    assert_eq!(
        a.submit(v(ok.clone()), &chain, t0)
            .expect("admitted")
            .view
            .status,
        TxStatus::Pending
    );
    let e = a.submit(v(broke), &chain, t0).expect_err("dry run");
    assert_eq!(e.code, ErrorCode::InsufficientBalance, "heard at once");
    a.submit(v(gap.clone()), &chain, t0).expect("a gap waits");
    assert_eq!(gossiped(&mut a), vec![ok.id(), gap.id()]);
    assert!(a.lookup(&ok.id()).is_some());
    // Shutting down: no more admissions, but what was admitted still goes out.
    a.stop_accepting();
    let late = c.transfer(&c.accounts[2], 0, to, 1);
    assert_eq!(
        a.submit(v(late), &chain, t0).expect_err("closed").status,
        503
    );
}

#[test]
fn pending_transactions_are_announced_again_until_they_leave() {
    let (c, chain, mut a) = setup();
    let t0 = Instant::now();
    let to = c.accounts[0].public_key();
    let gap = c.transfer(&c.accounts[1], 1, to, 5);
    // Held by gossip, not submitted here: still this node's to re-announce.
    a.on_gossip(vec![gap.clone()], false, chain.ledger(), Instant::now())
        .expect("io");
    let batch = a.next_batch().expect("a batch");
    let results = verify_transactions(batch, &c.genesis.chain_id);
    a.on_verified(results, chain.ledger(), t0).expect("io");
    assert!(gossiped(&mut a).is_empty(), "gossip spreads it; no echo");
    let round = |a: &mut Admission, at| {
        a.reannounce(&chain, at).expect("io");
        gossiped(a)
    };
    assert!(
        round(&mut a, t0 + Duration::from_secs(1)).is_empty(),
        "too soon"
    );
    assert_eq!(round(&mut a, t0 + REANNOUNCE_AFTER), vec![gap.id()]);
    assert!(
        round(&mut a, t0 + REANNOUNCE_AFTER).is_empty(),
        "once per period"
    );
    assert_eq!(
        round(&mut a, t0 + REANNOUNCE_AFTER * 2).len(),
        1,
        "and again"
    );
    // A resubmission re-announces at once, but not twice within a second.
    let t1 = t0 + REANNOUNCE_AFTER * 2 + Duration::from_secs(2);
    a.submit(v(gap.clone()), &chain, t1)
        .expect("duplicate is fine");
    a.submit(v(gap.clone()), &chain, t1)
        .expect("duplicate is fine");
    assert_eq!(gossiped(&mut a).len(), 1, "the resubmission, once");
    // Committed elsewhere: dropped from the schedule.
    let zero = c.transfer(&c.accounts[1], 0, to, 5);
    let mut ledger_chain = chain;
    let built = ledger_chain
        .build(&[v(zero), v(gap.clone())], c.params(1))
        .expect("build")
        .expect("room ahead");
    let cert = c.certify(&built.block);
    let ids = built.block.tx_ids();
    let mut check = NoCheck;
    ledger_chain
        .commit(built.block.clone(), cert, &mut check)
        .expect("commit");
    a.on_block_committed(&built.block, &ids, &ledger_chain, t1)
        .expect("io");
    a.reannounce(&ledger_chain, t1 + REANNOUNCE_AFTER * 10)
        .expect("io");
    assert!(gossiped(&mut a).is_empty());
}

#[test]
fn a_transaction_a_block_makes_executable_is_announced_at_once() {
    let (c, mut chain, mut a) = setup();
    let t0 = Instant::now();
    let to = c.accounts[0].public_key();
    let gap = c.transfer(&c.accounts[1], 1, to, 5);
    a.submit(v(gap.clone()), &chain, t0).expect("admitted");
    gossiped(&mut a);
    // Its predecessor commits in a block built elsewhere, two seconds later.
    let zero = c.transfer(&c.accounts[1], 0, to, 5);
    let built = chain
        .build(&[v(zero)], c.params(1))
        .expect("build")
        .expect("room ahead");
    let cert = c.certify(&built.block);
    chain
        .commit(built.block.clone(), cert, &mut NoCheck)
        .expect("commit");
    let t1 = t0 + Duration::from_secs(2);
    let ids = built.block.tx_ids();
    a.on_block_committed(&built.block, &ids, &chain, t1)
        .expect("io");
    assert_eq!(gossiped(&mut a), vec![gap.id()], "announced at once");
}

#[test]
fn an_executable_transaction_that_would_not_execute_is_dropped_not_kept() {
    let (c, mut chain, mut a) = setup();
    let t0 = Instant::now();
    let to = c.accounts[0].public_key();
    let sender = &c.accounts[1];
    // Nonce 0 spends almost everything; nonce 1 spends more than what is left. Both are
    // admitted (only the next nonce is dry-run at admission).
    let all_but_one = c.transfer(sender, 0, to, 999);
    let too_much = c.transfer(sender, 1, to, 500);
    a.submit(v(all_but_one.clone()), &chain, t0)
        .expect("admitted");
    a.submit(v(too_much.clone()), &chain, t0)
        .expect("a gap waits");
    gossiped(&mut a);
    let built = chain
        .build(&[v(all_but_one)], c.params(1))
        .expect("build")
        .expect("room ahead");
    let cert = c.certify(&built.block);
    chain
        .commit(built.block.clone(), cert, &mut NoCheck)
        .expect("commit");
    let ids = built.block.tx_ids();
    let dropped = a
        .on_block_committed(&built.block, &ids, &chain, t0)
        .expect("io");
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].0, too_much.id());
    assert_eq!(dropped[0].1.code(), "insufficient_balance");
    assert!(!a.mempool().has_executable(), "nothing left to order");
    assert!(gossiped(&mut a).is_empty(), "and nothing to announce");
    assert_eq!(
        a.lookup(&too_much.id()).map(|t| t.status),
        Some(TxStatus::Rejected)
    );
}

#[test]
fn a_known_id_with_another_signature_is_verified() {
    let (c, _, mut a) = setup();
    let to = c.accounts[0].public_key();
    let good = c.transfer(&c.accounts[1], 0, to, 1);
    assert!(a.check_block_txs(std::slice::from_ref(&good)).is_ok());
    let mut forged = good.clone();
    forged.signature.0[63] ^= 0x40;
    assert_eq!(
        forged.id(),
        good.id(),
        "the id does not cover the signature"
    );
    assert!(a.check_block_txs(&[forged]).is_err());
}

struct NoCheck;
impl TxCheck for NoCheck {
    fn check_block_txs(&mut self, _: &[SignedTransaction]) -> Result<(), (TxId, TxRejection)> {
        Ok(())
    }
}

#[test]
fn re_announcement_is_bounded_per_round() {
    let (c, chain, mut a) = setup();
    let t0 = Instant::now();
    let to = c.accounts[0].public_key();
    let mut n = 0;
    for acct in 1..4 {
        for nonce in 1..=200 {
            let t = c.transfer(&c.accounts[acct], nonce, to, 1);
            a.submit(v(t), &chain, t0).expect("admitted");
            n += 1;
        }
    }
    gossiped(&mut a);
    let later = t0 + REANNOUNCE_AFTER;
    a.reannounce(&chain, later).expect("io");
    assert_eq!(gossiped(&mut a).len(), n.min(REANNOUNCE_BUDGET));
}

#[test]
fn block_transactions_are_verified_once_and_bad_ones_named() {
    let (c, _, mut a) = setup();
    let to = c.accounts[0].public_key();
    let good = c.transfer(&c.accounts[1], 0, to, 1);
    let mut bad = c.transfer(&c.accounts[2], 0, to, 1);
    bad.signature.0[0] ^= 1;
    assert!(a.check_block_txs(std::slice::from_ref(&good)).is_ok());
    let before = a.metrics.verified_txs.get();
    assert!(a.check_block_txs(std::slice::from_ref(&good)).is_ok());
    assert_eq!(a.metrics.verified_txs.get(), before, "not verified twice");
    let err = a.check_block_txs(&[good, bad.clone()]).expect_err("bad");
    assert_eq!(err.0, bad.id());
}

/// A proposal that never commits (its primary was cut off and the view moved on) leaves its
/// transactions verified here but in no mempool. When they come back by gossip they must be
/// admitted, without a second verification: skipping them as known would strand them on the
/// node that admitted them (the PBFT chaos run, seed 1515, lost 11 acknowledged transactions
/// this way).
#[test]
fn gossip_of_a_transaction_verified_in_a_proposal_that_never_committed_is_admitted() {
    let (c, chain, mut a) = setup();
    let t0 = Instant::now();
    let to = c.accounts[0].public_key();
    let tx = c.transfer(&c.accounts[1], 0, to, 1);
    assert!(a.check_block_txs(std::slice::from_ref(&tx)).is_ok());
    assert!(
        !a.mempool().contains(&tx.id()),
        "validating is not admitting"
    );
    assert!(
        a.on_gossip(vec![tx.clone()], false, chain.ledger(), t0)
            .expect("io"),
        "said so"
    );
    assert!(a.mempool().contains(&tx.id()), "admitted from gossip");
    assert!(a.next_batch().is_none(), "not queued to verify again");
    // It is this node's to announce again now, like any other pending transaction.
    a.reannounce(&chain, t0 + REANNOUNCE_AFTER).expect("io");
    assert_eq!(gossiped(&mut a), vec![tx.id()]);
    // Another signature for the same id is not taken as verified.
    let mut forged = c.transfer(&c.accounts[2], 0, to, 1);
    a.check_block_txs(std::slice::from_ref(&forged))
        .expect("valid");
    forged.signature.0[63] ^= 0x40;
    a.on_gossip(vec![forged.clone()], false, chain.ledger(), t0)
        .expect("io");
    assert!(
        !a.mempool().contains(&forged.id()),
        "not admitted unverified"
    );
    assert_eq!(a.next_batch().map(|b| b.len()), Some(1), "queued to verify");
    // A Raft follower holds it in its standby like any other gossip, not skipped either.
    let (_, chain, mut follower) = setup();
    let other = c.transfer(&c.accounts[3], 0, to, 1);
    follower
        .check_block_txs(std::slice::from_ref(&other))
        .expect("valid");
    follower
        .on_gossip(vec![other], true, chain.ledger(), t0)
        .expect("io");
    assert_eq!(follower.standby_len(), 1);
}

#[test]
fn a_raft_follower_holds_gossip_unverified_announces_it_and_verifies_it_only_to_lead() {
    let (c, mut chain, mut a) = setup();
    let t0 = Instant::now();
    let to = c.accounts[0].public_key();
    let first = c.transfer(&c.accounts[1], 0, to, 5);
    let second = c.transfer(&c.accounts[1], 1, to, 5);
    let broke = c.transfer(&c.accounts[2], 0, to, 1_000_000);
    a.on_gossip(
        vec![first.clone(), second.clone(), broke.clone()],
        true,
        chain.ledger(),
        t0,
    )
    .expect("io");
    assert!(!a.verifying(), "nothing verified while following");
    assert_eq!(a.standby_len(), 3);
    assert_eq!(
        a.lookup(&second.id()).map(|t| t.status),
        Some(TxStatus::Pending)
    );
    // The first commits: it leaves the standby; the stuck one is dropped, not announced
    // for good; the second is announced again once it lingers.
    let built = chain
        .build(&[v(first.clone())], c.params(1))
        .expect("build")
        .expect("room ahead");
    let cert = c.certify(&built.block);
    chain
        .commit(built.block.clone(), cert, &mut NoCheck)
        .expect("commit");
    let ids = built.block.tx_ids();
    a.on_block_committed(&built.block, &ids, &chain, t0)
        .expect("io");
    assert_eq!(a.standby_len(), 2);
    // A late copy of the committed one is not taken in again.
    a.on_gossip(vec![first.clone()], true, chain.ledger(), t0)
        .expect("io");
    assert_eq!(a.standby_len(), 2, "a committed nonce is not held");
    a.reannounce(&chain, t0 + REANNOUNCE_AFTER).expect("io");
    assert_eq!(gossiped(&mut a), vec![second.id()]);
    assert_eq!(a.standby_len(), 1, "{} was dropped", broke.id());
    // Leading now: the rest is verified, then admitted.
    a.take_over_standby();
    assert_eq!(a.standby_len(), 0);
    let batch = a.next_batch().expect("queued for verification");
    assert_eq!(batch, vec![second.clone()]);
    let verified = verify_transactions(batch, &c.genesis.chain_id);
    a.on_verified(verified, chain.ledger(), t0).expect("io");
    assert!(a.mempool().contains(&second.id()));
}

#[test]
fn a_first_announcement_goes_direct_and_later_ones_through_gossip() {
    let (c, chain, mut a) = setup();
    let t0 = Instant::now();
    let tx = c.transfer(&c.accounts[1], 1, c.accounts[0].public_key(), 1);
    a.submit(v(tx.clone()), &chain, t0).expect("admitted");
    a.flush();
    let first = a.take_ready();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, Route::Direct);
    a.reannounce(&chain, t0 + REANNOUNCE_AFTER).expect("io");
    let later = a.take_ready();
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].0.clone(), later[0].1), (vec![tx], Route::Gossip));
}

#[test]
fn the_verification_queue_is_bounded_in_jobs() {
    let (c, chain, mut a) = setup();
    let to = c.accounts[0].public_key();
    let txs: Vec<SignedTransaction> = (0..3000)
        .map(|n| c.transfer(&c.accounts[1], n, to, 1))
        .collect();
    a.on_gossip(txs, false, chain.ledger(), Instant::now())
        .expect("io");
    assert_eq!(a.next_batch().map(|b| b.len()), Some(wire::TX_BATCH_MAX));
    assert_eq!(a.next_batch().map(|b| b.len()), Some(wire::TX_BATCH_MAX));
    assert!(a.next_batch().is_none(), "{VERIFY_JOBS} jobs at most");
    assert!(a.verifying());
}
