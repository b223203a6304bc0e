//! SHA-256 hashes, always domain-separated.

use sha2::{Digest, Sha256};

use crate::bytes::fixed_bytes;

fixed_bytes!(
    /// A SHA-256 digest: transaction ids, block hashes, Merkle and state roots.
    Hash,
    32
);

/// A domain tag: a short ASCII name that prefixes everything Cairn hashes or signs, so a hash or
/// signature made for one purpose can never be taken for another. Each tag is used for exactly
/// one kind of message; the list lives in `docs/PROTOCOL.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Domain(&'static str);

impl Domain {
    /// A tag. Tags are compile-time constants; their length must fit in one byte.
    pub const fn new(tag: &'static str) -> Self {
        assert!(!tag.is_empty() && tag.len() <= 255, "domain tag length");
        Domain(tag)
    }

    /// The tag text.
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// `u8 length ‖ tag bytes`: the prefix written before hashed or signed content.
    pub(crate) fn write_prefix(&self, out: &mut Vec<u8>) {
        // `new` guarantees the length fits in a byte.
        out.push(self.0.len() as u8);
        out.extend_from_slice(self.0.as_bytes());
    }
}

impl Hash {
    /// The all-zero hash, used where a structure needs a placeholder (never a real digest).
    pub const ZERO: Hash = Hash([0u8; 32]);

    /// Plain SHA-256 of `data`, with no domain tag. Only for formats fixed by others (the
    /// Merkle tree's RFC 6962 prefixes); Cairn's own objects use [`Hash::tagged`].
    pub fn sha256(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }

    /// SHA-256 over `u8 len(tag) ‖ tag ‖ parts[0] ‖ parts[1] ‖ …`.
    pub fn tagged(domain: Domain, parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        h.update([domain.0.len() as u8]);
        h.update(domain.0.as_bytes());
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_matches_fips_180_vector() {
        assert_eq!(
            Hash::sha256(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn different_domains_give_different_hashes() {
        let a = Hash::tagged(Domain::new("a"), &[b"x"]);
        let b = Hash::tagged(Domain::new("b"), &[b"x"]);
        assert_ne!(a, b);
        // The length prefix keeps tag and content apart: ("ab", "c") differs from ("a", "bc").
        let c = Hash::tagged(Domain::new("ab"), &[b"c"]);
        let d = Hash::tagged(Domain::new("a"), &[b"bc"]);
        assert_ne!(c, d);
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let h = Hash::sha256(b"x");
        assert_eq!(h.to_hex().parse::<Hash>(), Ok(h));
        assert_eq!(format!("0x{h}").parse::<Hash>(), Ok(h));
        assert!(matches!(
            "abcd".parse::<Hash>(),
            Err(crate::ParseHexError::WrongLength {
                expected: 32,
                got: 2
            })
        ));
        assert!(matches!(
            "zz".parse::<Hash>(),
            Err(crate::ParseHexError::NotHex(_))
        ));
    }

    #[test]
    fn json_is_hex_and_binary_is_raw() {
        let h = Hash::sha256(b"x");
        let json = serde_json::to_string(&h).expect("serialize");
        assert_eq!(json, format!("\"{}\"", h.to_hex()));
        assert_eq!(serde_json::from_str::<Hash>(&json).expect("parse"), h);
        assert_eq!(crate::codec::encode(&h), h.0.to_vec());
    }
}
