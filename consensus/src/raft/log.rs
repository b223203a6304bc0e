//! The in-memory Raft log: entries after a snapshot point, with the block height reached at
//! each index.

use cairn_ledger::Height;

use super::message::{Entry, RaftDurable};
use crate::{LogIndex, Term};

/// Entries `snapshot_index + 1 ..= last_index()`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RaftLog {
    pub(crate) snapshot_index: LogIndex,
    pub(crate) snapshot_term: Term,
    pub(crate) snapshot_height: Height,
    entries: Vec<Entry>,
    /// Block height reached after each entry (a no-op repeats the previous height).
    heights: Vec<Height>,
}

impl RaftLog {
    pub(crate) fn from_durable(d: &RaftDurable) -> Self {
        let mut log = RaftLog {
            snapshot_index: d.snapshot_index,
            snapshot_term: d.snapshot_term,
            snapshot_height: d.snapshot_height,
            ..RaftLog::default()
        };
        for e in &d.entries {
            log.push(e.clone());
        }
        log
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.snapshot_index.plus(self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    pub(crate) fn last_height(&self) -> Height {
        self.heights.last().copied().unwrap_or(self.snapshot_height)
    }

    fn pos(&self, index: LogIndex) -> Option<usize> {
        if index <= self.snapshot_index || index > self.last_index() {
            None
        } else {
            Some((index.since(self.snapshot_index) - 1) as usize)
        }
    }

    /// Term of the entry at `index` (the snapshot's term at the snapshot point), if known.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.pos(index).map(|p| self.entries[p].term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.pos(index).map(|p| &self.entries[p])
    }

    /// Block height reached at `index`.
    pub(crate) fn height_at(&self, index: LogIndex) -> Option<Height> {
        if index == self.snapshot_index {
            return Some(self.snapshot_height);
        }
        self.pos(index).map(|p| self.heights[p])
    }

    /// Entries `from ..= to`.
    pub(crate) fn slice(&self, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        match (self.pos(from), self.pos(to)) {
            (Some(a), Some(b)) if a <= b => self.entries[a..=b].to_vec(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, e: Entry) {
        let h = e
            .block
            .as_ref()
            .map_or(self.last_height(), |b| b.header.height);
        self.entries.push(e);
        self.heights.push(h);
    }

    /// Drops entries from `index` on.
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        if let Some(p) = self.pos(index) {
            self.entries.truncate(p);
            self.heights.truncate(p);
        }
    }

    /// Drops entries up to `index`, which becomes the snapshot point.
    pub(crate) fn compact(&mut self, index: LogIndex, term: Term, height: Height) {
        let drop = (index.since(self.snapshot_index) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.heights.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.snapshot_height = height;
    }
}
