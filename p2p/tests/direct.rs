//! Direct links between two real swarms on loopback: order, reconnection, the size limit.

use std::sync::atomic::Ordering;

use cairn_crypto::SigningKey;
use cairn_p2p::{Client, Event, NetworkConfig};
use tokio::sync::mpsc;

mod common;

use common::{next, until};

fn config(me: &SigningKey, allowed: &[&SigningKey]) -> NetworkConfig {
    let mut cfg = NetworkConfig::new("direct-test", me.to_seed());
    cfg.allowed = allowed.iter().map(|k| k.public_key()).collect();
    cfg.max_direct_bytes = 1 << 20;
    cfg
}

/// Sends `count` numbered messages from `from` to `to` and checks they all arrive, in order.
async fn exchange(
    from: &Client,
    to: &SigningKey,
    sender: &SigningKey,
    events: &mut mpsc::Receiver<Event>,
    first: u32,
    count: u32,
) {
    for i in first..first + count {
        from.send(to.public_key(), i.to_le_bytes().to_vec())
            .expect("queue");
    }
    for i in first..first + count {
        let got = next(events, "a direct message", |ev| match ev {
            Event::Direct { from, bytes } if from == sender.public_key() => Some(bytes),
            _ => None,
        })
        .await;
        assert_eq!(got, i.to_le_bytes(), "message {i} out of order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_arrive_in_order_across_a_reconnection_and_oversize_is_refused() {
    let a = SigningKey::generate();
    let b = SigningKey::generate();
    // Allowed, but never started.
    let c = SigningKey::generate();

    let (client_a, mut events_a, loop_a) = cairn_p2p::start(config(&a, &[&a, &b, &c])).expect("a");
    let task_a = tokio::spawn(loop_a.run());
    let addr_a = next(&mut events_a, "a's address", |ev| match ev {
        Event::Listening { addr } => Some(addr),
        _ => None,
    })
    .await;

    let mut cfg_b = config(&b, &[&a, &b, &c]);
    cfg_b.bootstrap = vec![addr_a];
    // b may send more than a accepts.
    cfg_b.max_direct_bytes = 4 << 20;
    let (client_b, mut events_b, loop_b) = cairn_p2p::start(cfg_b).expect("b");
    let task_b = tokio::spawn(loop_b.run());

    next(&mut events_b, "b connected to a", |ev| match ev {
        Event::Connected { peer } if peer == a.public_key() => Some(()),
        _ => None,
    })
    .await;
    // Up to a link's whole queue at once, both ways.
    exchange(&client_b, &a, &b, &mut events_a, 0, 1000).await;
    exchange(&client_a, &b, &a, &mut events_b, 0, 1000).await;

    // a cuts b off; b's redial brings the link back, on a new stream.
    client_a.report(b.public_key(), "test").expect("report");
    next(&mut events_b, "b disconnected", |ev| match ev {
        Event::Disconnected { peer } if peer == a.public_key() => Some(()),
        _ => None,
    })
    .await;
    // A message to a peer without a connection is dropped and counted.
    let failed = client_b.counters().failed_sends.load(Ordering::Relaxed);
    client_b.send(c.public_key(), vec![1]).expect("queue");
    until("a send to an absent peer counted", || {
        client_b.counters().failed_sends.load(Ordering::Relaxed) > failed
    })
    .await;
    next(&mut events_b, "b reconnected to a", |ev| match ev {
        Event::Connected { peer } if peer == a.public_key() => Some(()),
        _ => None,
    })
    .await;
    exchange(&client_b, &a, &b, &mut events_a, 1000, 500).await;

    // Over a's limit: a disconnects b and counts it, without reading the message.
    let misbehaving = client_a.counters().misbehaving.load(Ordering::Relaxed);
    client_b
        .send(a.public_key(), vec![7; 2 << 20])
        .expect("queue");
    until("the oversized message refused", || {
        client_a.counters().misbehaving.load(Ordering::Relaxed) > misbehaving
    })
    .await;
    next(
        &mut events_b,
        "b disconnected for the oversized message",
        |ev| match ev {
            Event::Disconnected { peer } if peer == a.public_key() => Some(()),
            _ => None,
        },
    )
    .await;

    drop((client_a, client_b));
    for task in [task_a, task_b] {
        tokio::time::timeout(common::WAIT, task)
            .await
            .expect("a loop stops when its clients are gone")
            .expect("the loop ran to its end");
    }
}
