//! The state as a sparse Merkle tree: what `state_root` commits to, and proofs of one entry
//! (or of its absence) against it.
//!
//! Every state entry `(key, value)` is a leaf at the path `SHA-256(key)`, read bit by bit from
//! the most significant. The hash of the entries whose paths share a prefix of `d` bits is
//! - `0^32` for none,
//! - `leaf = tagged_hash("cairn/state/leaf/v2", SHA-256(key) ‖ SHA-256(value))` for one (a
//!   lone entry sits as high as it can: no chain of single-child nodes above it),
//! - `node = tagged_hash("cairn/state/node/v2", hash(bit d = 0) ‖ hash(bit d = 1))` for more.
//!
//! The root is that hash at depth 0, so one set of entries has one root, whatever order they
//! were written in. A proof is the sibling hashes from the root down to where the key's path
//! ends, and what sits there: the key's own leaf, another key's leaf, or nothing
//! (PROTOCOL.md §7).
//!
//! The tree is persistent: [`StateTree::apply`] returns a new version sharing every subtree a
//! block did not change, so the executions of blocks not committed yet each hold their own
//! version cheaply, and readers keep the committed one while the next block commits.

use std::sync::{Arc, PoisonError, RwLock};

use cairn_crypto::Hash;
use serde::{Deserialize, Serialize};

use crate::block::Tip;
use crate::domains;
use crate::state::WriteSet;

/// Longest path: a key hash has 256 bits.
pub const MAX_DEPTH: usize = 256;

/// One version of the state tree. Cloning is cheap (one reference count).
#[derive(Debug, Clone, Default)]
pub struct StateTree {
    root: Link,
    entries: usize,
}

type Link = Option<Arc<Node>>;

#[derive(Debug)]
enum Node {
    Leaf {
        key_hash: Hash,
        value_hash: Hash,
    },
    /// At least two entries below.
    Branch {
        hash: Hash,
        left: Link,
        right: Link,
    },
}

/// A leaf as a proof shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProofLeaf {
    /// `SHA-256(key)`: the leaf's path.
    pub key_hash: Hash,
    /// `SHA-256(value)`.
    pub value_hash: Hash,
}

/// Proof that a key holds a value, or holds none, in the state with a given root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateProof {
    /// The hashes of the siblings of the key's path, from the root's children down.
    pub siblings: Vec<Hash>,
    /// What the path ends at: the key's own leaf (it is present), another key's leaf or
    /// nothing (it is absent).
    pub leaf: Option<ProofLeaf>,
}

/// Why a state proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// More siblings than a path has bits.
    #[error("the proof has {0} siblings; a path has at most 256")]
    TooDeep(usize),
    /// The proof ends at a leaf that is not the key's, though it claims the value is there.
    #[error("the proof ends at another key's leaf, so it cannot show this key's value")]
    NotThisKey,
    /// The proof ends at the key's leaf, though it claims the key is absent.
    #[error("the proof shows the key present, not absent")]
    KeyPresent,
    /// The proof ends at an empty subtree, though it claims a value.
    #[error("the proof shows no entry where the key would be")]
    KeyAbsent,
    /// The leaf holds another value.
    #[error("the leaf holds a value with hash {found}, not the one claimed")]
    WrongValue {
        /// `SHA-256` of the value in the leaf.
        found: Hash,
    },
    /// Another key's leaf that is not on this key's path.
    #[error("the other key's leaf at depth {depth} is not on this key's path")]
    OffPath {
        /// Where the proof ends.
        depth: usize,
    },
    /// The hashes do not lead to the root.
    #[error("the proof leads to root {computed}, not {expected}")]
    RootMismatch {
        /// The root the proof computes.
        computed: Hash,
        /// The root it was checked against.
        expected: Hash,
    },
}

/// Bit `i` of a path, from the most significant bit of byte 0.
pub(crate) fn bit(path: &Hash, i: usize) -> bool {
    (path.0[i / 8] >> (7 - i % 8)) & 1 == 1
}

/// The hash of a leaf.
pub fn leaf_hash(key_hash: &Hash, value_hash: &Hash) -> Hash {
    Hash::tagged(domains::STATE_LEAF, &[&key_hash.0, &value_hash.0])
}

/// The hash of a node over two subtrees.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::tagged(domains::STATE_NODE, &[&left.0, &right.0])
}

fn hash_of(link: &Link) -> Hash {
    match link.as_deref() {
        None => Hash::ZERO,
        Some(Node::Leaf {
            key_hash,
            value_hash,
        }) => leaf_hash(key_hash, value_hash),
        Some(Node::Branch { hash, .. }) => *hash,
    }
}

/// The subtree over two halves: nothing over nothing, a lone leaf moved up, else a node.
fn join(left: Link, right: Link) -> Link {
    match (&left, &right) {
        (None, None) => None,
        (Some(n), None) | (None, Some(n)) if matches!(**n, Node::Leaf { .. }) => Some(n.clone()),
        _ => Some(Arc::new(Node::Branch {
            hash: node_hash(&hash_of(&left), &hash_of(&right)),
            left,
            right,
        })),
    }
}

/// The subtree at `depth` over `leaves`, sorted by path, paths distinct.
fn build(depth: usize, leaves: &[(Hash, Hash)]) -> Link {
    match leaves {
        [] => None,
        [(key_hash, value_hash)] => Some(Arc::new(Node::Leaf {
            key_hash: *key_hash,
            value_hash: *value_hash,
        })),
        _ => {
            let split = leaves.partition_point(|(k, _)| !bit(k, depth));
            join(
                build(depth + 1, &leaves[..split]),
                build(depth + 1, &leaves[split..]),
            )
        }
    }
}

/// The hash of the subtree at `depth` holding `leaves` (`(path, value hash)`, sorted by path,
/// paths distinct, all sharing their first `depth` bits).
pub(crate) fn subtree_hash(depth: usize, leaves: &[(Hash, Hash)]) -> Hash {
    hash_of(&build(depth, leaves))
}

/// `link` at `depth` with `changes` (sorted by path, distinct; `None` removes) applied, and how
/// many entries that added (negative: removed).
fn update(link: &Link, depth: usize, changes: &[(Hash, Option<Hash>)]) -> (Link, isize) {
    if changes.is_empty() {
        return (link.clone(), 0);
    }
    let rebuilt = |held: Option<(Hash, Hash)>| {
        let leaves = inserts(changes, held);
        let delta = leaves.len() as isize - isize::from(held.is_some());
        (build(depth, &leaves), delta)
    };
    match link.as_deref() {
        None => rebuilt(None),
        Some(Node::Leaf {
            key_hash,
            value_hash,
        }) => rebuilt(Some((*key_hash, *value_hash))),
        Some(Node::Branch { left, right, .. }) => {
            let split = changes.partition_point(|(k, _)| !bit(k, depth));
            let (l, dl) = update(left, depth + 1, &changes[..split]);
            let (r, dr) = update(right, depth + 1, &changes[split..]);
            (join(l, r), dl + dr)
        }
    }
}

/// The leaves a subtree holds after `changes`, given the one leaf it held (if any).
fn inserts(changes: &[(Hash, Option<Hash>)], existing: Option<(Hash, Hash)>) -> Vec<(Hash, Hash)> {
    let mut out: Vec<(Hash, Hash)> = changes
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect();
    if let Some((k, v)) = existing
        && !changes.iter().any(|(c, _)| *c == k)
    {
        let at = out.partition_point(|(o, _)| *o < k);
        out.insert(at, (k, v));
    }
    out
}

/// Sorted `(path, value hash)` changes of a write set.
fn hashed_changes(writes: &WriteSet) -> Vec<(Hash, Option<Hash>)> {
    let mut changes: Vec<(Hash, Option<Hash>)> = writes
        .iter()
        .map(|(k, v)| (Hash::sha256(k), v.as_deref().map(Hash::sha256)))
        .collect();
    changes.sort_unstable_by_key(|a| a.0);
    changes
}

impl StateTree {
    /// The tree over a whole state, given as `(key, value)` pairs in any order.
    pub fn from_entries<'a, I>(entries: I) -> Self
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        let mut leaves: Vec<(Hash, Hash)> = entries
            .into_iter()
            .map(|(k, v)| (Hash::sha256(k), Hash::sha256(v)))
            .collect();
        leaves.sort_unstable_by_key(|a| a.0);
        leaves.dedup_by(|a, b| a.0 == b.0);
        StateTree {
            entries: leaves.len(),
            root: build(0, &leaves),
        }
    }

    /// The root hash: the header's `state_root`.
    pub fn root_hash(&self) -> Hash {
        hash_of(&self.root)
    }

    /// How many entries the state holds.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the state is empty.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The next version: this one with a block's writes applied (`None` removes a key).
    /// Shares every subtree the writes do not reach.
    pub fn apply(&self, writes: &WriteSet) -> StateTree {
        let (root, delta) = update(&self.root, 0, &hashed_changes(writes));
        StateTree {
            root,
            entries: self.entries.saturating_add_signed(delta),
        }
    }

    /// The siblings along `key_hash`'s path and the leaf it ends at.
    fn find(&self, key_hash: &Hash) -> (Vec<Hash>, Option<ProofLeaf>) {
        let mut siblings = Vec::new();
        let mut link = &self.root;
        loop {
            match link.as_deref() {
                None => return (siblings, None),
                Some(Node::Leaf {
                    key_hash,
                    value_hash,
                }) => {
                    let leaf = ProofLeaf {
                        key_hash: *key_hash,
                        value_hash: *value_hash,
                    };
                    return (siblings, Some(leaf));
                }
                Some(Node::Branch { left, right, .. }) => {
                    if bit(key_hash, siblings.len()) {
                        siblings.push(hash_of(left));
                        link = right;
                    } else {
                        siblings.push(hash_of(right));
                        link = left;
                    }
                }
            }
        }
    }

    /// The proof of what `key` holds (or that it holds nothing) in this version.
    pub fn prove(&self, key: &[u8]) -> StateProof {
        let (siblings, leaf) = self.find(&Hash::sha256(key));
        StateProof { siblings, leaf }
    }
}

impl StateProof {
    /// Checks that in the state with root `root`, `key` holds `value` (`None`: holds nothing).
    pub fn verify(&self, root: &Hash, key: &[u8], value: Option<&[u8]>) -> Result<(), ProofError> {
        let depth = self.siblings.len();
        if depth > MAX_DEPTH {
            return Err(ProofError::TooDeep(depth));
        }
        let path = Hash::sha256(key);
        match (value, &self.leaf) {
            (Some(_), None) => return Err(ProofError::KeyAbsent),
            (Some(v), Some(leaf)) => {
                if leaf.key_hash != path {
                    return Err(ProofError::NotThisKey);
                }
                if leaf.value_hash != Hash::sha256(v) {
                    return Err(ProofError::WrongValue {
                        found: leaf.value_hash,
                    });
                }
            }
            (None, Some(leaf)) => {
                if leaf.key_hash == path {
                    return Err(ProofError::KeyPresent);
                }
                if (0..depth).any(|i| bit(&leaf.key_hash, i) != bit(&path, i)) {
                    return Err(ProofError::OffPath { depth });
                }
            }
            (None, None) => {}
        }
        let mut acc = match &self.leaf {
            Some(l) => leaf_hash(&l.key_hash, &l.value_hash),
            None => Hash::ZERO,
        };
        for (i, sibling) in self.siblings.iter().enumerate().rev() {
            acc = if bit(&path, i) {
                node_hash(sibling, &acc)
            } else {
                node_hash(&acc, sibling)
            };
        }
        if acc != *root {
            return Err(ProofError::RootMismatch {
                computed: acc,
                expected: *root,
            });
        }
        Ok(())
    }
}

/// The committed tree with the tip it belongs to, shared with readers on other threads: the
/// ledger replaces it at every commit, a reader takes both at once.
#[derive(Debug, Clone)]
pub struct PublishedTree(Arc<RwLock<(Tip, StateTree)>>);

impl PublishedTree {
    pub(crate) fn new(tip: Tip, tree: StateTree) -> Self {
        PublishedTree(Arc::new(RwLock::new((tip, tree))))
    }

    pub(crate) fn set(&self, tip: Tip, tree: StateTree) {
        // The lock only guards a pair of values swapped whole: a panic elsewhere cannot
        // leave it half written, so a poisoned lock is still good.
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = (tip, tree);
    }

    /// The committed tip and its tree.
    pub fn get(&self) -> (Tip, StateTree) {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests;
