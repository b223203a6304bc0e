//! A simple load against a real local network: `cargo bench --workspace --bench load`.
//!
//! Starts a 4-node PBFT and a 3-node Raft network of release-built `cairn-node` processes,
//! submits pre-signed transfers from many accounts across all nodes with a fixed number of
//! requests in flight, follows commits through the SSE stream of one node, and prints
//! committed tx/s and commit latency percentiles. (The full benchmark is `cairn-testnet bench`.)

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_ledger::{ConsensusKind, TxId};
use common::Net;
use futures::StreamExt;
use tokio::sync::Mutex;

const ACCOUNTS: usize = 200;
/// Transactions per account: a burst of 200 × 50, a paced run of 200 × 10.
const PER_ACCOUNT: u64 = 50;
const IN_FLIGHT: usize = 64;

async fn run(kind: ConsensusKind, n: usize, rate: Option<f64>) {
    let mut net = Net::new(kind, n, ACCOUNTS);
    for node in &net.nodes {
        let p = node.home.join("config.toml");
        let c = std::fs::read_to_string(&p).expect("config");
        let c = c
            .replace("block_txs_max = 500", "block_txs_max = 2000")
            .replace("level = \"info,cairn_node=debug\"", "level = \"warn\"")
            .replace("tick_ms = 20", "tick_ms = 10");
        std::fs::write(&p, c).expect("config");
    }
    net.start_all().await;
    net.wait_ready().await;
    // Pre-sign everything: the load measures the network, not the client.
    let to = net.accounts[0].public_key();
    let mut txs = Vec::new();
    let per_account = if rate.is_some() { 10 } else { PER_ACCOUNT };
    for nonce in 0..per_account {
        for a in 1..ACCOUNTS {
            txs.push(net.transfer(a, nonce, to, 1));
        }
    }
    let total = txs.len();
    let committed_at: Arc<Mutex<HashMap<TxId, Instant>>> = Arc::default();
    let from = net.height(0).await.expect("height") + 1;
    let sse = net
        .http
        .get(format!(
            "{}/api/v1/events?from_height={from}",
            net.nodes[0].api
        ))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .expect("events");
    // The follower gets its own thread and runtime, so busy submitters cannot delay the
    // moment a commit is seen.
    let seen = committed_at.clone();
    let _follower = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut body = sse.bytes_stream();
            let mut reader = cairn_api::sse::SseReader::default();
            while let Some(Ok(chunk)) = body.next().await {
                let now = Instant::now();
                for d in reader.push(&chunk).unwrap_or_default() {
                    if let Ok(cairn_api::ChainEvent::Block { txs, .. }) = serde_json::from_str(&d) {
                        let mut m = seen.lock().await;
                        for id in txs {
                            m.insert(id, now);
                        }
                    }
                }
            }
        });
    });
    let submitted_at: Arc<Mutex<HashMap<TxId, Instant>>> = Arc::default();
    let start = Instant::now();
    let net = Arc::new(net);
    let queue = Arc::new(Mutex::new(txs.into_iter().enumerate()));
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (net, queue, submitted_at) = (net.clone(), queue.clone(), submitted_at.clone());
        workers.push(tokio::spawn(async move {
            let mut rejected = 0usize;
            loop {
                let Some((i, tx)) = queue.lock().await.next() else {
                    return rejected;
                };
                if let Some(r) = rate {
                    // Paced: transaction i goes out at i / rate seconds.
                    let at = start + Duration::from_secs_f64(i as f64 / r);
                    tokio::time::sleep_until(at.into()).await;
                }
                let t = Instant::now();
                let (code, _) = net.submit(i % net.nodes.len(), &tx, false).await;
                if code == 202 {
                    submitted_at.lock().await.insert(tx.id(), t);
                } else {
                    rejected += 1;
                }
            }
        }));
    }
    let mut rejected = 0;
    for w in workers {
        rejected += w.await.expect("worker");
    }
    let accepted = submitted_at.lock().await.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_at.lock().await.len() < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let commits = committed_at.lock().await.clone();
    let subs = submitted_at.lock().await.clone();
    let last = commits.values().max().copied().unwrap_or(start);
    let secs = last.duration_since(start).as_secs_f64();
    let mut lat: Vec<f64> = subs
        .iter()
        .filter_map(|(id, t)| {
            commits
                .get(id)
                .map(|c| c.duration_since(*t).as_secs_f64() * 1e3)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{kind:?} {n} nodes, {}: {total} txs offered, {accepted} accepted, {rejected} refused, {} committed in {secs:.2} s = {:.0} tx/s; commit latency p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
        rate.map_or("as fast as possible".to_string(), |r| format!(
            "paced at {r} tx/s"
        )),
        commits.len(),
        commits.len() as f64 / secs,
        pct(0.5),
        pct(0.95),
        pct(0.99)
    );
    let height = net.height(0).await.unwrap_or(0);
    println!("  blocks: {} (height {height})", height + 1 - from);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches only with `--benches`.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        run(ConsensusKind::Pbft, 4, None).await;
        run(ConsensusKind::Pbft, 4, Some(200.0)).await;
        run(ConsensusKind::Raft, 3, None).await;
        run(ConsensusKind::Raft, 3, Some(200.0)).await;
    });
}
