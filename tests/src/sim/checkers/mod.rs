//! The invariants the simulator checks after every step (DESIGN §9), one file each. Each
//! returns `Err(what)` for a broken invariant; the simulator adds the seed and tick.
//!
//! - [`agreement`]: no two honest nodes commit different blocks at one height;
//! - [`validity`]: an honest node commits only a valid next block of its own ledger;
//! - [`integrity`]: every commit carries a certificate that checks offline;
//! - [`certified`]: no two blocks at one height ever gather a commit quorum (PBFT);
//! - [`durability`]: a restarted node resumes exactly where its ledger and keys say;
//! - [`election`]: one leader per term (Raft §5.2; one primary per view in PBFT);
//! - [`bounds`]: no honest replica retains more than its engine's stated bound;
//! - [`liveness`]: after the faults heal, every honest node commits new blocks in time.

pub(super) mod agreement;
pub(super) mod bounds;
pub(super) mod certified;
pub(super) mod durability;
pub(super) mod election;
pub(super) mod integrity;
pub(super) mod liveness;
pub(super) mod validity;
