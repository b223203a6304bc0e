//! Batched signature verification that agrees with single verification on every input.

use crate::hash::Domain;
use crate::keys::{PublicKey, Signature, SignatureError, signing_bytes};

/// Collects signatures and checks them together.
///
/// A batch that verifies proves every signature in it valid; a batch that fails is re-checked
/// one signature at a time to say which ones are bad. Under ZIP-215 the batch equation is the
/// cofactored single equation summed with random weights, so the set of accepted signatures is
/// the same either way (up to the 2^-128 chance that random weights hide a bad signature).
#[derive(Default)]
pub struct BatchVerifier {
    items: Vec<ed25519_consensus::batch::Item>,
}

impl BatchVerifier {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `n` signatures.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            items: Vec::with_capacity(n),
        }
    }

    /// Number of signatures queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues a signature over `signing_bytes(domain, chain_id, message)`.
    pub fn push(
        &mut self,
        key: &PublicKey,
        domain: Domain,
        chain_id: &str,
        message: &[u8],
        signature: &Signature,
    ) {
        self.push_raw(key, &signing_bytes(domain, chain_id, message), signature);
    }

    /// Queues a signature over exactly `bytes`. The message is hashed now and not kept.
    pub fn push_raw(&mut self, key: &PublicKey, bytes: &[u8], signature: &Signature) {
        let vk = ed25519_consensus::VerificationKeyBytes::from(key.0);
        let sig = ed25519_consensus::Signature::from(signature.0);
        self.items.push((vk, sig, bytes).into());
    }

    /// Checks every queued signature. `Ok` if all verify; otherwise the positions (in push
    /// order) of those that do not, each with its reason.
    pub fn verify(self) -> Result<(), Vec<(usize, SignatureError)>> {
        if self.items.is_empty() {
            return Ok(());
        }
        let mut batch = ed25519_consensus::batch::Verifier::new();
        for item in &self.items {
            batch.queue(item.clone());
        }
        if batch.verify(rand_core::OsRng).is_ok() {
            return Ok(());
        }
        // Some signature is bad: find which, one by one.
        let bad: Vec<(usize, SignatureError)> = self
            .items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| match item.verify_single() {
                Ok(()) => None,
                Err(ed25519_consensus::Error::MalformedPublicKey) => {
                    Some((i, SignatureError::MalformedKey))
                }
                Err(_) => Some((i, SignatureError::Invalid)),
            })
            .collect();
        if bad.is_empty() {
            // Unreachable under ZIP-215 (batch and single accept the same set). Should it ever
            // happen, single verification is the rule: every signature passed it.
            Ok(())
        } else {
            Err(bad)
        }
    }
}

/// Verifies `(key, signed bytes, signature)` triples in one batch; one result per triple, in
/// order, identical to what [`PublicKey::verify_raw`] returns for each.
pub fn verify_batch<'a, I>(items: I) -> Vec<Result<(), SignatureError>>
where
    I: IntoIterator<Item = (&'a PublicKey, &'a [u8], &'a Signature)>,
{
    let mut batch = BatchVerifier::new();
    for (k, m, s) in items {
        batch.push_raw(k, m, s);
    }
    let n = batch.len();
    let mut out = vec![Ok(()); n];
    if let Err(bad) = batch.verify() {
        for (i, e) in bad {
            out[i] = Err(e);
        }
    }
    out
}
