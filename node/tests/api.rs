//! The JSON API of a real node: every route, every error path, pagination, inclusion proofs,
//! SSE replay-then-live, and the OpenAPI document checked against what the routes return.

mod common;

use std::time::Duration;

use cairn_crypto::merkle::MerkleProof;
use cairn_crypto::{SigningKey, codec};
use cairn_ledger::{Block, ConsensusKind, Payload, SignedTransaction, Transaction, TxId};
use common::Net;
use futures::StreamExt;
use serde_json::Value;

async fn one_node() -> Net {
    let mut net = Net::new(ConsensusKind::Raft, 1, 4);
    net.start_all().await;
    net.wait_ready().await;
    net
}

fn err_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_error_path() {
    let net = one_node().await;
    let admin = 0;
    let alice = 1;
    let bob = net.accounts[2].public_key();

    // Health, readiness, metrics.
    let (code, v) = net.get(0, "/health").await;
    assert_eq!((code, &v["status"]), (200, &Value::from("ok")));
    let (code, v) = net.get(0, "/ready").await;
    assert_eq!((code, &v["ready"]), (200, &Value::from(true)));

    // Submit: admitted (202), then waited for (200, committed with receipt and proof).
    let t1 = net.transfer(alice, 0, bob, 7);
    let (code, v) = net.submit(0, &t1, false).await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["id"], t1.id().to_string());
    let t2 = net.transfer(alice, 1, bob, 8);
    let (code, v) = net.submit(0, &t2, true).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "committed");
    let h = v["receipt"]["height"].as_u64().expect("height");

    // The inclusion proof proves the transaction against the block header, offline.
    let (code, b) = net.get(0, &format!("/api/v1/blocks/{h}")).await;
    assert_eq!(code, 200, "{b}");
    let block: Block = serde_json::from_value(b["block"].clone()).expect("block");
    let proof: MerkleProof = serde_json::from_value(v["proof"].clone()).expect("proof");
    assert!(block.header.proves_inclusion(&t2.id(), &proof));
    assert!(!block.header.proves_inclusion(&t1.id(), &proof));
    // By hash too, the same block.
    let (code, b2) = net
        .get(
            0,
            &format!("/api/v1/blocks/{}", b["hash"].as_str().expect("hash")),
        )
        .await;
    assert_eq!((code, &b2["height"]), (200, &Value::from(h)));

    // The encoded form is accepted as well.
    let t3 = net.transfer(alice, 2, bob, 9);
    let body = serde_json::json!({"encoded": hex::encode(codec::encode(&t3))});
    let (code, v) = net
        .post(0, "/api/v1/txs?wait=commit", body.to_string().into_bytes())
        .await;
    assert_eq!(code, 200, "{v}");

    // Error paths, each with its status and code, each changing nothing.
    let (code, v) = net.post(0, "/api/v1/txs", b"{not json".to_vec()).await;
    assert_eq!((code, err_code(&v)), (400, "invalid_json"));
    let (code, v) = net.post(0, "/api/v1/txs", br#"{"tx": 1}"#.to_vec()).await;
    assert_eq!((code, err_code(&v)), (400, "invalid_transaction"));
    let (code, v) = net
        .post(0, "/api/v1/txs", br#"{"encoded": "zz"}"#.to_vec())
        .await;
    assert_eq!((code, err_code(&v)), (400, "invalid_transaction"));
    let mut forged = net.transfer(alice, 3, bob, 1_000);
    forged.signature.0[10] ^= 1;
    let (code, v) = net.submit(0, &forged, false).await;
    assert_eq!((code, err_code(&v)), (422, "bad_signature"));
    let (code, v) = net.submit(0, &t2, false).await;
    assert_eq!((code, err_code(&v)), (409, "already_committed"), "{v}");
    let replay = net.transfer(alice, 1, bob, 99);
    let (code, v) = net.submit(0, &replay, false).await;
    assert_eq!((code, err_code(&v)), (409, "stale_nonce"), "{v}");
    // Just over the node's 64 KiB limit (small enough that the client finishes sending before
    // the node answers; larger bodies get the same answer and a closed connection).
    let big = vec![b' '; 70 << 10];
    let (code, v) = net.post(0, "/api/v1/txs", big).await;
    assert_eq!((code, err_code(&v)), (413, "body_too_large"), "{v}");
    let stranger = SigningKey::generate();
    let t = Transaction {
        chain_id: net.genesis.chain_id.clone(),
        sender: stranger.public_key(),
        nonce: 0,
        payload: Payload::Transfer { to: bob, amount: 1 },
    }
    .sign(&stranger);
    let (code, v) = net.submit(0, &t, false).await;
    assert_eq!((code, err_code(&v)), (403, "not_member"), "{v}");
    let user_adds = Transaction {
        chain_id: net.genesis.chain_id.clone(),
        sender: net.accounts[alice].public_key(),
        nonce: 3,
        payload: Payload::AddMember {
            account: stranger.public_key(),
            role: cairn_ledger::Role::User,
        },
    }
    .sign(&net.accounts[alice]);
    let (code, v) = net.submit(0, &user_adds, false).await;
    assert_eq!((code, err_code(&v)), (403, "not_admin"), "{v}");
    let (code, v) = net
        .post(
            0,
            "/api/v1/txs?wait=forever",
            serde_json::to_vec(&t).expect("json"),
        )
        .await;
    assert_eq!((code, err_code(&v)), (400, "bad_query"));
    let (code, v) = net.get(0, "/api/v1/blocks/99999").await;
    assert_eq!((code, err_code(&v)), (404, "not_found"));
    let (code, v) = net.get(0, "/api/v1/blocks/0").await;
    assert_eq!((code, err_code(&v)), (404, "not_found"));
    let (code, v) = net
        .get(0, &format!("/api/v1/blocks/{}", "ab".repeat(32)))
        .await;
    assert_eq!((code, err_code(&v)), (404, "not_found"));
    let (code, v) = net.get(0, "/api/v1/blocks/nope").await;
    assert_eq!((code, err_code(&v)), (400, "bad_block_id"));
    let (code, v) = net
        .get(0, &format!("/api/v1/txs/{}", "cd".repeat(32)))
        .await;
    assert_eq!((code, err_code(&v)), (404, "not_found"));
    let (code, v) = net.get(0, "/api/v1/txs/xyz").await;
    assert_eq!((code, err_code(&v)), (400, "bad_tx_id"));
    let (code, v) = net.get(0, "/api/v1/accounts/xyz").await;
    assert_eq!((code, err_code(&v)), (400, "bad_account_id"));
    let (code, v) = net.get(0, "/api/v1/blocks?limit=0").await;
    assert_eq!((code, err_code(&v)), (400, "bad_query"));
    let (code, v) = net.get(0, "/api/v1/blocks?before=-1").await;
    assert_eq!((code, err_code(&v)), (400, "bad_query"));
    let (code, v) = net.get(0, "/api/v1/nothing").await;
    assert_eq!((code, err_code(&v)), (404, "no_route"));
    let r = net
        .http
        .delete(format!("{}/api/v1/status", net.nodes[0].api))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.expect("json error body");
    assert_eq!(err_code(&v), "method_not_allowed");

    // Nothing above changed the chain: alice sent exactly 7 + 8 + 9.
    let (_, a) = net
        .get(
            0,
            &format!("/api/v1/accounts/{}", net.accounts[alice].public_key()),
        )
        .await;
    net.wait_for("t1 committed", Duration::from_secs(20), || async {
        net.try_get(0, &format!("/api/v1/txs/{}", t1.id()))
            .await
            .is_some_and(|v| v["status"] == "committed")
    })
    .await;
    let (_, a2) = net
        .get(
            0,
            &format!("/api/v1/accounts/{}", net.accounts[alice].public_key()),
        )
        .await;
    assert_eq!(a2["balance"].as_u64(), Some(1_000_000 - 24), "{a} {a2}");
    assert_eq!(a2["nonce"].as_u64(), Some(3));
    let (_, b) = net.get(0, &format!("/api/v1/accounts/{bob}")).await;
    assert_eq!(b["balance"].as_u64(), Some(1_000_024));
    let (_, none) = net
        .get(0, &format!("/api/v1/accounts/{}", stranger.public_key()))
        .await;
    assert_eq!(
        (&none["exists"], &none["balance"]),
        (&Value::from(false), &Value::from(0))
    );

    // Account history, newest first.
    let (code, page) = net.get(0, &format!("/api/v1/accounts/{bob}/txs")).await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = page["txs"]
        .as_array()
        .expect("txs")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids.len(), 3, "{page}");
    assert!(ids.contains(&t3.id().to_string().as_str()));

    // Cursor pagination over blocks: pages of 2 cover every height once, newest first.
    let mut tip = 0;
    for n in 0..5 {
        let t = net.transfer(admin, n, bob, 1);
        let (code, v) = net.submit(0, &t, true).await;
        assert_eq!(code, 200, "{v}");
        // The receipt, not /status: the status is published on the core's tick and may lag
        // the store by a moment.
        tip = v["receipt"]["height"].as_u64().expect("height");
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/blocks?limit=2".to_string();
    loop {
        let (code, page) = net.get(0, &path).await;
        assert_eq!(code, 200, "{page}");
        let blocks = page["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= 2);
        seen.extend(blocks.iter().map(|b| b["height"].as_u64().expect("height")));
        match page["next"].as_u64() {
            Some(n) => path = format!("/api/v1/blocks?limit=2&before={n}"),
            None => break,
        }
    }
    let expected: Vec<u64> = (1..=tip).rev().collect();
    assert!(
        seen.len() >= expected.len() && seen[..expected.len()] == expected[..],
        "{seen:?}"
    );

    // Validators and peers (a single validator: itself, no peers).
    let (code, v) = net.get(0, "/api/v1/validators").await;
    assert_eq!(code, 200);
    assert_eq!(v[0]["leader"], true);
    assert_eq!(v[0]["connected"], true);
    let (code, v) = net.get(0, "/api/v1/peers").await;
    assert_eq!((code, v.as_array().map(Vec::len)), (200, Some(0)));

    // Metrics carry the chain's numbers, in Prometheus' text format (checked by promtool).
    // They are set with the status, on the core's tick: wait for it to reach the tip.
    net.wait_for(
        "the status to show the tip",
        Duration::from_secs(10),
        || async { net.height(0).await == Some(tip) },
    )
    .await;
    let (code, m) = net.get(0, "/metrics").await;
    assert_eq!(code, 200);
    let m = m.as_str().expect("text").to_string();
    promtool_accepts(&m);
    assert!(m.contains(&format!("cairn_height {tip}")), "{m}");
    assert!(
        m.contains("cairn_rejected_txs_total{reason=\"bad_signature\"} 1"),
        "{m}"
    );
    for name in [
        "cairn_round ",
        "cairn_role ",
        "cairn_peers ",
        "cairn_mempool_txs ",
        "cairn_mempool_bytes ",
        // Every bounded in-memory structure has its gauge.
        "cairn_standby_txs ",
        "cairn_standby_bytes ",
        "cairn_verify_queue_txs ",
        "cairn_waiters ",
        "cairn_verified_txs_kept ",
        "cairn_cached_accounts ",
        "cairn_cached_keys ",
        "cairn_store_memtable_bytes ",
        "cairn_store_block_cache_bytes ",
        "cairn_store_table_readers_bytes ",
        "cairn_committed_txs_total ",
        "cairn_round_changes_total ",
        "cairn_block_interval_seconds_bucket",
        "cairn_commit_latency_seconds_bucket",
        "# TYPE cairn_p2p_refused_connections_total counter",
        "cairn_syncing 0",
        "cairn_ready 1",
        "cairn_build_info{version=\"",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "cairn_http_requests_total{route=\"/api/v1/txs\",method=\"POST\",status=\"202\"}",
        "cairn_http_request_duration_seconds_count{route=\"/api/v1/txs/{id}\",method=\"GET\"}",
    ] {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }
    // A scraper that asks for OpenMetrics gets it.
    let r = net
        .http
        .get(format!("{}/metrics", net.nodes[0].api))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .expect("metrics");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("application/openmetrics-text"))
    );
    assert!(r.text().await.expect("text").ends_with("# EOF\n"));
}

/// `promtool check metrics` (Debian's `prometheus` package, installed by scripts/deps.sh)
/// finds no problem in the text.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut p = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect(
            "promtool is missing: run scripts/deps.sh (it installs Debian's prometheus package)",
        );
    p.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let o = p.wait_with_output().expect("promtool");
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_replay_then_follow_live() {
    let net = one_node().await;
    let bob = net.accounts[2].public_key();
    let mut committed: Vec<TxId> = Vec::new();
    for n in 0..3 {
        let t = net.transfer(1, n, bob, 1);
        let (code, v) = net.submit(0, &t, true).await;
        assert_eq!(code, 200, "{v}");
        committed.push(t.id());
    }
    let tip = net.height(0).await.expect("height");

    let resp = net
        .http
        .get(format!("{}/api/v1/events?from_height=1", net.nodes[0].api))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("events");
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.bytes_stream();
    let mut reader = cairn_api::sse::SseReader::default();
    let mut pending: std::collections::VecDeque<String> = Default::default();
    let mut heights = Vec::new();
    let mut txs_seen: Vec<String> = Vec::new();
    let mut live: Option<TxId> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    'read: loop {
        while let Some(data) = pending.pop_front() {
            let ev: Value = serde_json::from_str(&data).expect("event json");
            if ev["type"] == "block" {
                let h = ev["height"].as_u64().expect("height");
                heights.push(h);
                for t in ev["txs"].as_array().expect("txs") {
                    txs_seen.push(t.as_str().unwrap_or("").to_string());
                }
                if let Some(id) = live
                    && txs_seen.contains(&id.to_string())
                {
                    break 'read;
                }
            }
            // Replay done: make a live one.
            if live.is_none() && heights.last() == Some(&tip) {
                let t = net.transfer(1, 3, bob, 1);
                let (code, v) = net.submit(0, &t, false).await;
                assert_eq!(code, 202, "{v}");
                live = Some(t.id());
            }
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events within the deadline")
            .expect("stream open")
            .expect("chunk");
        pending.extend(reader.push(&chunk).expect("events of a sane size"));
    }
    // Replayed 1..=tip in order, then the live block, each height once.
    let expected: Vec<u64> = (1..=heights.len() as u64).collect();
    assert_eq!(heights, expected);
    assert!(heights.len() as u64 > tip);
    for id in committed {
        assert!(txs_seen.contains(&id.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_as_documented() {
    // Every answer `net.get`/`net.post` sees is checked against the document strictly (see
    // common/contract.rs); this test makes sure each documented operation is exercised,
    // including both answers of POST /txs and a pending transaction, and a snapshot (one
    // every block here).
    let mut net = Net::new(ConsensusKind::Raft, 1, 4);
    net.configure(0, "storage", "snapshot_interval = 1");
    net.start_all().await;
    net.wait_ready().await;
    let t = net.transfer(1, 0, net.accounts[2].public_key(), 3);
    let (code, submitted) = net.submit(0, &t, true).await;
    assert_eq!(code, 200, "{submitted}");
    let record = Transaction {
        chain_id: net.genesis.chain_id.clone(),
        sender: net.accounts[1].public_key(),
        nonce: 1,
        payload: Payload::PutRecord {
            key: "greeting".into(),
            value: b"hello".to_vec(),
        },
    }
    .sign(&net.accounts[1]);
    let (code, v) = net.submit(0, &record, true).await;
    assert_eq!(code, 200, "{v}");
    let pending = net.transfer(1, 5, net.accounts[2].public_key(), 3);
    let (code, accepted) = net.submit(0, &pending, false).await;
    assert_eq!(code, 202, "{accepted}");
    let (code, v) = net.get(0, &format!("/api/v1/txs/{}", pending.id())).await;
    assert_eq!((code, &v["status"]), (200, &Value::from("pending")));
    let (code, e) = net.post(0, "/api/v1/txs", b"[".to_vec()).await;
    assert_eq!((code, err_code(&e)), (400, "invalid_json"));

    let (code, doc) = net.get(0, "/api/v1/openapi.json").await;
    assert_eq!(code, 200);
    assert_eq!(
        doc["openapi"].as_str().map(|s| s.starts_with("3.1")),
        Some(true)
    );
    let acct = net.accounts[1].public_key().to_string();
    let height = submitted["receipt"]["height"]
        .as_u64()
        .expect("height")
        .to_string();
    let tx_id = submitted["id"].as_str().expect("id").to_string();
    let snapshot = {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let listed = net.try_get(0, "/api/v1/snapshots").await;
            if let Some(h) = listed.and_then(|v| v["heights"][0].as_u64()) {
                break h.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no snapshot within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 22, "every route is documented");
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("ops") {
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has an operation id"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{path} is tagged"
            );
            let url = path
                .replace(
                    "{id}",
                    match path.as_str() {
                        "/api/v1/blocks/{id}" => &height,
                        "/api/v1/txs/{id}" => &tx_id,
                        _ => &acct,
                    },
                )
                .replace("{key}", "greeting")
                .replace("{height}", &snapshot)
                .replace("{index}", "0");
            if method == "post" {
                continue; // Exercised above, each answer checked.
            }
            if path == "/api/v1/events" {
                let r = net
                    .http
                    .get(format!("{}{url}", net.nodes[0].api))
                    .send()
                    .await
                    .expect("events");
                assert_eq!(r.status().as_u16(), 200);
                assert!(
                    r.headers()["content-type"]
                        .to_str()
                        .unwrap_or("")
                        .starts_with("text/event-stream")
                );
                continue;
            }
            let (code, v) = net.get(0, &url).await;
            assert_eq!(code, 200, "{path}: {v}");
        }
    }
    // The genesis served is the chain's: same hash as the node's status says.
    let (code, g) = net.get(0, "/api/v1/genesis").await;
    assert_eq!(code, 200);
    let g: cairn_ledger::Genesis = serde_json::from_value(g).expect("a genesis");
    assert_eq!(g.hash(), net.genesis.hash());
    // A wrong method is a documented 405 on every route.
    let (code, e) = net.post(0, "/api/v1/status", b"{}".to_vec()).await;
    assert_eq!((code, err_code(&e)), (405, "method_not_allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_answered_per_transaction() {
    let net = one_node().await;
    let bob = net.accounts[2].public_key();
    let t0 = net.transfer(1, 0, bob, 1);
    let t1 = net.transfer(1, 1, bob, 2);
    let mut forged = net.transfer(1, 2, bob, 3);
    forged.signature = net.transfer(3, 2, bob, 3).signature;
    let broke = net.transfer(3, 0, bob, u64::MAX);
    let body = serde_json::json!({"txs": [
        t0,
        {"encoded": hex::encode(codec::encode(&t1))},
        forged,
        {"not": "a transaction"},
        broke,
    ]});
    let (code, v) = net
        .post(0, "/api/v1/txs/batch", body.to_string().into_bytes())
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["admitted"].as_u64(), v["refused"].as_u64()),
        (Some(2), Some(3)),
        "{v}"
    );
    let r = v["results"].as_array().expect("results");
    assert_eq!(r[0]["id"], t0.id().to_string());
    assert_eq!(r[0]["status"], "pending");
    assert_eq!(r[1]["status"], "pending");
    assert_eq!(r[2]["error"]["code"], "bad_signature", "{v}");
    assert_eq!(r[2]["id"], forged.id().to_string());
    assert!(r[2]["status"].is_null());
    assert_eq!(r[3]["error"]["code"], "invalid_transaction", "{v}");
    assert!(r[3]["id"].is_null());
    assert_eq!(r[4]["error"]["code"], "insufficient_balance", "{v}");

    // The binary form, waited for: each committed with its receipt.
    let more: Vec<SignedTransaction> = (2..5).map(|n| net.transfer(1, n, bob, 1)).collect();
    let r = net
        .http
        .post(format!("{}/api/v1/txs/batch?wait=commit", net.nodes[0].api))
        .header("content-type", "application/octet-stream")
        .body(codec::encode(&more))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    for (item, t) in v["results"].as_array().expect("results").iter().zip(&more) {
        assert_eq!(item["id"], t.id().to_string());
        assert_eq!(item["status"], "committed", "{v}");
        assert!(item["receipt"]["height"].as_u64().is_some(), "{v}");
    }
    // The earlier two committed too (nonces 0 and 1 came before 2..5).
    let (code, t) = net.get(0, &format!("/api/v1/txs/{}", t1.id())).await;
    assert_eq!((code, &t["status"]), (200, &Value::from("committed")));

    // Whole-request errors: not a batch, too many, undecodable binary.
    let (code, e) = net.post(0, "/api/v1/txs/batch", b"[1]".to_vec()).await;
    assert_eq!((code, err_code(&e)), (400, "invalid_transaction"));
    let many = format!("{{\"txs\": [{}]}}", vec!["{}"; 1025].join(","));
    let (code, e) = net.post(0, "/api/v1/txs/batch", many.into_bytes()).await;
    assert_eq!((code, err_code(&e)), (413, "body_too_large"));
    let r = net
        .http
        .post(format!("{}/api/v1/txs/batch", net.nodes[0].api))
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 40])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mempool_is_503_with_retry_after() {
    let mut net = Net::new(ConsensusKind::Raft, 1, 4);
    net.configure(0, "mempool", "txs_max = 3");
    net.start_all().await;
    net.wait_ready().await;
    let bob = net.accounts[2].public_key();
    // Nonces 1.. wait for nonce 0, which never comes: they fill the mempool and stay.
    for n in 1..=3 {
        let (code, v) = net.submit(0, &net.transfer(1, n, bob, 1), false).await;
        assert_eq!(code, 202, "{v}");
    }
    let post = |path: &'static str, body: Vec<u8>| {
        net.http
            .post(format!("{}{path}", net.nodes[0].api))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let fourth = net.transfer(1, 4, bob, 1);
    let one = serde_json::to_vec(&fourth).expect("json");
    let r = post("/api/v1/txs", one).await.expect("request");
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.expect("json");
    assert_eq!(err_code(&v), "mempool_full");
    let batch =
        serde_json::json!({"txs": [net.transfer(1, 5, bob, 1), net.transfer(1, 6, bob, 1)]});
    let r = post("/api/v1/txs/batch", batch.to_string().into_bytes())
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    // Nothing changed: the three are the mempool, the refused ones are unknown.
    net.wait_for(
        "the status to show 3 pending",
        Duration::from_secs(10),
        || async { net.get(0, "/api/v1/status").await.1["mempool_txs"] == 3 },
    )
    .await;
    let (code, _) = net.get(0, &format!("/api/v1/txs/{}", fourth.id())).await;
    assert_eq!(code, 404);
}

/// The document passes a strict outside validator (openapi-spec-validator, installed by
/// scripts/deps.sh into .tools/venv).
#[test]
fn the_document_passes_openapi_spec_validator() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tool = std::env::var_os("CAIRN_OPENAPI_SPEC_VALIDATOR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".tools/venv/bin/openapi-spec-validator"));
    assert!(
        tool.exists(),
        "{} is missing: run scripts/deps.sh (it installs openapi-spec-validator in .tools/venv)",
        tool.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, cairn_node::api::doc::json()).expect("write");
    let o = std::process::Command::new(&tool)
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Keeps the signing helpers honest: the JSON a wallet would send round-trips.
#[test]
fn signed_transactions_round_trip_through_json() {
    let k = SigningKey::generate();
    let t = Transaction {
        chain_id: "c".into(),
        sender: k.public_key(),
        nonce: 1,
        payload: Payload::PutRecord {
            key: "k".into(),
            value: b"v".to_vec(),
        },
    }
    .sign(&k);
    let back: SignedTransaction =
        serde_json::from_str(&serde_json::to_string(&t).expect("json")).expect("parse");
    assert_eq!(back, t);
}
