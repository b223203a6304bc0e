//! Step tests, named after the sections of the Raft paper they check.

use cairn_crypto::Hash;
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    Block, BlockHash, BlockHeader, CommitCertificate, ConsensusKind, RaftCertificate,
    RaftCommitStatement,
};

use super::*;
use crate::DurableState;

fn chain(n: usize) -> TestChain {
    TestChain::new(ConsensusKind::Raft, n, 1, 1)
}

fn cfg(c: &TestChain, me: u32) -> RaftConfig {
    RaftConfig {
        chain_id: c.genesis.chain_id.clone(),
        validators: c.genesis.validator_set(),
        me: NodeId(me),
        election_ticks_min: 10,
        election_ticks_max: 20,
        heartbeat_ticks: 3,
        max_entries_per_message: 16,
        compact_after: 1000,
        seed: 7,
        planted_bug_vote_twice: false,
    }
}

fn node(c: &TestChain, me: u32, durable: &RaftDurable, height: Height) -> Raft {
    Raft::restore(
        cfg(c, me),
        c.validators[me as usize].clone(),
        durable,
        height,
    )
}

fn step(r: &mut Raft, input: Input<RaftMessage>) -> Out {
    let mut out = Vec::new();
    r.step(input, &mut out);
    out
}

fn msg(from: u32, m: RaftMessage) -> Input<RaftMessage> {
    Input::Message {
        from: NodeId(from),
        msg: m,
    }
}

fn block(height: Height, tag: u64) -> Block {
    Block {
        header: BlockHeader {
            chain_id: "cairn-test".into(),
            height,
            prev_hash: BlockHash(Hash::ZERO),
            timestamp_ms: tag,
            tx_root: Hash::ZERO,
            tx_count: 0,
            state_root: Hash::ZERO,
            proposer: cairn_crypto::PublicKey([0; 32]),
            round: 0,
        },
        txs: vec![],
    }
}

fn entry(term: u64, height: Option<Height>) -> Entry {
    Entry {
        term,
        block: height.map(|h| block(h, term)),
    }
}

/// Ticks until the node does something other than count time.
fn tick_until_output(r: &mut Raft) -> Out {
    for _ in 0..100 {
        let out = step(r, Input::Tick { pending_work: true });
        if !out.is_empty() {
            return out;
        }
    }
    panic!("no output after 100 ticks");
}

fn position(out: &Out, pred: impl Fn(&Output<RaftMessage, RaftPersist>) -> bool) -> Option<usize> {
    out.iter().position(pred)
}

fn is_persist(o: &Output<RaftMessage, RaftPersist>) -> bool {
    matches!(o, Output::Persist { .. })
}

fn sent(out: &Out) -> Vec<RaftMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { msg, .. } | Output::Broadcast { msg } => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// A node made leader of `term` in a 3-node cluster, with its outputs.
fn leader(c: &TestChain, durable: &RaftDurable) -> (Raft, Out) {
    let mut r = node(c, 0, durable, 0);
    tick_until_output(&mut r); // PreVote
    let t = r.term;
    step(
        &mut r,
        msg(
            1,
            RaftMessage::PreVoteResponse {
                term: t + 1,
                granted: true,
            },
        ),
    );
    let out = step(
        &mut r,
        msg(
            1,
            RaftMessage::RequestVoteResponse {
                term: t + 1,
                granted: true,
            },
        ),
    );
    assert_eq!(r.status().role, Role::Leader);
    (r, out)
}

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
                assert_eq!(r.term, 0);
                assert_eq!(r.status().role, Role::PreCandidate);
                assert!(matches!(
                    sent(&out)[..],
                    [RaftMessage::PreVote { term: 1, .. }]
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
                            term: 1,
                            granted: true,
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!((r.term, r.status().role), (1, Role::Candidate));
                let persist = position(out, is_persist).expect("persists");
                let ask = position(out, |o| {
                    matches!(
                        o,
                        Output::Broadcast {
                            msg: RaftMessage::RequestVote { term: 1, .. }
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
                            term: 5,
                            granted: false,
                        },
                    ),
                )
            },
            |r, _| assert_eq!((r.term, r.status().role), (5, Role::Follower)),
        ),
        (
            "a vote is granted to an up-to-date candidate, and persisted before the answer",
            |c| {
                (
                    node(c, 1, &RaftDurable::default(), 0),
                    msg(
                        0,
                        RaftMessage::RequestVote {
                            term: 1,
                            last_index: 0,
                            last_term: 0,
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
                            term: 1,
                            last_index: 0,
                            last_term: 0,
                        },
                    ),
                );
                (
                    r,
                    msg(
                        2,
                        RaftMessage::RequestVote {
                            term: 1,
                            last_index: 0,
                            last_term: 0,
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
                    term: 4,
                    ..RaftDurable::default()
                };
                (
                    node(c, 1, &d, 0),
                    msg(
                        0,
                        RaftMessage::RequestVote {
                            term: 3,
                            last_index: 9,
                            last_term: 3,
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!(r.term, 4);
                assert!(matches!(
                    sent(out)[..],
                    [RaftMessage::RequestVoteResponse {
                        term: 4,
                        granted: false
                    }]
                ));
            },
        ),
        (
            "§5.4.1: a candidate whose log is behind does not get the vote",
            |c| {
                let d = RaftDurable {
                    term: 2,
                    entries: vec![entry(1, Some(1)), entry(2, None)],
                    ..RaftDurable::default()
                };
                (
                    node(c, 1, &d, 0),
                    msg(
                        0,
                        RaftMessage::RequestVote {
                            term: 3,
                            last_index: 5,
                            last_term: 1,
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!(r.term, 3, "the higher term is still adopted");
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
                            term: 1,
                            granted: true,
                        },
                    ),
                );
                (
                    r,
                    msg(
                        1,
                        RaftMessage::RequestVoteResponse {
                            term: 1,
                            granted: true,
                        },
                    ),
                )
            },
            |r, out| {
                assert_eq!(r.status().role, Role::Leader);
                assert_eq!(r.log.last_index(), 1);
                assert_eq!(
                    r.log.entry(1).map(|e| (e.term, e.block.is_none())),
                    Some((1, true))
                );
                assert!(out.iter().any(|o| matches!(
                    o,
                    Output::Persist {
                        op: RaftPersist::Append { first_index: 1, .. }
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
                term: 1,
                prev_index: 0,
                prev_term: 0,
                entries: vec![],
                leader_commit: 0,
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
                term: 9,
                last_index: 9,
                last_term: 9,
            },
        ),
    );
    assert!(out.is_empty());
    assert_eq!(f.term, 1);
    let grew: Vec<_> = f.status().refused.since(&before).collect();
    assert_eq!(grew, vec![(Refusal::LeaderAlive, 1)]);
    let out = step(
        &mut f,
        msg(
            2,
            RaftMessage::PreVote {
                term: 9,
                last_index: 9,
                last_term: 9,
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

#[test]
fn s5_3_log_matching_table() {
    let c = chain(3);
    let with_log = |entries: Vec<Entry>| RaftDurable {
        term: 3,
        entries,
        ..RaftDurable::default()
    };
    let append =
        |prev_index, prev_term, entries: Vec<Entry>, leader_commit| RaftMessage::AppendEntries {
            term: 3,
            prev_index,
            prev_term,
            entries,
            leader_commit,
            certificates: vec![],
        };
    // (desc, follower log, message, expected success, expected log terms after)
    type Case = (&'static str, Vec<Entry>, RaftMessage, bool, Vec<u64>);
    let cases: Vec<Case> = vec![
        (
            "appends after a matching entry",
            vec![entry(1, None)],
            append(1, 1, vec![entry(3, Some(1))], 0),
            true,
            vec![1, 3],
        ),
        (
            "refuses when prev is missing",
            vec![entry(1, None)],
            append(3, 3, vec![entry(3, None)], 0),
            false,
            vec![1],
        ),
        (
            "refuses when prev's term differs",
            vec![entry(1, None), entry(2, None)],
            append(2, 3, vec![entry(3, None)], 0),
            false,
            vec![1, 2],
        ),
        (
            "drops a conflicting suffix and appends the leader's",
            vec![entry(1, None), entry(2, Some(1)), entry(2, Some(2))],
            append(1, 1, vec![entry(3, Some(1))], 0),
            true,
            vec![1, 3],
        ),
        (
            "keeps entries beyond a shorter, matching message",
            vec![entry(1, None), entry(3, Some(1)), entry(3, Some(2))],
            append(1, 1, vec![entry(3, Some(1))], 0),
            true,
            vec![1, 3, 3],
        ),
    ];
    for (desc, log, m, ok, terms) in cases {
        let mut f = node(&c, 1, &with_log(log), 0);
        let out = step(&mut f, msg(0, m));
        let got = sent(&out);
        assert!(
            matches!(got.last(), Some(RaftMessage::AppendEntriesResponse { success, .. }) if *success == ok),
            "§5.3 {desc}: {got:?}"
        );
        let after: Vec<u64> = (1..=f.log.last_index())
            .filter_map(|i| f.log.term_at(i))
            .collect();
        assert_eq!(after, terms, "§5.3 {desc}");
        // Every change to the log was persisted, in order, before the answer.
        let last_persist = out.iter().rposition(is_persist);
        let answer = out.iter().position(|o| matches!(o, Output::Send { .. }));
        if let (Some(p), Some(a)) = (last_persist, answer) {
            assert!(p < a, "§5.3 {desc}: persist before answering");
        }
    }

    // The same AppendEntries twice: the second changes nothing and persists nothing.
    let mut f = node(&c, 1, &with_log(vec![entry(1, None)]), 0);
    let m = append(1, 1, vec![entry(3, Some(1))], 0);
    step(&mut f, msg(0, m.clone()));
    let again = step(&mut f, msg(0, m));
    assert!(
        !again.iter().any(is_persist),
        "duplicate AppendEntries persisted: {again:?}"
    );
    assert_eq!(f.log.last_index(), 2);

    // A stale leader is refused and changes nothing.
    let mut f = node(&c, 1, &with_log(vec![entry(1, None)]), 0);
    let out = step(
        &mut f,
        msg(
            0,
            RaftMessage::AppendEntries {
                term: 2,
                prev_index: 1,
                prev_term: 1,
                entries: vec![entry(2, None)],
                leader_commit: 0,
                certificates: vec![],
            },
        ),
    );
    assert!(matches!(
        sent(&out)[..],
        [RaftMessage::AppendEntriesResponse {
            term: 3,
            success: false,
            ..
        }]
    ));
    assert_eq!(f.log.last_index(), 1);
}

#[test]
fn s5_4_2_figure_8_old_term_entries_commit_only_with_the_current_term() {
    // Figure 8 (c): the leader of term 4 holds an entry of term 2 at index 2 and replicates it
    // to a majority. Counting replicas of an old-term entry must not commit it; it commits
    // only once an entry of the leader's own term (its no-op) is on a majority.
    let c = chain(3);
    let d = RaftDurable {
        term: 3,
        entries: vec![entry(1, Some(1)), entry(2, Some(2))],
        ..RaftDurable::default()
    };
    let mut r = node(&c, 0, &d, 0);
    tick_until_output(&mut r);
    step(
        &mut r,
        msg(
            1,
            RaftMessage::PreVoteResponse {
                term: 4,
                granted: true,
            },
        ),
    );
    step(
        &mut r,
        msg(
            1,
            RaftMessage::RequestVoteResponse {
                term: 4,
                granted: true,
            },
        ),
    );
    assert_eq!((r.term, r.status().role), (4, Role::Leader));
    assert_eq!(r.log.last_index(), 3, "no-op of term 4 at index 3");
    // Follower 1 matches up to index 2 (the old-term entry): nothing commits.
    let out = step(
        &mut r,
        msg(
            1,
            RaftMessage::AppendEntriesResponse {
                term: 4,
                success: true,
                last_index: 2,
                applied: 0,
            },
        ),
    );
    assert_eq!(
        r.commit_index, 0,
        "an old-term entry on a majority does not commit"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Commit { .. })));
    // Follower 1 matches the no-op too: indexes 1..=3 commit, blocks 1 and 2 in order, each
    // with a certificate that verifies offline.
    let out = step(
        &mut r,
        msg(
            1,
            RaftMessage::AppendEntriesResponse {
                term: 4,
                success: true,
                last_index: 3,
                applied: 0,
            },
        ),
    );
    assert_eq!(r.commit_index, 3);
    let commits: Vec<(Height, CommitCertificate)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Commit { block, certificate } => {
                Some((block.header.height, certificate.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        commits.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        vec![1, 2]
    );
    for (h, cert) in &commits {
        let b = r
            .log
            .entry(*h)
            .and_then(|e| e.block.clone())
            .expect("block");
        cert.verify(
            &c.genesis.chain_id,
            ConsensusKind::Raft,
            &c.genesis.validator_set(),
            *h,
            &b.hash(),
        )
        .expect("certificate verifies");
    }
    // With everything applied, the leader asks for the next block.
    assert!(out.iter().any(|o| matches!(
        o,
        Output::RequestProposal {
            height: 3,
            round: 4
        }
    )));
}

/// Exactly one refusal so far, for `reason`.
fn refused_once(r: &Raft, reason: Refusal, desc: &str) {
    let all: Vec<_> = r.status().refused.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(all, vec![(reason, 1)], "{desc}");
}

#[test]
fn negative_space_names_each_refusal() {
    let c = chain(3);
    let ae = |term: u64, entries: Vec<Entry>| RaftMessage::AppendEntries {
        term,
        prev_index: 0,
        prev_term: 0,
        entries,
        leader_commit: 0,
        certificates: vec![],
    };
    let at_term_2 = RaftDurable {
        term: 2,
        ..RaftDurable::default()
    };
    let aer = RaftMessage::AppendEntriesResponse {
        term: 0,
        success: true,
        last_index: 0,
        applied: 0,
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
                    term: 0,
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
                    term: 0,
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
                    term: 1,
                    index: 5,
                    index_term: 1,
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
    let out = step(&mut r, Input::Propose { block: block(1, 0) });
    assert!(matches!(out[..], [Output::NotLeader { hint: None }]));
    assert_eq!(r.status().refused.total(), 0);
    // A leader refuses an unasked or wrong-height proposal.
    let (mut l, _) = leader(&c, &RaftDurable::default());
    let before = l.status().refused;
    step(&mut l, Input::Propose { block: block(5, 0) });
    let grew: Vec<_> = l.status().refused.since(&before).collect();
    assert_eq!(grew, vec![(Refusal::Unrequested, 1)]);
    assert_eq!(l.log.last_index(), 1, "only the no-op");
    // A certificate for a block the follower does not hold is ignored.
    let mut f = node(
        &c,
        1,
        &RaftDurable {
            term: 1,
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
                term: 1,
                prev_index: 1,
                prev_term: 1,
                entries: vec![],
                leader_commit: 1,
                certificates: vec![(1, wrong)],
            },
        ),
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Commit { .. })),
        "no commit on a wrong certificate"
    );
    refused_once(&f, Refusal::BadSignature, "a certificate for another block");
}

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
                term: 2,
                index: 40,
                index_term: 2,
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
                index: 40,
                term: 2,
                height: 30
            }
        }
    )));
    assert!(matches!(
        sent(&out)[..],
        [RaftMessage::AppendEntriesResponse {
            success: true,
            last_index: 40,
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
                term: 2,
                prev_index: 40,
                prev_term: 2,
                entries: vec![entry(2, Some(31))],
                leader_commit: 40,
                certificates: vec![],
            },
        ),
    );
    assert!(matches!(
        sent(&out)[..],
        [RaftMessage::AppendEntriesResponse {
            success: true,
            last_index: 41,
            ..
        }]
    ));

    // Durable state replays to the same log.
    let mut d = RaftDurable::default();
    for op in [
        RaftPersist::Append {
            first_index: 1,
            entries: vec![entry(1, None), entry(1, Some(1)), entry(1, Some(2))],
        },
        RaftPersist::TruncateFrom { index: 3 },
        RaftPersist::Append {
            first_index: 3,
            entries: vec![entry(2, Some(2)), entry(2, Some(3))],
        },
        RaftPersist::Compact {
            index: 2,
            term: 1,
            height: 1,
        },
    ] {
        d.apply(&op);
    }
    assert_eq!((d.snapshot_index, d.snapshot_height), (2, 1));
    assert_eq!(
        d.entries.iter().map(|e| e.term).collect::<Vec<_>>(),
        vec![2, 2]
    );
}
