//! Raft's durable state and its keyed layout.
//!
//! Keys: `raft/vote` (term and vote, §5.2), `raft/snap` (the snapshot point: index, term,
//! block height) and one key per log entry after it, `raft/e/<index, big-endian>`, so an
//! append writes only the new entries. Each op names what it removes: an append or a
//! truncation removes every entry from its first index on; a compaction every entry up to its
//! index.

use cairn_ledger::{ConsensusWrite, Height};
use serde::{Deserialize, Serialize};

use super::message::{Entry, RaftDurable, RaftPersist};
use crate::durable::{
    DurableError, DurableState, after_prefix, decode, number_of, numbered, put, show,
};
use crate::{LogIndex, Term};

/// Every key starts with this.
const PREFIX: &[u8] = b"raft/";
const VOTE: &[u8] = b"raft/vote";
const SNAP: &[u8] = b"raft/snap";
const ENTRY: &[u8] = b"raft/e/";

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Vote {
    term: Term,
    voted_for: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Snap {
    index: LogIndex,
    term: Term,
    height: Height,
}

fn entries_from(index: LogIndex) -> ConsensusWrite {
    ConsensusWrite::DeleteRange {
        from: numbered(ENTRY, index.0),
        to: after_prefix(ENTRY),
    }
}

impl DurableState for RaftDurable {
    type Op = RaftPersist;

    fn apply(&mut self, op: &RaftPersist) {
        match op {
            RaftPersist::HardState { term, voted_for } => {
                self.term = *term;
                self.voted_for = *voted_for;
            }
            RaftPersist::Append {
                first_index,
                entries,
            } => {
                // Appends always continue the log; keep what precedes `first_index`.
                let keep = first_index.since(self.snapshot_index.next()) as usize;
                self.entries.truncate(keep);
                self.entries.extend(entries.iter().cloned());
            }
            RaftPersist::TruncateFrom { index } => {
                let keep = index.since(self.snapshot_index.next()) as usize;
                self.entries.truncate(keep);
            }
            RaftPersist::Compact {
                index,
                term,
                height,
            } => {
                let drop = index.since(self.snapshot_index) as usize;
                if drop >= self.entries.len() {
                    self.entries.clear();
                } else {
                    self.entries.drain(..drop);
                }
                self.snapshot_index = *index;
                self.snapshot_term = *term;
                self.snapshot_height = *height;
            }
        }
    }

    fn writes(op: &RaftPersist, out: &mut Vec<ConsensusWrite>) {
        match op {
            RaftPersist::HardState { term, voted_for } => out.push(put(
                VOTE.to_vec(),
                &Vote {
                    term: *term,
                    voted_for: *voted_for,
                },
            )),
            RaftPersist::Append {
                first_index,
                entries,
            } => {
                out.push(entries_from(*first_index));
                for (i, e) in entries.iter().enumerate() {
                    out.push(put(numbered(ENTRY, first_index.0 + i as u64), e));
                }
            }
            RaftPersist::TruncateFrom { index } => out.push(entries_from(*index)),
            RaftPersist::Compact {
                index,
                term,
                height,
            } => {
                out.push(ConsensusWrite::DeleteRange {
                    from: ENTRY.to_vec(),
                    to: numbered(ENTRY, index.0.saturating_add(1)),
                });
                out.push(put(
                    SNAP.to_vec(),
                    &Snap {
                        index: *index,
                        term: *term,
                        height: *height,
                    },
                ));
            }
        }
    }

    fn starting_at(height: Height, out: &mut Vec<ConsensusWrite>) -> RaftDurable {
        out.push(ConsensusWrite::DeleteRange {
            from: PREFIX.to_vec(),
            to: after_prefix(PREFIX),
        });
        // An empty log whose snapshot point is the last block of the set before.
        let start = RaftPersist::Compact {
            index: LogIndex(0),
            term: Term(0),
            height,
        };
        Self::writes(&start, out);
        let mut d = RaftDurable::default();
        d.apply(&start);
        d
    }

    fn load(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<RaftDurable, DurableError> {
        let mut vote = Vote::default();
        let mut snap = Snap::default();
        let mut log: Vec<(u64, Entry)> = Vec::new();
        for (k, v) in entries {
            if k == VOTE {
                vote = decode(k, v)?;
            } else if k == SNAP {
                snap = decode(k, v)?;
            } else if let Some(i) = number_of(ENTRY, k) {
                log.push((i, decode(k, v)?));
            } else {
                return Err(DurableError::UnknownKey { key: show(k) });
            }
        }
        // Keys sort by index: the log must run on from the snapshot point without a hole.
        let mut out = Vec::with_capacity(log.len());
        for (expected, (i, e)) in (snap.index.0 + 1..).zip(log) {
            if i != expected {
                return Err(DurableError::Gap {
                    what: "raft log entries do not follow the snapshot point",
                    expected,
                    found: i,
                });
            }
            out.push(e);
        }
        Ok(RaftDurable {
            term: vote.term,
            voted_for: vote.voted_for,
            snapshot_index: snap.index,
            snapshot_term: snap.term,
            snapshot_height: snap.height,
            entries: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::testing::Keys;

    fn entry(term: u64) -> Entry {
        Entry {
            term: Term(term),
            block: None,
        }
    }

    fn check(ops: &[RaftPersist]) -> Result<(), String> {
        let mut model = RaftDurable::default();
        let mut keys = Keys::default();
        for op in ops {
            model.apply(op);
            let mut w = Vec::new();
            RaftDurable::writes(op, &mut w);
            keys.write(&w);
            let loaded = RaftDurable::load(&keys.entries()).map_err(|e| e.to_string())?;
            if loaded != model {
                return Err(format!("after {op:?}: loaded {loaded:?}, model {model:?}"));
            }
        }
        Ok(())
    }

    #[test]
    fn every_kind_of_op_loads_back_equal() {
        check(&[
            RaftPersist::HardState {
                term: Term(2),
                voted_for: Some(1),
            },
            RaftPersist::Append {
                first_index: LogIndex(1),
                entries: vec![entry(1), entry(2), entry(2)],
            },
            RaftPersist::Append {
                first_index: LogIndex(3),
                entries: vec![entry(3), entry(3)],
            },
            RaftPersist::TruncateFrom { index: LogIndex(4) },
            RaftPersist::Compact {
                index: LogIndex(2),
                term: Term(2),
                height: 1,
            },
            RaftPersist::Append {
                first_index: LogIndex(4),
                entries: vec![entry(4)],
            },
            // A follower told to catch up past its whole log.
            RaftPersist::Compact {
                index: LogIndex(9),
                term: Term(4),
                height: 3,
            },
            RaftPersist::Append {
                first_index: LogIndex(10),
                entries: vec![entry(5), entry(5)],
            },
        ])
        .expect("equal");
    }

    #[test]
    fn holes_and_foreign_keys_are_refused() {
        let e = crate::durable::put(numbered(ENTRY, 2), &entry(1));
        let mut keys = Keys::default();
        keys.write(&[e]);
        assert!(matches!(
            RaftDurable::load(&keys.entries()),
            Err(DurableError::Gap {
                expected: 1,
                found: 2,
                ..
            })
        ));
        let foreign = vec![(b"pbft/safety".to_vec(), vec![0])];
        assert!(matches!(
            RaftDurable::load(&foreign),
            Err(DurableError::UnknownKey { .. })
        ));
        let junk = vec![(VOTE.to_vec(), vec![1, 2, 3])];
        assert!(matches!(
            RaftDurable::load(&junk),
            Err(DurableError::Decode { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Any sequence of ops of the shapes Raft emits (appends continue or overwrite the
        /// tail, truncations cut it, compactions move the snapshot point forward, possibly
        /// past the log) loads back equal to the model after every op.
        #[test]
        fn keyed_layout_matches_the_model(
            ops in proptest::collection::vec((0u8..4, 0u64..6, 1u64..4), 1..40)
        ) {
            let mut model = RaftDurable::default();
            let mut term = 1;
            let mut shaped = Vec::new();
            for (kind, a, b) in ops {
                let snap = model.snapshot_index.0;
                let last = snap + model.entries.len() as u64;
                let op = match kind {
                    0 => {
                        term += a;
                        RaftPersist::HardState { term: Term(term), voted_for: Some(b as u32 % 3) }
                    }
                    1 => RaftPersist::Append {
                        first_index: LogIndex((snap + 1).max(last + 1 - a.min(last - snap))),
                        entries: (0..b).map(|_| entry(term)).collect(),
                    },
                    2 => RaftPersist::TruncateFrom {
                        index: LogIndex((snap + 1).max(last + 1 - a.min(last - snap))),
                    },
                    _ => {
                        let index = snap + a.min(last - snap + 2);
                        RaftPersist::Compact { index: LogIndex(index), term: Term(term), height: index }
                    }
                };
                model.apply(&op);
                shaped.push(op);
            }
            proptest::prop_assert_eq!(check(&shaped), Ok(()));
        }
    }
}
