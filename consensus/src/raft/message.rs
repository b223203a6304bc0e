//! Raft's messages, log entries and durable state (Raft paper §5, Figure 2; PreVote and
//! CheckQuorum from Ongaro's thesis §9.6 and §6.2).

use cairn_ledger::{Block, Height, RaftCertificate};

use crate::{LogIndex, Term};
use serde::{Deserialize, Serialize};

/// A log entry: a block, or the no-op a new leader appends to commit earlier terms (§8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term in which the leader appended it.
    pub term: Term,
    /// The block, or `None` for a no-op.
    pub block: Option<Block>,
}

/// Messages between Raft validators. Unsigned: under the crash-fault model the transport's
/// authentication of the sender is enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftMessage {
    /// "Would you vote for me in `term`?" Changes no one's term (thesis §9.6).
    PreVote {
        /// The term the sender would campaign in (its term + 1).
        term: Term,
        /// Sender's last log index.
        last_index: LogIndex,
        /// Sender's last log term.
        last_term: Term,
    },
    /// Answer to `PreVote`.
    PreVoteResponse {
        /// The asked term if granted, else the responder's term.
        term: Term,
        /// Whether it would vote.
        granted: bool,
    },
    /// RequestVote RPC (§5.2).
    RequestVote {
        /// Candidate's term.
        term: Term,
        /// Candidate's last log index.
        last_index: LogIndex,
        /// Candidate's last log term.
        last_term: Term,
    },
    /// Answer to `RequestVote`.
    RequestVoteResponse {
        /// Responder's term.
        term: Term,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries RPC (§5.3), also the heartbeat. Carries the leader's certificates for
    /// committed blocks the follower has not applied yet.
    AppendEntries {
        /// Leader's term.
        term: Term,
        /// Index of the entry before `entries`.
        prev_index: LogIndex,
        /// Its term.
        prev_term: Term,
        /// New entries (may be empty).
        entries: Vec<Entry>,
        /// Leader's commit index.
        leader_commit: LogIndex,
        /// `(index, certificate)` for committed block entries.
        certificates: Vec<(LogIndex, RaftCertificate)>,
    },
    /// Answer to `AppendEntries` or `Snapshot`.
    AppendEntriesResponse {
        /// Responder's term.
        term: Term,
        /// Whether the entries were accepted.
        success: bool,
        /// On success, the highest index known to match the leader; on failure, where the
        /// leader should resume (the follower's commit index).
        last_index: LogIndex,
        /// The follower's applied index.
        applied: LogIndex,
    },
    /// The follower is behind the leader's compacted log: catch up from the ledger's blocks
    /// up to `height`, which end the entry (`index`, `index_term`).
    Snapshot {
        /// Leader's term.
        term: Term,
        /// Last compacted index.
        index: LogIndex,
        /// Its term.
        index_term: Term,
        /// Block height reached at `index`.
        height: Height,
    },
}

impl RaftMessage {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            RaftMessage::PreVote { term, .. }
            | RaftMessage::PreVoteResponse { term, .. }
            | RaftMessage::RequestVote { term, .. }
            | RaftMessage::RequestVoteResponse { term, .. }
            | RaftMessage::AppendEntries { term, .. }
            | RaftMessage::AppendEntriesResponse { term, .. }
            | RaftMessage::Snapshot { term, .. } => *term,
        }
    }
}

/// A change to Raft's durable state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftPersist {
    /// Current term and vote (§5.2: persisted before answering or campaigning).
    HardState {
        /// Term.
        term: Term,
        /// Vote in that term, by validator index.
        voted_for: Option<u32>,
    },
    /// Entries appended at the end of the log, starting at `first_index`.
    Append {
        /// Index of the first entry.
        first_index: LogIndex,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// Drop every entry from `index` on (conflicting, never committed).
    TruncateFrom {
        /// First index dropped.
        index: LogIndex,
    },
    /// Entries up to `index` are in the ledger: drop them and remember where the log starts.
    Compact {
        /// Last compacted index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// Block height at `index`.
        height: Height,
    },
}

/// Raft's durable state: what a restart starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftDurable {
    /// Current term.
    pub term: Term,
    /// Vote in that term.
    pub voted_for: Option<u32>,
    /// Last compacted index (0: nothing compacted).
    pub snapshot_index: LogIndex,
    /// Its term.
    pub snapshot_term: Term,
    /// Block height at the snapshot point.
    pub snapshot_height: Height,
    /// Entries after the snapshot point.
    pub entries: Vec<Entry>,
}
