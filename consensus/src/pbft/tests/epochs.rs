//! An instance for a later validator set: it orders only the heights above its base, and a
//! message signed for another set's instance does not verify in it, even from the same key.

use super::*;

const BASE: u64 = 4;

fn later_cfg(c: &TestChain, me: u32) -> PbftConfig {
    PbftConfig {
        base: Seq(BASE),
        ..cfg(c, me)
    }
}

fn later_replica(c: &TestChain, me: u32) -> Pbft {
    Pbft::restore(
        later_cfg(c, me),
        c.validators[me as usize].clone(),
        &PbftDurable::default(),
        BASE,
    )
}

fn empty_view_change() -> ViewChange {
    ViewChange {
        new_view: View(1),
        checkpoint: None,
        prepared: vec![],
    }
}

#[test]
fn the_context_names_the_base_after_the_genesis_set() {
    let c = chain();
    assert_eq!(cfg(&c, 0).context(), c.chain_id());
    assert_eq!(
        later_cfg(&c, 0).context(),
        format!("{}#{BASE}", c.chain_id())
    );
}

#[test]
fn a_view_change_signed_for_the_genesis_instance_is_refused_by_a_later_one() {
    let c = chain();
    let old = sign_in(&c, c.chain_id(), 2, VIEW_CHANGE, &empty_view_change());
    let v = c.genesis.validator_set();
    let ctx = later_cfg(&c, 1).context();
    assert!(view_change_ok(&old, c.chain_id(), &v, 3, Seq(0)));
    assert!(
        !view_change_ok(&old, &ctx, &v, 3, Seq(BASE)),
        "same key, same body, another set's context"
    );

    let mut r = later_replica(&c, 1);
    step(&mut r, from(2, PbftMessage::ViewChange(Box::new(old))));
    refused_once(
        &r,
        Refusal::InvalidProof,
        "a view change from the old instance",
    );

    // The same view change signed in this instance's context counts.
    let mut r = later_replica(&c, 1);
    let fresh = sign_in(&c, &ctx, 2, VIEW_CHANGE, &empty_view_change());
    step(&mut r, from(2, PbftMessage::ViewChange(Box::new(fresh))));
    assert!(
        r.status().refused.iter().all(|(_, n)| n == 0),
        "{:?}",
        r.status().refused
    );
}

#[test]
fn a_prepare_signed_for_the_genesis_instance_is_refused_by_a_later_one() {
    let c = chain();
    let b = block(BASE + 1, 7);
    let mut r = later_replica(&c, 1);
    step(&mut r, from(2, prepare(&c, 2, 0, &b)));
    refused_once(
        &r,
        Refusal::BadSignature,
        "a prepare in the genesis context",
    );
}

#[test]
fn a_later_instance_refuses_prepared_certificates_at_or_below_its_base() {
    let c = chain();
    let ctx = later_cfg(&c, 1).context();
    let v = c.genesis.validator_set();
    // A certificate for height BASE (the old set's last block), signed in the new context.
    let b = block(BASE, 3);
    let pp = sign_in(&c, &ctx, 0, PRE_PREPARE, &vote(0, &b));
    let prepares = (1..3)
        .map(|a| sign_in(&c, &ctx, a, PREPARE, &vote(0, &b)))
        .collect();
    let vc = ViewChange {
        new_view: View(1),
        checkpoint: None,
        prepared: vec![PreparedProof {
            pre_prepare: pp,
            block: std::sync::Arc::new(b.clone()),
            prepares,
        }],
    };
    let signed = sign_in(&c, &ctx, 2, VIEW_CHANGE, &vc);
    assert!(view_change_ok(&signed, &ctx, &v, 3, Seq(BASE - 1)));
    assert!(
        !view_change_ok(&signed, &ctx, &v, 3, Seq(BASE)),
        "the base is below every sequence number this instance orders"
    );
}
