use cairn_ledger::testkit::TestChain;
use cairn_ledger::{ConsensusKind, MemoryStore, VerifiedTransaction};

use super::*;

/// A ledger with `blocks` blocks of two transfers each.
fn chain(blocks: u64) -> (TestChain, Ledger<MemoryStore>) {
    let c = TestChain::new(ConsensusKind::Pbft, 4, 4, 1_000);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    for h in 0..blocks {
        let txs: Vec<VerifiedTransaction> = (0..2)
            .map(|i| {
                let to = c.accounts[i + 2].public_key();
                VerifiedTransaction::trusted(c.transfer(&c.accounts[i], h, to, 1))
            })
            .collect();
        c.commit(&mut l, &txs).expect("commit");
    }
    (c, l)
}

fn fresh(c: &TestChain) -> Ledger<MemoryStore> {
    Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open")
}

#[test]
fn an_import_of_an_export_reaches_the_same_tip_and_state_root() {
    let (c, l) = chain(5);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("blocks.cairn");
    let e = export(l.store(), l.genesis_hash(), 1, None, &file).expect("export");
    assert_eq!((e.from, e.to), (1, 5));
    assert!(!dir.path().join("blocks.cairn.partial").exists());
    let mut m = fresh(&c);
    let mut seen = Vec::new();
    let i = import(&mut m, &file, |h| seen.push(h)).expect("import");
    assert_eq!((i.applied, i.skipped), (5, 0));
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(m.tip(), l.tip());
    assert_eq!(m.state_tree().root_hash(), l.state_tree().root_hash());
    // Again: everything is already there.
    let again = import(&mut m, &file, |_| {}).expect("import again");
    assert_eq!((again.applied, again.skipped), (0, 5));
    // A later range on top of what an earlier import left.
    let part = dir.path().join("part.cairn");
    export(l.store(), l.genesis_hash(), 1, Some(2), &part).expect("export 1..=2");
    let rest = dir.path().join("rest.cairn");
    export(l.store(), l.genesis_hash(), 3, Some(5), &rest).expect("export 3..=5");
    let mut n = fresh(&c);
    assert!(matches!(
        import(&mut n, &rest, |_| {}),
        Err(ArchiveError::Gap {
            expected: 1,
            found: 3
        })
    ));
    import(&mut n, &part, |_| {}).expect("1..=2");
    import(&mut n, &rest, |_| {}).expect("3..=5");
    assert_eq!(n.tip(), l.tip());
}

#[test]
fn a_flipped_byte_anywhere_is_refused_naming_the_block_it_is_in() {
    let (c, l) = chain(3);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("blocks.cairn");
    export(l.store(), l.genesis_hash(), 1, None, &file).expect("export");
    let bytes = std::fs::read(&file).expect("read");
    // Where the header (0) and each record (its height) start, from the lengths in the file.
    let mut starts = vec![0, HEADER_BYTES];
    while starts.len() < 5 {
        let at = starts[starts.len() - 1];
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4")) as usize;
        starts.push(at + 12 + len + 32);
    }
    let end = starts.pop();
    assert_eq!(end, Some(bytes.len()));
    let bad = dir.path().join("bad.cairn");
    for at in 0..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        std::fs::write(&bad, &b).expect("write");
        let mut m = fresh(&c);
        let e = import(&mut m, &bad, |_| {}).expect_err("a flipped byte must be refused");
        let block = starts.iter().rposition(|s| *s <= at).map(|i| i as u64);
        match (block, &e) {
            (Some(0), ArchiveError::NotAnExport(_) | ArchiveError::DamagedHeader) => {}
            // A damaged length can make the record run past the end of the file.
            (Some(k), ArchiveError::Damaged { height } | ArchiveError::Truncated(height)) => {
                assert_eq!(*height, k, "byte {at}")
            }
            _ => panic!("byte {at}: {e}"),
        }
        // Nothing after the damaged block was applied.
        assert!(m.tip().height < block.unwrap_or(0).max(1), "byte {at}");
    }
}

#[test]
fn truncated_files_other_chains_and_bad_ranges_are_refused() {
    let (c, l) = chain(2);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("blocks.cairn");
    export(l.store(), l.genesis_hash(), 1, None, &file).expect("export");
    let bytes = std::fs::read(&file).expect("read");
    let cut = dir.path().join("cut.cairn");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).expect("write");
    assert!(matches!(
        import(&mut fresh(&c), &cut, |_| {}),
        Err(ArchiveError::Truncated(2))
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&cut, &longer).expect("write");
    assert!(matches!(
        import(&mut fresh(&c), &cut, |_| {}),
        Err(ArchiveError::Trailing(2))
    ));
    let other = TestChain::new(ConsensusKind::Raft, 3, 4, 1_000);
    let mut o = Ledger::open(MemoryStore::new(), other.genesis.clone()).expect("open");
    assert!(matches!(
        import(&mut o, &file, |_| {}),
        Err(ArchiveError::OtherChain { .. })
    ));
    assert!(matches!(
        export(l.store(), l.genesis_hash(), 0, None, &file),
        Err(ArchiveError::Range { .. })
    ));
    assert!(matches!(
        export(l.store(), l.genesis_hash(), 1, Some(9), &file),
        Err(ArchiveError::Range { tip: 2, .. })
    ));
}
