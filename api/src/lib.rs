//! `cairn-api`: the contract of the node's JSON API, in one place.
//!
//! The node serializes these types, the wallet, the testnet tool and the benchmark deserialize
//! them; none of them looks into untyped JSON. Error answers are [`ErrorBody`] with an
//! [`ErrorCode`] from one closed list.
//!
//! Must not depend on the node, tokio or a storage engine.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
mod types;

pub use error::{ApiError, ErrorBody, ErrorCode, ErrorDetail};
pub use types::*;
