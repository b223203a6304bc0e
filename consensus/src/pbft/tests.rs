//! Step tests, named after the sections of Castro & Liskov's PBFT paper they check.

use cairn_crypto::{Domain, Hash, codec};
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    Block, BlockHash, BlockHeader, CommitCertificate, ConsensusKind, PbftCommitStatement,
};

use super::*;

fn chain() -> TestChain {
    TestChain::new(ConsensusKind::Pbft, 4, 1, 1)
}

fn cfg(c: &TestChain, me: u32) -> PbftConfig {
    PbftConfig {
        chain_id: c.genesis.chain_id.clone(),
        validators: c.genesis.validator_set(),
        me: NodeId(me),
        checkpoint_interval: 2,
        view_change_ticks: 10,
        retransmit_ticks: 1000,
        planted_bug_small_quorum: false,
        planted_bug_unbounded_checkpoints: false,
    }
}

fn replica(c: &TestChain, me: u32, height: Height) -> Pbft {
    Pbft::restore(
        cfg(c, me),
        c.validators[me as usize].clone(),
        &PbftDurable::default(),
        height,
    )
}

fn step(r: &mut Pbft, input: Input<PbftMessage>) -> Out {
    let mut out = Vec::new();
    r.step(input, &mut out);
    out
}

fn from(n: u32, msg: PbftMessage) -> Input<PbftMessage> {
    Input::Message {
        from: NodeId(n),
        msg,
    }
}

fn sign<T: serde::Serialize + Clone>(
    c: &TestChain,
    author: u32,
    domain: Domain,
    body: &T,
) -> Signed<T> {
    Signed {
        author,
        body: body.clone(),
        signature: c.validators[author as usize].sign(domain, c.chain_id(), &codec::encode(body)),
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

fn vote(view: u64, b: &Block) -> Vote {
    Vote {
        view,
        seq: b.header.height,
        digest: b.hash(),
    }
}

fn pre_prepare(c: &TestChain, view: u64, b: &Block) -> PbftMessage {
    let author = primary(view, 4);
    PbftMessage::PrePrepare {
        vote: sign(c, author, PRE_PREPARE, &vote(view, b)),
        block: b.clone(),
    }
}

fn prepare(c: &TestChain, author: u32, view: u64, b: &Block) -> PbftMessage {
    PbftMessage::Prepare(sign(c, author, PREPARE, &vote(view, b)))
}

fn commit(c: &TestChain, author: u32, view: u64, b: &Block) -> PbftMessage {
    let body = PbftCommitStatement {
        view,
        seq: b.header.height,
        block_hash: b.hash(),
    };
    PbftMessage::Commit(sign(c, author, cairn_ledger::domains::PBFT_COMMIT, &body))
}

fn broadcasts(out: &Out) -> Vec<&PbftMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast { msg } => Some(msg),
            _ => None,
        })
        .collect()
}

fn first(out: &Out, pred: impl Fn(&Output<PbftMessage, PbftPersist>) -> bool) -> Option<usize> {
    out.iter().position(pred)
}

/// Replica 1 with block 1 pre-prepared by primary 0 and validated.
/// Exactly one refusal so far, for `reason`.
fn refused_once(r: &Pbft, reason: Refusal, desc: &str) {
    let refused = r.status().refused;
    let all: Vec<_> = refused.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(all, vec![(reason, 1)], "{desc}");
}

fn validated_replica(c: &TestChain) -> (Pbft, Block) {
    let mut r = replica(c, 1, 0);
    let b = block(1, 1);
    let out = step(&mut r, from(0, pre_prepare(c, 0, &b)));
    assert!(matches!(out[..], [Output::Validate { .. }]), "{out:?}");
    (r, b)
}

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
    let out = step(&mut p, Input::Propose { block: b.clone() });
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
            seq: 3,
            digest: b.hash(),
        },
    ));
    let relayed_checkpoint = PbftMessage::Checkpoint(sign(
        &c,
        2,
        CHECKPOINT,
        &Checkpoint {
            seq: 2,
            digest: b.hash(),
        },
    ));
    let empty_vc = |author: u32, new_view: u64| {
        sign(
            &c,
            author,
            VIEW_CHANGE,
            &ViewChange {
                new_view,
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
            view: 1,
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
            view: 2,
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
    // Neither a proposal nor a validation answer that nobody asked for is acted on.
    let mut r = replica(&c, 1, 0);
    step(&mut r, Input::Propose { block: b.clone() });
    let mut p = replica(&c, 0, 0);
    step(&mut p, Input::Propose { block: b.clone() });
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
            .any(|m| matches!(m, PbftMessage::ViewChange(vc) if vc.body.new_view == 1))
    );
    assert!(
        !broadcasts(&out)
            .iter()
            .any(|m| matches!(m, PbftMessage::Prepare(_)))
    );
}

#[test]
fn s4_3_checkpoints_watermarks_and_garbage_collection() {
    let c = chain();
    // A replica at height 2 (synced) sees checkpoints for seq 2 from f+1 others: it co-signs;
    // with 2f+1 the checkpoint is stable, persisted, and the window moves.
    let mut r = replica(&c, 1, 2);
    let cp = Checkpoint {
        seq: 2,
        digest: block(2, 1).hash(),
    };
    assert!(
        step(
            &mut r,
            from(0, PbftMessage::Checkpoint(sign(&c, 0, CHECKPOINT, &cp)))
        )
        .is_empty()
    );
    let out = step(
        &mut r,
        from(2, PbftMessage::Checkpoint(sign(&c, 2, CHECKPOINT, &cp))),
    );
    assert!(
        broadcasts(&out)
            .iter()
            .any(|m| matches!(m, PbftMessage::Checkpoint(s) if s.author == 1))
    );
    let stable = out.iter().find_map(|o| match o {
        Output::Persist {
            op: PbftPersist::Stable(p),
        } => Some(p.clone()),
        _ => None,
    });
    let stable = stable.expect("stable checkpoint persisted");
    assert!(checkpoint_proof_ok(
        &stable,
        c.chain_id(),
        &c.genesis.validator_set(),
        3
    ));
    assert_eq!(r.low(), 2);
    assert!(
        r.in_window(6) && !r.in_window(7) && !r.in_window(2),
        "window (2, 2 + 2K]"
    );
    // Checkpoints off the interval, or badly signed, are dropped.
    let odd = Checkpoint {
        seq: 3,
        digest: cp.digest,
    };
    step(
        &mut r,
        from(3, PbftMessage::Checkpoint(sign(&c, 3, CHECKPOINT, &odd))),
    );
    let mut forged = sign(
        &c,
        3,
        CHECKPOINT,
        &Checkpoint {
            seq: 4,
            digest: cp.digest,
        },
    );
    forged.signature.0[1] ^= 1;
    step(&mut r, from(3, PbftMessage::Checkpoint(forged)));
    let refused = r.status().refused;
    assert_eq!(refused.of(Refusal::NotACheckpoint), 1);
    assert_eq!(refused.of(Refusal::BadSignature), 1);
    // A replica behind a stable checkpoint syncs to it.
    let mut behind = replica(&c, 3, 0);
    let mut out = Vec::new();
    for a in [0u32, 1, 2] {
        out = step(
            &mut behind,
            from(a, PbftMessage::Checkpoint(sign(&c, a, CHECKPOINT, &cp))),
        );
    }
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::SyncTo { height: 2, .. })),
        "{out:?}"
    );
    // Durable state prunes prepared certificates at the stable checkpoint.
    let mut d = PbftDurable::default();
    crate::DurableState::apply(&mut d, &PbftPersist::Stable(stable));
    assert!(d.prepared.is_empty() && d.stable.is_some());
}

#[test]
fn s4_4_view_change_and_new_view() {
    let c = chain();
    let v = c.genesis.validator_set();
    // Replica 1 prepared block 1 in view 0, then its request timer fires.
    let (mut r1, b) = validated_replica(&c);
    step(
        &mut r1,
        Input::Validated {
            block_hash: b.hash(),
            valid: true,
        },
    );
    step(&mut r1, from(2, prepare(&c, 2, 0, &b)));
    let mut out = Vec::new();
    for _ in 0..cfg(&c, 1).view_change_ticks {
        out.extend(step(&mut r1, Input::Tick { pending_work: true }));
    }
    let persist = first(
        &out,
        |o| matches!(o, Output::Persist { op: PbftPersist::Safety(d) } if d.view == 1),
    );
    let vc = out.iter().find_map(|o| match o {
        Output::Broadcast {
            msg: PbftMessage::ViewChange(vc),
        } => Some((**vc).clone()),
        _ => None,
    });
    let vc1 = vc.expect("view change sent");
    let send = first(&out, |o| {
        matches!(
            o,
            Output::Broadcast {
                msg: PbftMessage::ViewChange(_)
            }
        )
    })
    .expect("sent");
    assert!(
        persist.expect("view persisted") < send,
        "the new view is durable before the view change leaves"
    );
    assert_eq!(vc1.body.new_view, 1);
    assert_eq!(
        vc1.body.prepared.len(),
        1,
        "carries its prepared certificate"
    );
    assert!(view_change_ok(&vc1, c.chain_id(), &v, 3));
    assert_eq!(
        (r1.status().round, r1.status().leader),
        (1, None),
        "not active until NEW-VIEW"
    );

    // A forged prepared certificate (one prepare short) makes a view change invalid.
    let mut forged = vc1.body.clone();
    forged.prepared[0].prepares.truncate(1);
    assert!(!view_change_ok(
        &sign(&c, 1, VIEW_CHANGE, &forged),
        c.chain_id(),
        &v,
        3
    ));

    // Validator 1 is the primary of view 1. With view changes from 2 and 3 (no prepared
    // certificates) and its own, it re-proposes block 1, which a quorum-member prepared.
    let empty = |a: u32| {
        sign(
            &c,
            a,
            VIEW_CHANGE,
            &ViewChange {
                new_view: 1,
                checkpoint: None,
                prepared: vec![],
            },
        )
    };
    step(
        &mut r1,
        from(2, PbftMessage::ViewChange(Box::new(empty(2)))),
    );
    let out = step(
        &mut r1,
        from(3, PbftMessage::ViewChange(Box::new(empty(3)))),
    );
    let nv = out.iter().find_map(|o| match o {
        Output::Broadcast {
            msg: PbftMessage::NewView(nv),
        } => Some((**nv).clone()),
        _ => None,
    });
    let nv = nv.expect("new primary sends NEW-VIEW");
    assert_eq!(nv.body.pre_prepares.len(), 1);
    assert_eq!(
        nv.body.pre_prepares[0].0.body,
        Vote {
            view: 1,
            seq: 1,
            digest: b.hash()
        }
    );
    assert_eq!(
        r1.status().leader,
        Some(NodeId(1)),
        "the new primary is active"
    );

    // Replica 2 checks the NEW-VIEW before entering view 1; a tampered one is refused.
    let mut tampered = nv.body.clone();
    tampered.pre_prepares.clear();
    let cases: Vec<(&str, u32, Signed<NewView>)> = vec![
        (
            "re-proposals differ from what the view changes imply",
            1,
            sign(&c, 1, NEW_VIEW, &tampered),
        ),
        (
            "signed by a replica that is not view 1's primary",
            3,
            sign(&c, 3, NEW_VIEW, &nv.body),
        ),
        (
            "too few view changes",
            1,
            sign(
                &c,
                1,
                NEW_VIEW,
                &NewView {
                    view_changes: nv.body.view_changes[..2].to_vec(),
                    ..nv.body.clone()
                },
            ),
        ),
    ];
    for (desc, sender, msg) in cases {
        let mut r2 = replica(&c, 2, 0);
        let out = step(&mut r2, from(sender, PbftMessage::NewView(Box::new(msg))));
        assert!(out.is_empty(), "§4.4 {desc}: {out:?}");
        assert_eq!(r2.status().round, 0, "§4.4 {desc}");
    }
    let mut r2 = replica(&c, 2, 0);
    let out = step(&mut r2, from(1, PbftMessage::NewView(Box::new(nv))));
    assert_eq!(
        (r2.status().round, r2.status().leader),
        (1, Some(NodeId(1)))
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Validate { block } if *block == b)),
        "validates the re-proposal"
    );

    // f+1 view changes for a higher view pull a replica along (§4.5.2).
    let mut r3 = replica(&c, 3, 0);
    let vc2 = |a: u32| {
        sign(
            &c,
            a,
            VIEW_CHANGE,
            &ViewChange {
                new_view: 2,
                checkpoint: None,
                prepared: vec![],
            },
        )
    };
    assert!(
        broadcasts(&step(
            &mut r3,
            from(0, PbftMessage::ViewChange(Box::new(vc2(0))))
        ))
        .is_empty()
    );
    let out = step(&mut r3, from(1, PbftMessage::ViewChange(Box::new(vc2(1)))));
    assert!(
        broadcasts(&out)
            .iter()
            .any(|m| matches!(m, PbftMessage::ViewChange(vc) if vc.body.new_view == 2))
    );
    // Stale view changes are refused.
    let before = r3.status().refused;
    let stale = sign(
        &c,
        0,
        VIEW_CHANGE,
        &ViewChange {
            new_view: 1,
            checkpoint: None,
            prepared: vec![],
        },
    );
    step(&mut r3, from(0, PbftMessage::ViewChange(Box::new(stale))));
    let grew: Vec<_> = r3.status().refused.since(&before).collect();
    assert_eq!(grew, vec![(Refusal::StaleRound, 1)]);
}

#[test]
fn s4_4_timeouts_back_off_exponentially() {
    let c = chain();
    let mut r = replica(&c, 1, 0);
    let base = cfg(&c, 1).view_change_ticks;
    assert_eq!(r.timeout(), base);
    r.attempts = 3;
    assert_eq!(r.timeout(), base << 3);
    r.attempts = 40;
    assert_eq!(r.timeout(), base << 6, "capped");
}

#[test]
fn s4_4_an_idle_backup_keeps_its_timer_still() {
    let c = chain();
    let ticks = cfg(&c, 1).view_change_ticks;
    let view_change = |out: &Out| {
        broadcasts(out)
            .iter()
            .any(|m| matches!(m, PbftMessage::ViewChange(_)))
    };
    // Nothing pending, nothing in flight: the primary's silence is not a fault.
    let idle_tick = Input::Tick {
        pending_work: false,
    };
    let busy_tick = Input::Tick { pending_work: true };
    let mut idle = replica(&c, 1, 0);
    for _ in 0..ticks * 10 {
        assert!(!view_change(&step(&mut idle, idle_tick.clone())));
    }
    // A request waits: the timer runs and the backup asks for a new view.
    let fired = (0..ticks + 1).any(|_| view_change(&step(&mut idle, busy_tick.clone())));
    assert!(fired, "no view change with pending work");
    // A pre-prepare in flight keeps the timer running even with nothing pending here.
    let (mut r, _) = validated_replica(&c);
    let fired = (0..ticks + 1).any(|_| view_change(&step(&mut r, idle_tick.clone())));
    assert!(fired, "no view change with a slot in flight");
}
