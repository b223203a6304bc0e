//! Signature verification: ZIP-215 single (ed25519-zebra) vs batch (Cairn's, with decoded
//! keys kept between batches: `zip215_batch_N` repeats its keys, as accounts sending again do;
//! `zip215_batch_256_fresh_keys` never does) vs `verify_strict` one at a time (ed25519-dalek),
//! plus hashing and codec costs.
//!
//! `cargo bench --workspace --bench crypto`

use cairn_crypto::{Hash, PublicKey, Signature, SigningKey, verify_batch};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn signed(n: usize) -> Vec<(PublicKey, Vec<u8>, Signature)> {
    (0..n)
        .map(|i| {
            let sk = SigningKey::from_seed(Hash::sha256(&(i as u64).to_le_bytes()).0);
            let msg = vec![i as u8; 180];
            let sig = sk.sign_raw(&msg);
            (sk.public_key(), msg, sig)
        })
        .collect()
}

fn verification(c: &mut Criterion) {
    let items = signed(1024);
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("zip215_single", |b| {
        let (k, m, s) = &items[0];
        b.iter(|| black_box(k.verify_raw(m, s)))
    });
    g.bench_function("dalek_verify_strict_single", |b| {
        let (k, m, s) = &items[0];
        b.iter(|| {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&k.0).expect("valid key");
            black_box(vk.verify_strict(m, &ed25519_dalek::Signature::from_bytes(&s.0)))
        })
    });
    g.bench_function("sign", |b| {
        let sk = SigningKey::from_seed([1; 32]);
        b.iter(|| black_box(sk.sign_raw(&items[0].1)))
    });
    g.finish();

    let mut g = c.benchmark_group("verify_batch");
    for n in [16usize, 64, 256, 1024] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("zip215_batch_{n}"), |b| {
            b.iter(|| {
                black_box(verify_batch(
                    items[..n].iter().map(|(k, m, s)| (k, m.as_slice(), s)),
                ))
            })
        });
    }
    g.throughput(Throughput::Elements(256));
    let mut round = 0u64;
    g.bench_function("zip215_batch_256_fresh_keys", |b| {
        b.iter_batched(
            || {
                round += 1;
                signed_by_fresh_keys(256, round)
            },
            |fresh| {
                black_box(verify_batch(
                    fresh.iter().map(|(k, m, s)| (k, m.as_slice(), s)),
                ))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// `n` signatures by keys no other round uses.
fn signed_by_fresh_keys(n: usize, round: u64) -> Vec<(PublicKey, Vec<u8>, Signature)> {
    (0..n as u64)
        .map(|i| {
            let sk = SigningKey::from_seed(
                Hash::sha256(&[round.to_le_bytes(), i.to_le_bytes()].concat()).0,
            );
            let msg = vec![i as u8; 180];
            let sig = sk.sign_raw(&msg);
            (sk.public_key(), msg, sig)
        })
        .collect()
}

fn hashing_and_codec(c: &mut Criterion) {
    let data = vec![7u8; 256];
    c.bench_function("sha256_256B", |b| b.iter(|| black_box(Hash::sha256(&data))));
    let leaves: Vec<Hash> = (0..5000u64)
        .map(|i| Hash::sha256(&i.to_le_bytes()))
        .collect();
    c.bench_function("merkle_root_5000", |b| {
        b.iter(|| black_box(cairn_crypto::merkle::root(&leaves)))
    });
    let v: Vec<(PublicKey, u64, Vec<u8>)> = (0..100)
        .map(|i| (PublicKey([i as u8; 32]), i, vec![1; 64]))
        .collect();
    c.bench_function("codec_roundtrip_100_records", |b| {
        b.iter_batched(
            || cairn_crypto::codec::encode(&v),
            |bytes| {
                black_box(cairn_crypto::codec::decode::<Vec<(PublicKey, u64, Vec<u8>)>>(&bytes))
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, verification, hashing_and_codec);
criterion_main!(benches);
