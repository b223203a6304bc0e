//! `cairn-api`: the contract of the node's JSON API, in one place.
//!
//! The node serializes these types, the wallet, the testnet tool and the benchmark deserialize
//! them; none of them looks into untyped JSON. Error answers are [`ErrorBody`] with an
//! [`ErrorCode`] from one closed list.
//!
//! With the `client` feature, [`client::Client`] is a typed async client of a node, with an
//! event stream that resumes after a disconnect.
//!
//! Must not depend on the node or a storage engine; tokio and reqwest only with `client`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[cfg(feature = "client")]
pub mod client;
mod error;
pub mod sse;
mod types;

pub use error::{ApiError, ErrorBody, ErrorCode, ErrorDetail, RETRY_AFTER_SECS};
pub use types::*;
