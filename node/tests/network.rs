//! Real `cairn-node` processes forming networks of both engines: transactions submitted to
//! different nodes commit everywhere, nodes agree on head hash and state root, the leader or
//! primary can be SIGKILLed under load without losing acknowledged transactions, and the
//! killed node restarts and catches up by block sync.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use cairn_ledger::ConsensusKind;
use common::Net;

/// Submits one transfer per account to a rotating node; all commit on every node.
async fn submit_to_every_node_and_agree(kind: ConsensusKind, n: usize) {
    let mut net = Net::new(kind, n, 8);
    net.start_all().await;
    net.wait_ready().await;
    let to = net.accounts[0].public_key();
    let mut ids = Vec::new();
    for a in 1..net.accounts.len() {
        let tx = net.transfer(a, 0, to, 10 + a as u64);
        let (code, body) = net.submit(a % n, &tx, false).await;
        assert_eq!(code, 202, "submit to node {}: {body}", a % n);
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    // All commit, and every node can show each with an inclusion proof.
    for id in &ids {
        for i in 0..n {
            net.wait_for(
                &format!("tx {id} committed on node {i}"),
                Duration::from_secs(30),
                || async {
                    net.try_get(i, &format!("/api/v1/txs/{id}"))
                        .await
                        .is_some_and(|v| v["status"] == "committed" && v["proof"].is_object())
                },
            )
            .await;
        }
    }
    let h = net.height(0).await.expect("height");
    net.wait_agree(h, Duration::from_secs(30)).await;

    if kind == ConsensusKind::Pbft {
        // Idle: no empty blocks and no view changes, over twice the view-change timeout (an
        // absence can only be watched for a while).
        let (_, before) = net.get(0, "/api/v1/status").await;
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        for i in 0..n {
            let (_, st) = net.get(i, "/api/v1/status").await;
            assert_eq!(
                st["height"], before["height"],
                "node {i} made blocks while idle"
            );
            assert_eq!(
                st["round"], before["round"],
                "node {i} changed views while idle"
            );
        }
    }
    let (_, a0) = net.get(1, &format!("/api/v1/accounts/{to}")).await;
    let expected: u64 = 1_000_000 + (2..=8).map(|a: u64| 10 + a - 1).sum::<u64>();
    assert_eq!(a0["balance"].as_u64(), Some(expected), "{a0}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbft_four_nodes_commit_and_agree() {
    submit_to_every_node_and_agree(ConsensusKind::Pbft, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_three_nodes_commit_and_agree() {
    submit_to_every_node_and_agree(ConsensusKind::Raft, 3).await;
}

/// Kills the leader (Raft) or primary (PBFT) with SIGKILL while transactions flow; commits go
/// on, every transaction acknowledged as committed (or admitted by a surviving node) commits
/// exactly once, and the killed node restarts and catches up by block sync.
async fn kill_leader_under_load(kind: ConsensusKind, n: usize) {
    let mut net = Net::new(kind, n, 6);
    net.start_all().await;
    net.wait_for("a leader", Duration::from_secs(30), || async {
        net.try_get(0, "/api/v1/status")
            .await
            .is_some_and(|s| s["leader"].is_string())
    })
    .await;
    let (_, st) = net.get(0, "/api/v1/status").await;
    let leader_key = st["leader"].as_str().expect("leader").to_string();
    let leader = net
        .nodes
        .iter()
        .position(|nd| nd.key.public_key().to_string() == leader_key)
        .expect("leader is a validator");
    let survivors: Vec<usize> = (0..n).filter(|i| *i != leader).collect();

    let to = net.accounts[0].public_key();
    let mut nonces = vec![0u64; net.accounts.len()];
    let mut acknowledged = HashSet::new();
    // Load, then the kill in the middle of it, then more load.
    for round in 0..30 {
        if round == 10 {
            net.kill(leader);
        }
        for a in 1..net.accounts.len() {
            let tx = net.transfer(a, nonces[a], to, 1);
            let target = survivors[(round + a) % survivors.len()];
            let (code, body) = net.submit(target, &tx, false).await;
            if code == 202 {
                nonces[a] += 1;
                acknowledged.insert(body["id"].as_str().expect("id").to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // One more, waited for: commits go on without the old leader.
    let tx = net.transfer(1, nonces[1], to, 1);
    let (code, body) = net.submit(survivors[0], &tx, true).await;
    assert_eq!(code, 200, "commit after the leader died: {body}");
    acknowledged.insert(body["id"].as_str().expect("id").to_string());
    assert_eq!(body["status"], "committed");

    // While it is down, the others go well past what consensus would replay to it (Raft's
    // log keeps 32 applied entries; PBFT checkpoints every 10): it must use block sync.
    let down_at = net.height(survivors[0]).await.expect("height");
    let mut k = 0;
    while net.height(survivors[0]).await.expect("height") < down_at + 40 {
        let a = 3 + k % 3;
        let tx = net.transfer(a, nonces[a], to, 1);
        let (code, body) = net.submit(survivors[k % survivors.len()], &tx, true).await;
        assert_eq!(code, 200, "{body}");
        nonces[a] += 1;
        acknowledged.insert(body["id"].as_str().expect("id").to_string());
        k += 1;
    }

    // Every acknowledged transaction commits on the survivors.
    for id in &acknowledged {
        net.wait_for(
            &format!("acknowledged tx {id}"),
            Duration::from_secs(60),
            || async {
                net.try_get(survivors[0], &format!("/api/v1/txs/{id}"))
                    .await
                    .is_some_and(|v| v["status"] == "committed")
            },
        )
        .await;
    }
    // The killed node restarts from its own disk and catches up by block sync.
    net.start(leader).await;
    let h = net.height(survivors[0]).await.expect("height");
    net.wait_agree(h, Duration::from_secs(60)).await;
    let log = std::fs::read_to_string(net.nodes[leader].home.join("node.log")).expect("log");
    assert!(
        log.contains("synced"),
        "the restarted node caught up without block sync"
    );
    // ...and takes part again: a new transaction commits and everyone agrees on it.
    let tx = net.transfer(2, nonces[2], to, 1);
    let (code, body) = net.submit(leader, &tx, true).await;
    assert_eq!(code, 200, "commit through the restarted node: {body}");
    let h2 = body["receipt"]["height"].as_u64().expect("height");
    net.wait_agree(h2, Duration::from_secs(60)).await;

    // It falls behind again (paused with SIGSTOP while the others go on) and, resumed,
    // switches back to block sync by itself.
    let synced_before = log_count(&net, leader, "synced");
    net.signal(leader, "STOP");
    let paused_at = net.height(survivors[0]).await.expect("height");
    let mut k = 0;
    while net.height(survivors[0]).await.expect("height") < paused_at + 40 {
        let a = 3 + k % 3;
        let tx = net.transfer(a, nonces[a], to, 1);
        let (code, body) = net.submit(survivors[k % survivors.len()], &tx, true).await;
        assert_eq!(code, 200, "{body}");
        nonces[a] += 1;
        k += 1;
    }
    net.signal(leader, "CONT");
    let h3 = net.height(survivors[0]).await.expect("height");
    net.wait_agree(h3, Duration::from_secs(60)).await;
    assert!(
        log_count(&net, leader, "synced") > synced_before,
        "no block sync after the pause"
    );

    // Exactly once: the receiver's balance counts each acknowledged transfer once.
    let (_, a0) = net.get(leader, &format!("/api/v1/accounts/{to}")).await;
    let transfers: u64 = nonces.iter().sum::<u64>() + 2;
    assert_eq!(a0["balance"].as_u64(), Some(1_000_000 + transfers), "{a0}");
}

fn log_count(net: &Net, i: usize, what: &str) -> usize {
    std::fs::read_to_string(net.nodes[i].home.join("node.log"))
        .unwrap_or_default()
        .matches(what)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbft_survives_primary_sigkill_and_it_catches_up() {
    kill_leader_under_load(ConsensusKind::Pbft, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_survives_leader_sigkill_and_it_catches_up() {
    kill_leader_under_load(ConsensusKind::Raft, 3).await;
}

/// Moving a validator to another address is configuration only: the genesis names validators
/// by key, so its store opens as the same chain, and the others (whose `bootstrap` still
/// lists its old address) take it back when it dials them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_moves_to_another_port_and_keeps_its_store_and_its_vote() {
    let mut net = Net::new(ConsensusKind::Pbft, 4, 3);
    net.start_all().await;
    net.wait_ready().await;
    let to = net.accounts[0].public_key();
    let (code, body) = net.submit(0, &net.transfer(1, 0, to, 5), true).await;
    assert_eq!(code, 200, "{body}");
    let genesis_hash = net.get(3, "/api/v1/status").await.1["genesis_hash"].clone();

    net.stop(3);
    let port = common::free_port();
    net.configure(3, "p2p", &format!("listen = \"/ip4/127.0.0.1/tcp/{port}\""));
    net.nodes[3].p2p_port = port;
    net.start(3).await;
    let (_, st) = net.get(3, "/api/v1/status").await;
    assert_eq!(st["genesis_hash"], genesis_hash, "the same chain");
    assert!(
        net.log(3).contains(&format!("/tcp/{port}/p2p/")),
        "listening on the new port:\n{}",
        net.log_tail(3)
    );

    // With node 0 gone, PBFT's quorum of 3 needs the moved node: a commit proves it votes.
    net.stop(0);
    net.wait_for(
        "node 3 connected to 1 and 2",
        Duration::from_secs(30),
        || async {
            let (_, v) = net.get(1, "/api/v1/validators").await;
            v[3]["connected"] == true && v[3]["address"].is_string()
        },
    )
    .await;
    let (code, body) = net.submit(1, &net.transfer(2, 0, to, 7), true).await;
    assert_eq!(code, 200, "{body}");
    let h = net.height(1).await.expect("height");
    for i in 1..4 {
        net.wait_for(
            &format!("node {i} at {h}"),
            Duration::from_secs(30),
            || async { net.height(i).await.is_some_and(|x| x >= h) },
        )
        .await;
    }
}
