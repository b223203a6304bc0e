//! `cairn-cli`: the wallet's parts that other tools share (the keystore format).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod keystore;
pub mod verify;
