//! Leader election (§5.2) with PreVote, the leader lease and CheckQuorum.

use super::*;

#[test]
fn s5_2_election_table() {
    let c = chain(3);
    type Setup = fn(&TestChain) -> (Raft, Input<RaftMessage>);
    type Check = fn(&mut Raft, &Out);
    let cases: Vec<(&str, Setup, Check)> = vec![
        (
            "a follower that times out asks for pre-votes without changing its term",
            |c| {
                (
                    node(c, 0, &RaftDurable::default(), 0),
                    Input::Tick { pending_work: true },
                )
            },
            |r, _| {
                let out = tick_until_output(r);
                assert_eq!(r.term, Term(0));
                assert_eq!(r.status().role, Role::PreCandidate);
                assert!(matches!(
                    sent(&out)[..],
                    [RaftMessage::PreVote { term: Term(1), .. }]
                ));
            },
        ),
        (
            "a majority of pre-votes starts a real election, persisting term and vote first",
            |c| {
                let mut r = node(c, 0, &RaftDurable::default(), 0);
                tick_until_output(&mut r);
                (
                    r,
                    msg(
                        2,
                        RaftMessage::PreVoteResponse {
                            term: Term(1),
                            granted: true,
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!((r.term, r.status().role), (Term(1), Role::Candidate));
                let persist = position(out, is_persist).expect("persists");
                let ask = position(out, |o| {
                    matches!(
                        o,
                        Output::Broadcast {
                            msg: RaftMessage::RequestVote { term: Term(1), .. }
                        }
                    )
                })
                .expect("asks for votes");
                assert!(
                    persist < ask,
                    "term and vote durable before RequestVote leaves: {out:?}"
                );
            },
        ),
        (
            "a pre-vote rejection from a higher term makes the pre-candidate follow",
            |c| {
                let mut r = node(c, 0, &RaftDurable::default(), 0);
                tick_until_output(&mut r);
                (
                    r,
                    msg(
                        2,
                        RaftMessage::PreVoteResponse {
                            term: Term(5),
                            granted: false,
                        },
                    ),
                )
            },
            |r, _| assert_eq!((r.term, r.status().role), (Term(5), Role::Follower)),
        ),
        (
            "a vote is granted to an up-to-date candidate, and persisted before the answer",
            |c| {
                (
                    node(c, 1, &RaftDurable::default(), 0),
                    msg(
                        0,
                        RaftMessage::RequestVote {
                            term: Term(1),
                            last_index: LogIndex(0),
                            last_term: Term(0),
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!(r.voted_for, Some(NodeId(0)));
                let persist = position(out, is_persist).expect("persists the vote");
                let answer = position(out, |o| {
                    matches!(
                        o,
                        Output::Send {
                            msg: RaftMessage::RequestVoteResponse { granted: true, .. },
                            ..
                        }
                    )
                })
                .expect("grants");
                assert!(persist < answer);
            },
        ),
        (
            "only one vote per term",
            |c| {
                let mut r = node(c, 1, &RaftDurable::default(), 0);
                step(
                    &mut r,
                    msg(
                        0,
                        RaftMessage::RequestVote {
                            term: Term(1),
                            last_index: LogIndex(0),
                            last_term: Term(0),
                        },
                    ),
                );
                (
                    r,
                    msg(
                        2,
                        RaftMessage::RequestVote {
                            term: Term(1),
                            last_index: LogIndex(0),
                            last_term: Term(0),
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!(r.voted_for, Some(NodeId(0)));
                assert!(matches!(
                    sent(out)[..],
                    [RaftMessage::RequestVoteResponse { granted: false, .. }]
                ));
            },
        ),
        (
            "a vote request from a stale term is refused with the current term",
            |c| {
                let d = RaftDurable {
                    term: Term(4),
                    ..RaftDurable::default()
                };
                (
                    node(c, 1, &d, 0),
                    msg(
                        0,
                        RaftMessage::RequestVote {
                            term: Term(3),
                            last_index: LogIndex(9),
                            last_term: Term(3),
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!(r.term, Term(4));
                assert!(matches!(
                    sent(out)[..],
                    [RaftMessage::RequestVoteResponse {
                        term: Term(4),
                        granted: false
                    }]
                ));
            },
        ),
        (
            "§5.4.1: a candidate whose log is behind does not get the vote",
            |c| {
                let d = RaftDurable {
                    term: Term(2),
                    entries: vec![entry(1, Some(1)), entry(2, None)],
                    ..RaftDurable::default()
                };
                (
                    node(c, 1, &d, 0),
                    msg(
                        0,
                        RaftMessage::RequestVote {
                            term: Term(3),
                            last_index: LogIndex(5),
                            last_term: Term(1),
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!(r.term, Term(3), "the higher term is still adopted");
                assert!(matches!(
                    sent(out)[..],
                    [RaftMessage::RequestVoteResponse { granted: false, .. }]
                ));
            },
        ),
        (
            "a majority of votes makes a leader that appends a no-op of its term",
            |c| {
                let mut r = node(c, 0, &RaftDurable::default(), 0);
                tick_until_output(&mut r);
                step(
                    &mut r,
                    msg(
                        1,
                        RaftMessage::PreVoteResponse {
                            term: Term(1),
                            granted: true,
                        },
                    ),
                );
                (
                    r,
                    msg(
                        1,
                        RaftMessage::RequestVoteResponse {
                            term: Term(1),
                            granted: true,
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!(r.status().role, Role::Leader);
                assert_eq!(r.log.last_index(), LogIndex(1));
                assert_eq!(
                    r.log
                        .entry(LogIndex(1))
                        .map(|e| (e.term, e.block.is_none())),
                    Some((Term(1), true))
                );
                assert!(out.iter().any(|o| matches!(
                    o,
                    Output::Persist {
                        op: RaftPersist::Append {
                            first_index: LogIndex(1),
                            ..
                        }
                    }
                )));
            },
        ),
    ];
    for (desc, setup, check) in cases {
        let (mut r, input) = setup(&c);
        let out = step(&mut r, input);
        eprintln!("§5.2: {desc}");
        check(&mut r, &out);
    }
}

#[test]
fn s5_2_lease_and_check_quorum() {
    let c = chain(3);
    // A follower that hears from its leader ignores higher-term vote requests (PreVote and
    // CheckQuorum: a returning partitioned node cannot depose a healthy leader).
    let mut f = node(&c, 1, &RaftDurable::default(), 0);
    step(
        &mut f,
        msg(
            0,
            RaftMessage::AppendEntries {
                term: Term(1),
                prev_index: LogIndex(0),
                prev_term: Term(0),
                entries: vec![],
                leader_commit: LogIndex(0),
                certificates: vec![],
            },
        ),
    );
    let before = f.status().refused;
    let out = step(
        &mut f,
        msg(
            2,
            RaftMessage::RequestVote {
                term: Term(9),
                last_index: LogIndex(9),
                last_term: Term(9),
            },
        ),
    );
    assert!(out.is_empty());
    assert_eq!(f.term, Term(1));
    let grew: Vec<_> = f.status().refused.since(&before).collect();
    assert_eq!(grew, vec![(Refusal::LeaderAlive, 1)]);
    let out = step(
        &mut f,
        msg(
            2,
            RaftMessage::PreVote {
                term: Term(9),
                last_index: LogIndex(9),
                last_term: Term(9),
            },
        ),
    );
    assert!(matches!(
        sent(&out)[..],
        [RaftMessage::PreVoteResponse { granted: false, .. }]
    ));

    // A leader that hears from no one steps down after an election timeout.
    let (mut l, _) = leader(&c, &RaftDurable::default());
    for _ in 0..2 * cfg(&c, 0).election_ticks_min {
        step(&mut l, Input::Tick { pending_work: true });
    }
    assert_eq!(l.status().role, Role::Follower);
}
