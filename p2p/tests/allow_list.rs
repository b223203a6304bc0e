//! The allow-list follows the validator set at run time: a key taken off it is disconnected
//! and refused from then on, a key put on it is admitted, without restarting anyone.

use std::sync::atomic::Ordering;

use cairn_crypto::SigningKey;
use cairn_p2p::{Client, Event, NetworkConfig};
use tokio::sync::mpsc;

mod common;

use common::{next, until};

fn config(me: &SigningKey, allowed: &[&SigningKey], bootstrap: Vec<String>) -> NetworkConfig {
    let mut cfg = NetworkConfig::new("allow-test", me.to_seed());
    cfg.allowed = allowed.iter().map(|k| k.public_key()).collect();
    cfg.bootstrap = bootstrap;
    cfg
}

fn start(cfg: NetworkConfig) -> (Client, mpsc::Receiver<Event>) {
    let (client, events, event_loop) = cairn_p2p::start(cfg).expect("network");
    tokio::spawn(event_loop.run());
    (client, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_key_is_disconnected_and_refused_and_an_added_one_admitted() {
    let a = SigningKey::generate();
    let b = SigningKey::generate();
    let c = SigningKey::generate();

    // a starts allowing b only; b and c both know a's address and keep dialling it.
    let (client_a, mut events_a) = start(config(&a, &[&a, &b], Vec::new()));
    let addr_a = next(&mut events_a, "a's address", |ev| match ev {
        Event::Listening { addr } => Some(addr),
        _ => None,
    })
    .await;
    let (_client_b, _events_b) = start(config(&b, &[&a, &b], vec![addr_a.clone()]));
    let (client_c, _events_c) = start(config(&c, &[&a, &c], vec![addr_a]));

    next(&mut events_a, "b connected", |ev| match ev {
        Event::Connected { peer } if peer == b.public_key() => Some(()),
        _ => None,
    })
    .await;
    until("c refused", || {
        client_a.counters().refused.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert!(!client_a.is_connected(&c.public_key()));

    // The set changes: b leaves, c joins.
    assert!(
        client_a
            .set_allowed(vec![a.public_key(), c.public_key()])
            .is_ok()
    );
    next(&mut events_a, "b disconnected", |ev| match ev {
        Event::Disconnected { peer } if peer == b.public_key() => Some(()),
        _ => None,
    })
    .await;
    next(
        &mut events_a,
        "c admitted on its next dial",
        |ev| match ev {
            Event::Connected { peer } if peer == c.public_key() => Some(()),
            _ => None,
        },
    )
    .await;
    client_c
        .send(a.public_key(), b"hello".to_vec())
        .expect("queue");
    let got = next(&mut events_a, "c's message", |ev| match ev {
        Event::Direct { from, bytes } if from == c.public_key() => Some(bytes),
        _ => None,
    })
    .await;
    assert_eq!(got, b"hello");

    // b keeps dialling and keeps being refused.
    let refused = client_a.counters().refused.load(Ordering::Relaxed);
    until("b refused again", || {
        client_a.counters().refused.load(Ordering::Relaxed) > refused
    })
    .await;
    assert!(!client_a.is_connected(&b.public_key()));

    // An invalid key is refused before anything changes.
    let bad = (0..=255u8)
        .map(|i| cairn_crypto::PublicKey([i; 32]))
        .find(|k| !k.is_valid_point())
        .expect("some byte pattern is not a curve point");
    assert!(client_a.set_allowed(vec![bad]).is_err());
    assert!(client_a.is_connected(&c.public_key()));
}
