//! The network's door: keys outside the genesis set cannot connect or inject anything, and
//! a member that sends garbage is disconnected and counted while the network carries on; a
//! member's well-formed but wrong consensus messages are refused with their reason.

mod common;

use std::time::Duration;

use cairn_consensus::pbft::{CHECKPOINT, Checkpoint, PbftMessage, Signed};
use cairn_crypto::{Hash, SigningKey, codec};
use cairn_ledger::{BlockHash, ConsensusConfig, ConsensusKind};
use cairn_node::wire::{Direct, EngineBody, EngineMessage, TxBatch};
use common::Net;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(net: &Net, i: usize) -> String {
    net.http
        .get(format!("{}/metrics", net.nodes[i].api))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

fn p2p_config(net: &Net, key: &SigningKey) -> cairn_p2p::NetworkConfig {
    let mut cfg = cairn_p2p::NetworkConfig::new(&net.genesis.chain_id, key.to_seed());
    cfg.allowed = net
        .genesis
        .validators
        .iter()
        .map(|v| v.public_key)
        .collect();
    cfg.bootstrap = net.peers.clone();
    cfg.max_direct_bytes = 16 << 20;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_outside_the_genesis_cannot_connect_or_inject() {
    let mut net = Net::new(ConsensusKind::Pbft, 4, 3);
    net.start_all().await;
    net.wait_ready().await;

    // An outsider with the right chain id and addresses, and a valid signed transaction.
    let outsider = SigningKey::generate();
    let (client, events, event_loop) =
        cairn_p2p::start(p2p_config(&net, &outsider)).expect("outsider network");
    let task = tokio::spawn(event_loop.run());
    let tx = net.transfer(1, 0, net.accounts[2].public_key(), 5);
    let tx_id = tx.id();

    // Its dials are refused at the connection layer: every validator counts refusals.
    net.wait_for("refused connections", Duration::from_secs(30), || async {
        for i in 0..4 {
            if metric(&metrics(&net, i).await, "cairn_p2p_refused_connections") < 1.0 {
                return false;
            }
        }
        true
    })
    .await;
    // It tries anyway: gossip and direct messages to every validator.
    for _ in 0..5 {
        let _ = client.publish(
            cairn_p2p::Topic::Txs,
            codec::encode(&TxBatch {
                txs: vec![tx.clone()],
            }),
        );
        for v in &net.genesis.validators {
            let _ = client.send(v.public_key, b"not a consensus message".to_vec());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A legitimate transaction commits meanwhile, so gossip had every chance to spread.
    let legit = net.transfer(0, 0, net.accounts[2].public_key(), 1);
    let (code, body) = net.submit(0, &legit, true).await;
    assert_eq!(code, 200, "{body}");

    // No validator lists the outsider as a peer, none knows its transaction. (The outsider's
    // own side may see a connection for the instant between the Noise handshake, which
    // proves its key, and the validator's refusal.)
    drop(events);
    for i in 0..4 {
        let (_, peers) = net.get(i, "/api/v1/peers").await;
        let peers = peers.as_array().expect("peers");
        assert_eq!(peers.len(), 3, "node {i} peers: {peers:?}");
        assert!(
            peers
                .iter()
                .all(|p| p["public_key"] != outsider.public_key().to_string())
        );
        let (code, _) = net.get(i, &format!("/api/v1/txs/{tx_id}")).await;
        assert_eq!(code, 404, "node {i} knows the outsider's transaction");
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sending_garbage_is_disconnected_and_counted() {
    let mut net = Net::new(ConsensusKind::Pbft, 4, 3);
    for i in 0..3 {
        net.start(i).await;
    }
    net.wait_ready().await;

    // Validator 3's key, driven by hand: allowed in, then misbehaves.
    let key = net.nodes[3].key.clone();
    let (client, mut events, event_loop) =
        cairn_p2p::start(p2p_config(&net, &key)).expect("network");
    let task = tokio::spawn(event_loop.run());
    let target = net.genesis.validators[0].public_key;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(cairn_p2p::Event::Connected { peer })) if peer == target => break,
            Ok(Some(_)) => {}
            other => panic!("no connection to validator 0: {other:?}"),
        }
    }
    // Well-formed consensus messages the engine refuses, each counted under its reason: a
    // checkpoint off the interval, a forged signature, and a flood of far-future checkpoints
    // of which validator 0 keeps only the latest (older ones are beyond its horizon).
    let k = match &net.genesis.consensus {
        ConsensusConfig::Pbft(p) => p.checkpoint_interval,
        ConsensusConfig::Raft(_) => unreachable!("a PBFT network"),
    };
    let checkpoint = |seq: u64| {
        let body = Checkpoint {
            seq: cairn_consensus::Seq(seq),
            digest: BlockHash(Hash::sha256(b"elsewhere")),
        };
        Signed {
            author: cairn_consensus::NodeId(3),
            body,
            signature: key.sign(
                CHECKPOINT,
                net.genesis.chain_id.as_str(),
                &codec::encode(&body),
            ),
        }
    };
    let mut forged = checkpoint(k * 500_000);
    forged.signature.0[5] ^= 1;
    let mut refused = vec![checkpoint(k * 500_000 + 1), forged];
    refused.extend((0..50).map(|i| checkpoint(k * (1_000_000 - i))));
    for c in refused {
        let bytes = codec::encode(&Direct::Engine(EngineMessage {
            epoch: 0,
            body: EngineBody::Pbft(PbftMessage::Checkpoint(c)),
        }));
        client.send(target, bytes).expect("send");
    }
    net.wait_for(
        "refusals counted by reason",
        Duration::from_secs(20),
        || async {
            let m = metrics(&net, 0).await;
            let reason = |r: &str| {
                metric(
                    &m,
                    &format!("cairn_consensus_refused_total{{reason=\"{r}\"}}"),
                )
            };
            reason("not_a_checkpoint") >= 1.0
                && reason("bad_signature") >= 1.0
                && reason("beyond_horizon") >= 1.0
        },
    )
    .await;

    // Undecodable bytes, then an oversized message.
    client
        .send(target, b"\xff\xff garbage".to_vec())
        .expect("send");
    net.wait_for("garbage counted", Duration::from_secs(20), || async {
        let m = metrics(&net, 0).await;
        metric(&m, "cairn_bad_peer_messages_total") >= 1.0
            && metric(&m, "cairn_p2p_misbehaving_peers") >= 1.0
    })
    .await;
    // The redial brings it back (it is still a member): wait for that connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(cairn_p2p::Event::Connected { peer })) if peer == target => break,
            Ok(Some(_)) => {}
            other => panic!("no reconnection to validator 0: {other:?}"),
        }
    }
    client.send(target, vec![0u8; 9 << 20]).expect("send");
    net.wait_for("oversize counted", Duration::from_secs(20), || async {
        metric(&metrics(&net, 0).await, "cairn_p2p_misbehaving_peers") >= 2.0
    })
    .await;
    task.abort();

    // The network never noticed: a transaction still commits on the honest three.
    let tx = net.transfer(1, 0, net.accounts[2].public_key(), 5);
    let (code, body) = net.submit(1, &tx, true).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_on_the_list_connects_syncs_and_relays() {
    let mut net = Net::new(ConsensusKind::Raft, 3, 3);
    let observer = SigningKey::generate();
    for node in &net.nodes {
        let p = node.home.join("config.toml");
        let c = std::fs::read_to_string(&p).expect("config").replace(
            "[p2p]\n",
            &format!("[p2p]\nobservers = [\"{}\"]\n", observer.public_key()),
        );
        std::fs::write(&p, c).expect("config");
    }
    net.start_all().await;
    net.wait_ready().await;
    let (code, v) = net
        .submit(
            0,
            &net.transfer(1, 0, net.accounts[2].public_key(), 5),
            true,
        )
        .await;
    assert_eq!(code, 200, "{v}");

    // The observer: same genesis, its own key, not a validator, listed in its own
    // p2p.observers as on the validators.
    let home = net.dir.path().join("observer");
    let port = common::free_port();
    common::write_home(&home, &observer, &net.genesis, port, "observer", &net.peers);
    let p = home.join("config.toml");
    let c = std::fs::read_to_string(&p).expect("config").replace(
        "[p2p]\n",
        &format!("[p2p]\nobservers = [\"{}\"]\n", observer.public_key()),
    );
    std::fs::write(&p, c).expect("config");
    net.nodes.push(common::Node {
        home,
        key: observer.clone(),
        p2p_port: port,
        child: None,
        api: String::new(),
    });
    net.start(3).await;
    let h = net.height(0).await.expect("height");
    net.wait_agree(h, Duration::from_secs(30)).await;
    let (_, st) = net.get(3, "/api/v1/status").await;
    assert_eq!(st["role"], "observer");
    assert_eq!(st["peers"], 3);

    // A transaction submitted to the observer reaches the validators and commits.
    let tx = net.transfer(1, 1, net.accounts[2].public_key(), 5);
    let (code, v) = net.submit(3, &tx, true).await;
    assert_eq!(code, 200, "{v}");
    let h = v["receipt"]["height"].as_u64().expect("height");
    net.wait_agree(h, Duration::from_secs(30)).await;
}
