//! `cairn-tests`: the deterministic simulator that proves the consensus engines under faults,
//! and (with later issues) end-to-end suites over real processes.
//!
//! Every simulated run is a function of one seed: fault schedule, message delays, engine
//! randomness. A failing run prints its seed; `SIM_SEED=<n>` replays it exactly.

pub mod sim;
