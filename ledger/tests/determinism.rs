//! State-root determinism: the same blocks give the same roots and the same state on
//! independent ledgers, whatever the store and however signatures were checked.

use std::collections::HashMap;

use cairn_ledger::audit::audit_store;
use cairn_ledger::state::state_digest;
use cairn_ledger::testkit::{TestChain, key};
use cairn_ledger::{
    BlockParams, BlockStore, ConsensusKind, Ledger, MemoryStore, Payload, RocksStore, Role, Trust,
    VerifiedTransaction,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: u64,
    },
    Record {
        from: usize,
        key: u8,
        value: Vec<u8>,
    },
    Add {
        account: usize,
        admin: bool,
    },
    Remove {
        account: usize,
    },
}

const ACCOUNTS: usize = 6;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..ACCOUNTS, 0..ACCOUNTS + 2, 1u64..400).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        2 => (0..ACCOUNTS, 0u8..4, proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(from, key, value)| Op::Record { from, key, value }),
        1 => (0..ACCOUNTS + 2, any::<bool>()).prop_map(|(account, admin)| Op::Add { account, admin }),
        1 => (0..ACCOUNTS + 2).prop_map(|account| Op::Remove { account }),
    ]
}

fn digest(s: &impl BlockStore) -> cairn_crypto::Hash {
    let e = s.state_entries().expect("scan");
    state_digest(e.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn same_blocks_same_roots_on_independent_ledgers(
        blocks in proptest::collection::vec(proptest::collection::vec(op(), 0..12), 1..8)
    ) {
        let c = TestChain::new(ConsensusKind::Pbft, 4, ACCOUNTS, 1_000);
        // Two more keys that start outside the chain.
        let mut keys = c.accounts.clone();
        keys.push(key("extra", 0));
        keys.push(key("extra", 1));
        let dir = tempfile::tempdir().expect("tmp");
        let mut proposer = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("a");
        let mut rocks = Ledger::open(RocksStore::open(dir.path(), &c.genesis.hash()).expect("open"), c.genesis.clone()).expect("b");
        let mut trusting = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("c");
        // Nonces as the client believes them (some transactions will be dropped at build).
        let mut nonces: HashMap<usize, u64> = HashMap::new();
        for ops in blocks {
            let mut txs = Vec::new();
            for op in ops {
                let (from, payload) = match op {
                    Op::Transfer { from, to, amount } => (from, Payload::Transfer { to: keys[to].public_key(), amount }),
                    Op::Record { from, key, value } => (from, Payload::PutRecord { key: format!("k{key}"), value }),
                    Op::Add { account, admin } => (0, Payload::AddMember { account: keys[account].public_key(), role: if admin { Role::Admin } else { Role::User } }),
                    Op::Remove { account } => (0, Payload::RemoveMember { account: keys[account].public_key() }),
                };
                let n = nonces.entry(from).or_insert(0);
                txs.push(VerifiedTransaction::trusted(c.tx(&keys[from], *n, payload)));
                *n += 1;
            }
            let built = proposer.build_block(&txs, BlockParams {
                proposer: c.validators[1].public_key(),
                round: 0,
                timestamp_ms: c.genesis.genesis_time_ms + 1,
                max_txs: 100,
            }).expect("build");
            let cert = c.certify(&built.block);
            let block = built.block.clone();
            proposer.commit(built.block, cert.clone(), built.execution).expect("commit");
            rocks.apply_block(block.clone(), cert.clone(), Trust::Verify).expect("rocks applies");
            trusting.apply_block(block, cert, Trust::PreVerified).expect("trusting applies");
            prop_assert_eq!(proposer.tip(), rocks.tip());
            prop_assert_eq!(proposer.tip(), trusting.tip());
            // Resynchronise client nonces with what executed (some transactions were dropped).
            for (i, k) in keys.iter().enumerate() {
                let a = cairn_ledger::StateView::account(&proposer, &k.public_key()).expect("read").map_or(0, |a| a.nonce);
                nonces.insert(i, a);
            }
        }
        prop_assert_eq!(digest(proposer.store()), digest(rocks.store()));
        prop_assert_eq!(digest(proposer.store()), digest(trusting.store()));
        let report = audit_store(rocks.store(), &c.genesis).expect("audit");
        prop_assert_eq!(report.state_root, proposer.tip().state_root);
    }
}

#[test]
fn a_different_change_gives_a_different_root() {
    let c = TestChain::new(ConsensusKind::Raft, 1, 3, 1_000);
    let root_after = |amount: u64| {
        let l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
        let tx = VerifiedTransaction::trusted(c.transfer(
            &c.accounts[1],
            0,
            c.accounts[2].public_key(),
            amount,
        ));
        l.build_block(
            &[tx],
            BlockParams {
                proposer: c.validators[0].public_key(),
                round: 0,
                timestamp_ms: 0,
                max_txs: 10,
            },
        )
        .expect("build")
        .block
        .header
        .state_root
    };
    assert_eq!(root_after(5), root_after(5));
    assert_ne!(root_after(5), root_after(6));
}
