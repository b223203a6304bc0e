//! Checkpoints, watermarks and garbage collection (§4.3), and catching up to a stable checkpoint.

use super::*;

#[test]
fn s4_3_checkpoints_watermarks_and_garbage_collection() {
    let c = chain();
    // A replica at height 2 (synced) sees checkpoints for seq 2 from f+1 others: it co-signs;
    // with 2f+1 the checkpoint is stable, persisted, and the window moves.
    let mut r = replica(&c, 1, 2);
    let cp = Checkpoint {
        seq: Seq(2),
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
            .any(|m| matches!(m, PbftMessage::Checkpoint(s) if s.author == NodeId(1)))
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
    assert_eq!(r.low(), Seq(2));
    assert!(
        r.in_window(Seq(6)) && !r.in_window(Seq(7)) && !r.in_window(Seq(2)),
        "window (2, 2 + 2K]"
    );
    // Checkpoints off the interval, or badly signed, are dropped.
    let odd = Checkpoint {
        seq: Seq(3),
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
            seq: Seq(4),
            digest: cp.digest,
        },
    );
    forged.signature.0[1] ^= 1;
    step(&mut r, from(3, PbftMessage::Checkpoint(forged)));
    let refused = r.status().refused;
    assert_eq!(refused.of(Refusal::NotACheckpoint), 1);
    assert_eq!(refused.of(Refusal::BadSignature), 1);
    // A replica behind fetches the blocks once f+1 others signed checkpoints above its height
    // (one honest replica holds them; block sync checks every certificate), and 2f+1 make the
    // checkpoint stable.
    let mut behind = replica(&c, 3, 0);
    let outs: Vec<Out> = [0u32, 1, 2]
        .iter()
        .map(|&a| {
            step(
                &mut behind,
                from(a, PbftMessage::Checkpoint(sign(&c, a, CHECKPOINT, &cp))),
            )
        })
        .collect();
    let syncs = |out: &Out| {
        out.iter()
            .any(|o| matches!(o, Output::SyncTo { height: 2, .. }))
    };
    assert!(!syncs(&outs[0]), "one vote could be Byzantine: {outs:?}");
    assert!(syncs(&outs[1]), "f+1 votes: {outs:?}");
    assert_eq!(behind.low(), Seq(2), "2f+1 matching votes: stable");
    // Durable state prunes prepared certificates at the stable checkpoint.
    let mut d = PbftDurable::default();
    crate::DurableState::apply(&mut d, &PbftPersist::Stable(stable));
    assert!(d.prepared.is_empty() && d.stable.is_some());
}
