//! `cairn-testnet bench --soak N`: N transactions in rounds on one network, each round's rate,
//! latency and every node's memory, and a verdict: a long run must stay flat.
//!
//! Two ways a long run goes wrong, and what fails the soak:
//! - it slows down: the last round's commit rate more than 10% below the first round's;
//! - its memory keeps growing: every cache fills within the first half of the rounds, so a
//!   node whose resident memory in the last round is more than 10% above the most it used in
//!   the first half holds something that grows with the chain. With `--max-rss-mb`, any node
//!   above that bound at any sample fails it too.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use cairn_crypto::SigningKey;
use serde::Serialize;
use serde_json::json;

use super::{Settings, clients_for, round, usage_all};

/// The soak's own settings.
pub struct Soak {
    /// Transactions in all.
    pub total: usize,
    /// Transactions per round.
    pub round: usize,
    /// Fail when a node's resident memory goes above this, MB.
    pub max_rss_mb: Option<f64>,
}

/// One round's figures.
#[derive(Debug, Clone, Serialize)]
struct Round {
    round: usize,
    committed: usize,
    height: u64,
    tx_per_s: f64,
    latency_ms: round::Latency,
    /// Per node: resident memory at the round's end and the most sampled during it, MB.
    rss_end_mb: Vec<Option<f64>>,
    rss_max_mb: Vec<Option<f64>>,
    /// Per node: CPU time (all threads) over the round, per transaction committed in it, µs.
    /// A cost per transaction that grows from round to round shows here before the rate
    /// falls, and tells the nodes' share from the client's on a shared machine.
    cpu_us_per_tx: Vec<Option<f64>>,
}

/// Samples every node's resident memory every 500 ms until told to stop; the most per node.
fn sample_rss(
    nodes: Vec<(String, Option<u32>)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Option<f64>>> {
    tokio::spawn(async move {
        let mut most: Vec<Option<f64>> = vec![None; nodes.len()];
        loop {
            for (m, u) in most.iter_mut().zip(usage_all(&nodes)) {
                if let Some(u) = u {
                    *m = Some(m.map_or(u.rss_mb, |x: f64| x.max(u.rss_mb)));
                }
            }
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return most;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// Runs the soak against nodes at `apis`, funding accounts from `admin`.
pub async fn soak(apis: &[String], admin: SigningKey, s: Settings, k: Soak) -> anyhow::Result<()> {
    if k.round == 0 || k.total < k.round {
        bail!(
            "--soak {} with --round {}: a soak needs at least one whole round",
            k.total,
            k.round
        );
    }
    let clients = clients_for(apis)?;
    let first = &clients[0];
    let status = first.status().await?;
    let say = |m: String| {
        if !s.json {
            eprintln!("{m}");
        }
    };
    let rounds = k.total.div_ceil(k.round);
    say(format!(
        "soak: {} transactions in {rounds} rounds of {} on a {}-node {} network, {}; setting up {} accounts…",
        k.total,
        k.round,
        apis.len(),
        status.consensus,
        match s.window {
            0 => "no window".to_string(),
            w => format!("at most {w} in flight"),
        },
        s.accounts
    ));
    let per = k.total.div_ceil(s.accounts.max(1)) as u64;
    let mut acc = round::fund(first, admin, s.accounts, per).await?;
    let at_start = usage_all(&s.nodes);
    let mut done = Vec::<Round>::new();
    let mut broke = Vec::new();
    for r in 0..rounds {
        let txs = k.round.min(k.total - r * k.round);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = sample_rss(s.nodes.clone(), stop.clone());
        let before = usage_all(&s.nodes);
        let f = round::round(&clients, &mut acc, txs, &s).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let rss_max = sampler.await?;
        let f = f?;
        let after = usage_all(&s.nodes);
        let rss_end: Vec<Option<f64>> = after.iter().map(|u| u.map(|u| u.rss_mb)).collect();
        let cpu_us_per_tx: Vec<Option<f64>> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| match (b, a) {
                (Some(b), Some(a)) if f.committed > 0 => {
                    Some((a.cpu_s - b.cpu_s) * 1e6 / f.committed as f64)
                }
                _ => None,
            })
            .collect();
        if f.committed_twice > 0 || f.missing > 0 {
            broke.push(format!(
                "round {}: {} committed twice, {} acknowledged but missing",
                r + 1,
                f.committed_twice,
                f.missing
            ));
        }
        let height = first.status().await?.height;
        let line = Round {
            round: r + 1,
            committed: f.committed,
            height,
            tx_per_s: f.tps(),
            latency_ms: f.latency,
            rss_end_mb: rss_end,
            rss_max_mb: rss_max,
            cpu_us_per_tx,
        };
        say(format!(
            "  round {:>3}/{rounds}  {:>7} committed  {:>6.0} tx/s  p50 {:>4.0} ms  p99 {:>5.0} ms  height {:>7}  RSS max {}  CPU {} µs/tx",
            line.round,
            line.committed,
            line.tx_per_s,
            line.latency_ms.p50,
            line.latency_ms.p99,
            line.height,
            mbs(&line.rss_max_mb),
            per_node(&line.cpu_us_per_tx),
        ));
        done.push(line);
    }
    let (target, agree) = round::agree(&clients).await?;
    if !agree {
        broke.push(format!(
            "the nodes hold different blocks at height {target}"
        ));
    }

    // The verdict.
    let (Some(first_r), Some(last_r)) = (done.first(), done.last()) else {
        bail!("no round ran");
    };
    let ratio = last_r.tx_per_s / first_r.tx_per_s.max(1e-9);
    let mut flat = Vec::new();
    if ratio < 0.9 {
        flat.push(format!(
            "the last round's rate ({:.0} tx/s) is {:.0}% below the first round's ({:.0} tx/s)",
            last_r.tx_per_s,
            100.0 * (1.0 - ratio),
            first_r.tx_per_s
        ));
    }
    let half = &done[..done.len().div_ceil(2)];
    for (i, (name, _)) in s.nodes.iter().enumerate() {
        let early = half
            .iter()
            .filter_map(|r| r.rss_max_mb[i])
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        if done.len() >= 2
            && let (Some(early), Some(last)) = (early, last_r.rss_max_mb[i])
            && last > early * 1.10
        {
            flat.push(format!(
                "{name}'s memory still grows: {last:.0} MB in the last round, {early:.0} MB at most in the first half"
            ));
        }
        if let Some(bound) = k.max_rss_mb {
            let most = done
                .iter()
                .filter_map(|r| r.rss_max_mb[i])
                .fold(0.0, f64::max);
            if most > bound {
                flat.push(format!(
                    "{name} used {most:.0} MB, above --max-rss-mb {bound:.0}"
                ));
            }
        }
    }
    let report = json!({
        "nodes": apis.len(),
        "consensus": status.consensus,
        "total": k.total,
        "round": k.round,
        "window": s.window,
        "rss_at_start_mb": at_start.iter().map(|u| u.map(|u| u.rss_mb)).collect::<Vec<_>>(),
        "rounds": done,
        "last_to_first_rate": ratio,
        "nodes_agree_at_height": target,
        "agree": agree,
        "invariants_broken": broke,
        "not_flat": flat,
    });
    if s.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "soak of {} transactions on a {}-node {} network: last round at {:.0}% of the first round's rate; RSS at start {}, in the last round {}",
            k.total,
            apis.len(),
            status.consensus,
            100.0 * ratio,
            mbs(&at_start
                .iter()
                .map(|u| u.map(|u| u.rss_mb))
                .collect::<Vec<_>>()),
            mbs(&last_r.rss_max_mb),
        );
        for line in broke.iter().chain(&flat) {
            println!("  FAILED: {line}");
        }
        if broke.is_empty() && flat.is_empty() {
            println!("  flat: rate within 10%, memory not growing; nodes agree at height {target}");
        }
    }
    if !broke.is_empty() {
        bail!("the soak broke an invariant (see above)");
    }
    if !flat.is_empty() {
        bail!("the soak did not stay flat (see above)");
    }
    Ok(())
}

/// Per-node megabytes, for people.
fn mbs(v: &[Option<f64>]) -> String {
    per_node(v) + " MB"
}

/// Per-node figures, rounded, `-` for a node not measured.
fn per_node(v: &[Option<f64>]) -> String {
    v.iter()
        .map(|m| m.map_or("-".to_string(), |x| format!("{x:.0}")))
        .collect::<Vec<_>>()
        .join("/")
}
