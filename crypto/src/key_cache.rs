//! Decoded public keys kept between verification batches.
//!
//! Decoding a key (point decompression, a square root in the field) costs about as much as
//! the rest of that signature's share of a batch. Accounts send many transactions, so a node
//! verifying batch after batch decodes the same keys over and over; this keeps the last
//! [`KEYS_KEPT`] decoded ones. Decoding is a pure function of the 32 bytes, so a cached point
//! is exactly what decoding again would give. Keys that do not decode are never kept.
//!
//! Bounded by entries: when a batch would take it past the bound, it is emptied and refilled
//! from that batch on. A flood of fresh keys thus costs what it cost without the cache (one
//! decoding per key), and memory stays at most [`KEYS_KEPT`] entries (about 200 bytes each).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use curve25519_dalek_5::edwards::{CompressedEdwardsY, EdwardsPoint};

/// Most decoded keys kept (about 3.3 MB when full).
pub const KEYS_KEPT: usize = 1 << 14;

static KEYS: LazyLock<Mutex<HashMap<[u8; 32], EdwardsPoint>>> = LazyLock::new(Mutex::default);

fn keys() -> MutexGuard<'static, HashMap<[u8; 32], EdwardsPoint>> {
    // The map holds only complete entries: one left by a panicking holder is still valid.
    KEYS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Decodes one key, as ZIP-215 does: any encoding of a curve point, canonical or not.
pub(crate) fn decode(key: &[u8; 32]) -> Option<EdwardsPoint> {
    CompressedEdwardsY(*key).decompress()
}

/// The decoded point of each key, in order (`None` for bytes that are not a curve point),
/// from the cache where it can, decoding the rest outside the lock.
pub(crate) fn points<'a>(
    keys_wanted: impl Iterator<Item = &'a [u8; 32]>,
) -> Vec<Option<EdwardsPoint>> {
    let wanted: Vec<&[u8; 32]> = keys_wanted.collect();
    let mut out: Vec<Option<EdwardsPoint>> = Vec::with_capacity(wanted.len());
    let mut missing: Vec<usize> = Vec::new();
    {
        let cache = keys();
        for (i, key) in wanted.iter().enumerate() {
            let hit = cache.get(*key).copied();
            if hit.is_none() {
                missing.push(i);
            }
            out.push(hit);
        }
    }
    if missing.is_empty() {
        return out;
    }
    // A key repeated in the batch is decoded once.
    let mut decoded: HashMap<[u8; 32], Option<EdwardsPoint>> = HashMap::new();
    for &i in &missing {
        let key = wanted[i];
        out[i] = *decoded.entry(*key).or_insert_with(|| decode(key));
    }
    let mut cache = keys();
    let fresh = decoded.values().filter(|p| p.is_some()).count();
    if cache.len() + fresh > KEYS_KEPT {
        cache.clear();
    }
    for (key, point) in decoded {
        if let Some(p) = point
            && cache.len() < KEYS_KEPT
        {
            cache.insert(key, p);
        }
    }
    out
}

/// Decoded keys held now.
pub fn cached_keys() -> usize {
    keys().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_points_equal_fresh_decoding_and_bad_keys_are_not_kept() {
        let good = crate::SigningKey::from_seed([3; 32]).public_key().0;
        // About half of all y-coordinates have no point on the curve.
        let bad = (2u8..)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| decode(b).is_none())
            .expect("some small y is off the curve");
        let first = points([&good, &bad, &good].into_iter());
        let again = points([&good, &bad].into_iter());
        assert_eq!(first[0], decode(&good));
        assert_eq!(first[2], first[0]);
        assert_eq!(again[0], first[0]);
        assert!(first[1].is_none() && again[1].is_none());
        assert!(!keys().contains_key(&bad));
        assert!(keys().contains_key(&good));
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let many: Vec<[u8; 32]> = (0..KEYS_KEPT as u64 + 100)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&i.to_le_bytes());
                seed[8] = 0x5a;
                crate::SigningKey::from_seed(seed).public_key().0
            })
            .collect();
        for chunk in many.chunks(1000) {
            let got = points(chunk.iter());
            assert!(got.iter().all(Option::is_some));
            assert!(cached_keys() <= KEYS_KEPT);
        }
    }
}
