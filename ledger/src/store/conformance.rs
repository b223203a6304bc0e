//! The conformance suite every [`BlockStore`] must pass. Call [`run_all`] with a factory of
//! fresh, empty stores; it panics with the failing check's name.

use crate::block::{Block, BlockHash, Tip};
use crate::genesis::ConsensusKind;
use crate::ledger::{Ledger, Trust};
use crate::state::StateView;
use crate::store::{BlockStore, ConsensusWrite, StoreError};
use crate::testkit::TestChain;
use crate::transaction::{Payload, VerifiedTransaction};

/// Runs every check, each on a fresh store from `make`.
pub fn run_all<S: BlockStore>(mut make: impl FnMut() -> S) {
    empty_store_reports_no_meta(make());
    genesis_state_is_readable(make());
    commit_then_read_back(make());
    refuses_gaps_and_forks(make());
    refuses_second_initialize(make());
    consensus_state_round_trips(make());
    consensus_range_deletes(make());
    state_entries_are_sorted_and_complete(make());
    account_index_pages_on_block_boundaries(make());
    records_list_in_key_order(make());
}

fn chain() -> TestChain {
    TestChain::new(ConsensusKind::Raft, 1, 4, 1_000)
}

fn next_block<S: BlockStore>(c: &TestChain, l: &Ledger<S>, payloads: &[(usize, Payload)]) -> Block {
    let txs: Vec<VerifiedTransaction> = payloads
        .iter()
        .map(|(from, p)| {
            let k = &c.accounts[*from];
            let nonce = l
                .account(&k.public_key())
                .ok()
                .flatten()
                .map_or(0, |a| a.nonce);
            VerifiedTransaction::trusted(c.tx(k, nonce, p.clone()))
        })
        .collect();
    let built = l
        .build_block(&txs, c.params(l.tip().height + 1))
        .expect("build");
    assert!(
        built.dropped.is_empty(),
        "test blocks are valid: {:?}",
        built.dropped
    );
    built.block
}

fn empty_store_reports_no_meta<S: BlockStore>(s: S) {
    assert!(s.meta().expect("meta").is_none(), "empty store has no meta");
    assert!(
        matches!(s.tip(), Err(StoreError::Uninitialized)),
        "empty store has no tip"
    );
}

fn genesis_state_is_readable<S: BlockStore>(s: S) {
    let c = chain();
    let l = Ledger::open(s, c.genesis.clone()).expect("open");
    let meta = l.store().meta().expect("meta").expect("initialized");
    assert_eq!(
        meta.genesis_hash,
        c.genesis.hash(),
        "meta keeps the genesis hash"
    );
    assert_eq!(meta.schema_version, crate::store::SCHEMA_VERSION);
    let tip = l.store().tip().expect("tip");
    assert_eq!(tip.height, 0);
    assert_eq!(tip.hash, c.genesis.hash());
    for k in &c.accounts {
        let a = l
            .account(&k.public_key())
            .expect("read")
            .expect("genesis account");
        assert_eq!((a.balance, a.nonce), (1_000, 0));
    }
    assert!(
        l.store().block(0).expect("read").is_none(),
        "height 0 is not a block"
    );
}

fn commit_then_read_back<S: BlockStore>(s: S) {
    let c = chain();
    let mut l = Ledger::open(s, c.genesis.clone()).expect("open");
    let to = c.accounts[1].public_key();
    let b1 = next_block(
        &c,
        &l,
        &[
            (0, Payload::Transfer { to, amount: 5 }),
            (
                2,
                Payload::PutRecord {
                    key: "k".into(),
                    value: b"v".to_vec(),
                },
            ),
        ],
    );
    let cert = c.certify(&b1);
    let receipts = l
        .apply_block(b1.clone(), cert.clone(), Trust::Verify)
        .expect("apply");
    assert_eq!(receipts.len(), 2);
    let st = l.store();
    assert_eq!(
        st.block(1).expect("read"),
        Some(b1.clone()),
        "block by height"
    );
    assert_eq!(
        st.height_of(&b1.hash()).expect("read"),
        Some(1),
        "height by hash"
    );
    assert_eq!(st.certificate(1).expect("read"), Some(cert), "certificate");
    for (i, id) in b1.tx_ids().iter().enumerate() {
        let loc = st.tx_location(id).expect("read").expect("indexed");
        assert_eq!((loc.height, loc.index), (1, i as u32), "tx index");
    }
    assert_eq!(
        st.tip().expect("tip").hash,
        b1.hash(),
        "tip follows commits"
    );
    assert_eq!(
        l.account(&to).expect("read").expect("exists").balance,
        1_005
    );
    assert_eq!(
        l.record(&c.accounts[2].public_key(), "k").expect("read"),
        Some(b"v".to_vec()),
        "record written"
    );
    assert_eq!(
        st.header(1).expect("read"),
        Some(b1.header.clone()),
        "header by height"
    );
    assert_eq!(
        st.block_tx_ids(1).expect("read"),
        Some(b1.tx_ids()),
        "transaction ids by height"
    );
    assert!(st.block(2).expect("read").is_none());
    assert!(st.header(2).expect("read").is_none());
    assert!(st.block_tx_ids(2).expect("read").is_none());
    assert!(
        st.height_of(&BlockHash(cairn_crypto::Hash::ZERO))
            .expect("read")
            .is_none()
    );
}

fn refuses_gaps_and_forks<S: BlockStore>(s: S) {
    let c = chain();
    let mut l = Ledger::open(s, c.genesis.clone()).expect("open");
    let b1 = next_block(&c, &l, &[]);
    let exec = l.execute_block(&b1, Trust::PreVerified).expect("exec");
    let commit = crate::store::BlockCommit {
        block: b1.clone(),
        hash: b1.hash(),
        certificate: c.certify(&b1),
        tx_ids: vec![],
        writes: exec.writes().clone(),
    };
    let tip1 = Tip {
        height: 1,
        hash: b1.hash(),
        state_root: b1.header.state_root,
        timestamp_ms: b1.header.timestamp_ms,
    };
    // A block at height 2 on a store at height 0: refused.
    let mut gap = commit.clone();
    gap.block.header.height = 2;
    assert!(matches!(
        l.store_mut().commit(&gap, tip1),
        Err(StoreError::NotNextHeight { tip: 0, got: 2 })
    ));
    // A block whose parent is not the tip: refused.
    let mut fork = commit.clone();
    fork.block.header.prev_hash = BlockHash(cairn_crypto::Hash::ZERO);
    assert!(matches!(
        l.store_mut().commit(&fork, tip1),
        Err(StoreError::NotChild { .. })
    ));
    assert_eq!(
        l.store().tip().expect("tip").height,
        0,
        "refusals change nothing"
    );
    assert!(
        l.store().block(1).expect("read").is_none(),
        "refusals change nothing"
    );
    l.store_mut()
        .commit(&commit, tip1)
        .expect("the real child commits");
    assert!(matches!(
        l.store_mut().commit(&commit, tip1),
        Err(StoreError::NotNextHeight { tip: 1, got: 1 })
    ));
}

fn refuses_second_initialize<S: BlockStore>(s: S) {
    let c = chain();
    let mut l = Ledger::open(s, c.genesis.clone()).expect("open");
    let tip = l.tip();
    assert!(matches!(
        l.store_mut()
            .initialize(c.genesis.hash(), &Default::default(), tip),
        Err(StoreError::AlreadyInitialized)
    ));
}

fn consensus_state_round_trips<S: BlockStore>(mut s: S) {
    assert_eq!(s.consensus_get(b"term").expect("read"), None);
    s.consensus_put(b"term", b"7").expect("write");
    s.consensus_put(b"vote", b"node1").expect("write");
    s.consensus_put(b"term", b"8").expect("overwrite");
    assert_eq!(s.consensus_get(b"term").expect("read"), Some(b"8".to_vec()));
    assert_eq!(
        s.consensus_get(b"vote").expect("read"),
        Some(b"node1".to_vec())
    );
    // A batch puts and deletes together; a scan sees only its prefix, in key order.
    let put = |k: &[u8], v: &[u8]| ConsensusWrite::Put {
        key: k.to_vec(),
        value: v.to_vec(),
    };
    let delete = |k: &[u8]| ConsensusWrite::Delete { key: k.to_vec() };
    s.consensus_write(&[
        put(b"log/2", b"b"),
        put(b"log/1", b"a"),
        put(b"log/3", b"c"),
        delete(b"vote"),
        delete(b"log/3"),
    ])
    .expect("batch");
    assert_eq!(s.consensus_get(b"vote").expect("read"), None);
    assert_eq!(
        s.consensus_scan(b"log/").expect("scan"),
        vec![
            (b"log/1".to_vec(), b"a".to_vec()),
            (b"log/2".to_vec(), b"b".to_vec())
        ]
    );
    assert!(s.consensus_scan(b"nothing").expect("scan").is_empty());
}

fn state_entries_are_sorted_and_complete<S: BlockStore>(s: S) {
    let c = chain();
    let mut l = Ledger::open(s, c.genesis.clone()).expect("open");
    let b1 = next_block(
        &c,
        &l,
        &[(
            1,
            Payload::PutRecord {
                key: "a".into(),
                value: vec![1],
            },
        )],
    );
    let cert = c.certify(&b1);
    l.apply_block(b1, cert, Trust::Verify).expect("apply");
    let entries = l.store().state_entries().expect("scan");
    assert_eq!(entries.len(), 4 + 1, "4 accounts and 1 record");
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "sorted by key");
}

fn consensus_range_deletes<S: BlockStore>(mut s: S) {
    let put = |k: &[u8]| ConsensusWrite::Put {
        key: k.to_vec(),
        value: b"x".to_vec(),
    };
    let range = |from: &[u8], to: &[u8]| ConsensusWrite::DeleteRange {
        from: from.to_vec(),
        to: to.to_vec(),
    };
    s.consensus_write(&[
        put(b"a/1"),
        put(b"a/2"),
        put(b"a/3"),
        put(b"a/4"),
        put(b"b"),
    ])
    .expect("puts");
    // `to` is excluded; an empty or inverted range deletes nothing; a put after a range
    // delete in the same batch survives it.
    s.consensus_write(&[
        range(b"a/2", b"a/4"),
        range(b"z", b"a"),
        range(b"b", b"b"),
        range(b"a/3", b"a0"),
        put(b"a/9"),
    ])
    .expect("ranges");
    let keys: Vec<Vec<u8>> = s
        .consensus_scan(b"")
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        vec![b"a/1".to_vec(), b"a/9".to_vec(), b"b".to_vec()],
        "range deletes"
    );
}

fn account_index_pages_on_block_boundaries<S: BlockStore>(s: S) {
    let c = chain();
    let mut l = Ledger::open(s, c.genesis.clone()).expect("open");
    let (a, b) = (c.accounts[0].public_key(), c.accounts[1].public_key());
    // Block 1: a→b twice; block 2: a writes a record; block 3: c→b; block 4: a→b.
    let transfer = |to| Payload::Transfer { to, amount: 1 };
    let blocks: [&[(usize, Payload)]; 4] = [
        &[(0, transfer(b)), (0, transfer(b))],
        &[(
            0,
            Payload::PutRecord {
                key: "k".into(),
                value: vec![1],
            },
        )],
        &[(2, transfer(b))],
        &[(0, transfer(b))],
    ];
    for payloads in blocks {
        // `next_block` reads nonces from the state, so two from one sender need care.
        let block = if payloads.len() == 2 {
            let k = &c.accounts[0];
            let txs: Vec<VerifiedTransaction> = (0..2)
                .map(|n| VerifiedTransaction::trusted(c.tx(k, n, transfer(b))))
                .collect();
            l.build_block(&txs, c.params(l.tip().height + 1))
                .expect("build")
                .block
        } else {
            next_block(&c, &l, payloads)
        };
        let cert = c.certify(&block);
        l.apply_block(block, cert, Trust::Verify).expect("apply");
    }
    let st = l.store();
    let at = |v: Vec<crate::store::AccountTx>| -> Vec<(u64, u32)> {
        v.iter().map(|t| (t.height, t.index)).collect()
    };
    assert_eq!(
        at(st.account_txs(&a, 5, 100).expect("read")),
        vec![(4, 0), (2, 0), (1, 1), (1, 0)],
        "newest first, sender side"
    );
    assert_eq!(
        at(st.account_txs(&b, 5, 100).expect("read")),
        vec![(4, 0), (3, 0), (1, 1), (1, 0)],
        "receiver side"
    );
    assert_eq!(
        at(st.account_txs(&a, 4, 100).expect("read")),
        vec![(2, 0), (1, 1), (1, 0)],
        "`below` excludes its height"
    );
    assert_eq!(
        at(st.account_txs(&a, 3, 1).expect("read")),
        vec![(2, 0)],
        "a page of one"
    );
    assert_eq!(
        at(st.account_txs(&a, 2, 1).expect("read")),
        vec![(1, 1), (1, 0)],
        "a page ends on a block boundary"
    );
    let t = &st.account_txs(&a, 2, 1).expect("read")[0];
    assert_eq!(t.tx, st.block(1).expect("read").expect("block").txs[1]);
    let nobody = cairn_crypto::PublicKey([9; 32]);
    assert!(st.account_txs(&nobody, 5, 10).expect("read").is_empty());
}

fn records_list_in_key_order<S: BlockStore>(s: S) {
    let c = chain();
    let mut l = Ledger::open(s, c.genesis.clone()).expect("open");
    let put = |key: &str, value: &[u8]| Payload::PutRecord {
        key: key.into(),
        value: value.to_vec(),
    };
    for (from, key) in [(0, "b"), (0, "a"), (1, "a"), (0, "ab"), (0, "c")] {
        let block = next_block(&c, &l, &[(from, put(key, key.as_bytes()))]);
        let cert = c.certify(&block);
        l.apply_block(block, cert, Trust::Verify).expect("apply");
    }
    let owner = c.accounts[0].public_key();
    let keys = |after, limit| -> Vec<String> {
        l.store()
            .records(&owner, after, limit)
            .expect("read")
            .into_iter()
            .map(|r| r.key)
            .collect()
    };
    assert_eq!(
        keys(None, 10),
        ["a", "ab", "b", "c"],
        "one owner's, in order"
    );
    assert_eq!(keys(None, 2), ["a", "ab"], "limit");
    assert_eq!(keys(Some("ab"), 10), ["b", "c"], "after is excluded");
    assert_eq!(keys(Some("a"), 1), ["ab"]);
    assert!(keys(Some("c"), 10).is_empty());
    let r = &l.store().records(&owner, None, 1).expect("read")[0];
    assert_eq!(r.value, b"a".to_vec());
}
