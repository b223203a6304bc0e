use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// The root straight from the definition in the module docs, over `(path, value hash)` pairs.
fn reference_root(leaves: &BTreeMap<Hash, Hash>) -> Hash {
    fn at(depth: usize, leaves: &[(Hash, Hash)]) -> Hash {
        match leaves {
            [] => Hash::ZERO,
            [(k, v)] => leaf_hash(k, v),
            _ => {
                let (zero, one): (Vec<_>, Vec<_>) =
                    leaves.iter().copied().partition(|(k, _)| !bit(k, depth));
                node_hash(&at(depth + 1, &zero), &at(depth + 1, &one))
            }
        }
    }
    let all: Vec<(Hash, Hash)> = leaves.iter().map(|(k, v)| (*k, *v)).collect();
    at(0, &all)
}

fn key(i: u16) -> Vec<u8> {
    let mut k = vec![0x01];
    k.extend_from_slice(&i.to_le_bytes());
    k
}

fn writes(items: &[(u16, Option<u8>)]) -> WriteSet {
    items
        .iter()
        .map(|(k, v)| (key(*k), v.map(|b| vec![b; 3])))
        .collect()
}

#[test]
fn empty_state_has_the_zero_root() {
    let t = StateTree::default();
    assert_eq!(t.root_hash(), Hash::ZERO);
    assert!(t.is_empty());
    let p = t.prove(b"anything");
    assert!(p.siblings.is_empty() && p.leaf.is_none());
    assert_eq!(p.verify(&Hash::ZERO, b"anything", None), Ok(()));
    assert_eq!(
        p.verify(&Hash::ZERO, b"anything", Some(b"x")),
        Err(ProofError::KeyAbsent)
    );
}

#[test]
fn a_lone_entry_is_its_leaf_and_a_deletion_moves_the_survivor_up() {
    let one = StateTree::default().apply(&writes(&[(1, Some(7))]));
    let expected = leaf_hash(&Hash::sha256(&key(1)), &Hash::sha256(&[7, 7, 7]));
    assert_eq!(one.root_hash(), expected);
    let two = one.apply(&writes(&[(2, Some(8))]));
    assert_ne!(two.root_hash(), expected);
    assert_eq!(two.len(), 2);
    let back = two.apply(&writes(&[(2, None)]));
    assert_eq!(back.root_hash(), expected);
    assert_eq!(back.len(), 1);
    // The old versions are untouched.
    assert_eq!(one.root_hash(), expected);
    assert_eq!(two.len(), 2);
}

#[test]
fn deleting_an_absent_key_and_rewriting_a_value_change_nothing() {
    let t = StateTree::default().apply(&writes(&[(1, Some(1)), (2, Some(2))]));
    assert_eq!(t.apply(&writes(&[(3, None)])).root_hash(), t.root_hash());
    assert_eq!(t.apply(&writes(&[(1, Some(1))])).root_hash(), t.root_hash());
    assert_eq!(t.apply(&writes(&[(3, None)])).len(), 2);
}

#[test]
fn tampered_proofs_are_refused() {
    let t = StateTree::default().apply(&writes(
        &(0..50).map(|i| (i, Some(i as u8))).collect::<Vec<_>>(),
    ));
    let root = t.root_hash();
    let k = key(17);
    let v = vec![17u8; 3];
    let p = t.prove(&k);
    assert_eq!(p.verify(&root, &k, Some(&v)), Ok(()));
    assert!(!p.siblings.is_empty());
    // Another value, absence claimed, another root, another key.
    assert!(matches!(
        p.verify(&root, &k, Some(b"nope")),
        Err(ProofError::WrongValue { .. })
    ));
    assert_eq!(p.verify(&root, &k, None), Err(ProofError::KeyPresent));
    assert!(matches!(
        p.verify(&Hash::sha256(b"other"), &k, Some(&v)),
        Err(ProofError::RootMismatch { .. })
    ));
    assert_eq!(
        p.verify(&root, &key(18), Some(&[18u8; 3])),
        Err(ProofError::NotThisKey)
    );
    // A sibling flipped, one dropped, one added.
    let mut flipped = p.clone();
    flipped.siblings[0].0[0] ^= 1;
    assert!(matches!(
        flipped.verify(&root, &k, Some(&v)),
        Err(ProofError::RootMismatch { .. })
    ));
    let mut short = p.clone();
    short.siblings.pop();
    assert!(short.verify(&root, &k, Some(&v)).is_err());
    let mut long = p.clone();
    long.siblings.push(Hash::ZERO);
    assert!(long.verify(&root, &k, Some(&v)).is_err());
    let mut deep = p.clone();
    deep.siblings = vec![Hash::ZERO; 257];
    assert_eq!(
        deep.verify(&root, &k, Some(&v)),
        Err(ProofError::TooDeep(257))
    );
    // An absent key's proof, and the same proof claiming a value.
    let absent = key(999);
    let q = t.prove(&absent);
    assert_eq!(q.verify(&root, &absent, None), Ok(()));
    assert!(q.verify(&root, &absent, Some(b"x")).is_err());
    // Absence claimed with a leaf that is off the key's path.
    let mut off = q.clone();
    off.leaf = Some(ProofLeaf {
        key_hash: Hash([0xff; 32]),
        value_hash: Hash::ZERO,
    });
    off.siblings = p.siblings.clone();
    let off_err = off.verify(&root, &absent, None);
    assert!(off_err.is_err(), "{off_err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any sequence of blocks of writes gives the reference root of the state it leaves, the
    /// same root as building that state at once, and proofs of every key that verify.
    #[test]
    fn incremental_roots_match_the_definition(
        blocks in prop::collection::vec(
            prop::collection::vec((0u16..300, prop::option::weighted(0.8, any::<u8>())), 0..60),
            1..8,
        )
    ) {
        let mut tree = StateTree::default();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for block in &blocks {
            let ws = writes(block);
            for (k, v) in &ws {
                match v {
                    Some(v) => { model.insert(k.clone(), v.clone()); }
                    None => { model.remove(k); }
                }
            }
            tree = tree.apply(&ws);
            let hashed: BTreeMap<Hash, Hash> =
                model.iter().map(|(k, v)| (Hash::sha256(k), Hash::sha256(v))).collect();
            prop_assert_eq!(tree.root_hash(), reference_root(&hashed));
            prop_assert_eq!(tree.len(), model.len());
        }
        let whole = StateTree::from_entries(model.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        prop_assert_eq!(whole.root_hash(), tree.root_hash());
        let root = tree.root_hash();
        for i in 0u16..300 {
            let k = key(i);
            let p = tree.prove(&k);
            prop_assert_eq!(p.verify(&root, &k, model.get(&k).map(Vec::as_slice)), Ok(()));
        }
    }
}
