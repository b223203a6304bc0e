//! Explorer read load for `cairn-testnet bench --readers N`: N clients that, round-robin over
//! the nodes, page account histories (a busy account's and the bench accounts'), page blocks,
//! fetch whole blocks, and replay the event stream from height 1. Run beside the write load,
//! it shows whether reads slow consensus down. The pages are fetched, not parsed (plain HTTP,
//! not the typed client): the load is meant for the nodes, not for this process, which shares
//! their cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cairn_api::StatusView;
use cairn_crypto::PublicKey;
use futures::StreamExt;

/// What the readers did.
#[derive(Debug, Default)]
pub struct ReadCounts {
    /// Requests answered 200.
    pub ok: AtomicU64,
    /// Requests that failed (any status but 200, or no answer).
    pub failed: AtomicU64,
    /// Blocks received through event replays.
    pub replayed_blocks: AtomicU64,
}

/// Reads until `stop`; returns the counters.
pub fn start(
    apis: Vec<String>,
    accounts: Vec<PublicKey>,
    readers: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<ReadCounts>, Vec<tokio::task::JoinHandle<()>>) {
    let counts = Arc::new(ReadCounts::default());
    let http = reqwest::Client::builder()
        // Below the node's header timeout (10 s), which also closes idle kept-alive connections.
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let tasks = (0..readers)
        .map(|r| {
            let (apis, accounts, stop, counts, http) = (
                apis.clone(),
                accounts.clone(),
                stop.clone(),
                counts.clone(),
                http.clone(),
            );
            tokio::spawn(async move {
                let mut k = r;
                while !stop.load(Ordering::Relaxed) {
                    let api = &apis[k % apis.len()];
                    let ok = match k % 4 {
                        0 => get(&http, &format!("{api}/api/v1/blocks?limit=100")).await,
                        1 => {
                            let a = accounts[k % accounts.len()];
                            get(&http, &format!("{api}/api/v1/accounts/{a}/txs?limit=100")).await
                        }
                        2 => match latest(&http, api).await {
                            Some(h) if h > 0 => {
                                get(&http, &format!("{api}/api/v1/blocks/{}", 1 + k as u64 % h))
                                    .await
                            }
                            _ => false,
                        },
                        _ => replay(&http, api, &counts, &stop).await,
                    };
                    let c = if ok { &counts.ok } else { &counts.failed };
                    c.fetch_add(1, Ordering::Relaxed);
                    k += readers;
                }
            })
        })
        .collect();
    (counts, tasks)
}

async fn get(http: &reqwest::Client, url: &str) -> bool {
    match http.get(url).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

async fn latest(http: &reqwest::Client, api: &str) -> Option<u64> {
    let r = http.get(format!("{api}/api/v1/status")).send().await.ok()?;
    Some(r.json::<StatusView>().await.ok()?.height)
}

/// Replays the event stream from height 1 up to the height at the start, then hangs up. The
/// events are counted, not parsed: the load is meant for the node, not this client.
async fn replay(http: &reqwest::Client, api: &str, counts: &ReadCounts, stop: &AtomicBool) -> bool {
    let Some(target) = latest(http, api).await else {
        return false;
    };
    let Ok(r) = http
        .get(format!("{api}/api/v1/events?from_height=1"))
        .send()
        .await
    else {
        return false;
    };
    if !r.status().is_success() {
        return false;
    }
    let mut body = r.bytes_stream();
    let mut sse = cairn_api::sse::SseReader::default();
    // Replay sends one block event per height from 1, in order.
    let mut seen = 0;
    while let Some(Ok(chunk)) = body.next().await {
        let Ok(events) = sse.push(&chunk) else {
            return false;
        };
        let events = events.len() as u64;
        seen += events;
        counts.replayed_blocks.fetch_add(events, Ordering::Relaxed);
        if seen >= target || stop.load(Ordering::Relaxed) {
            return true;
        }
    }
    false
}
