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
    items: Vec<ed25519_zebra::batch::Item>,
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
        let vk = ed25519_zebra::VerificationKeyBytes::from(key.0);
        let sig = ed25519_zebra::Signature::from_bytes(&signature.0);
        self.items.push((vk, sig, bytes).into());
    }

    /// Checks every queued signature. `Ok` if all verify; otherwise the positions (in push
    /// order) of those that do not, each with its reason.
    pub fn verify(self) -> Result<(), Vec<(usize, SignatureError)>> {
        if batch_passes(&self.items) {
            return Ok(());
        }
        let mut bad = Vec::new();
        find_bad(&self.items, 0, &mut bad);
        if bad.is_empty() {
            // Unreachable under ZIP-215 (batch and single accept the same set). Should it ever
            // happen, single verification is the rule: every signature passed it.
            Ok(())
        } else {
            Err(bad)
        }
    }
}

/// Below this many, a failed batch is checked one signature at a time.
const SINGLE_BELOW: usize = 8;

/// Whether every signature in `items` verifies, checked as one batch.
fn batch_passes(items: &[ed25519_zebra::batch::Item]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for item in items {
        batch.queue(item.clone());
    }
    batch.verify(SystemRandom).is_ok()
}

/// The bad signatures in `items`, a batch known to fail, found by halving: when one half
/// passes, the bad ones are all in the other, which needs no batch of its own. One bad
/// signature among n costs about n more signatures checked in batches instead of n single
/// checks (several times dearer each), so a client that slips a bad signature into a busy
/// node's merged batch does not make it verify everyone else's one by one. When both halves
/// fail, bad signatures are many: the rest is checked one by one, as before.
fn find_bad(
    items: &[ed25519_zebra::batch::Item],
    offset: usize,
    bad: &mut Vec<(usize, SignatureError)>,
) {
    if items.len() >= SINGLE_BELOW {
        let (left, right) = items.split_at(items.len() / 2);
        if batch_passes(left) {
            return find_bad(right, offset + left.len(), bad);
        }
        if batch_passes(right) {
            return find_bad(left, offset, bad);
        }
    }
    for (i, item) in items.iter().enumerate() {
        match item.clone().verify_single() {
            Ok(()) => {}
            Err(ed25519_zebra::Error::MalformedPublicKey) => {
                bad.push((offset + i, SignatureError::MalformedKey))
            }
            Err(_) => bad.push((offset + i, SignatureError::Invalid)),
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

/// The operating system's random source (through `rand_core` 0.6, which panics if it fails, as
/// the previous verifier's did) in the RNG trait the batch verifier takes. It draws the batch
/// equation's random weights, which must be unpredictable to whoever chose the signatures.
struct SystemRandom;

impl rand_core_010::TryRng for SystemRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(rand_core::RngCore::next_u32(&mut rand_core::OsRng))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(rand_core::RngCore::next_u64(&mut rand_core::OsRng))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, dst);
        Ok(())
    }
}

impl rand_core_010::TryCryptoRng for SystemRandom {}
