//! `cairn-node`: a Cairn validator (or observer) node.
//!
//! [`node::run`] wires the parts: the libp2p network (`cairn-p2p`), the core task that owns the
//! consensus engine, ledger and mempool ([`core`]), and the HTTP API ([`api`]). The binary
//! `cairn-node` adds the command line (`init`, `run`, `show-key`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod config;
pub mod core;
pub mod engine;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod views;
pub mod wire;
