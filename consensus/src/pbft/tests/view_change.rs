//! View changes (§4.4): VIEW-CHANGE and NEW-VIEW, timeouts, the idle timer, and joining
//! the view the others are in.

use super::*;

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
        |o| matches!(o, Output::Persist { op: PbftPersist::Safety(d) } if d.view == View(1)),
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
    assert_eq!(vc1.body.new_view, View(1));
    assert_eq!(
        vc1.body.prepared.len(),
        1,
        "carries its prepared certificate"
    );
    assert!(view_change_ok(&vc1, c.chain_id(), &v, 3, Seq(0)));
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
        3,
        Seq(0)
    ));

    // Validator 1 is the primary of view 1. With view changes from 2 and 3 (no prepared
    // certificates) and its own, it re-proposes block 1, which a quorum-member prepared.
    let empty = |a: u32| {
        sign(
            &c,
            a,
            VIEW_CHANGE,
            &ViewChange {
                new_view: View(1),
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
            view: View(1),
            seq: Seq(1),
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

    // A replica asking for a view this one already installed is sent its NEW-VIEW (once per
    // retransmission period), and the NEW-VIEW, relayed, brings a replica still in view 0
    // into view 1.
    let ask = sign(
        &c,
        3,
        VIEW_CHANGE,
        &ViewChange {
            new_view: View(1),
            checkpoint: None,
            prepared: vec![],
        },
    );
    let out = step(
        &mut r2,
        from(3, PbftMessage::ViewChange(Box::new(ask.clone()))),
    );
    let relayed = out
        .iter()
        .find_map(|o| match o {
            Output::Send {
                to: NodeId(3),
                msg: PbftMessage::NewView(nv),
            } => Some((**nv).clone()),
            _ => None,
        })
        .expect("NEW-VIEW relayed to the replica asking");
    assert_eq!(relayed.body.view, View(1));
    let again = step(&mut r2, from(3, PbftMessage::ViewChange(Box::new(ask))));
    assert!(again.is_empty(), "not twice in one period: {again:?}");
    let mut behind = replica(&c, 3, 0);
    step(
        &mut behind,
        from(2, PbftMessage::NewView(Box::new(relayed))),
    );
    assert_eq!(
        (behind.status().round, behind.status().leader),
        (1, Some(NodeId(1))),
        "joined the view the others are in"
    );

    // f+1 validators voting in a later view show where a quorum is: a replica still in view
    // 0 asks for view 1 (and the NEW-VIEW that comes back lets it join). One is not enough.
    let mut lagging = replica(&c, 3, 0);
    let later = block(1, 9);
    let out = step(&mut lagging, from(2, prepare(&c, 2, 1, &later)));
    assert!(
        broadcasts(&out).is_empty(),
        "one validator could be Byzantine"
    );
    let out = step(&mut lagging, from(0, prepare(&c, 0, 1, &later)));
    assert!(
        broadcasts(&out)
            .iter()
            .any(|m| matches!(m, PbftMessage::ViewChange(vc) if vc.body.new_view == View(1))),
        "{out:?}"
    );

    // f+1 view changes for a higher view pull a replica along (§4.5.2).
    let mut r3 = replica(&c, 3, 0);
    let vc2 = |a: u32| {
        sign(
            &c,
            a,
            VIEW_CHANGE,
            &ViewChange {
                new_view: View(2),
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
            .any(|m| matches!(m, PbftMessage::ViewChange(vc) if vc.body.new_view == View(2)))
    );
    // Stale view changes are refused.
    let before = r3.status().refused;
    let stale = sign(
        &c,
        0,
        VIEW_CHANGE,
        &ViewChange {
            new_view: View(1),
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

/// A prepared certificate for `b` in `view` (decide() trusts certificates it is given: the
/// view changes carrying them are checked before).
fn prepared_cert(c: &TestChain, view: u64, b: &Block) -> PreparedProof {
    PreparedProof {
        pre_prepare: sign(c, primary(View(view), 4).0, PRE_PREPARE, &vote(view, b)),
        block: std::sync::Arc::new(b.clone()),
        prepares: vec![],
    }
}

#[test]
fn a_new_view_re_proposes_up_to_the_first_gap_or_the_first_block_on_another_parent() {
    let c = chain();
    let one = block(1, 1);
    let mut two = block(2, 2);
    two.header.prev_hash = one.hash();
    let mut three = block(3, 3);
    three.header.prev_hash = two.hash();
    // Block 3 of a later view, built on another block 2 (which lost): it cannot be next.
    let mut stray = block(3, 4);
    stray.header.prev_hash = BlockHash(Hash([7; 32]));
    let vc = |a: u32, prepared: Vec<PreparedProof>| {
        sign(
            &c,
            a,
            VIEW_CHANGE,
            &ViewChange {
                new_view: View(2),
                checkpoint: None,
                prepared,
            },
        )
    };
    let seqs = |d: Decision| -> Vec<u64> {
        d.reproposals
            .iter()
            .map(|p| p.pre_prepare.body.seq.0)
            .collect()
    };
    let chained = decide(
        &[
            vc(
                1,
                vec![prepared_cert(&c, 0, &one), prepared_cert(&c, 0, &two)],
            ),
            vc(2, vec![prepared_cert(&c, 0, &three)]),
            vc(3, vec![]),
        ],
        Seq(0),
    );
    assert_eq!(seqs(chained), vec![1, 2, 3]);
    let gap = decide(
        &[
            vc(1, vec![prepared_cert(&c, 0, &one)]),
            vc(2, vec![prepared_cert(&c, 0, &three)]),
            vc(3, vec![]),
        ],
        Seq(0),
    );
    assert_eq!(seqs(gap), vec![1], "nothing above a gap");
    let broken = decide(
        &[
            vc(
                1,
                vec![prepared_cert(&c, 0, &one), prepared_cert(&c, 0, &two)],
            ),
            vc(2, vec![prepared_cert(&c, 1, &stray)]),
            vc(3, vec![]),
        ],
        Seq(0),
    );
    assert_eq!(
        seqs(broken),
        vec![1, 2],
        "the highest-view certificate at 3 is not on block 2: stop there"
    );
}
