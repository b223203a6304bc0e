//! `cairn-node`: a Cairn validator (or observer) node.
//!
//! [`node::run`] wires and supervises the parts: the libp2p network (`cairn-p2p`), the
//! consensus task that owns the engine, the ledger writer and the mempool ([`core`]), and the
//! HTTP API ([`api`]), whose committed reads go to the store directly ([`reads`]). The binary
//! `cairn-node` adds the command line (`init`, `run`, `show-key`). ARCHITECTURE.md ("The
//! node") maps the modules and how a transaction and a block flow through them.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

/// This build's version with the commit it was built from, e.g. `0.1.0 (3f2a9c1b7d4e)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CAIRN_GIT_COMMIT"),
    ")"
);

pub mod api;
pub mod archive;
pub mod backup;
pub mod config;
pub mod core;
pub mod engines;
pub mod explorer;
pub mod fatal;
pub mod genesis_tool;
pub mod join;
pub mod metrics;
pub mod node;
pub mod read_pool;
pub mod reads;
pub mod snapshots;
pub mod views;
pub mod wire;
