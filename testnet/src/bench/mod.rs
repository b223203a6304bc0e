//! `cairn-testnet bench`: load a running testnet and measure it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_api::ChainEvent;
use cairn_api::client::{Client, ClientError, Event};
use cairn_crypto::SigningKey;
use cairn_ledger::{Payload, Role, SignedTransaction, Transaction, TxId, verify_transactions};
use futures::StreamExt;
use serde_json::json;

/// Bench settings.
pub struct Settings {
    pub accounts: usize,
    pub txs: usize,
    pub rate: f64,
    pub concurrency: usize,
    /// Transactions per request (1: the single-transaction route).
    pub batch: usize,
    /// Each node's name and process id (when this machine runs it), for CPU and memory.
    pub nodes: Vec<(String, Option<u32>)>,
    /// Explorer clients reading beside the load (0: none).
    pub readers: usize,
    pub json: bool,
}

fn sign(chain: &str, key: &SigningKey, nonce: u64, payload: Payload) -> SignedTransaction {
    Transaction {
        chain_id: chain.to_string(),
        sender: key.public_key(),
        nonce,
        payload,
    }
    .sign(key)
}

/// Submits `tx`; a refusal is named by the node's error code, or by what failed.
async fn post(client: &Client, tx: &SignedTransaction, wait: bool) -> Result<(), String> {
    match client.submit(tx, wait).await {
        Ok(_) => Ok(()),
        Err(ClientError::Api(e)) => Err(e.code.to_string()),
        Err(ClientError::Timeout { .. }) => Err("timeout".into()),
        Err(ClientError::Unreachable { .. }) => Err("unreachable".into()),
        Err(e) => Err(e.to_string()),
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
            let code = match e {
                ClientError::Api(e) => e.code.to_string(),
                ClientError::Timeout { .. } => "timeout".into(),
                ClientError::Unreachable { .. } => "unreachable".into(),
                e => e.to_string(),
            };
            ids.map(|id| (id, Err(code.clone()))).collect()
        }
    }
}

/// This machine's signature verification rates per core (tx/s): one by one, and in batches
/// of 1,024, over transactions from 64 keys, sampled for at least a second each.
fn verification_rates(chain: &str) -> (f64, f64) {
    let keys: Vec<SigningKey> = (0..64).map(|_| SigningKey::generate()).collect();
    let txs: Vec<SignedTransaction> = (0..4096)
        .map(|n| {
            let k = &keys[n % keys.len()];
            sign(
                chain,
                k,
                n as u64,
                Payload::Transfer {
                    to: k.public_key(),
                    amount: 1,
                },
            )
        })
        .collect();
    let timed = |f: &dyn Fn()| {
        let t = Instant::now();
        let mut rounds = 0u32;
        while rounds == 0 || t.elapsed() < Duration::from_secs(1) {
            f();
            rounds += 1;
        }
        f64::from(rounds) / t.elapsed().as_secs_f64()
    };
    let single = 512.0
        * timed(&|| {
            for tx in &txs[..512] {
                let _ = tx.verify_signature();
            }
        });
    let batch = txs.len() as f64
        * timed(&|| {
            for chunk in txs.chunks(1024) {
                let _ = verify_transactions(chunk.to_vec(), chain);
            }
        });
    (single, batch)
}

/// Runs the benchmark against nodes at `apis`, funding accounts from `admin`.
pub async fn run(apis: &[String], admin: SigningKey, s: Settings) -> anyhow::Result<()> {
    let clients = apis
        .iter()
        .map(|a| Client::new(a, Duration::from_secs(60)))
        .collect::<Result<Vec<_>, _>>()?;
    let first = &clients[0];
    let status = first.status().await.context("status")?;
    let chain = status.chain_id.clone();
    let n_nodes = apis.len();

    let usage_all = |nodes: &[(String, Option<u32>)]| -> Vec<Option<crate::procstat::Usage>> {
        nodes
            .iter()
            .map(|(_, p)| p.and_then(crate::procstat::usage))
            .collect()
    };
    let at_rest = usage_all(&s.nodes);
    // Setup: fresh member accounts, funded by the admin.
    let say = |m: &str| {
        if !s.json {
            eprintln!("{m}");
        }
    };
    say(&format!(
        "setting up {} funded member accounts…",
        s.accounts
    ));
    let admin_nonce = first.account(&admin.public_key()).await?.nonce;
    let keys: Vec<SigningKey> = (0..s.accounts).map(|_| SigningKey::generate()).collect();
    let per = s.txs.div_ceil(s.accounts.max(1)) as u64;
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
                amount: per + 10,
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

    // Pre-sign the load: `per` transfers from each account.
    let mut load: Vec<SignedTransaction> = Vec::with_capacity(s.txs);
    for n in 0..per {
        for k in &keys {
            if load.len() < s.txs {
                load.push(sign(
                    &chain,
                    k,
                    n,
                    Payload::Transfer {
                        to: admin.public_key(),
                        amount: 1,
                    },
                ));
            }
        }
    }
    let total = load.len();

    // Follow commits on node 0, on its own thread so submitters cannot delay it.
    let seen: Arc<Mutex<HashMap<TxId, (Instant, u32)>>> = Arc::default();
    let from = first.status().await?.height + 1;
    let follower = first.clone();
    let seen2 = seen.clone();
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
                let Event::Chain(ChainEvent::Block { txs, .. }) = ev else {
                    continue;
                };
                let now = Instant::now();
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
    let slot: HashMap<TxId, (cairn_crypto::PublicKey, u64)> = load
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
    let mut read_accounts: Vec<cairn_crypto::PublicKey> =
        keys.iter().map(SigningKey::public_key).collect();
    read_accounts.push(admin.public_key());
    let (reads, readers) =
        crate::readers::start(apis.to_vec(), read_accounts, s.readers, stop_reads.clone());
    let before_load = usage_all(&s.nodes);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..s.concurrency.max(1) {
        let (clients, queue, submitted, rejected, refused, bar) = (
            clients.clone(),
            queue.clone(),
            submitted.clone(),
            rejected.clone(),
            refused.clone(),
            bar.clone(),
        );
        let rate = s.rate;
        let batch = s.batch;
        workers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((req, (first, txs))) = next else {
                    return;
                };
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
    let mut first_refused: HashMap<cairn_crypto::PublicKey, u64> = HashMap::new();
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
    let read_secs = start.elapsed().as_secs_f64();
    let after_load = usage_all(&s.nodes);
    stop_reads.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.abort();
    }
    let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let (reads_ok, reads_failed, replayed) = (
        read(&reads.ok),
        read(&reads.failed),
        read(&reads.replayed_blocks),
    );
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
    if late > 0 && !s.json {
        eprintln!("note: {late} commits were confirmed by query, not seen on the event stream");
    }

    // Figures.
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
    let secs = last.duration_since(start).as_secs_f64().max(1e-9);
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
    let twice = commits.values().filter(|c| c.1 > 1).count();
    let missing = accepted.len() - committed.len();
    let stranded_committed = stranded
        .keys()
        .filter(|id| commits.contains_key(id))
        .count();

    // Agreement: every node at one height has one head.
    let mut heads = Vec::new();
    let target = first.status().await?.height;
    for client in &clients {
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
                bail!("{} did not reach height {target}", client.node());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let agree = heads.windows(2).all(|w| w[0] == w[1]);

    let (single, batch) = verification_rates(&chain);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    // Signature checks per transaction across the network: every PBFT replica verifies each
    // one; under Raft the node that admits it does, and the leader when that is another node
    // (followers trust the leader's blocks). Load is spread evenly over the nodes.
    let n = n_nodes as f64;
    let checks_per_tx = match status.consensus {
        cairn_ledger::ConsensusKind::Pbft => n,
        cairn_ledger::ConsensusKind::Raft => 1.0 + (n - 1.0) / n,
    };
    // The all-batch bound: those checks at this machine's batch rate on all its cores.
    let bound = cores * batch / checks_per_tx;
    let tps = committed.len() as f64 / secs;
    let rejected = rejected
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone();
    let per_node: Vec<serde_json::Value> = s
        .nodes
        .iter()
        .zip(at_rest.iter().zip(before_load.iter().zip(&after_load)))
        .map(|((name, _), (rest, (b, a)))| {
            let cpu = match (b, a) {
                (Some(b), Some(a)) => Some(a.cpu_s - b.cpu_s),
                _ => None,
            };
            json!({
                "node": name,
                "cpu_s": cpu,
                "cpu_us_per_tx": cpu.map(|c| c * 1e6 / committed.len().max(1) as f64),
                "rss_at_rest_mb": rest.map(|u| u.rss_mb),
                "rss_after_mb": a.map(|u| u.rss_mb),
                "rss_peak_mb": a.map(|u| u.peak_rss_mb),
            })
        })
        .collect();
    let report = json!({
        "nodes": n_nodes,
        "consensus": status.consensus,
        "offered": total,
        "accepted": accepted.len(),
        "rejected": rejected,
        "committed": committed.len(),
        "committed_more_than_once": twice,
        "acknowledged_but_missing": missing,
        "accepted_behind_a_refused_nonce": stranded.len(),
        "of_those_committed": stranded_committed,
        "seconds": secs,
        "submit_seconds": submit_secs,
        "submitted_tx_per_s": total as f64 / submit_secs,
        "committed_tx_per_s": tps,
        "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
        "verify_single_per_s": single,
        "verify_batch_per_s": batch,
        "cores": cores,
        "signature_checks_per_tx": checks_per_tx,
        "bound_tx_per_s": bound,
        "share_of_bound": tps / bound,
        "batch": s.batch,
        "per_node": per_node,
        "nodes_agree_at_height": target,
        "agree": agree,
        "readers": s.readers,
        "reads_ok": reads_ok,
        "reads_failed": reads_failed,
        "reads_per_s": reads_ok as f64 / read_secs,
        "replayed_blocks": replayed,
    });
    if s.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{n_nodes}-node {} network, {} transactions offered{}",
            status.consensus,
            total,
            if s.rate > 0.0 {
                format!(" at {} tx/s", s.rate)
            } else {
                " open loop".into()
            }
        );
        println!(
            "  committed      {} of {} accepted in {secs:.2} s: {tps:.0} tx/s",
            committed.len(),
            accepted.len()
        );
        println!(
            "  latency        p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms (submit to commit seen on node0)",
            pct(0.5),
            pct(0.95),
            pct(0.99)
        );
        println!(
            "  submitted      {:.0} tx/s achieved by the client",
            total as f64 / submit_secs
        );
        println!("  rejected       {}", json!(rejected));
        if !stranded.is_empty() {
            println!(
                "  stranded       {} accepted behind an earlier nonce that was rejected ({stranded_committed} of them committed); not counted above",
                stranded.len()
            );
        }
        if s.readers > 0 {
            println!(
                "  reads          {} readers: {reads_ok} answered ({:.0}/s), {reads_failed} failed, {replayed} blocks replayed from height 1",
                s.readers,
                reads_ok as f64 / read_secs
            );
        }
        println!(
            "  verification   single {single:.0}/s, batch {batch:.0}/s per core on this machine; {checks_per_tx:.2} checks per transaction across the network ({}) on {cores} shared cores: all-batch bound ~{bound:.0} tx/s, {:.0}% reached",
            match status.consensus {
                cairn_ledger::ConsensusKind::Pbft => "every replica checks each",
                cairn_ledger::ConsensusKind::Raft => "the admitting node and the leader",
            },
            100.0 * tps / bound
        );
        for v in &per_node {
            let f = |k: &str| v[k].as_f64().map_or("-".to_string(), |x| format!("{x:.0}"));
            println!(
                "  {:<14} {} µs CPU per committed tx, RSS {} MB at rest, {} MB after, {} MB peak",
                v["node"].as_str().unwrap_or("?"),
                f("cpu_us_per_tx"),
                f("rss_at_rest_mb"),
                f("rss_after_mb"),
                f("rss_peak_mb")
            );
        }
        println!(
            "  checks         {} committed twice, {} acknowledged but missing, nodes {} at height {target}",
            twice,
            missing,
            if agree { "agree" } else { "DISAGREE" }
        );
    }
    if twice > 0 || missing > 0 || !agree {
        bail!("the run broke an invariant (see above)");
    }
    Ok(())
}
