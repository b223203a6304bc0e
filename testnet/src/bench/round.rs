//! One round of bench load: funded accounts, pre-signed transfers sent to every node, and
//! what came of them (commits seen on node 0's event stream).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_api::ChainEvent;
use cairn_api::client::{Client, ClientError, Event};
use cairn_crypto::{PublicKey, SigningKey};
use cairn_ledger::{Payload, Role, SignedTransaction, TxId};
use futures::StreamExt;

use super::{Settings, sign};

/// Submits `tx`; a refusal is named by the node's error code, or by what failed.
async fn post(client: &Client, tx: &SignedTransaction, wait: bool) -> Result<(), String> {
    match client.submit(tx, wait).await {
        Ok(_) => Ok(()),
        Err(e) => Err(code_of(e)),
    }
}

fn code_of(e: ClientError) -> String {
    match e {
        ClientError::Api(e) => e.code.to_string(),
        ClientError::Timeout { .. } => "timeout".into(),
        ClientError::Unreachable { .. } => "unreachable".into(),
        e => e.to_string(),
    }
}

/// Submits `txs` in one batch request; each transaction's outcome (a whole-request failure
/// counts against each of them).
async fn post_batch(client: &Client, txs: &[SignedTransaction]) -> Vec<(TxId, Result<(), String>)> {
    let ids = txs.iter().map(SignedTransaction::id);
    match client.submit_batch(txs, false).await {
        Ok(answer) => ids
            .zip(answer.results)
            .map(|(id, item)| {
                let r = match (item.status, item.error) {
                    (Some(_), _) => Ok(()),
                    (None, Some(e)) => Err(e.code.to_string()),
                    (None, None) => Err("no answer".into()),
                };
                (id, r)
            })
            .collect(),
        Err(e) => {
            let code = code_of(e);
            ids.map(|id| (id, Err(code.clone()))).collect()
        }
    }
}

/// The load's accounts: members funded by the admin, and the next nonce each will use.
pub struct Accounts {
    pub chain: String,
    pub admin: SigningKey,
    pub keys: Vec<SigningKey>,
    /// Every account sends nonces in step, so one next nonce serves them all.
    pub next_nonce: u64,
}

/// Makes `count` fresh member accounts, each funded for `per_account` transfers of 1.
pub async fn fund(
    first: &Client,
    admin: SigningKey,
    count: usize,
    per_account: u64,
) -> anyhow::Result<Accounts> {
    let chain = first.status().await.context("status")?.chain_id;
    let admin_nonce = first.account(&admin.public_key()).await?.nonce;
    let keys: Vec<SigningKey> = (0..count).map(|_| SigningKey::generate()).collect();
    let mut nonce = admin_nonce;
    let mut setup = Vec::new();
    for k in &keys {
        setup.push(sign(
            &chain,
            &admin,
            nonce,
            Payload::AddMember {
                account: k.public_key(),
                role: Role::User,
            },
        ));
        setup.push(sign(
            &chain,
            &admin,
            nonce + 1,
            Payload::Transfer {
                to: k.public_key(),
                amount: per_account + 10,
            },
        ));
        nonce += 2;
    }
    // The admin's nonces must stay within the mempool's gap: send in waves.
    for wave in setup.chunks(200) {
        for tx in &wave[..wave.len() - 1] {
            post(first, tx, false)
                .await
                .map_err(|e| anyhow::anyhow!("setup: {e}"))?;
        }
        if let Some(last) = wave.last() {
            post(first, last, true)
                .await
                .map_err(|e| anyhow::anyhow!("setup: {e}"))?;
        }
    }
    Ok(Accounts {
        chain,
        admin,
        keys,
        next_nonce: 0,
    })
}

/// Submit-to-commit latency percentiles, ms.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// What one round of load came to.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub offered: usize,
    pub accepted: usize,
    pub rejected: HashMap<String, usize>,
    pub committed: usize,
    pub committed_twice: usize,
    pub missing: usize,
    /// Accepted behind an earlier nonce of the same sender that was refused.
    pub stranded: usize,
    pub stranded_committed: usize,
    /// Commits confirmed by asking, not seen on the event stream.
    pub late: usize,
    /// From the first submission to the last commit.
    pub secs: f64,
    pub submit_secs: f64,
    pub latency: Latency,
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub replayed_blocks: u64,
    /// From the first submission until every commit was seen (or given up on).
    pub read_secs: f64,
}

impl Figures {
    pub fn tps(&self) -> f64 {
        self.committed as f64 / self.secs.max(1e-9)
    }
}

/// At most `most` transactions sent and not yet seen committed (0: no limit).
#[derive(Clone)]
struct Window {
    most: usize,
    /// Sent, or about to be, less those refused.
    sent: Arc<AtomicUsize>,
    /// In the blocks seen committed.
    committed: Arc<AtomicUsize>,
}

impl Window {
    /// How long a sender waits for room when no commit arrives at all; then it sends anyway
    /// (transactions stranded behind a refused nonce never commit, and must not stop the load).
    const STALL: Duration = Duration::from_secs(10);

    /// `n` counted as sent that were not, or that never commit.
    fn leave(&self, n: usize) {
        self.sent.fetch_sub(n, Ordering::Relaxed);
    }

    /// Waits until `n` more fit, and counts them as sent.
    async fn enter(&self, n: usize) {
        if self.most == 0 {
            self.sent.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let mut last = self.committed.load(Ordering::Relaxed);
        let mut since = Instant::now();
        loop {
            let sent = self.sent.fetch_add(n, Ordering::Relaxed) + n;
            let committed = self.committed.load(Ordering::Relaxed);
            if sent.saturating_sub(committed) <= self.most || since.elapsed() > Self::STALL {
                return;
            }
            self.leave(n);
            if committed != last {
                last = committed;
                since = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Signs `txs` transfers (the next nonces of every account in turn), sends them to the nodes
/// and waits (two minutes at most) until node 0 shows each accepted one committed.
pub async fn round(
    clients: &[Client],
    acc: &mut Accounts,
    txs: usize,
    s: &Settings,
) -> anyhow::Result<Figures> {
    let first = &clients[0];
    let per = txs.div_ceil(acc.keys.len().max(1)) as u64;
    let mut load: Vec<SignedTransaction> = Vec::with_capacity(txs);
    for n in acc.next_nonce..acc.next_nonce + per {
        for k in &acc.keys {
            if load.len() < txs {
                load.push(sign(
                    &acc.chain,
                    k,
                    n,
                    Payload::Transfer {
                        to: acc.admin.public_key(),
                        amount: 1,
                    },
                ));
            }
        }
    }
    acc.next_nonce += per;
    let total = load.len();

    // Follow commits on node 0, on its own thread so submitters cannot delay it.
    let seen: Arc<Mutex<HashMap<TxId, (Instant, u32)>>> = Arc::default();
    // Transactions in the blocks seen so far, for the window.
    let seen_count = Arc::new(AtomicUsize::new(0));
    let from = first.status().await?.height + 1;
    let follower = first.clone();
    let seen2 = seen.clone();
    let seen_count2 = seen_count.clone();
    let stop_follow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_follow2 = stop_follow.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let mut events = Box::pin(follower.events(Some(from), Duration::from_secs(1)));
            while let Some(Ok(ev)) = events.next().await {
                if stop_follow2.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let Event::Chain(ChainEvent::Block { txs, .. }) = ev else {
                    continue;
                };
                let now = Instant::now();
                seen_count2.fetch_add(txs.len(), Ordering::Relaxed);
                let Ok(mut m) = seen2.lock() else { return };
                for id in txs {
                    m.entry(id).or_insert((now, 0)).1 += 1;
                }
            }
        });
    });

    let bar = if s.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} submitted {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    // Each transaction's sender and nonce, to tell a loss from a transaction stranded behind
    // a nonce the network refused (it waits for that nonce, which this client never resends).
    let slot: HashMap<TxId, (PublicKey, u64)> = load
        .iter()
        .map(|t| (t.id(), (t.tx.sender, t.tx.nonce)))
        .collect();
    let submitted: Arc<Mutex<HashMap<TxId, Instant>>> = Arc::default();
    let rejected: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let refused: Arc<Mutex<HashSet<TxId>>> = Arc::default();
    // Requests: `batch` transactions each, smaller when paced so one goes every 10 ms.
    let per_request = if s.rate > 0.0 {
        s.batch.min(((s.rate / 100.0) as usize).max(1))
    } else {
        s.batch
    }
    .max(1);
    let mut chunks = Vec::new();
    let mut offset = 0;
    let mut it = load.into_iter().peekable();
    while it.peek().is_some() {
        let c: Vec<SignedTransaction> = it.by_ref().take(per_request).collect();
        let n = c.len();
        chunks.push((offset, c));
        offset += n;
    }
    let queue = Arc::new(Mutex::new(chunks.into_iter().enumerate()));
    // Readers page the admin's history (every setup transaction) and the bench accounts'.
    let stop_reads = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut read_accounts: Vec<PublicKey> = acc.keys.iter().map(SigningKey::public_key).collect();
    read_accounts.push(acc.admin.public_key());
    let apis: Vec<String> = clients.iter().map(|c| c.node().to_string()).collect();
    let (reads, readers) =
        crate::readers::start(apis, read_accounts, s.readers, stop_reads.clone());
    let start = Instant::now();
    let window = Window {
        most: s.window,
        sent: Arc::new(AtomicUsize::new(0)),
        committed: seen_count,
    };
    let mut workers = Vec::new();
    for _ in 0..s.concurrency.max(1) {
        let (clients, queue, submitted, rejected, refused, bar) = (
            clients.to_vec(),
            queue.clone(),
            submitted.clone(),
            rejected.clone(),
            refused.clone(),
            bar.clone(),
        );
        let rate = s.rate;
        let batch = s.batch;
        let window = window.clone();
        workers.push(tokio::spawn(async move {
            loop {
                // Room first, then the next request: a request taken from the queue and then
                // held back by the window could hold nonces that later requests (sent already)
                // wait for, and the load would stall.
                window.enter(per_request).await;
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((req, (first, txs))) = next else {
                    window.leave(per_request);
                    return;
                };
                window.leave(per_request - txs.len());
                if rate > 0.0 {
                    tokio::time::sleep_until(
                        (start + Duration::from_secs_f64(first as f64 / rate)).into(),
                    )
                    .await;
                }
                let client = &clients[req % clients.len()];
                let t = Instant::now();
                let answers: Vec<(TxId, Result<(), String>)> = if txs.len() == 1 && batch == 1 {
                    vec![(txs[0].id(), post(client, &txs[0], false).await)]
                } else {
                    post_batch(client, &txs).await
                };
                for (id, r) in answers {
                    match r {
                        Ok(()) => {
                            if let Ok(mut m) = submitted.lock() {
                                m.insert(id, t);
                            }
                        }
                        Err(code) => {
                            // A refused transaction never commits: it leaves the window.
                            window.leave(1);
                            if let Ok(mut m) = rejected.lock() {
                                *m.entry(code).or_default() += 1;
                            }
                            if let Ok(mut m) = refused.lock() {
                                m.insert(id);
                            }
                        }
                    }
                }
                bar.inc(txs.len() as u64);
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let submit_secs = start.elapsed().as_secs_f64();
    let mut accepted: HashMap<TxId, Instant> =
        submitted.lock().map(|m| m.clone()).unwrap_or_default();
    // A transaction accepted after an earlier nonce of its sender was refused can only wait
    // in the mempool (a client would resend the refused one): it is set apart, not awaited
    // and not counted as lost unless it commits.
    let mut first_refused: HashMap<PublicKey, u64> = HashMap::new();
    for id in refused.lock().map(|m| m.clone()).unwrap_or_default() {
        if let Some((sender, nonce)) = slot.get(&id) {
            let n = first_refused.entry(*sender).or_insert(*nonce);
            *n = (*n).min(*nonce);
        }
    }
    let stranded: HashMap<TxId, Instant> = accepted
        .iter()
        .filter(|(id, _)| {
            slot.get(*id)
                .is_some_and(|(s, n)| first_refused.get(s).is_some_and(|r| n > r))
        })
        .map(|(id, at)| (*id, *at))
        .collect();
    accepted.retain(|id, _| !stranded.contains_key(id));
    bar.set_message("waiting for commits");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = seen
            .lock()
            .map(|m| accepted.keys().filter(|id| m.contains_key(id)).count())
            .unwrap_or(0);
        bar.set_message(format!("{done} committed"));
        if done == accepted.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    stop_follow.store(true, std::sync::atomic::Ordering::Relaxed);
    let read_secs = start.elapsed().as_secs_f64();
    stop_reads.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.abort();
    }
    let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let mut commits = seen.lock().map(|m| m.clone()).unwrap_or_default();
    // Whatever the event stream did not show is asked for directly before anything is called
    // missing (the stream may have been refused or cut; its timing is then unknown).
    let mut late = 0;
    for id in accepted
        .keys()
        .filter(|id| !commits.contains_key(id))
        .copied()
        .collect::<Vec<_>>()
    {
        let committed = first
            .tx(&id)
            .await
            .is_ok_and(|v| v.status == cairn_api::TxStatus::Committed);
        if committed {
            late += 1;
            commits.insert(id, (Instant::now(), 1));
        }
    }

    let committed: Vec<&TxId> = accepted
        .keys()
        .filter(|id| commits.contains_key(id))
        .collect();
    let last = committed
        .iter()
        .filter_map(|id| commits.get(*id))
        .map(|c| c.0)
        .max()
        .unwrap_or(start);
    let mut lat: Vec<f64> = committed
        .iter()
        .filter_map(|id| {
            Some(
                commits
                    .get(*id)?
                    .0
                    .duration_since(*accepted.get(*id)?)
                    .as_secs_f64()
                    * 1e3,
            )
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(Figures {
        offered: total,
        accepted: accepted.len(),
        rejected: rejected.lock().map(|m| m.clone()).unwrap_or_default(),
        committed: committed.len(),
        committed_twice: commits.values().filter(|c| c.1 > 1).count(),
        missing: accepted.len() - committed.len(),
        stranded: stranded.len(),
        stranded_committed: stranded
            .keys()
            .filter(|id| commits.contains_key(id))
            .count(),
        late,
        secs: last.duration_since(start).as_secs_f64().max(1e-9),
        submit_secs,
        latency: Latency {
            p50: pct(0.5),
            p95: pct(0.95),
            p99: pct(0.99),
        },
        reads_ok: read(&reads.ok),
        reads_failed: read(&reads.failed),
        replayed_blocks: read(&reads.replayed_blocks),
        read_secs,
    })
}

/// Waits until every node holds node 0's current height, and says whether they hold the same
/// block there.
pub async fn agree(clients: &[Client]) -> anyhow::Result<(u64, bool)> {
    let target = clients[0].status().await?.height;
    let mut heads = Vec::new();
    for client in clients {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.block(&target.to_string()).await {
                Ok(v) => {
                    heads.push(v.hash);
                    break;
                }
                Err(ClientError::Api(e)) if e.status == 404 => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() > deadline {
                anyhow::bail!("{} did not reach height {target}", client.node());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok((target, heads.windows(2).all(|w| w[0] == w[1])))
}
