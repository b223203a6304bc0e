//! Normal case (§4.2): pre-prepare, prepare, commit, delivery, and what is refused and why.

use super::*;

#[test]
fn s4_2_normal_case_end_to_end() {
    let c = chain();
    // The primary asks for a block, signs its pre-prepare, and persists before it leaves.
    let mut p = replica(&c, 0, 0);
    let out = step(&mut p, Input::Tick { pending_work: true });
    assert!(out.iter().any(|o| matches!(
        o,
        Output::RequestProposal {
            height: 1,
            round: 0
        }
    )));
    let b = block(1, 1);
    let out = step(
        &mut p,
        Input::Propose {
            block: Box::new(b.clone()),
        },
    );
    let persist = first(&out, |o| {
        matches!(
            o,
            Output::Persist {
                op: PbftPersist::Safety(_)
            }
        )
    })
    .expect("persist");
    let send = first(&out, |o| {
        matches!(
            o,
            Output::Broadcast {
                msg: PbftMessage::PrePrepare { .. }
            }
        )
    })
    .expect("send");
    assert!(
        persist < send,
        "safety data durable before the pre-prepare leaves"
    );

    // A backup validates before it prepares, and persists before its prepare leaves.
    let (mut r, b) = validated_replica(&c);
    let out = step(
        &mut r,
        Input::Validated {
            block_hash: b.hash(),
            valid: true,
        },
    );
    let persist = first(&out, |o| matches!(o, Output::Persist { .. })).expect("persist");
    let send = first(&out, |o| {
        matches!(
            o,
            Output::Broadcast {
                msg: PbftMessage::Prepare(_)
            }
        )
    })
    .expect("prepare");
    assert!(persist < send);
    // One more prepare makes 2f+1 with the pre-prepare: prepared, the certificate is
    // persisted, then the commit goes out.
    let out = step(&mut r, from(2, prepare(&c, 2, 0, &b)));
    let proof = first(&out, |o| {
        matches!(
            o,
            Output::Persist {
                op: PbftPersist::Prepared(_)
            }
        )
    })
    .expect("prepared");
    let send = first(&out, |o| {
        matches!(
            o,
            Output::Broadcast {
                msg: PbftMessage::Commit(_)
            }
        )
    })
    .expect("commit");
    assert!(proof < send);
    // 2f+1 commits: committed, with a certificate anyone can check offline.
    assert!(
        step(&mut r, from(0, commit(&c, 0, 0, &b)))
            .iter()
            .all(|o| !matches!(o, Output::Commit { .. }))
    );
    let out = step(&mut r, from(3, commit(&c, 3, 0, &b)));
    let cert = out.iter().find_map(|o| match o {
        Output::Commit { block, certificate } if *block == b => Some(certificate.clone()),
        _ => None,
    });
    let cert = cert.expect("committed");
    cert.verify(
        c.chain_id(),
        ConsensusKind::Pbft,
        &c.genesis.validator_set(),
        1,
        &b.hash(),
    )
    .expect("valid certificate");
    assert!(matches!(cert, CommitCertificate::Pbft(ref p) if p.votes.len() == 3));
    assert_eq!(r.status().commit_height, 1);
}

#[test]
fn s4_2_negative_space_table() {
    let c = chain();
    let b = block(1, 1);
    let mut bad_sig = pre_prepare(&c, 0, &b);
    if let PbftMessage::PrePrepare { vote, .. } = &mut bad_sig {
        vote.signature.0[0] ^= 1;
    }
    let mut wrong_digest_block = pre_prepare(&c, 0, &b);
    if let PbftMessage::PrePrepare { block, .. } = &mut wrong_digest_block {
        block.header.timestamp_ms += 1; // no longer hashes to the signed digest
    }
    let not_primary = PbftMessage::PrePrepare {
        vote: sign(&c, 2, PRE_PREPARE, &vote(0, &b)),
        block: b.clone(),
    };
    let future_view = pre_prepare(&c, 2, &b);
    let beyond_window = pre_prepare(&c, 0, &block(5, 1));
    let mut bad_commit = commit(&c, 2, 0, &b);
    if let PbftMessage::Commit(s) = &mut bad_commit {
        s.signature.0[9] ^= 1;
    }
    let committed = pre_prepare(&c, 0, &block(1, 1));
    let odd_checkpoint = PbftMessage::Checkpoint(sign(
        &c,
        2,
        CHECKPOINT,
        &Checkpoint {
            seq: Seq(3),
            digest: b.hash(),
        },
    ));
    let relayed_checkpoint = PbftMessage::Checkpoint(sign(
        &c,
        2,
        CHECKPOINT,
        &Checkpoint {
            seq: Seq(2),
            digest: b.hash(),
        },
    ));
    let empty_vc = |author: u32, new_view: u64| {
        sign(
            &c,
            author,
            VIEW_CHANGE,
            &ViewChange {
                new_view: View(new_view),
                checkpoint: None,
                prepared: vec![],
            },
        )
    };
    let mut forged_vc = empty_vc(2, 1);
    forged_vc.signature.0[3] ^= 1;
    let nv_from_backup = PbftMessage::NewView(Box::new(sign(
        &c,
        2,
        NEW_VIEW,
        &NewView {
            view: View(1),
            view_changes: vec![],
            pre_prepares: vec![],
        },
    )));
    // Relayed by replica 3: a NEW-VIEW proves itself, so anyone may pass it on.
    let nv_without_quorum = PbftMessage::NewView(Box::new(sign(
        &c,
        2,
        NEW_VIEW,
        &NewView {
            view: View(2),
            view_changes: vec![empty_vc(2, 2)],
            pre_prepares: vec![],
        },
    )));
    // (desc, sender, message, the receiver's height, the reason)
    let cases: Vec<(&str, u32, PbftMessage, Height, Refusal)> = vec![
        (
            "pre-prepare with a bad signature",
            0,
            bad_sig,
            0,
            Refusal::BadSignature,
        ),
        (
            "pre-prepare whose block does not hash to its digest",
            0,
            wrong_digest_block,
            0,
            Refusal::WrongDigest,
        ),
        (
            "pre-prepare from a backup",
            2,
            not_primary,
            0,
            Refusal::NotPrimary,
        ),
        (
            "pre-prepare for a view not entered",
            2,
            future_view,
            0,
            Refusal::NotInView,
        ),
        (
            "pre-prepare beyond the high watermark",
            0,
            beyond_window,
            0,
            Refusal::OutsideWindow,
        ),
        (
            "pre-prepare for a height already committed",
            0,
            committed,
            1,
            Refusal::AlreadyCommitted,
        ),
        (
            "prepare from the primary",
            0,
            prepare(&c, 0, 0, &b),
            0,
            Refusal::NotPrimary,
        ),
        (
            "prepare relayed by another sender",
            3,
            prepare(&c, 2, 0, &b),
            0,
            Refusal::WrongAuthor,
        ),
        (
            "commit with a bad signature",
            2,
            bad_commit,
            0,
            Refusal::BadSignature,
        ),
        (
            "message from a non-validator",
            9,
            prepare(&c, 2, 0, &b),
            0,
            Refusal::NotAValidator,
        ),
        (
            "message from itself",
            1,
            prepare(&c, 2, 0, &b),
            0,
            Refusal::NotAValidator,
        ),
        (
            "checkpoint off the interval",
            2,
            odd_checkpoint,
            0,
            Refusal::NotACheckpoint,
        ),
        (
            "checkpoint relayed by another sender",
            3,
            relayed_checkpoint,
            0,
            Refusal::WrongAuthor,
        ),
        (
            "view change with a bad signature",
            2,
            PbftMessage::ViewChange(Box::new(forged_vc)),
            0,
            Refusal::InvalidProof,
        ),
        (
            "view change for the view it is in",
            2,
            PbftMessage::ViewChange(Box::new(empty_vc(2, 0))),
            0,
            Refusal::StaleRound,
        ),
        (
            "new view signed by a backup",
            2,
            nv_from_backup,
            0,
            Refusal::NotPrimary,
        ),
        (
            "new view without a quorum of view changes",
            3,
            nv_without_quorum,
            0,
            Refusal::InvalidProof,
        ),
    ];
    for (desc, sender, msg, height, reason) in cases {
        let mut r = replica(&c, 1, height);
        let out = step(&mut r, from(sender, msg));
        assert!(out.is_empty(), "§4.2 {desc}: {out:?}");
        refused_once(&r, reason, desc);
    }
    // Prepares and commits for a height already committed here are still taken: after a
    // view change the block is proposed again, and replicas behind need these votes.
    let mut r = replica(&c, 1, 1);
    step(&mut r, from(2, prepare(&c, 2, 0, &b)));
    step(&mut r, from(2, commit(&c, 2, 0, &b)));
    assert_eq!(r.status().refused.total(), 0, "{:?}", r.status().refused);
    // Neither a proposal nor a validation answer that nobody asked for is acted on.
    let mut r = replica(&c, 1, 0);
    step(
        &mut r,
        Input::Propose {
            block: Box::new(b.clone()),
        },
    );
    let mut p = replica(&c, 0, 0);
    step(
        &mut p,
        Input::Propose {
            block: Box::new(b.clone()),
        },
    );
    refused_once(&p, Refusal::Unrequested, "a proposal nobody asked for");
    let mut v = replica(&c, 1, 0);
    step(
        &mut v,
        Input::Validated {
            block_hash: b.hash(),
            valid: true,
        },
    );
    refused_once(&v, Refusal::Unrequested, "a validation nobody asked for");
    // Duplicates and equivocation: the first pre-prepare stands.
    let (mut r, b) = validated_replica(&c);
    assert!(
        step(&mut r, from(0, pre_prepare(&c, 0, &b))).is_empty(),
        "duplicate"
    );
    let other = block(1, 2);
    assert!(
        step(&mut r, from(0, pre_prepare(&c, 0, &other))).is_empty(),
        "equivocation"
    );
    let refused = r.status().refused;
    assert_eq!(
        (
            refused.of(Refusal::Duplicate),
            refused.of(Refusal::Conflicting),
            refused.total()
        ),
        (1, 1, 2)
    );
    let out = step(
        &mut r,
        Input::Validated {
            block_hash: b.hash(),
            valid: true,
        },
    );
    assert!(
        broadcasts(&out)
            .iter()
            .any(|m| matches!(m, PbftMessage::Prepare(p) if p.body.digest == b.hash()))
    );
    // A prepare for a wrong digest does not count toward the quorum.
    let wrong = block(1, 3);
    let out = step(&mut r, from(2, prepare(&c, 2, 0, &wrong)));
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Persist {
            op: PbftPersist::Prepared(_)
        }
    )));
    // A block that does not validate is never prepared, and the replica asks for a new view.
    let mut r = replica(&c, 1, 0);
    step(&mut r, from(0, pre_prepare(&c, 0, &b)));
    let out = step(
        &mut r,
        Input::Validated {
            block_hash: b.hash(),
            valid: false,
        },
    );
    assert!(
        broadcasts(&out)
            .iter()
            .any(|m| matches!(m, PbftMessage::ViewChange(vc) if vc.body.new_view == View(1)))
    );
    assert!(
        !broadcasts(&out)
            .iter()
            .any(|m| matches!(m, PbftMessage::Prepare(_)))
    );
}

/// A replica with two blocks in flight.
fn pipelined(c: &TestChain, me: u32) -> Pbft {
    let mut cfg = cfg(c, me);
    cfg.blocks_in_flight = 2;
    Pbft::restore(
        cfg,
        c.validators[me as usize].clone(),
        &PbftDurable::default(),
        0,
    )
}

fn commits_sent(out: &Out) -> Vec<u64> {
    broadcasts(out)
        .into_iter()
        .filter_map(|m| match m {
            PbftMessage::Commit(c) => Some(c.body.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pipelining_primary_proposes_the_next_block_on_the_one_in_flight() {
    let c = chain();
    let mut p = pipelined(&c, 0);
    step(&mut p, Input::Tick { pending_work: true });
    let one = block(1, 1);
    let out = step(
        &mut p,
        Input::Propose {
            block: Box::new(one.clone()),
        },
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::RequestProposal { height: 2, .. })),
        "block 2 is asked for while block 1 is in flight"
    );
    let out = step(
        &mut p,
        Input::Propose {
            block: Box::new(block(2, 2)),
        },
    );
    assert!(broadcasts(&out).is_empty(), "block 2 must extend block 1");
    refused_once(&p, Refusal::Unrequested, "a block on another parent");
    let out = step(&mut p, Input::Tick { pending_work: true });
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::RequestProposal { height: 2, .. })),
        "the refused request is asked again at the next tick"
    );
    let mut two = block(2, 2);
    two.header.prev_hash = one.hash();
    let out = step(
        &mut p,
        Input::Propose {
            block: Box::new(two),
        },
    );
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::RequestProposal { .. })),
        "two blocks in flight: the third waits"
    );
}

#[test]
fn a_backup_validates_and_commits_pipelined_blocks_in_order() {
    let c = chain();
    let mut r = pipelined(&c, 1);
    let one = block(1, 1);
    let mut two = block(2, 2);
    two.header.prev_hash = one.hash();
    // Block 2's pre-prepare arrives first: it waits for block 1 (no sync, no validation).
    let out = step(&mut r, from(0, pre_prepare(&c, 0, &two)));
    assert!(out.is_empty(), "{out:?}");
    let out = step(&mut r, from(0, pre_prepare(&c, 0, &one)));
    let validates: Vec<Height> = out
        .iter()
        .filter_map(|o| match o {
            Output::Validate { block } => Some(block.header.height),
            _ => None,
        })
        .collect();
    assert_eq!(
        validates,
        vec![1],
        "block 2 is validated on block 1, after it"
    );
    let out = step(
        &mut r,
        Input::Validated {
            block_hash: one.hash(),
            valid: true,
        },
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Validate { block } if block.header.height == 2)),
        "once block 1 is valid here, block 2 is validated on top of it"
    );
    step(
        &mut r,
        Input::Validated {
            block_hash: two.hash(),
            valid: true,
        },
    );
    // Block 2 prepares first: this replica does not sign COMMIT for it before block 1's.
    let mut sent = Vec::new();
    for a in [2, 3] {
        sent.extend(commits_sent(&step(
            &mut r,
            from(a, prepare(&c, a, 0, &two)),
        )));
    }
    assert!(sent.is_empty(), "no COMMIT for 2 before 1's: {sent:?}");
    for a in [2, 3] {
        sent.extend(commits_sent(&step(
            &mut r,
            from(a, prepare(&c, a, 0, &one)),
        )));
    }
    assert_eq!(sent, vec![1, 2], "block 1's COMMIT, then block 2's");
    // Commits for 2 arrive before 1 commits: delivered in height order.
    let mut delivered = Vec::new();
    for (a, b) in [(0, &two), (2, &two), (0, &one), (2, &one)] {
        let out = step(&mut r, from(a, commit(&c, a, 0, b)));
        delivered.extend(out.iter().filter_map(|o| match o {
            Output::Commit { block, .. } => Some(block.header.height),
            _ => None,
        }));
    }
    assert_eq!(delivered, vec![1, 2]);
}
