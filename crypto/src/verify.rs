//! Batched signature verification that agrees with single verification on every input.
//!
//! The batch equation is ZIP-215's, as `ed25519-zebra` (the rule's reference) computes it:
//! for signatures `(A_i, R_i, s_i)` with `k_i = SHA-512(R_i ‖ A_i ‖ M_i)` and random 128-bit
//! weights `z_i`, check `[8]( -(Σ z_i s_i) B + Σ z_i R_i + Σ (z_i k_i) A_i ) = 0`, with
//! the `A` terms of one key merged. It is computed here rather than by `ed25519-zebra` so
//! that decoded keys can be kept between batches ([`crate::key_cache`]), and so that the
//! weights come from one read of the system's random source per batch instead of one per
//! signature. Points decode with the same `curve25519-dalek` function the reference uses.

use std::collections::HashMap;

use curve25519_dalek_5::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek_5::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek_5::scalar::Scalar;
use curve25519_dalek_5::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

use crate::hash::Domain;
use crate::key_cache;
use crate::keys::{PublicKey, Signature, SignatureError, signing_bytes};

/// One queued signature: the key, `R`, `s` as sent, and `k` (the message is not kept).
struct Item {
    key: [u8; 32],
    r: [u8; 32],
    s: [u8; 32],
    k: Scalar,
}

impl Item {
    fn new(key: &PublicKey, bytes: &[u8], signature: &Signature) -> Item {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&signature.0[..32]);
        s.copy_from_slice(&signature.0[32..]);
        let digest: [u8; 64] = Sha512::new()
            .chain_update(r)
            .chain_update(key.0)
            .chain_update(bytes)
            .finalize()
            .into();
        Item {
            key: key.0,
            r,
            s,
            k: Scalar::from_bytes_mod_order_wide(&digest),
        }
    }

    /// `R` decoded and `s` if canonical (`s < ℓ`); `None` makes the signature invalid.
    fn r_and_s(&self) -> Option<(EdwardsPoint, Scalar)> {
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(self.s))?;
        let r = CompressedEdwardsY(self.r).decompress()?;
        Some((r, s))
    }

    /// The single cofactored check, `[8](R - ([s]B - [k]A)) = 0`, with `A` already decoded.
    fn check_alone(&self, a: Option<&EdwardsPoint>) -> Result<(), SignatureError> {
        let a = a.ok_or(SignatureError::MalformedKey)?;
        let (r, s) = self.r_and_s().ok_or(SignatureError::Invalid)?;
        let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-a, &s);
        if (r - expected).mul_by_cofactor().is_identity() {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// Collects signatures and checks them together.
///
/// A batch that verifies proves every signature in it valid; a batch that fails is re-checked
/// to say which ones are bad. Under ZIP-215 the batch equation is the cofactored single
/// equation summed with random weights, so the set of accepted signatures is the same either
/// way (up to the 2^-128 chance that random weights hide a bad signature).
#[derive(Default)]
pub struct BatchVerifier {
    items: Vec<Item>,
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
        self.items.push(Item::new(key, bytes, signature));
    }

    /// Checks every queued signature. `Ok` if all verify; otherwise the positions (in push
    /// order) of those that do not, each with its reason.
    pub fn verify(self) -> Result<(), Vec<(usize, SignatureError)>> {
        if self.items.is_empty() {
            return Ok(());
        }
        let keys = key_cache::points(self.items.iter().map(|i| &i.key));
        if batch_passes(&self.items, &keys) {
            return Ok(());
        }
        let mut bad = Vec::new();
        find_bad(&self.items, &keys, 0, &mut bad);
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

/// Whether every signature in `items` (whose decoded keys are `keys`, position for position)
/// verifies, checked as one batch.
fn batch_passes(items: &[Item], keys: &[Option<EdwardsPoint>]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut weights = Weights::from_system();
    let mut b_coeff = Scalar::ZERO;
    let mut r_coeffs = Vec::with_capacity(items.len());
    let mut r_points = Vec::with_capacity(items.len());
    let mut a_slot: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.len());
    let mut a_coeffs: Vec<Scalar> = Vec::new();
    let mut a_points: Vec<EdwardsPoint> = Vec::new();
    for (item, key) in items.iter().zip(keys) {
        let (Some(a), Some((r, s))) = (key, item.r_and_s()) else {
            return false;
        };
        let z = Scalar::from(weights.next());
        b_coeff -= z * s;
        r_coeffs.push(z);
        r_points.push(r);
        let slot = *a_slot.entry(item.key).or_insert_with(|| {
            a_points.push(*a);
            a_coeffs.push(Scalar::ZERO);
            a_points.len() - 1
        });
        a_coeffs[slot] += z * item.k;
    }
    let sum = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&b_coeff)
            .chain(a_coeffs.iter())
            .chain(r_coeffs.iter()),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(a_points.iter())
            .chain(r_points.iter()),
    );
    sum.mul_by_cofactor().is_identity()
}

/// The bad signatures in `items`, a batch known to fail, found by halving: when one half
/// passes, the bad ones are all in the other, which needs no batch of its own. One bad
/// signature among n costs about n more signatures checked in batches instead of n single
/// checks (several times dearer each), so a client that slips a bad signature into a busy
/// node's merged batch does not make it verify everyone else's one by one. When both halves
/// fail, bad signatures are many: the rest is checked one by one, as before.
fn find_bad(
    items: &[Item],
    keys: &[Option<EdwardsPoint>],
    offset: usize,
    bad: &mut Vec<(usize, SignatureError)>,
) {
    if items.len() >= SINGLE_BELOW {
        let mid = items.len() / 2;
        let (left, right) = items.split_at(mid);
        let (left_keys, right_keys) = keys.split_at(mid);
        if batch_passes(left, left_keys) {
            return find_bad(right, right_keys, offset + mid, bad);
        }
        if batch_passes(right, right_keys) {
            return find_bad(left, left_keys, offset, bad);
        }
    }
    for (i, (item, key)) in items.iter().zip(keys).enumerate() {
        if let Err(e) = item.check_alone(key.as_ref()) {
            bad.push((offset + i, e));
        }
    }
}

/// The batch equation's random weights: 128 bits each, unpredictable to whoever chose the
/// signatures. One read of the system's random source (through `rand_core` 0.6, which panics
/// if it fails) seeds SHA-512 in counter mode, which gives four weights per block.
struct Weights {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

impl Weights {
    fn from_system() -> Weights {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        Weights {
            seed,
            counter: 0,
            block: [0; 64],
            used: 4,
        }
    }

    fn next(&mut self) -> u128 {
        if self.used == 4 {
            self.block = Sha512::new()
                .chain_update(self.seed)
                .chain_update(self.counter.to_le_bytes())
                .finalize()
                .into();
            self.counter += 1;
            self.used = 0;
        }
        let mut w = [0u8; 16];
        w.copy_from_slice(&self.block[self.used * 16..(self.used + 1) * 16]);
        self.used += 1;
        u128::from_le_bytes(w)
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
