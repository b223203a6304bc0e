//! Log replication and commitment (§5.3, §5.4.2 and Figure 8).

use super::*;

#[test]
fn s5_3_log_matching_table() {
    let c = chain(3);
    let with_log = |entries: Vec<Entry>| RaftDurable {
        term: Term(3),
        entries,
        ..RaftDurable::default()
    };
    let append =
        |prev_index, prev_term, entries: Vec<Entry>, leader_commit| RaftMessage::AppendEntries {
            term: Term(3),
            prev_index: LogIndex(prev_index),
            prev_term: Term(prev_term),
            entries,
            leader_commit: LogIndex(leader_commit),
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
        let after: Vec<u64> = (1..=f.log.last_index().0)
            .filter_map(|i| f.log.term_at(LogIndex(i)))
            .map(u64::from)
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
    assert_eq!(f.log.last_index(), LogIndex(2));

    // A stale leader is refused and changes nothing.
    let mut f = node(&c, 1, &with_log(vec![entry(1, None)]), 0);
    let out = step(
        &mut f,
        msg(
            0,
            RaftMessage::AppendEntries {
                term: Term(2),
                prev_index: LogIndex(1),
                prev_term: Term(1),
                entries: vec![entry(2, None)],
                leader_commit: LogIndex(0),
                certificates: vec![],
            },
        ),
    );
    assert!(matches!(
        sent(&out)[..],
        [RaftMessage::AppendEntriesResponse {
            term: Term(3),
            success: false,
            ..
        }]
    ));
    assert_eq!(f.log.last_index(), LogIndex(1));
}

#[test]
fn s5_4_2_figure_8_old_term_entries_commit_only_with_the_current_term() {
    // Figure 8 (c): the leader of term 4 holds an entry of term 2 at index 2 and replicates it
    // to a majority. Counting replicas of an old-term entry must not commit it; it commits
    // only once an entry of the leader's own term (its no-op) is on a majority.
    let c = chain(3);
    let d = RaftDurable {
        term: Term(3),
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
                term: Term(4),
                granted: true,
            },
        ),
    );
    step(
        &mut r,
        msg(
            1,
            RaftMessage::RequestVoteResponse {
                term: Term(4),
                granted: true,
            },
        ),
    );
    assert_eq!((r.term, r.status().role), (Term(4), Role::Leader));
    assert_eq!(
        r.log.last_index(),
        LogIndex(3),
        "no-op of term 4 at index 3"
    );
    // Follower 1 matches up to index 2 (the old-term entry): nothing commits.
    let out = step(
        &mut r,
        msg(
            1,
            RaftMessage::AppendEntriesResponse {
                term: Term(4),
                success: true,
                last_index: LogIndex(2),
                applied: LogIndex(0),
            },
        ),
    );
    assert_eq!(
        r.commit_index,
        LogIndex(0),
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
                term: Term(4),
                success: true,
                last_index: LogIndex(3),
                applied: LogIndex(0),
            },
        ),
    );
    assert_eq!(r.commit_index, LogIndex(3));
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
            .entry(LogIndex(*h))
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

#[test]
fn a_pipelining_leader_asks_for_the_next_block_before_the_last_commits() {
    let c = chain(3);
    let mut cfg = cfg(&c, 0);
    cfg.blocks_in_flight = 2;
    let r = Raft::restore(cfg, c.validators[0].clone(), &RaftDurable::default(), 0);
    let (mut r, out) = elect(r);
    // No earlier term's entry is left to commit: the first block need not wait for the no-op.
    let term = r.term.0;
    assert!(out.iter().any(|o| matches!(
        o,
        Output::RequestProposal { height: 1, round } if *round == term
    )));
    let mut one = block(1, 10);
    one.header.round = term;
    step(
        &mut r,
        Input::Propose {
            block: Box::new(one.clone()),
        },
    );
    let out = step(&mut r, Input::Tick { pending_work: true });
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::RequestProposal { .. })),
        "asked once per block"
    );
    // Block 1 replicates; block 2 was asked for when 1 was proposed.
    assert!(r.proposal_requested, "the next block is asked for at once");
    let mut wrong_parent = block(2, 11);
    wrong_parent.header.round = term;
    wrong_parent.header.prev_hash = BlockHash(Hash([9; 32]));
    step(
        &mut r,
        Input::Propose {
            block: Box::new(wrong_parent),
        },
    );
    assert_eq!(
        r.status().refused.of(Refusal::Unrequested),
        1,
        "must extend block 1"
    );
    assert!(!r.proposal_requested, "the request is spent");
    let out = step(&mut r, Input::Tick { pending_work: true });
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::RequestProposal { height: 2, .. })),
        "and asked again at the next tick"
    );
    let mut stale = block(2, 11);
    stale.header.prev_hash = one.hash();
    step(
        &mut r,
        Input::Propose {
            block: Box::new(stale),
        },
    );
    assert_eq!(
        r.status().refused.of(Refusal::Unrequested),
        2,
        "a block built for an older term is refused"
    );
    step(&mut r, Input::Tick { pending_work: true });
    let mut two = block(2, 11);
    two.header.round = term;
    two.header.prev_hash = one.hash();
    step(
        &mut r,
        Input::Propose {
            block: Box::new(two.clone()),
        },
    );
    assert!(
        !r.proposal_requested,
        "two blocks in flight: the third waits"
    );
    // A majority stores both: they commit in order, and block 3 is asked for.
    let (last, term) = (r.log.last_index(), r.term);
    let out = step(
        &mut r,
        msg(
            1,
            RaftMessage::AppendEntriesResponse {
                term,
                success: true,
                last_index: last,
                applied: LogIndex(0),
            },
        ),
    );
    let heights: Vec<Height> = out
        .iter()
        .filter_map(|o| match o {
            Output::Commit { block, .. } => Some(block.header.height),
            _ => None,
        })
        .collect();
    assert_eq!(heights, vec![1, 2]);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::RequestProposal { height: 3, .. }))
    );
}

#[test]
fn a_follower_that_lost_its_log_is_resent_from_where_it_is() {
    // A node restored from a backup or joined from a snapshot comes back with no log. The
    // leader must stop counting what it acknowledged before, and send from where it is now.
    let c = chain(3);
    let (mut r, _) = leader(&c, &RaftDurable::default());
    let (last, term) = (r.log.last_index(), r.term);
    step(
        &mut r,
        msg(
            1,
            RaftMessage::AppendEntriesResponse {
                term,
                success: true,
                last_index: last,
                applied: LogIndex(0),
            },
        ),
    );
    assert_eq!(r.progress[1].matched, last);
    let out = step(
        &mut r,
        msg(
            1,
            RaftMessage::AppendEntriesResponse {
                term,
                success: false,
                last_index: LogIndex(0),
                applied: LogIndex(0),
            },
        ),
    );
    assert_eq!(
        r.progress[1].matched,
        LogIndex(0),
        "no longer counted as stored"
    );
    assert!(
        sent(&out).iter().any(|m| matches!(
            m,
            RaftMessage::AppendEntries {
                prev_index: LogIndex(0),
                ..
            }
        )),
        "resent from the start: {out:?}"
    );
}
