//! `cairn-testnet bench`: load a running testnet and measure it, once ([`run`]) or in rounds
//! over a long run ([`soak::soak`]).

mod round;
pub mod soak;

use std::time::{Duration, Instant};

use anyhow::bail;
use cairn_api::client::Client;
use cairn_crypto::SigningKey;
use cairn_ledger::{Payload, SignedTransaction, Transaction, verify_transactions};
use serde_json::json;

use crate::procstat::Usage;

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
    /// Most transactions sent and not yet seen committed (0: no limit, the mempools take the
    /// whole load at once).
    pub window: usize,
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

/// Each node's usage now (`None` where this machine does not run it).
fn usage_all(nodes: &[(String, Option<u32>)]) -> Vec<Option<Usage>> {
    nodes
        .iter()
        .map(|(_, p)| p.and_then(crate::procstat::usage))
        .collect()
}

fn clients_for(apis: &[String]) -> anyhow::Result<Vec<Client>> {
    Ok(apis
        .iter()
        .map(|a| Client::new(a, Duration::from_secs(60)))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Runs the benchmark against nodes at `apis`, funding accounts from `admin`.
pub async fn run(apis: &[String], admin: SigningKey, s: Settings) -> anyhow::Result<()> {
    let clients = clients_for(apis)?;
    let first = &clients[0];
    let status = first.status().await?;
    let n_nodes = apis.len();
    let at_rest = usage_all(&s.nodes);
    if !s.json {
        eprintln!("setting up {} funded member accounts…", s.accounts);
    }
    let per = s.txs.div_ceil(s.accounts.max(1)) as u64;
    let mut acc = round::fund(first, admin, s.accounts, per).await?;
    let before_load = usage_all(&s.nodes);
    let r = round::round(&clients, &mut acc, s.txs, &s).await?;
    let after_load = usage_all(&s.nodes);
    if r.late > 0 && !s.json {
        eprintln!(
            "note: {} commits were confirmed by query, not seen on the event stream",
            r.late
        );
    }
    let (target, agree) = round::agree(&clients).await?;

    let (single, batch) = verification_rates(&acc.chain);
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
    let tps = r.tps();
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
                "cpu_us_per_tx": cpu.map(|c| c * 1e6 / r.committed.max(1) as f64),
                "rss_at_rest_mb": rest.map(|u| u.rss_mb),
                "rss_after_mb": a.map(|u| u.rss_mb),
                "rss_peak_mb": a.map(|u| u.peak_rss_mb),
            })
        })
        .collect();
    let report = json!({
        "nodes": n_nodes,
        "consensus": status.consensus,
        "offered": r.offered,
        "accepted": r.accepted,
        "rejected": r.rejected,
        "committed": r.committed,
        "committed_more_than_once": r.committed_twice,
        "acknowledged_but_missing": r.missing,
        "accepted_behind_a_refused_nonce": r.stranded,
        "of_those_committed": r.stranded_committed,
        "seconds": r.secs,
        "submit_seconds": r.submit_secs,
        "submitted_tx_per_s": r.offered as f64 / r.submit_secs,
        "committed_tx_per_s": tps,
        "latency_ms": r.latency,
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
        "reads_ok": r.reads_ok,
        "reads_failed": r.reads_failed,
        "reads_per_s": r.reads_ok as f64 / r.read_secs,
        "replayed_blocks": r.replayed_blocks,
    });
    if s.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{n_nodes}-node {} network, {} transactions offered{}",
            status.consensus,
            r.offered,
            if s.rate > 0.0 {
                format!(" at {} tx/s", s.rate)
            } else {
                " open loop".into()
            }
        );
        println!(
            "  committed      {} of {} accepted in {:.2} s: {tps:.0} tx/s",
            r.committed, r.accepted, r.secs
        );
        println!(
            "  latency        p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms (submit to commit seen on node0)",
            r.latency.p50, r.latency.p95, r.latency.p99
        );
        println!(
            "  submitted      {:.0} tx/s achieved by the client",
            r.offered as f64 / r.submit_secs
        );
        println!("  rejected       {}", json!(r.rejected));
        if r.stranded > 0 {
            println!(
                "  stranded       {} accepted behind an earlier nonce that was rejected ({} of them committed); not counted above",
                r.stranded, r.stranded_committed
            );
        }
        if s.readers > 0 {
            println!(
                "  reads          {} readers: {} answered ({:.0}/s), {} failed, {} blocks replayed from height 1",
                s.readers,
                r.reads_ok,
                r.reads_ok as f64 / r.read_secs,
                r.reads_failed,
                r.replayed_blocks
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
            r.committed_twice,
            r.missing,
            if agree { "agree" } else { "DISAGREE" }
        );
    }
    if r.committed_twice > 0 || r.missing > 0 || !agree {
        bail!("the run broke an invariant (see above)");
    }
    Ok(())
}
