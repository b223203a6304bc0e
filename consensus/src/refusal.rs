//! Why an engine did not act on an input.
//!
//! Every check an engine makes on what reaches it (a peer's message, a proposal, a validation
//! answer) returns `Result<_, Refusal>`, and every refusal is counted by reason in
//! [`Status::refused`](crate::Status). Nothing is refused without one, so a step test names the
//! reason it expects and an operator sees why a peer's messages are turned away (the node
//! exports the counts as `cairn_consensus_refused_total{reason}` and logs each at debug with
//! the peer's name). Refusing is never an error of the engine: it is how a correct replica
//! treats stale, duplicate, early or Byzantine input.

use serde::{Deserialize, Serialize};

/// One reason to refuse an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The sender is this node, or not a validator.
    NotAValidator,
    /// The message's author is not the validator the channel is authenticated as.
    WrongAuthor,
    /// The signature does not verify under the author's key.
    BadSignature,
    /// For a term or view below this node's (or one that is over).
    StaleRound,
    /// A vote for another view than the one this replica is in, or sent while it changes
    /// views (PBFT accepts votes only in an installed view).
    NotInView,
    /// The author's role does not allow this message: only the primary may send it (a
    /// pre-prepare, a NEW-VIEW), or only a backup may (a prepare: the primary's pre-prepare
    /// stands for its prepare).
    NotPrimary,
    /// A sequence number outside the watermark window `(low, low + 2K]` (PBFT §4.3).
    OutsideWindow,
    /// Further ahead than this node keeps state for (a checkpoint or view far in the future,
    /// from an author that already has one there).
    BeyondHorizon,
    /// About a height this node has already committed.
    AlreadyCommitted,
    /// The block does not hash to the digest it is sent with, or sits at another height.
    WrongDigest,
    /// This author already said exactly this.
    Duplicate,
    /// This author already said something else for the same slot; the first one stands.
    Conflicting,
    /// A checkpoint at a height that is not a multiple of the checkpoint interval.
    NotACheckpoint,
    /// A view change or new view whose proofs do not hold.
    InvalidProof,
    /// A proposal or a validation answer nobody asked for, or for another height.
    Unrequested,
    /// Raft: a vote request while this follower still hears from a live leader (§4.2.3).
    LeaderAlive,
    /// A reply the node's role or round does not expect (a vote answer when not a candidate,
    /// an append answer when not leader).
    Unexpected,
    /// More entries or certificates in one message than the configuration allows.
    TooLarge,
    /// Safety refused to sign: this node already signed another digest for the slot.
    WouldEquivocate,
    /// A number so large no real network reaches it (a Raft term above `raft::TERM_MAX`).
    OutOfRange,
}

impl Refusal {
    /// Every reason, in a fixed order (the order of [`Refusals`]' counters).
    pub const ALL: [Refusal; 20] = [
        Refusal::NotAValidator,
        Refusal::WrongAuthor,
        Refusal::BadSignature,
        Refusal::StaleRound,
        Refusal::NotInView,
        Refusal::NotPrimary,
        Refusal::OutsideWindow,
        Refusal::BeyondHorizon,
        Refusal::AlreadyCommitted,
        Refusal::WrongDigest,
        Refusal::Duplicate,
        Refusal::Conflicting,
        Refusal::NotACheckpoint,
        Refusal::InvalidProof,
        Refusal::Unrequested,
        Refusal::LeaderAlive,
        Refusal::Unexpected,
        Refusal::TooLarge,
        Refusal::WouldEquivocate,
        Refusal::OutOfRange,
    ];

    /// The reason as a metric label: `snake_case`, stable.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotAValidator => "not_a_validator",
            Refusal::WrongAuthor => "wrong_author",
            Refusal::BadSignature => "bad_signature",
            Refusal::StaleRound => "stale_round",
            Refusal::NotInView => "not_in_view",
            Refusal::NotPrimary => "not_primary",
            Refusal::OutsideWindow => "outside_window",
            Refusal::BeyondHorizon => "beyond_horizon",
            Refusal::AlreadyCommitted => "already_committed",
            Refusal::WrongDigest => "wrong_digest",
            Refusal::Duplicate => "duplicate",
            Refusal::Conflicting => "conflicting",
            Refusal::NotACheckpoint => "not_a_checkpoint",
            Refusal::InvalidProof => "invalid_proof",
            Refusal::Unrequested => "unrequested",
            Refusal::LeaderAlive => "leader_alive",
            Refusal::Unexpected => "unexpected",
            Refusal::TooLarge => "too_large",
            Refusal::WouldEquivocate => "would_equivocate",
            Refusal::OutOfRange => "out_of_range",
        }
    }

    fn position(self) -> usize {
        // `ALL` lists the variants in declaration order.
        self as usize
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refusals counted by reason since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals([u64; Refusal::ALL.len()]);

impl Refusals {
    /// Counts one refusal.
    pub fn count(&mut self, r: Refusal) {
        self.0[r.position()] += 1;
    }

    /// How many times `r` was the reason.
    pub fn of(&self, r: Refusal) -> u64 {
        self.0[r.position()]
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each reason with its count, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (Refusal, u64)> + '_ {
        Refusal::ALL.iter().map(|r| (*r, self.of(*r)))
    }

    /// The reasons whose count grew since `earlier`, with the increase.
    pub fn since(&self, earlier: &Refusals) -> impl Iterator<Item = (Refusal, u64)> + '_ {
        let earlier = *earlier;
        self.iter()
            .map(move |(r, n)| (r, n.saturating_sub(earlier.of(r))))
            .filter(|(_, d)| *d > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_in_declaration_order() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.position(), i, "{r:?}");
        }
        let labels: std::collections::BTreeSet<&str> =
            Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Refusal::ALL.len(), "labels are distinct");
    }

    #[test]
    fn counts_by_reason_and_reports_the_growth() {
        let mut a = Refusals::default();
        a.count(Refusal::Duplicate);
        let before = a;
        a.count(Refusal::Duplicate);
        a.count(Refusal::BadSignature);
        assert_eq!(a.of(Refusal::Duplicate), 2);
        assert_eq!(a.total(), 3);
        let grew: Vec<_> = a.since(&before).collect();
        assert_eq!(
            grew,
            vec![(Refusal::BadSignature, 1), (Refusal::Duplicate, 1)]
        );
    }
}
