use proptest::prelude::*;

use super::*;
use crate::state_tree::StateTree;

fn state(n: u32) -> StateEntries {
    (0..n)
        .map(|i| {
            let mut k = vec![0x01];
            k.extend_from_slice(&i.to_le_bytes());
            (k, vec![(i % 251) as u8; 1 + (i % 7) as usize])
        })
        .collect()
}

fn root_of(entries: &StateEntries) -> Hash {
    StateTree::from_entries(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).root_hash()
}

#[test]
fn depth_gives_chunks_of_about_the_target() {
    assert_eq!(depth_for(0), 0);
    assert_eq!(depth_for(CHUNK_ENTRIES), 0);
    assert_eq!(depth_for(CHUNK_ENTRIES + 1), 1);
    assert_eq!(depth_for(100_000), 7);
    assert_eq!(depth_for(usize::MAX), DEPTH_MAX);
}

#[test]
fn tampered_chunks_and_manifests_are_refused() {
    let entries = state(300);
    let root = root_of(&entries);
    let (m, chunks) = cut(entries, 3, 9, BlockHash(Hash::ZERO), root);
    m.verify(&root).expect("manifest");
    for c in &chunks {
        m.check_chunk(c).expect("chunk");
    }
    // Another root; a changed chunk hash or count.
    assert!(matches!(
        m.verify(&Hash::sha256(b"x")),
        Err(SnapshotError::Root { .. })
    ));
    let mut bad = m.clone();
    bad.chunks[2].hash.0[0] ^= 1;
    assert!(matches!(bad.verify(&root), Err(SnapshotError::Root { .. })));
    let mut bad = m.clone();
    bad.chunks[2].entries += 1;
    bad.chunks[3].entries -= 1;
    // Counts alone may still combine to the root (they only steer lone leaves), but then the
    // chunks no longer match.
    if bad.verify(&root).is_ok() {
        assert!(bad.check_chunk(&chunks[2]).is_err());
    }
    let mut bad = m.clone();
    bad.chunks.pop();
    assert!(matches!(
        bad.verify(&root),
        Err(SnapshotError::Shape { .. })
    ));
    // A value changed, an entry dropped, one added from another chunk, two swapped.
    let c = &chunks[1];
    assert!(c.entries.len() >= 2);
    let mut t = c.clone();
    t.entries[0].1.push(0);
    assert!(matches!(
        m.check_chunk(&t),
        Err(SnapshotError::Mismatch { .. })
    ));
    let mut t = c.clone();
    t.entries.pop();
    assert!(matches!(
        m.check_chunk(&t),
        Err(SnapshotError::Mismatch { .. })
    ));
    let mut t = c.clone();
    t.entries.push(chunks[2].entries[0].clone());
    assert!(matches!(
        m.check_chunk(&t),
        Err(SnapshotError::Misplaced { .. })
    ));
    let mut t = c.clone();
    t.entries.swap(0, 1);
    assert!(matches!(
        m.check_chunk(&t),
        Err(SnapshotError::Misplaced { .. })
    ));
    let mut t = c.clone();
    t.index = 99;
    assert_eq!(m.check_chunk(&t), Err(SnapshotError::NoSuchChunk(99)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any state cut at any depth: the manifest leads to the state's root, every chunk checks,
    /// and the chunks together rebuild the same tree.
    #[test]
    fn a_cut_state_checks_and_rebuilds(n in 0u32..3000, depth in 0u8..8) {
        let entries = state(n);
        let root = root_of(&entries);
        let (m, chunks) = cut(entries, depth, 1, BlockHash(Hash::ZERO), root);
        prop_assert_eq!(m.verify(&root), Ok(()));
        prop_assert_eq!(chunks.len(), 1usize << depth);
        let mut all = Vec::new();
        for c in &chunks {
            prop_assert_eq!(m.check_chunk(c), Ok(()));
            all.extend(c.entries.iter().cloned());
        }
        prop_assert_eq!(all.len(), n as usize);
        prop_assert_eq!(root_of(&all), root);
    }
}
