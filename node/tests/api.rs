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

/// A small OpenAPI schema checker: types, required properties, nullable, enums, arrays, refs.
fn check(schema: &Value, v: &Value, doc: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(&doc["components"]["schemas"][name], v, doc, at);
    }
    if v.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(s, v, doc, at)?;
        }
        return Ok(());
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        return if options.iter().any(|s| check(s, v, doc, at).is_ok()) {
            Ok(())
        } else {
            Err(format!("{at}: matches no oneOf option"))
        };
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "integer" => v.is_u64() || v.is_i64(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "" => true,
        other => return Err(format!("{at}: unknown type {other}")),
    };
    if !ok {
        return Err(format!("{at}: expected {ty}, got {v}"));
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} not in {e:?}"));
    }
    if schema["pattern"] == "^[0-9a-f]{64}$" {
        let s = v.as_str().unwrap_or("");
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{at}: {s:?} is not 64 hex digits"));
        }
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req {
            let k = r.as_str().unwrap_or("");
            if v.get(k).is_none() {
                return Err(format!("{at}: missing required {k}"));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            if let Some(x) = v.get(k) {
                check(s, x, doc, &format!("{at}.{k}"))?;
            }
        }
        if let Some(obj) = v.as_object() {
            for k in obj.keys() {
                if !props.contains_key(k) {
                    return Err(format!("{at}: {k} is not in the schema"));
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(items, x, doc, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
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
    for n in 0..5 {
        let t = net.transfer(admin, n, bob, 1);
        let (code, v) = net.submit(0, &t, true).await;
        assert_eq!(code, 200, "{v}");
    }
    let tip = net.height(0).await.expect("height");
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

    // Metrics carry the chain's numbers.
    let m = net
        .http
        .get(format!("{}/metrics", net.nodes[0].api))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
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
        "cairn_committed_txs_total ",
        "cairn_round_changes_total ",
        "cairn_block_interval_seconds_bucket",
        "cairn_commit_latency_seconds_bucket",
    ] {
        assert!(m.contains(name), "metrics lack {name}");
    }
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
        pending.extend(reader.push(&chunk));
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
async fn openapi_document_matches_the_routes_and_their_shapes() {
    let net = one_node().await;
    let t = net.transfer(1, 0, net.accounts[2].public_key(), 3);
    let (code, submitted) = net.submit(0, &t, true).await;
    assert_eq!(code, 200);
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
    let (code, doc) = net.get(0, "/api/v1/openapi.json").await;
    assert_eq!(code, 200);
    assert_eq!(
        doc["openapi"].as_str().map(|s| s.starts_with("3.")),
        Some(true)
    );
    let acct = net.accounts[1].public_key().to_string();
    let height = submitted["receipt"]["height"]
        .as_u64()
        .expect("height")
        .to_string();
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 16, "every route is documented");
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("ops") {
            let url = path
                .replace(
                    "{id}",
                    match path.as_str() {
                        "/api/v1/blocks/{id}" => &height,
                        "/api/v1/txs/{id}" => submitted["id"].as_str().expect("id"),
                        _ => &acct,
                    },
                )
                .replace("{key}", "greeting");
            if method == "post" {
                // The answers of POST /txs above, checked against its schemas.
                let ok = &op["responses"]["202"]["content"]["application/json"]["schema"];
                check(ok, &accepted, &doc, "POST /txs 202").expect("202 shape");
                check(ok, &submitted, &doc, "POST /txs 200").expect("200 shape");
                let (code, e) = net.post(0, &url, b"[".to_vec()).await;
                assert_eq!(code, 400);
                let err = &op["responses"]["400"]["content"]["application/json"]["schema"];
                check(err, &e, &doc, "POST /txs 400").expect("error shape");
                continue;
            }
            assert_eq!(method, "get");
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
            let r = net
                .http
                .get(format!("{}{url}", net.nodes[0].api))
                .send()
                .await
                .expect("get");
            assert_eq!(r.status().as_u16(), 200, "{path}");
            let content = &op["responses"]["200"]["content"];
            if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
                let v: Value = r.json().await.expect("json");
                check(schema, &v, &doc, path).unwrap_or_else(|e| panic!("{e}"));
            } else {
                assert!(!r.text().await.expect("text").is_empty());
            }
        }
    }
    // A transaction still pending matches the Tx schema as well.
    let (code, v) = net.get(0, &format!("/api/v1/txs/{}", pending.id())).await;
    assert_eq!((code, &v["status"]), (200, &Value::from("pending")));
    check(
        &serde_json::json!({"$ref": "#/components/schemas/Tx"}),
        &v,
        &doc,
        "pending",
    )
    .expect("pending shape");
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
