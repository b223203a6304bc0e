//! `cairn-cli`: the wallet's parts that other tools share: the keystore format, offline block
//! verification, and the types of what the wallet prints under `--json`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod keystore;
pub mod output;
pub mod verify;
