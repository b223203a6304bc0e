//! What the API returns: the shared types of `cairn-api`, and how the node fills in the parts
//! that come from its engine.

pub use cairn_api::*;
use cairn_consensus::Role as EngineRole;

/// An engine role as the `cairn_role` metric's value.
pub fn role_code(role: EngineRole) -> i64 {
    match role {
        EngineRole::Follower => 0,
        EngineRole::PreCandidate => 1,
        EngineRole::Candidate => 2,
        EngineRole::Leader => 3,
    }
}

/// An engine role as the status shows it (`None`: not a validator).
pub fn node_role(role: Option<EngineRole>) -> NodeRole {
    match role {
        None => NodeRole::Observer,
        Some(EngineRole::Leader) => NodeRole::Leader,
        Some(EngineRole::Follower) => NodeRole::Follower,
        Some(EngineRole::Candidate) => NodeRole::Candidate,
        Some(EngineRole::PreCandidate) => NodeRole::PreCandidate,
    }
}

/// A status as the core published it, and when.
#[derive(Debug, Clone)]
pub struct Published {
    /// The status.
    pub view: StatusView,
    /// When the core published it (the API calls a status that has gone stale a sign of a
    /// stuck core).
    pub at: Option<std::time::Instant>,
    /// The validators in force, in order (shared: replaced only when the set changes).
    pub validators: std::sync::Arc<[cairn_ledger::Validator]>,
    /// Pending validator changes and votes (replaced after blocks that carry changes).
    pub changes: std::sync::Arc<ValidatorChangesView>,
}
