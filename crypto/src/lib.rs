//! `cairn-crypto`: the cryptographic and encoding primitives every other Cairn crate stands on.
//!
//! - [`Hash`]: SHA-256, always over a domain tag ([`Hash::tagged`]) so that no two kinds of
//!   object can share a hash.
//! - [`SigningKey`], [`PublicKey`], [`Signature`]: ed25519 under the ZIP-215 validity rule,
//!   with signatures over `domain tag ‖ chain id ‖ encoded message` ([`signing_bytes`]).
//! - [`BatchVerifier`]: batched verification that accepts exactly the signatures that single
//!   verification accepts (consensus-critical: two nodes must never disagree on a signature).
//! - [`merkle`]: a Merkle tree over hashes with inclusion proofs.
//! - [`codec`]: the one place that turns values into bytes and back.
//!
//! This crate does no IO (no files, no sockets, no clock) and depends on no other Cairn crate.
//! The byte-level formats are specified in `docs/PROTOCOL.md`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bytes;
pub mod codec;
mod hash;
mod key_cache;
mod keys;
pub mod merkle;
mod verify;

pub use bytes::{ParseHexError, hex_bytes};
pub use hash::{Domain, Hash};
pub use key_cache::{KEYS_KEPT, cached_keys};
pub use keys::{PublicKey, Signature, SignatureError, SigningKey, signing_bytes};
pub use verify::{BatchVerifier, verify_batch};
