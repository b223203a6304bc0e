//! What a node refuses, and the reason it gives for each.

use super::*;

/// Exactly one refusal so far, for `reason`.
fn refused_once(r: &Raft, reason: Refusal, desc: &str) {
    let all: Vec<_> = r.status().refused.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(all, vec![(reason, 1)], "{desc}");
}

#[test]
fn negative_space_names_each_refusal() {
    let c = chain(3);
    let ae = |term: u64, entries: Vec<Entry>| RaftMessage::AppendEntries {
        term: Term(term),
        prev_index: LogIndex(0),
        prev_term: Term(0),
        entries,
        leader_commit: LogIndex(0),
        certificates: vec![],
    };
    let at_term_2 = RaftDurable {
        term: Term(2),
        ..RaftDurable::default()
    };
    let aer = RaftMessage::AppendEntriesResponse {
        term: Term(0),
        success: true,
        last_index: LogIndex(0),
        applied: LogIndex(0),
    };
    // (desc, the receiver's durable state, input, reason)
    let cases: Vec<(&str, RaftDurable, Input<RaftMessage>, Refusal)> = vec![
        (
            "from a non-validator",
            RaftDurable::default(),
            msg(7, ae(1, vec![])),
            Refusal::NotAValidator,
        ),
        (
            "from itself",
            RaftDurable::default(),
            msg(1, ae(1, vec![])),
            Refusal::NotAValidator,
        ),
        (
            "append entries of an older term",
            at_term_2.clone(),
            msg(0, ae(1, vec![])),
            Refusal::StaleRound,
        ),
        (
            "more entries than one message may carry",
            RaftDurable::default(),
            msg(0, ae(1, vec![entry(1, None); 17])),
            Refusal::TooLarge,
        ),
        (
            "a vote answer to a follower",
            RaftDurable::default(),
            msg(
                0,
                RaftMessage::RequestVoteResponse {
                    term: Term(0),
                    granted: true,
                },
            ),
            Refusal::Unexpected,
        ),
        (
            "a pre-vote answer to a follower",
            RaftDurable::default(),
            msg(
                0,
                RaftMessage::PreVoteResponse {
                    term: Term(0),
                    granted: true,
                },
            ),
            Refusal::Unexpected,
        ),
        (
            "an append answer to a follower",
            RaftDurable::default(),
            msg(0, aer),
            Refusal::Unexpected,
        ),
        (
            "a snapshot of an older term",
            at_term_2,
            msg(
                0,
                RaftMessage::Snapshot {
                    term: Term(1),
                    index: LogIndex(5),
                    index_term: Term(1),
                    height: 5,
                },
            ),
            Refusal::StaleRound,
        ),
        (
            "a validation answer (Raft followers trust the leader)",
            RaftDurable::default(),
            Input::Validated {
                block_hash: block(1, 0).hash(),
                valid: true,
            },
            Refusal::Unrequested,
        ),
    ];
    for (desc, durable, input, reason) in cases {
        let mut r = node(&c, 1, &durable, 0);
        let term = r.term;
        step(&mut r, input);
        refused_once(&r, reason, desc);
        assert_eq!(r.term, term, "{desc}: nothing changed");
    }
    // A proposal to a follower: redirect, not a refusal.
    let mut r = node(&c, 1, &RaftDurable::default(), 0);
    let out = step(
        &mut r,
        Input::Propose {
            block: Box::new(block(1, 0)),
        },
    );
    assert!(matches!(out[..], [Output::NotLeader { hint: None }]));
    assert_eq!(r.status().refused.total(), 0);
    // A leader refuses an unasked or wrong-height proposal.
    let (mut l, _) = leader(&c, &RaftDurable::default());
    let before = l.status().refused;
    step(
        &mut l,
        Input::Propose {
            block: Box::new(block(5, 0)),
        },
    );
    let grew: Vec<_> = l.status().refused.since(&before).collect();
    assert_eq!(grew, vec![(Refusal::Unrequested, 1)]);
    assert_eq!(l.log.last_index(), LogIndex(1), "only the no-op");
    // A certificate for a block the follower does not hold is ignored.
    let mut f = node(
        &c,
        1,
        &RaftDurable {
            term: Term(1),
            entries: vec![entry(1, Some(1))],
            ..RaftDurable::default()
        },
        0,
    );
    let wrong = RaftCertificate {
        term: 1,
        leader: c.validators[0].public_key(),
        signature: RaftCommitStatement {
            height: 1,
            block_hash: block(1, 99).hash(),
            term: 1,
        }
        .sign(&c.genesis.chain_id, &c.validators[0]),
    };
    let out = step(
        &mut f,
        msg(
            0,
            RaftMessage::AppendEntries {
                term: Term(1),
                prev_index: LogIndex(1),
                prev_term: Term(1),
                entries: vec![],
                leader_commit: LogIndex(1),
                certificates: vec![(LogIndex(1), wrong)],
            },
        ),
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Commit { .. })),
        "no commit on a wrong certificate"
    );
    refused_once(&f, Refusal::BadSignature, "a certificate for another block");
}
