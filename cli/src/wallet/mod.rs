//! The wallet's commands, one module per concern.

pub mod args;
pub mod ctx;
pub mod explore;
pub mod fail;
pub mod keys;
pub mod out;
pub mod send;
pub mod verify_cmd;
