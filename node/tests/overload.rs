//! Offered load far above what a network can take, on real node processes: the mempool fills,
//! clients are told 503 with `Retry-After` (whole requests, or per transaction inside a
//! batch), memory stays bounded, and every transaction a node acknowledged commits exactly
//! once.

mod common;

use std::time::{Duration, Instant};

use cairn_crypto::codec;
use cairn_ledger::{ConsensusKind, SignedTransaction};
use common::Net;
use serde_json::Value;

/// Accounts sending.
const SENDERS: usize = 6;
/// Transactions each sender offers.
const PER_SENDER: u64 = 400;
/// Transactions per request.
const BATCH: usize = 100;

/// Resident memory, now and at peak, of a process (MB).
fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("a VmRSS/VmHWM line")
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_with_retry_after_and_what_was_acknowledged_commits_once() {
    let mut net = Net::new(ConsensusKind::Raft, 3, SENDERS + 1);
    for i in 0..3 {
        net.configure(i, "mempool", "txs_max = 300");
    }
    net.start_all().await;
    net.wait_ready().await;
    let to = net.accounts[0].public_key();
    let before = net.get(0, &format!("/api/v1/accounts/{to}")).await.1["balance"]
        .as_u64()
        .expect("balance");

    // Senders, each offering its transactions in batches to one node, as fast as the node
    // answers; a refused suffix is offered again after `Retry-After`.
    let mut senders = Vec::new();
    for s in 1..=SENDERS {
        let txs: Vec<SignedTransaction> =
            (0..PER_SENDER).map(|n| net.transfer(s, n, to, 1)).collect();
        let api = net.nodes[s % 3].api.clone();
        let http = net.http.clone();
        senders.push(tokio::spawn(async move {
            let mut next = 0;
            let mut refusals = 0u32;
            let deadline = Instant::now() + Duration::from_secs(240);
            while next < txs.len() {
                assert!(Instant::now() < deadline, "the load was never all taken");
                let chunk = &txs[next..(next + BATCH).min(txs.len())];
                let r = http
                    .post(format!("{api}/api/v1/txs/batch"))
                    .header("content-type", "application/octet-stream")
                    .body(codec::encode(chunk))
                    .send()
                    .await
                    .expect("request");
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let v: Value = r.json().await.expect("json");
                let taken = match status {
                    200 => {
                        let results = v["results"].as_array().expect("results");
                        // Admitted in order, up to the first refusal; the rest is "not now":
                        // the mempool is full, or (behind a refused one) too far ahead.
                        let taken = results
                            .iter()
                            .take_while(|i| i["status"] == "pending")
                            .count();
                        for i in &results[taken..] {
                            let code = i["error"]["code"].as_str().unwrap_or("none");
                            assert!(
                                code == "mempool_full" || code == "nonce_too_far_ahead",
                                "refused for {code}: {}",
                                i["error"]
                            );
                        }
                        taken
                    }
                    503 => {
                        assert_eq!(v["error"]["code"], "mempool_full", "{}", v["error"]);
                        assert_eq!(retry, Some(1), "a 503 says when to come back");
                        0
                    }
                    other => panic!("unexpected answer {other}: {}", v["error"]),
                };
                next += taken;
                if taken < chunk.len() {
                    refusals += 1;
                    tokio::time::sleep(Duration::from_secs(retry.unwrap_or(1)) / 4).await;
                }
            }
            refusals
        }));
    }
    let mut refusals = 0;
    for s in senders {
        refusals += s.await.expect("sender");
    }
    assert!(
        refusals > 0,
        "the load was far above capacity: some was refused"
    );

    // Everything acknowledged commits, exactly once: each sender's nonce reaches what it
    // sent, and the receiver got exactly one unit per transaction.
    net.wait_for(
        "every acknowledged transaction to commit",
        Duration::from_secs(120),
        || async {
            let mut all = true;
            for s in 1..=SENDERS {
                let id = net.accounts[s].public_key();
                let v = net.get(0, &format!("/api/v1/accounts/{id}")).await.1;
                all &= v["nonce"] == PER_SENDER;
            }
            all
        },
    )
    .await;
    let after = net.get(0, &format!("/api/v1/accounts/{to}")).await.1["balance"]
        .as_u64()
        .expect("balance");
    assert_eq!(
        after - before,
        SENDERS as u64 * PER_SENDER,
        "each transfer applied once"
    );
    let h = net.height(0).await.expect("height");
    net.wait_agree(h, Duration::from_secs(60)).await;

    // Memory stayed bounded: the mempool, not the offered load, decides what is held.
    for node in &net.nodes {
        let pid = node.child.as_ref().expect("running").id();
        let (now, peak) = rss_mb(pid);
        assert!(
            peak < 150.0,
            "node RSS peaked at {peak:.0} MB (now {now:.0} MB)"
        );
    }
}
