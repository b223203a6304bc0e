//! ed25519 keys and signatures under one network-wide validity rule: ZIP-215.
//!
//! ZIP-215 (as implemented by `ed25519-zebra`, where the rule was defined) fixes what a valid
//! signature is, byte for byte: `A` and `R` may be any encoding that decodes to a curve point
//! (non-canonical encodings and small-order points included), `s` must be canonical (`s < ℓ`), and the check is the
//! cofactored equation `[8][s]B = [8]R + [8][k]A`. Under that rule single and batch
//! verification accept exactly the same set of signatures, which is why Cairn uses it:
//! a node that verifies in batches and a node that verifies one by one never disagree.

use crate::bytes::fixed_bytes;
use crate::hash::Domain;

fixed_bytes!(
    /// An ed25519 public key (the compressed point, 32 bytes). Accounts and validators are
    /// identified by their public key.
    PublicKey,
    32
);

fixed_bytes!(
    /// An ed25519 signature: `R ‖ s`, 64 bytes.
    Signature,
    64
);

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key bytes do not decode to a curve point.
    #[error("public key is not a valid ed25519 point")]
    MalformedKey,
    /// The signature does not verify for this key and message.
    #[error("signature does not verify")]
    Invalid,
}

/// The exact bytes an ed25519 signature covers: `u8 len(tag) ‖ tag ‖ u64-LE len(chain_id) ‖
/// chain_id ‖ message`. Binding the tag and chain id means no signature can be replayed in
/// another role or on another chain.
pub fn signing_bytes(domain: Domain, chain_id: &str, message: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(1 + domain.as_str().len() + 8 + chain_id.len() + message.len());
    domain.write_prefix(&mut out);
    out.extend_from_slice(&(chain_id.len() as u64).to_le_bytes());
    out.extend_from_slice(chain_id.as_bytes());
    out.extend_from_slice(message);
    out
}

/// An ed25519 secret key. `Debug` never prints the secret.
#[derive(Clone)]
pub struct SigningKey(ed25519_zebra::SigningKey);

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        SigningKey::from_seed(seed)
    }

    /// The key with this 32-byte seed (RFC 8032 secret key). Deterministic: for tests, test
    /// vectors and key files.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningKey(ed25519_zebra::SigningKey::from(seed))
    }

    /// The 32-byte seed, for writing a key file. Handle with care.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verification_key().into())
    }

    /// Signs `message` in `domain` on chain `chain_id` (see [`signing_bytes`]).
    pub fn sign(&self, domain: Domain, chain_id: &str, message: &[u8]) -> Signature {
        self.sign_raw(&signing_bytes(domain, chain_id, message))
    }

    /// Signs exactly these bytes. Callers almost always want [`SigningKey::sign`].
    pub fn sign_raw(&self, bytes: &[u8]) -> Signature {
        Signature(self.0.sign(bytes).to_bytes())
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {:?})", self.public_key())
    }
}

impl PublicKey {
    /// Verifies a signature over `signing_bytes(domain, chain_id, message)`.
    pub fn verify(
        &self,
        domain: Domain,
        chain_id: &str,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        self.verify_raw(&signing_bytes(domain, chain_id, message), signature)
    }

    /// Verifies a signature over exactly these bytes, under the ZIP-215 rule.
    pub fn verify_raw(&self, bytes: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let vk = ed25519_zebra::VerificationKey::try_from(self.0)
            .map_err(|_| SignatureError::MalformedKey)?;
        vk.verify(&ed25519_zebra::Signature::from_bytes(&signature.0), bytes)
            .map_err(|_| SignatureError::Invalid)
    }

    /// Whether the bytes decode to a curve point (a key that could ever verify anything).
    pub fn is_valid_point(&self) -> bool {
        ed25519_zebra::VerificationKey::try_from(self.0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Domain = Domain::new("cairn/test");

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1, TEST 1: empty message.
        let seed: [u8; 32] = crate::bytes::parse_hex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        )
        .expect("hex");
        let sk = SigningKey::from_seed(seed);
        assert_eq!(
            sk.public_key().to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = sk.sign_raw(b"");
        assert_eq!(
            sig.to_hex(),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(sk.public_key().verify_raw(b"", &sig), Ok(()));
    }

    #[test]
    fn signature_is_bound_to_domain_chain_and_message() {
        let sk = SigningKey::from_seed([7; 32]);
        let pk = sk.public_key();
        let sig = sk.sign(D, "chain-a", b"msg");
        assert_eq!(pk.verify(D, "chain-a", b"msg", &sig), Ok(()));
        assert_eq!(
            pk.verify(D, "chain-b", b"msg", &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            pk.verify(Domain::new("cairn/other"), "chain-a", b"msg", &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            pk.verify(D, "chain-a", b"msh", &sig),
            Err(SignatureError::Invalid)
        );
        let other = SigningKey::from_seed([8; 32]).public_key();
        assert_eq!(
            other.verify(D, "chain-a", b"msg", &sig),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn chain_id_is_length_prefixed() {
        // ("ab", "c…") and ("a", "bc…") must not produce the same signed bytes.
        assert_ne!(signing_bytes(D, "ab", b"c"), signing_bytes(D, "a", b"bc"));
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let sk = SigningKey::from_seed([9; 32]);
        let dbg = format!("{sk:?}");
        assert!(!dbg.contains(&hex::encode([9u8; 32])[..12]));
        assert!(dbg.contains("public"));
    }
}
