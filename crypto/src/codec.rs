//! The one wire codec: every byte Cairn hashes, signs, stores or sends comes from here.
//!
//! Format: bincode 2 through serde, fixed-width little-endian integers, `u64` length prefixes,
//! `u32` enum variant indexes, `u8` option tags (0 = none, 1 = some). `docs/PROTOCOL.md` spells
//! out the layout of every Cairn structure.
//!
//! Decoding is strict, so one value has exactly one encoding and nothing that hashes or signs
//! an encoding can be malleated:
//! - input longer than the caller's limit is refused before it is read;
//! - trailing bytes after the value are refused;
//! - input that does not re-encode to the very same bytes is refused.
//!
//! bincode is unmaintained (RUSTSEC-2025-0141) and its `3.0.0` release is a placeholder that
//! does not compile: keeping every use behind this module keeps a future swap cheap.

use bincode::config::{Config, Configuration, Fixint, LittleEndian, NoLimit};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest input [`decode`] reads: no message, block or record in Cairn comes near it.
/// Callers that know a tighter bound use [`decode_limited`].
pub const MAX_DECODE_BYTES: usize = 64 << 20;

/// Why bytes were not accepted as a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input is longer than the limit for this kind of value.
    #[error("input of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes do not describe a value of the expected type (truncated, bad tag, bad UTF-8…).
    #[error("malformed input: {reason}")]
    Malformed {
        /// What the decoder reported.
        reason: String,
    },
    /// A complete value was read but bytes were left over.
    #[error("{extra} trailing bytes after the value")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
    /// The bytes decode, but not from the value's one canonical encoding.
    #[error("non-canonical encoding")]
    NonCanonical,
}

fn config() -> Configuration<LittleEndian, Fixint, NoLimit> {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
}

/// The canonical encoding of `value`.
///
/// Encoding Cairn's own types cannot fail: they are plain serde structs and enums with known
/// lengths, and the encoder is unlimited. A failure would be a programming error (a type that
/// serializes a sequence of unknown length), so it panics with the type's name.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match bincode::serde::encode_to_vec(value, config()) {
        Ok(v) => v,
        Err(e) => panic!(
            "codec cannot encode {}: {e} (types on the wire must have known lengths)",
            std::any::type_name::<T>()
        ),
    }
}

/// Number of bytes [`encode`] would produce.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = Counter(0);
    match bincode::serde::encode_into_writer(value, &mut counter, config()) {
        Ok(()) => counter.0,
        Err(e) => panic!("codec cannot encode {}: {e}", std::any::type_name::<T>()),
    }
}

struct Counter(usize);

impl bincode::enc::write::Writer for &mut Counter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0 += bytes.len();
        Ok(())
    }
}

/// Decodes a value from exactly these bytes, at most [`MAX_DECODE_BYTES`] long.
pub fn decode<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_limited(bytes, MAX_DECODE_BYTES)
}

/// Decodes a value from exactly these bytes, refusing input longer than `max_bytes`.
pub fn decode_limited<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max_bytes: usize,
) -> Result<T, CodecError> {
    let max = max_bytes.min(MAX_DECODE_BYTES);
    if bytes.len() > max {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    // bincode allocates a string or byte vector at its claimed length before reading it, up
    // to the configured limit. The limit is a compile-time constant, so pick the smallest tier
    // that fits the input: a forged length prefix then makes the decoder allocate at most 16×
    // the input's size (and never more than MAX_DECODE_BYTES) before it fails.
    let decoded = match bytes.len() {
        0..=4096 => decode_tier::<T, 65_536>(bytes),
        4097..=65_536 => decode_tier::<T, 1_048_576>(bytes),
        65_537..=1_048_576 => decode_tier::<T, 16_777_216>(bytes),
        _ => decode_tier::<T, MAX_DECODE_BYTES>(bytes),
    };
    let (value, used) = decoded.map_err(|e| CodecError::Malformed {
        reason: e.to_string(),
    })?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    // One value, one encoding: anything the decoder was lenient about shows up here.
    if encode(&value) != bytes {
        return Err(CodecError::NonCanonical);
    }
    Ok(value)
}

fn decode_tier<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT>())
}

// Keep the config type honest: fixed-width little-endian, as PROTOCOL.md says.
const _: () = {
    const fn assert_config<C: Config>() {}
    assert_config::<Configuration<LittleEndian, Fixint, NoLimit>>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Kind {
        A,
        B(u16),
        C { name: String },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sample {
        a: u64,
        b: u32,
        flag: bool,
        maybe: Option<u8>,
        text: String,
        bytes: Vec<u8>,
        kind: Kind,
        key: crate::PublicKey,
    }

    fn sample_strategy() -> impl Strategy<Value = Sample> {
        let kind = prop_oneof![
            Just(Kind::A),
            any::<u16>().prop_map(Kind::B),
            ".{0,20}".prop_map(|name| Kind::C { name }),
        ];
        (
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            any::<Option<u8>>(),
            ".{0,40}",
            proptest::collection::vec(any::<u8>(), 0..64),
            kind,
            any::<[u8; 32]>(),
        )
            .prop_map(|(a, b, flag, maybe, text, bytes, kind, key)| Sample {
                a,
                b,
                flag,
                maybe,
                text,
                bytes,
                kind,
                key: crate::PublicKey(key),
            })
    }

    #[test]
    fn layout_is_fixed_width_little_endian() {
        assert_eq!(encode(&1u64), vec![1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(&0x0102u16), vec![2, 1]);
        assert_eq!(encode("hi"), vec![2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(encode(&Some(5u8)), vec![1, 5]);
        assert_eq!(encode(&Kind::B(3)), vec![1, 0, 0, 0, 3, 0]);
        assert_eq!(encoded_len(&Kind::B(3)), 6);
    }

    #[test]
    fn rejects_non_canonical_bool_and_option_tags() {
        assert!(matches!(
            decode::<bool>(&[2]),
            Err(CodecError::Malformed { .. })
        ));
        assert!(matches!(
            decode::<Option<u8>>(&[2, 0]),
            Err(CodecError::Malformed { .. })
        ));
        assert!(matches!(
            decode::<Kind>(&[9, 0, 0, 0]),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn forged_length_prefix_does_not_allocate() {
        // Claims 2^60 bytes follow; must fail cleanly, not try to allocate.
        let mut b = (1u64 << 60).to_le_bytes().to_vec();
        b.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode::<Vec<u8>>(&b),
            Err(CodecError::Malformed { .. })
        ));
    }

    /// A type whose decoder is lenient (any non-zero byte reads as 1) while its encoder
    /// writes the value as is: the re-encoding check must catch the second encoding.
    #[derive(Debug, PartialEq, Serialize)]
    struct Lenient(u8);

    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let b = u8::deserialize(d)?;
            Ok(Lenient(u8::from(b != 0)))
        }
    }

    #[test]
    fn lenient_decoders_are_caught_by_the_canonical_check() {
        assert_eq!(decode::<Lenient>(&[1]), Ok(Lenient(1)));
        assert_eq!(decode::<Lenient>(&[0]), Ok(Lenient(0)));
        assert_eq!(decode::<Lenient>(&[7]), Err(CodecError::NonCanonical));
    }

    #[test]
    fn forged_string_length_in_small_input_is_bounded() {
        // 20 bytes claiming a 60 MB string: refused by the 64 KiB tier's limit check, before
        // any allocation (with one 64 MiB limit the decoder would allocate, then run out of
        // input: "UnexpectedEnd").
        let mut b = (60u64 << 20).to_le_bytes().to_vec();
        b.extend_from_slice(&[b'a'; 12]);
        match decode::<String>(&b) {
            Err(CodecError::Malformed { reason }) => {
                assert!(reason.contains("LimitExceeded"), "{reason}")
            }
            other => panic!("forged length accepted or misreported: {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn round_trips(s in sample_strategy()) {
            let bytes = encode(&s);
            prop_assert_eq!(bytes.len(), encoded_len(&s));
            prop_assert_eq!(decode::<Sample>(&bytes), Ok(s));
        }

        #[test]
        fn rejects_truncated_input(s in sample_strategy(), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&s);
            let at = cut.index(bytes.len());
            prop_assert!(decode::<Sample>(&bytes[..at]).is_err());
        }

        #[test]
        fn rejects_trailing_bytes(s in sample_strategy(), extra in proptest::collection::vec(any::<u8>(), 1..16)) {
            let mut bytes = encode(&s);
            bytes.extend_from_slice(&extra);
            prop_assert_eq!(decode::<Sample>(&bytes), Err(CodecError::TrailingBytes { extra: extra.len() }));
        }

        #[test]
        fn rejects_oversized_input(s in sample_strategy()) {
            let bytes = encode(&s);
            let max = bytes.len() - 1;
            prop_assert_eq!(
                decode_limited::<Sample>(&bytes, max),
                Err(CodecError::TooLarge { len: bytes.len(), max })
            );
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            // Any answer is fine; reaching it without a panic is the property.
            let _ = decode::<Sample>(&bytes);
        }
    }
}
