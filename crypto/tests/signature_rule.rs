//! The signature validity rule at its edges: single and batch verification must agree on
//! every case, including the ones where ed25519 implementations historically disagree.

use cairn_crypto::{BatchVerifier, PublicKey, Signature, SignatureError, SigningKey, verify_batch};
use curve25519_dalek::constants::EIGHT_TORSION;

/// Encodings of the eight small-order points: the 8 canonical ones plus the 6 non-canonical
/// ones (y ≥ p, or x = 0 with the sign bit set), 14 in all, as in ZIP-215's test set.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut out: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|p| p.compress().to_bytes())
        .collect();
    // y + p fits in 255 bits only for y < 19; among small-order points that is y = 0 and y = 1.
    // 2^255 - 19 + y = 2^255 - d with d = 19 - y: low byte 0x100 - d, then 0xff…, top 0x7f.
    for y in [0u8, 1] {
        let d = 19 - y as u16;
        let mut b = [0xffu8; 32];
        b[0] = (0x100 - d) as u8;
        b[31] = 0x7f;
        out.push(b);
        let mut neg = b;
        neg[31] |= 0x80;
        out.push(neg);
    }
    // x = 0 (y = 1 and y = -1) written with the sign bit set: "negative zero".
    let mut one = [0u8; 32];
    one[0] = 1;
    one[31] |= 0x80;
    out.push(one);
    let minus_one = EIGHT_TORSION
        .iter()
        .map(|p| p.compress().to_bytes())
        .find(|b| b[0] == 0xec)
        .expect("y = -1 is a torsion point");
    let mut m = minus_one;
    m[31] |= 0x80;
    out.push(m);
    out
}

fn batch_of_one(pk: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), SignatureError> {
    let mut b = BatchVerifier::new();
    b.push_raw(pk, msg, sig);
    b.verify().map_err(|bad| bad[0].1)
}

#[test]
fn zip215_small_order_cases_agree_single_and_batch() {
    let encodings = small_order_encodings();
    assert_eq!(encodings.len(), 14);
    let msg = b"Zcash";
    let mut accepted = 0;
    let mut strict_rejected = 0;
    for a in &encodings {
        for r in &encodings {
            // s = 0: [8]0·B = 0 = [8]R + [8]k·A holds for every small-order R and A.
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(r);
            let (pk, sig) = (PublicKey(*a), Signature(sig));
            let single = pk.verify_raw(msg, &sig);
            let batch = batch_of_one(&pk, msg, &sig);
            assert_eq!(single, batch, "A={} R={}", hex(a), hex(r));
            if single.is_ok() {
                accepted += 1;
            }
            // For the record: verify_strict (ed25519-dalek) refuses all of these.
            let strict = ed25519_dalek::VerifyingKey::from_bytes(a)
                .ok()
                .map(|vk| vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0)));
            if !matches!(strict, Some(Ok(()))) {
                strict_rejected += 1;
            }
        }
    }
    // ZIP-215 accepts all 196 (s = 0 is canonical and the cofactored equation holds).
    assert_eq!(accepted, 196);
    assert_eq!(strict_rejected, 196);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// ℓ, the order of the prime-order subgroup, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = a[i] as u16 + b[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

#[test]
fn edge_cases_agree_single_and_batch() {
    let sk = SigningKey::from_seed([42; 32]);
    let pk = sk.public_key();
    let msg = b"transfer 10 to bob";
    let good = sk.sign_raw(msg);

    // s + ℓ: the same scalar mod ℓ, but not canonical. Malleability: must be rejected.
    let mut s_plus_ell = good;
    let s: [u8; 32] = good.0[32..].try_into().expect("32 bytes");
    s_plus_ell.0[32..].copy_from_slice(&add_le(&s, &ELL));
    // s = ℓ exactly.
    let mut s_is_ell = good;
    s_is_ell.0[32..].copy_from_slice(&ELL);
    // All-ones s (way above ℓ).
    let mut s_max = good;
    s_max.0[32..].copy_from_slice(&[0xff; 32]);
    // R that is not a point: y = 2 has no x on the curve.
    let mut r_off_curve = good;
    r_off_curve.0[..32].copy_from_slice(&{
        let mut b = [0u8; 32];
        b[0] = 2;
        b
    });
    let mut flipped = good;
    flipped.0[5] ^= 1;
    let mut off_curve_key = [0u8; 32];
    off_curve_key[0] = 2;

    let cases: Vec<(&str, PublicKey, &[u8], Signature, bool)> = vec![
        ("valid", pk, msg, good, true),
        ("s + ℓ (non-canonical s)", pk, msg, s_plus_ell, false),
        ("s = ℓ", pk, msg, s_is_ell, false),
        ("s all ones", pk, msg, s_max, false),
        ("R off the curve", pk, msg, r_off_curve, false),
        ("bit flipped in R", pk, msg, flipped, false),
        ("other message", pk, b"transfer 11 to bob", good, false),
        (
            "key off the curve",
            PublicKey(off_curve_key),
            msg,
            good,
            false,
        ),
        (
            "other key",
            SigningKey::from_seed([43; 32]).public_key(),
            msg,
            good,
            false,
        ),
    ];
    for (desc, k, m, s, ok) in &cases {
        let single = k.verify_raw(m, s);
        assert_eq!(single.is_ok(), *ok, "{desc}: single verification");
        assert_eq!(batch_of_one(k, m, s), single, "{desc}: batch of one");
    }
    assert_eq!(
        PublicKey(off_curve_key).verify_raw(msg, &good),
        Err(SignatureError::MalformedKey)
    );

    // All cases in one batch: each position gets the same answer as alone.
    let results = verify_batch(cases.iter().map(|(_, k, m, s, _)| (k, *m, s)));
    for ((desc, k, m, s, _), r) in cases.iter().zip(&results) {
        assert_eq!(*r, k.verify_raw(m, s), "{desc}: inside a mixed batch");
    }
}

#[test]
fn large_mixed_batch_pinpoints_bad_signatures() {
    let keys: Vec<SigningKey> = (0..64u8).map(|i| SigningKey::from_seed([i; 32])).collect();
    let msgs: Vec<Vec<u8>> = (0..256u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let mut sigs: Vec<(PublicKey, Signature)> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let k = &keys[i % keys.len()];
            (k.public_key(), k.sign_raw(m))
        })
        .collect();
    assert!(
        verify_batch(
            sigs.iter()
                .zip(&msgs)
                .map(|((k, s), m)| (k, m.as_slice(), s))
        )
        .iter()
        .all(Result::is_ok)
    );
    for bad in [0usize, 77, 255] {
        sigs[bad].1.0[40] ^= 0x10;
    }
    let results = verify_batch(
        sigs.iter()
            .zip(&msgs)
            .map(|((k, s), m)| (k, m.as_slice(), s)),
    );
    let bad: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bad, vec![0, 77, 255]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random keys, messages and corruptions: the batch answer equals the single answer
        /// at every position.
        #[test]
        fn batch_equals_single(
            seeds in proptest::collection::vec(any::<[u8; 32]>(), 1..24),
            corrupt in proptest::collection::vec(any::<(bool, u8, u8)>(), 24),
        ) {
            let mut items = Vec::new();
            for (i, seed) in seeds.iter().enumerate() {
                let sk = SigningKey::from_seed(*seed);
                let msg = seed[..(i % 32)].to_vec();
                let mut sig = sk.sign_raw(&msg);
                let (flip, at, bit) = corrupt[i];
                if flip {
                    sig.0[at as usize % 64] ^= 1 << (bit % 8);
                }
                items.push((sk.public_key(), msg, sig));
            }
            let batch = verify_batch(items.iter().map(|(k, m, s)| (k, m.as_slice(), s)));
            for ((k, m, s), b) in items.iter().zip(batch) {
                prop_assert_eq!(k.verify_raw(m, s), b);
            }
        }
    }
}
