//! Fixed-size byte newtypes: hex in text formats (JSON, logs), raw bytes in the binary codec.

use std::fmt;

/// A hex string that does not decode to the expected number of bytes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseHexError {
    /// The text is not hexadecimal.
    #[error("not a hex string: {0}")]
    NotHex(#[from] hex::FromHexError),
    /// The text is hex but of the wrong length.
    #[error("expected {expected} bytes of hex, got {got}")]
    WrongLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
}

/// Parses exactly `N` bytes of hex (an optional `0x` prefix is allowed).
pub(crate) fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], ParseHexError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let v = hex::decode(s)?;
    let got = v.len();
    v.try_into()
        .map_err(|_| ParseHexError::WrongLength { expected: N, got })
}

/// Serde visitor for a fixed-size byte array written as a tuple (binary) or hex (text).
pub(crate) struct ArrayVisitor<const N: usize>;

impl<'de, const N: usize> serde::de::Visitor<'de> for ArrayVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes, or {} hex characters", 2 * N)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<[u8; N], E> {
        parse_hex(v).map_err(E::custom)
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
        v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
        }
        Ok(out)
    }
}

/// Defines a `Copy` newtype over `[u8; N]` with hex `Display`/`FromStr`/`Debug` and a serde
/// form that is hex text in human-readable formats and exactly `N` raw bytes in the codec.
macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex of the bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(b: [u8; $len]) -> Self {
                Self(b)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // Short form: enough to tell values apart in logs and test failures.
                write!(f, "{}({}…)", stringify!($name), &hex::encode(&self.0[..6]))
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::bytes::ParseHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::bytes::parse_hex::<$len>(s).map(Self)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(format!(
                        "{} bytes as {} hex digits (lowercase when the node writes them)",
                        $len,
                        2 * $len
                    )))
                    .pattern(Some(format!("^[0-9a-fA-F]{{{}}}$", 2 * $len)))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&hex::encode(self.0))
                } else {
                    use serde::ser::SerializeTuple;
                    let mut t = s.serialize_tuple($len)?;
                    for b in &self.0 {
                        t.serialize_element(b)?;
                    }
                    t.end()
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = $crate::bytes::ArrayVisitor::<$len>;
                if d.is_human_readable() {
                    d.deserialize_str(v).map(Self)
                } else {
                    d.deserialize_tuple($len, v).map(Self)
                }
            }
        }
    };
}
pub(crate) use fixed_bytes;

/// Serde for a variable-length byte string (`#[serde(with = "cairn_crypto::hex_bytes")]`):
/// a hex string in text formats (JSON: lowercase written, either case or a `0x` prefix read),
/// and in the binary codec exactly what `Vec<u8>` is (a `u64` length, then the bytes), so
/// encodings, ids and signatures do not depend on it.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes `v`.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            v.serialize(s)
        }
    }

    /// Reads a byte string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            let h = s.strip_prefix("0x").unwrap_or(&s);
            hex::decode(h).map_err(|e| {
                serde::de::Error::custom(format!("expected bytes as a hex string: {e}"))
            })
        } else {
            Vec::<u8>::deserialize(d)
        }
    }
}
