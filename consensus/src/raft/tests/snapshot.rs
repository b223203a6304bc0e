//! Compaction and catching up through block sync (§7).

use super::*;

#[test]
fn compaction_and_catch_up_through_block_sync() {
    let c = chain(3);
    // A follower told to catch up from the ledger asks its caller to sync, then resumes.
    let mut f = node(&c, 2, &RaftDurable::default(), 0);
    let out = step(
        &mut f,
        msg(
            0,
            RaftMessage::Snapshot {
                term: Term(2),
                index: LogIndex(40),
                index_term: Term(2),
                height: 30,
            },
        ),
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::SyncTo {
            peer: NodeId(0),
            height: 30
        }
    )));
    let out = step(
        &mut f,
        Input::Synced {
            height: 30,
            tip: block(30, 0).hash(),
        },
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Persist {
            op: RaftPersist::Compact {
                index: LogIndex(40),
                term: Term(2),
                height: 30
            }
        }
    )));
    assert!(matches!(
        sent(&out)[..],
        [RaftMessage::AppendEntriesResponse {
            success: true,
            last_index: LogIndex(40),
            ..
        }]
    ));
    assert_eq!(f.status().commit_height, 30);
    // It continues from the snapshot point.
    let out = step(
        &mut f,
        msg(
            0,
            RaftMessage::AppendEntries {
                term: Term(2),
                prev_index: LogIndex(40),
                prev_term: Term(2),
                entries: vec![entry(2, Some(31))],
                leader_commit: LogIndex(40),
                certificates: vec![],
            },
        ),
    );
    assert!(matches!(
        sent(&out)[..],
        [RaftMessage::AppendEntriesResponse {
            success: true,
            last_index: LogIndex(41),
            ..
        }]
    ));

    // Durable state replays to the same log.
    let mut d = RaftDurable::default();
    for op in [
        RaftPersist::Append {
            first_index: LogIndex(1),
            entries: vec![entry(1, None), entry(1, Some(1)), entry(1, Some(2))],
        },
        RaftPersist::TruncateFrom { index: LogIndex(3) },
        RaftPersist::Append {
            first_index: LogIndex(3),
            entries: vec![entry(2, Some(2)), entry(2, Some(3))],
        },
        RaftPersist::Compact {
            index: LogIndex(2),
            term: Term(1),
            height: 1,
        },
    ] {
        d.apply(&op);
    }
    assert_eq!((d.snapshot_index, d.snapshot_height), (LogIndex(2), 1));
    assert_eq!(
        d.entries.iter().map(|e| e.term).collect::<Vec<_>>(),
        vec![Term(2), Term(2)]
    );
}
