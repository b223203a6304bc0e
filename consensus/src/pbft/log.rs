//! The message log (§4.2, §4.3): what a replica keeps of others' messages, each store bounded
//! by a limit that depends on the configuration alone.
//!
//! - [`Slot`]: one sequence number's agreement messages in the current view; the replica keeps
//!   a slot only for sequence numbers inside the watermark window.
//! - [`CheckpointVotes`]: signed checkpoints, per author one per checkpoint height inside the
//!   window and its latest beyond it.
//! - [`ViewChanges`]: VIEW-CHANGE messages, per author its highest few views.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_ledger::Block;

use super::message::{Checkpoint, CommitVote, Signed, ViewChange, Vote};
use crate::{NodeId, Refusal, Seq, View};

/// One sequence number's agreement state in the current view. At most one pre-prepare, and
/// one prepare and one commit per validator (the first one stands).
#[derive(Debug, Clone)]
pub(super) struct Slot {
    /// The pre-prepare and its block, shared with the prepared certificate (one copy of each
    /// block in the window, not two).
    pub(super) pre_prepare: Option<(Signed<Vote>, Arc<Block>)>,
    /// `None` until the caller answered `Validate`.
    pub(super) validated: Option<bool>,
    pub(super) asked: bool,
    /// This replica proposed it in this view, built on its own ledger (not re-proposed from
    /// a view change): a pipelining primary builds its next block only on such blocks.
    pub(super) built_here: bool,
    pub(super) prepares: BTreeMap<NodeId, Signed<Vote>>,
    pub(super) commits: BTreeMap<NodeId, CommitVote>,
    pub(super) my_prepare: Option<Signed<Vote>>,
    pub(super) my_commit: Option<CommitVote>,
    pub(super) committed: bool,
}

impl Slot {
    pub(super) fn new() -> Slot {
        Slot {
            pre_prepare: None,
            validated: None,
            asked: false,
            built_here: false,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            my_prepare: None,
            my_commit: None,
            committed: false,
        }
    }

    pub(super) fn vote(&self) -> Option<Vote> {
        self.pre_prepare.as_ref().map(|(s, _)| s.body)
    }

    /// Messages held: the pre-prepare, prepares and commits.
    pub(super) fn messages(&self) -> usize {
        usize::from(self.pre_prepare.is_some()) + self.prepares.len() + self.commits.len()
    }

    /// Records `author`'s prepare: refused if it already sent one for this slot.
    pub(super) fn add_prepare(&mut self, s: Signed<Vote>) -> Result<(), Refusal> {
        match self.prepares.get(&s.author) {
            Some(p) if p.body == s.body => Err(Refusal::Duplicate),
            Some(_) => Err(Refusal::Conflicting),
            None => {
                self.prepares.insert(s.author, s);
                Ok(())
            }
        }
    }

    /// Records `author`'s commit: refused if it already sent one for this slot.
    pub(super) fn add_commit(&mut self, c: CommitVote) -> Result<(), Refusal> {
        match self.commits.get(&c.author) {
            Some(p) if p.body == c.body => Err(Refusal::Duplicate),
            Some(_) => Err(Refusal::Conflicting),
            None => {
                self.commits.insert(c.author, c);
                Ok(())
            }
        }
    }
}

/// Signed checkpoints from every validator (this replica's own included).
///
/// Bound: per author, one vote per checkpoint height in `(low, low + W]` (W / K = 2 heights)
/// and one beyond `low + W`, its latest: at most 3n votes. A vote beyond the window replaces
/// its author's earlier one there, so a Byzantine author flooding far-future checkpoints holds
/// one entry. Those beyond the window still count toward a quorum: a replica far behind learns
/// from them where the others' stable checkpoint is, and catches up to it by block sync.
#[derive(Debug, Clone, Default)]
pub(super) struct CheckpointVotes {
    /// Inside the window, by sequence number then author.
    within: BTreeMap<Seq, BTreeMap<NodeId, Signed<Checkpoint>>>,
    /// Beyond the window: each author's latest.
    ahead: BTreeMap<NodeId, Signed<Checkpoint>>,
}

impl CheckpointVotes {
    /// Records a vote; `high` is the top of the window. `unbounded` is the planted bug of the
    /// simulator's bound test: every vote is kept inside, whatever its height.
    pub(super) fn add(
        &mut self,
        s: Signed<Checkpoint>,
        high: Seq,
        unbounded: bool,
    ) -> Result<(), Refusal> {
        let seq = s.body.seq;
        if seq <= high || unbounded {
            let votes = self.within.entry(seq).or_default();
            return match votes.get(&s.author) {
                Some(v) if v.body == s.body => Err(Refusal::Duplicate),
                Some(_) => Err(Refusal::Conflicting),
                None => {
                    votes.insert(s.author, s);
                    Ok(())
                }
            };
        }
        match self.ahead.get(&s.author) {
            Some(v) if v.body == s.body => Err(Refusal::Duplicate),
            Some(v) if v.body.seq == seq => Err(Refusal::Conflicting),
            Some(v) if v.body.seq > seq => Err(Refusal::BeyondHorizon),
            _ => {
                self.ahead.insert(s.author, s);
                Ok(())
            }
        }
    }

    /// Whether exactly this vote is held (checked before its signature: re-sent votes cost no
    /// verification).
    pub(super) fn holds(&self, s: &Signed<Checkpoint>) -> bool {
        let within = self.within.get(&s.body.seq).and_then(|m| m.get(&s.author));
        within.or(self.ahead.get(&s.author)) == Some(s)
    }

    /// The votes for exactly `c`, one per author.
    pub(super) fn matching(&self, c: &Checkpoint) -> Vec<Signed<Checkpoint>> {
        let mut by_author: BTreeMap<NodeId, Signed<Checkpoint>> = BTreeMap::new();
        let within = self.within.get(&c.seq).into_iter().flat_map(|m| m.values());
        for v in within.chain(self.ahead.values()) {
            if v.body == *c {
                by_author.entry(v.author).or_insert_with(|| v.clone());
            }
        }
        by_author.into_values().collect()
    }

    /// Forgets votes at or below a new stable checkpoint `low`, and moves the votes now inside
    /// the window `(low, high]` out of `ahead`.
    pub(super) fn prune(&mut self, low: Seq, high: Seq) {
        self.within = self.within.split_off(&low.next());
        let ahead = std::mem::take(&mut self.ahead);
        for (author, v) in ahead {
            let seq = v.body.seq;
            if seq <= low {
                continue;
            }
            if seq <= high {
                self.within
                    .entry(seq)
                    .or_default()
                    .entry(author)
                    .or_insert(v);
            } else {
                self.ahead.insert(author, v);
            }
        }
    }

    /// Votes held.
    pub(super) fn len(&self) -> usize {
        self.within.values().map(BTreeMap::len).sum::<usize>() + self.ahead.len()
    }

    /// Each author's highest checkpoint signed, highest first.
    pub(super) fn highest_by_author(&self) -> Vec<(Seq, NodeId)> {
        let mut best: BTreeMap<NodeId, Seq> = BTreeMap::new();
        let within = self
            .within
            .iter()
            .flat_map(|(s, m)| m.keys().map(|a| (*s, *a)));
        let ahead = self.ahead.iter().map(|(a, v)| (v.body.seq, *a));
        for (seq, author) in within.chain(ahead) {
            let e = best.entry(author).or_insert(seq);
            *e = (*e).max(seq);
        }
        let mut all: Vec<(Seq, NodeId)> = best.into_iter().map(|(a, s)| (s, a)).collect();
        all.sort_unstable_by(|x, y| y.cmp(x));
        all
    }
}

/// VIEW-CHANGE messages from every validator (this replica's own included), by view.
///
/// Bound: per author its [`ViewChanges::PER_AUTHOR`] highest views: at most 2n messages. A
/// Byzantine author asking for ever higher views replaces its own entries and no one else's.
#[derive(Debug, Clone, Default)]
pub(super) struct ViewChanges {
    by_view: BTreeMap<(View, NodeId), Signed<ViewChange>>,
}

impl ViewChanges {
    /// Views kept per author: the one it asks for now, and the one before (a replica whose
    /// timer fired again may still be needed for the quorum of the view it left).
    pub(super) const PER_AUTHOR: usize = 2;

    /// Records a view change (already checked).
    pub(super) fn add(&mut self, vc: Signed<ViewChange>) -> Result<(), Refusal> {
        let key = (vc.body.new_view, vc.author);
        if let Some(old) = self.by_view.get(&key) {
            return Err(if *old == vc {
                Refusal::Duplicate
            } else {
                Refusal::Conflicting
            });
        }
        let mine: Vec<View> = self
            .by_view
            .keys()
            .filter(|(_, a)| *a == vc.author)
            .map(|(v, _)| *v)
            .collect();
        if mine.len() >= Self::PER_AUTHOR {
            // `mine` is in view order: the lowest goes, unless the new one is lower still.
            if mine[0] > vc.body.new_view {
                return Err(Refusal::StaleRound);
            }
            self.by_view.remove(&(mine[0], vc.author));
        }
        self.by_view.insert(key, vc);
        Ok(())
    }

    /// Whether exactly this view change is held (checked before its proofs: a re-sent view
    /// change costs no verification).
    pub(super) fn holds(&self, vc: &Signed<ViewChange>) -> bool {
        self.by_view.get(&(vc.body.new_view, vc.author)) == Some(vc)
    }

    /// Records this replica's own view change, replacing one it sent before for that view.
    pub(super) fn add_own(&mut self, vc: Signed<ViewChange>) {
        self.by_view.remove(&(vc.body.new_view, vc.author));
        // Own view changes go up one view at a time and are never conflicting.
        let _ = self.add(vc);
    }

    /// The view changes for exactly `view`, in author order.
    pub(super) fn for_view(&self, view: View) -> Vec<Signed<ViewChange>> {
        self.by_view
            .range((view, NodeId(0))..=(view, NodeId(u32::MAX)))
            .map(|(_, vc)| vc.clone())
            .collect()
    }

    /// How many for exactly `view`.
    pub(super) fn count_for(&self, view: View) -> usize {
        self.by_view
            .range((view, NodeId(0))..=(view, NodeId(u32::MAX)))
            .count()
    }

    /// The distinct authors asking for `view` or a later one, and the lowest such view.
    pub(super) fn from(&self, view: View) -> (std::collections::BTreeSet<NodeId>, Option<View>) {
        let mut authors = std::collections::BTreeSet::new();
        let mut lowest = None;
        for (v, a) in self.by_view.range((view, NodeId(0))..).map(|(k, _)| *k) {
            authors.insert(a);
            lowest.get_or_insert(v);
        }
        (authors, lowest)
    }

    /// Forgets the view changes for `view` and below (a view above them was installed).
    pub(super) fn prune_through(&mut self, view: View) {
        self.by_view = self.by_view.split_off(&(view.next(), NodeId(0)));
    }

    /// Messages held.
    pub(super) fn len(&self) -> usize {
        self.by_view.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_crypto::{Hash, Signature};
    use cairn_ledger::BlockHash;

    fn ckpt(author: u32, seq: u64, tag: u8) -> Signed<Checkpoint> {
        Signed {
            author: NodeId(author),
            body: Checkpoint {
                seq: Seq(seq),
                digest: BlockHash(Hash::sha256(&[tag])),
            },
            signature: Signature([0; 64]),
        }
    }

    fn vc(author: u32, new_view: u64) -> Signed<ViewChange> {
        Signed {
            author: NodeId(author),
            body: ViewChange {
                new_view: View(new_view),
                checkpoint: None,
                prepared: vec![],
            },
            signature: Signature([0; 64]),
        }
    }

    #[test]
    fn a_far_future_checkpoint_flood_holds_one_vote_per_author() {
        let mut c = CheckpointVotes::default();
        for seq in (12..10_000).step_by(2) {
            let _ = c.add(ckpt(3, seq, 1), Seq(10), false);
        }
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.add(ckpt(3, 14, 1), Seq(10), false),
            Err(Refusal::BeyondHorizon),
            "older than its latest beyond the window"
        );
        assert_eq!(
            c.add(ckpt(3, 9_998, 1), Seq(10), false),
            Err(Refusal::Duplicate)
        );
        // Inside the window: one per author and height, the first stands.
        assert_eq!(c.add(ckpt(1, 10, 1), Seq(10), false), Ok(()));
        assert_eq!(
            c.add(ckpt(1, 10, 2), Seq(10), false),
            Err(Refusal::Conflicting)
        );
        assert_eq!(c.len(), 2);
        // The planted bug keeps everything.
        let mut u = CheckpointVotes::default();
        for seq in (12..1_000).step_by(2) {
            let _ = u.add(ckpt(3, seq, 1), Seq(10), true);
        }
        assert_eq!(u.len(), 494);
    }

    #[test]
    fn votes_beyond_the_window_count_and_move_in_when_it_moves() {
        let mut c = CheckpointVotes::default();
        for a in 0..3 {
            c.add(ckpt(a, 20, 7), Seq(10), false).expect("kept");
        }
        assert_eq!(c.matching(&ckpt(0, 20, 7).body).len(), 3);
        c.prune(Seq(10), Seq(20));
        assert_eq!(c.matching(&ckpt(0, 20, 7).body).len(), 3);
        assert_eq!(
            c.add(ckpt(0, 20, 7), Seq(20), false),
            Err(Refusal::Duplicate)
        );
        c.prune(Seq(20), Seq(30));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_view_change_flood_holds_two_per_author() {
        let mut v = ViewChanges::default();
        for view in 1..10_000 {
            v.add(vc(2, view)).expect("higher views replace lower ones");
        }
        assert_eq!(v.len(), ViewChanges::PER_AUTHOR);
        assert_eq!(v.add(vc(2, 5)), Err(Refusal::StaleRound));
        assert_eq!(v.add(vc(2, 9_999)), Err(Refusal::Duplicate));
        v.add(vc(0, 3)).expect("another author");
        let (authors, lowest) = v.from(View(3));
        assert_eq!((authors.len(), lowest), (2, Some(View(3))));
        v.prune_through(View(9_998));
        assert_eq!(v.len(), 1);
    }
}
