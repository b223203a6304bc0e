//! The only code that signs. Each rule is a small check; each signature's record is
//! persisted (as a `Persist` output placed before the signed message can leave) so the rules
//! hold across restarts too (as Aptos' SafetyRules).

use std::collections::BTreeMap;

use cairn_crypto::{Domain, SigningKey, codec};
use cairn_ledger::domains::PBFT_COMMIT;
use cairn_ledger::{BlockHash, PbftCommitStatement};
use serde::{Deserialize, Serialize};

use crate::{NodeId, Refusal, Seq, View};

use super::message::{
    Checkpoint, NEW_VIEW, NewView, PRE_PREPARE, PREPARE, Signed, VIEW_CHANGE, ViewChange, Vote,
};

/// Which kind of vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VoteKind {
    /// The primary's pre-prepare.
    PrePrepare,
    /// A prepare.
    Prepare,
    /// A commit.
    Commit,
}

/// What safety remembers: every `(kind, view, seq) → digest` it signed above the stable
/// checkpoint, and the highest view it entered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyData {
    /// Highest view entered; no vote is signed for a lower one.
    pub view: View,
    /// Signed votes.
    pub signed: BTreeMap<(VoteKind, View, Seq), BlockHash>,
}

pub(crate) struct Safety {
    key: SigningKey,
    me: NodeId,
    chain_id: String,
    /// What messages other than commit votes are signed in (`PbftConfig::context`).
    context: String,
    data: SafetyData,
}

impl Safety {
    pub(crate) fn new(
        key: SigningKey,
        me: NodeId,
        chain_id: String,
        context: String,
        data: SafetyData,
    ) -> Self {
        Safety {
            key,
            me,
            chain_id,
            context,
            data,
        }
    }

    /// Whether a vote of `kind` was signed for `(view, seq)`.
    pub(crate) fn signed(&self, kind: VoteKind, view: View, seq: Seq) -> bool {
        self.data.signed.contains_key(&(kind, view, seq))
    }

    pub(crate) fn data(&self) -> &SafetyData {
        &self.data
    }

    fn sign<T: Serialize + Clone>(&self, domain: Domain, body: &T) -> Signed<T> {
        Signed {
            author: self.me,
            body: body.clone(),
            signature: self.key.sign(
                domain,
                if domain == PBFT_COMMIT {
                    &self.chain_id
                } else {
                    &self.context
                },
                &codec::encode(body),
            ),
        }
    }

    /// Rule: views only go up. Returns whether the view was raised (persist `data` then).
    /// Votes of lower views are forgotten: none is ever signed for them again, so at most three
    /// per sequence number of the window remain.
    pub(crate) fn enter_view(&mut self, view: View) -> bool {
        if view > self.data.view {
            self.data.view = view;
            self.data.signed.retain(|(_, v, _), _| *v >= view);
            true
        } else {
            false
        }
    }

    /// Rule: never two different digests for one (kind, view, seq), and never a vote for a
    /// view below the highest entered. The caller persists [`Safety::data`] (the new record)
    /// before sending the returned vote.
    fn check_and_record(&mut self, kind: VoteKind, v: &Vote) -> Result<(), Refusal> {
        if v.view < self.data.view {
            return Err(Refusal::StaleRound);
        }
        match self.data.signed.get(&(kind, v.view, v.seq)) {
            Some(d) if *d != v.digest => Err(Refusal::WouldEquivocate),
            _ => {
                self.data.signed.insert((kind, v.view, v.seq), v.digest);
                Ok(())
            }
        }
    }

    pub(crate) fn pre_prepare(&mut self, v: Vote) -> Result<Signed<Vote>, Refusal> {
        self.check_and_record(VoteKind::PrePrepare, &v)?;
        Ok(self.sign(PRE_PREPARE, &v))
    }

    pub(crate) fn prepare(&mut self, v: Vote) -> Result<Signed<Vote>, Refusal> {
        self.check_and_record(VoteKind::Prepare, &v)?;
        Ok(self.sign(PREPARE, &v))
    }

    pub(crate) fn commit(&mut self, v: Vote) -> Result<Signed<PbftCommitStatement>, Refusal> {
        self.check_and_record(VoteKind::Commit, &v)?;
        let statement = PbftCommitStatement {
            view: v.view.0,
            seq: v.seq.0,
            block_hash: v.digest,
        };
        Ok(self.sign(PBFT_COMMIT, &statement))
    }

    /// Checkpoints, view changes and new views state facts, not votes: no equivocation rule
    /// applies beyond the view rule for view changes.
    pub(crate) fn checkpoint(&self, c: Checkpoint) -> Signed<Checkpoint> {
        self.sign(super::message::CHECKPOINT, &c)
    }

    pub(crate) fn view_change(&self, vc: &ViewChange) -> Signed<ViewChange> {
        self.sign(VIEW_CHANGE, vc)
    }

    pub(crate) fn new_view(&self, nv: &NewView) -> Signed<NewView> {
        self.sign(NEW_VIEW, nv)
    }

    /// Forgets votes at or below a stable checkpoint.
    pub(crate) fn prune(&mut self, seq: Seq) {
        self.data.signed.retain(|(_, _, s), _| *s > seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_crypto::Hash;

    #[test]
    fn never_two_digests_for_one_view_and_seq_and_views_only_go_up() {
        let mut s = Safety::new(
            SigningKey::from_seed([1; 32]),
            NodeId(0),
            "c".into(),
            "c".into(),
            SafetyData::default(),
        );
        let d1 = BlockHash(Hash::sha256(b"1"));
        let d2 = BlockHash(Hash::sha256(b"2"));
        let v = |view, seq, digest| Vote {
            view: View(view),
            seq: Seq(seq),
            digest,
        };
        assert!(s.prepare(v(0, 1, d1)).is_ok());
        assert!(
            s.prepare(v(0, 1, d1)).is_ok(),
            "the same vote again is fine"
        );
        assert_eq!(s.prepare(v(0, 1, d2)).err(), Some(Refusal::WouldEquivocate));
        assert!(s.commit(v(0, 1, d1)).is_ok(), "commit is its own kind");
        assert!(
            s.prepare(v(1, 1, d2)).is_ok(),
            "a new view may prepare another digest"
        );
        assert!(s.enter_view(View(3)));
        assert!(!s.enter_view(View(2)));
        assert_eq!(s.commit(v(2, 2, d1)).err(), Some(Refusal::StaleRound));
        // Across a restart: the persisted data keeps the rules.
        let data = s.data().clone();
        let mut again = Safety::new(
            SigningKey::from_seed([1; 32]),
            NodeId(0),
            "c".into(),
            "c".into(),
            data,
        );
        assert_eq!(again.prepare(v(0, 1, d2)).err(), Some(Refusal::StaleRound));
        assert!(again.prepare(v(3, 5, d1)).is_ok());
        assert_eq!(
            again.prepare(v(3, 5, d2)).err(),
            Some(Refusal::WouldEquivocate)
        );
    }
}
