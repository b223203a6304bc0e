//! A Merkle tree over hashes (transaction ids), with inclusion proofs.
//!
//! The tree shape and hashing follow RFC 6962 §2.1 (Certificate Transparency), which avoids
//! the duplicated-last-leaf ambiguity of Bitcoin's tree (CVE-2012-2459):
//! - leaf hash `= SHA-256(0x00 ‖ leaf)`, interior node `= SHA-256(0x01 ‖ left ‖ right)`, so a
//!   leaf can never pass for a node;
//! - the root of `n > 1` leaves is `node(root(first k), root(rest))` with `k` the largest power
//!   of two below `n`; built bottom-up this means an odd node at the end of a level is carried
//!   up unchanged;
//! - the root of no leaves is `SHA-256("")`.

use serde::{Deserialize, Serialize};

use crate::hash::Hash;

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Hash of a leaf: `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &Hash) -> Hash {
    let mut buf = [0u8; 33];
    buf[0] = LEAF_PREFIX;
    buf[1..].copy_from_slice(&leaf.0);
    Hash::sha256(&buf)
}

/// Hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash::sha256(&buf)
}

/// The root over `leaves`, in order.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::sha256(b"");
    }
    let mut level: Vec<Hash> = leaves.iter().map(leaf_hash).collect();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => node_hash(l, r),
            [odd] => *odd,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// Proof that a leaf sits at `index` in a tree of `leaf_count` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MerkleProof {
    /// Position of the leaf, from 0.
    pub index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf's level up to just below the root. Levels where the
    /// path's node was carried up unchanged contribute no sibling.
    pub path: Vec<Hash>,
}

/// The inclusion proof for the leaf at `index`, or `None` if there is no such leaf.
pub fn prove(leaves: &[Hash], index: usize) -> Option<MerkleProof> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let mut level: Vec<Hash> = leaves.iter().map(leaf_hash).collect();
    let mut i = index;
    while level.len() > 1 {
        let sibling = i ^ 1;
        if sibling < level.len() {
            path.push(level[sibling]);
        }
        level = next_level(&level);
        i /= 2;
    }
    Some(MerkleProof {
        index: index as u64,
        leaf_count: leaves.len() as u64,
        path,
    })
}

impl MerkleProof {
    /// Whether this proof shows `leaf` at `self.index` under `root`.
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> bool {
        if self.index >= self.leaf_count {
            return false;
        }
        let mut node = leaf_hash(leaf);
        let mut i = self.index;
        let mut width = self.leaf_count;
        let mut path = self.path.iter();
        while width > 1 {
            if i % 2 == 1 {
                let Some(left) = path.next() else {
                    return false;
                };
                node = node_hash(left, &node);
            } else if i + 1 < width {
                let Some(right) = path.next() else {
                    return false;
                };
                node = node_hash(&node, right);
            }
            // else: the last node of an odd level, carried up unchanged.
            i /= 2;
            width = width.div_ceil(2);
        }
        path.next().is_none() && node == *root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| Hash::sha256(&i.to_le_bytes()))
            .collect()
    }

    /// RFC 6962's recursive definition, written independently of the bottom-up code.
    fn rfc6962_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Hash::sha256(b""),
            1 => leaf_hash(&leaves[0]),
            n => {
                // k: the largest power of two strictly below n.
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&rfc6962_root(&leaves[..k]), &rfc6962_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn bottom_up_matches_rfc6962_recursion() {
        for n in 0..70 {
            let l = leaves(n);
            assert_eq!(root(&l), rfc6962_root(&l), "n = {n}");
        }
    }

    #[test]
    fn small_trees_by_hand() {
        let l = leaves(3);
        assert_eq!(root(&l[..1]), leaf_hash(&l[0]));
        let ab = node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1]));
        assert_eq!(root(&l[..2]), ab);
        assert_eq!(root(&l), node_hash(&ab, &leaf_hash(&l[2])));
    }

    #[test]
    fn leaf_cannot_pass_for_node() {
        // A 2-leaf tree's root is node(leaf(a), leaf(b)); a 1-leaf tree over a hash that equals
        // that root gives a different root because of the prefixes.
        let l = leaves(2);
        let r = root(&l);
        assert_ne!(root(&[r]), r);
    }

    #[test]
    fn proof_for_missing_index_is_none() {
        assert!(prove(&leaves(3), 3).is_none());
        assert!(prove(&[], 0).is_none());
    }

    proptest! {
        #[test]
        fn every_proof_verifies(n in 1usize..80, pick in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick.index(n);
            let p = prove(&l, i).expect("index in range");
            prop_assert!(p.verify(&l[i], &r));
        }

        #[test]
        fn tampered_proofs_fail(n in 2usize..80, pick in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick.index(n);
            let p = prove(&l, i).expect("index in range");
            // Wrong leaf.
            prop_assert!(!p.verify(&Hash::sha256(b"other"), &r));
            // Wrong index.
            let mut wrong = p.clone();
            wrong.index = ((i + 1) % n) as u64;
            prop_assert!(!wrong.verify(&l[i], &r));
            // Out-of-range index.
            let mut out = p.clone();
            out.index = n as u64;
            prop_assert!(!out.verify(&l[i], &r));
            // A flipped bit in one path hash.
            let mut bent = p.clone();
            let k = flip.index(bent.path.len());
            bent.path[k].0[0] ^= 1;
            prop_assert!(!bent.verify(&l[i], &r));
            // A path that is too short or too long.
            let mut short = p.clone();
            short.path.pop();
            prop_assert!(!short.verify(&l[i], &r));
            let mut long = p.clone();
            long.path.push(Hash::ZERO);
            prop_assert!(!long.verify(&l[i], &r));
            // Wrong root.
            prop_assert!(!p.verify(&l[i], &Hash::sha256(b"root")));
        }
    }
}
