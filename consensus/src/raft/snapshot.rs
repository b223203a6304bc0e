//! Log compaction and snapshots (Ongaro & Ousterhout, §7). The ledger's blocks are the
//! snapshot: applied entries are dropped once the log holds `compact_after` applied entries
//! beyond the snapshot point, and a follower behind the compacted log gets `Snapshot` and
//! fetches the certified blocks up to it (`Output::SyncTo`).

use cairn_ledger::Height;

use super::{Out, Raft, RaftMessage, RaftPersist};
use crate::{LogIndex, NodeId, Output, Refusal, Term};

impl Raft {
    pub(super) fn maybe_compact(&mut self, out: &mut Out) {
        let keep = self.cfg.compact_after.max(1);
        if self.applied < self.log.snapshot_index.plus(2 * keep) {
            return;
        }
        let index = LogIndex(self.applied.0 - keep);
        let (Some(term), Some(height)) = (self.log.term_at(index), self.log.height_at(index))
        else {
            return;
        };
        self.log.compact(index, term, height);
        self.certificates = self.certificates.split_off(&index.next());
        out.push(Output::Persist {
            op: RaftPersist::Compact {
                index,
                term,
                height,
            },
        });
    }

    pub(super) fn on_snapshot(
        &mut self,
        from: NodeId,
        term: Term,
        index: LogIndex,
        index_term: Term,
        height: Height,
        out: &mut Out,
    ) -> Result<(), Refusal> {
        if term < self.term {
            out.push(Output::Send {
                to: from,
                msg: RaftMessage::AppendEntriesResponse {
                    term: self.term,
                    success: false,
                    last_index: self.commit_index,
                    applied: self.applied,
                },
            });
            return Err(Refusal::StaleRound);
        }
        self.become_follower(term, Some(from), out);
        if index <= self.applied {
            // Everything up to `index` is already applied here, hence committed and
            // matching the leader.
            out.push(Output::Send {
                to: from,
                msg: RaftMessage::AppendEntriesResponse {
                    term: self.term,
                    success: true,
                    last_index: self.applied,
                    applied: self.applied,
                },
            });
        } else if self.pending_sync.is_none_or(|(i, _, _)| i < index) {
            self.pending_sync = Some((index, index_term, height));
            out.push(Output::SyncTo { peer: from, height });
        }
        Ok(())
    }

    pub(super) fn on_synced(&mut self, height: Height, out: &mut Out) {
        self.applied_height = self.applied_height.max(height);
        let Some((index, term, snap_height)) = self.pending_sync else {
            return;
        };
        if height < snap_height {
            return;
        }
        self.pending_sync = None;
        // Raft §7: keep entries after the snapshot point if the log agrees at that point.
        if self.log.term_at(index) != Some(term) {
            self.log.truncate_from(self.log.snapshot_index.next());
            out.push(Output::Persist {
                op: RaftPersist::TruncateFrom {
                    index: self.log.snapshot_index.next(),
                },
            });
        }
        self.log.compact(index, term, snap_height);
        out.push(Output::Persist {
            op: RaftPersist::Compact {
                index,
                term,
                height: snap_height,
            },
        });
        self.commit_index = self.commit_index.max(index);
        self.applied = self.applied.max(index);
        self.certificates = self.certificates.split_off(&index.next());
        if let Some(leader) = self.leader {
            out.push(Output::Send {
                to: leader,
                msg: RaftMessage::AppendEntriesResponse {
                    term: self.term,
                    success: true,
                    last_index: index,
                    applied: self.applied,
                },
            });
        }
        self.apply_committed(out);
    }
}
