//! `cairn-testnet chaos`: load from many accounts to every node, seeded faults, then a heal,
//! a wait for the nodes to agree, and the checker over every node's whole chain.

mod check;
mod inject;
mod load;
mod model;
mod nemesis;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use cairn_api::client::Client;
use cairn_cli::keystore::Keystore;
use cairn_crypto::SigningKey;
use cairn_ledger::{Payload, Role, Transaction};

use crate::hosts::{Hosts, splitmix};
use crate::{Engine, State};
use inject::{converge, heal_all, inject, undo};
use load::{Answer, History, Load};
use nemesis::{Kind, Schedule};

/// `chaos` settings.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// How long faults and load run (then heal, converge, check).
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// Seeds the fault schedule and the clients' choices (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Fault kinds to draw from, comma-separated (default: every kind this machine and
    /// testnet can do; the report says what was skipped and why).
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<Kind>,
    /// Accounts sending, one transaction in flight each.
    #[arg(long, default_value_t = 32)]
    accounts: usize,
    /// Seconds to wait, after the heal, for every node to agree with an empty mempool.
    #[arg(long, default_value_t = 120)]
    converge_timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// One fault as it happened.
#[derive(Debug, Clone, serde::Serialize)]
struct Event {
    kind: &'static str,
    what: String,
    beyond_tolerance: bool,
    start_s: f64,
    end_s: f64,
    /// Seconds from the undo until the chain grew again (`None`: it had not by the next fault).
    recovery_s: Option<f64>,
}

/// What `chaos` prints.
#[derive(Debug, serde::Serialize)]
struct Report {
    engine: String,
    seed: u64,
    minutes: f64,
    faults_used: Vec<&'static str>,
    skipped: Vec<String>,
    events: Vec<Event>,
    faults_by_kind: BTreeMap<&'static str, usize>,
    /// Answers clients got, by kind (`refused:CODE`, `unknown:REASON`).
    answers: BTreeMap<String, usize>,
    /// Transactions signed, and of them committed.
    signed: usize,
    committed: usize,
    /// Commits a client learned by asking rather than from its submission's answer.
    seen_committed_by_asking: usize,
    /// Periods of 2 s or more with no block, and the longest.
    stalls: usize,
    longest_stall_s: f64,
    converged_after_s: Option<f64>,
    height: u64,
    blocks_checked: u64,
    txs_checked: u64,
    accounts_checked: usize,
    violations: Vec<String>,
}

fn tolerance(engine: Engine, n: usize) -> usize {
    match engine {
        Engine::Raft => (n.saturating_sub(1)) / 2,
        Engine::Pbft => (n.saturating_sub(1)) / 3,
    }
}

/// The fault kinds usable here, and why the others are not.
fn usable(hosts: &Hosts, asked: &[Kind]) -> (Vec<Kind>, Vec<String>) {
    let explicit = !asked.is_empty();
    let asked: Vec<Kind> = if explicit {
        asked.to_vec()
    } else {
        vec![
            Kind::Kill,
            Kind::Pause,
            Kind::Partition,
            Kind::Loss,
            Kind::Netem,
            Kind::Clock,
        ]
    };
    let mut use_ = Vec::new();
    let mut skipped = Vec::new();
    let netns = matches!(hosts, Hosts::Netns { .. });
    for k in asked {
        let why = match k {
            Kind::Partition | Kind::Loss if !netns => {
                Some("needs nodes as hosts (`init --hosts netns`, as root)".to_string())
            }
            Kind::Partition | Kind::Loss if !crate::faults::iptables_available() => {
                Some("needs iptables (apt-get install iptables)".into())
            }
            Kind::Netem if !netns => Some("needs nodes as hosts (`init --hosts netns`)".into()),
            Kind::Netem if !crate::faults::netem_available() => {
                Some("this kernel has no netem queueing discipline".into())
            }
            Kind::Clock if faketime_lib().is_none() => {
                Some("needs libfaketime (apt-get install faketime)".into())
            }
            _ => None,
        };
        match why {
            None => use_.push(k),
            Some(why) => skipped.push(format!("{}: {why}", k.name())),
        }
    }
    (use_, skipped)
}

/// libfaketime's preload library, if installed.
pub fn faketime_lib() -> Option<std::path::PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
}

/// Funds `keys` as members from `admin`, waiting for the last.
async fn fund(
    client: &Client,
    chain: &str,
    admin: &SigningKey,
    keys: &[SigningKey],
) -> anyhow::Result<()> {
    let mut nonce = client.account(&admin.public_key()).await?.nonce;
    let mut txs = Vec::new();
    for k in keys {
        for payload in [
            Payload::AddMember {
                account: k.public_key(),
                role: Role::User,
            },
            Payload::Transfer {
                to: k.public_key(),
                amount: 10_000_000,
            },
        ] {
            txs.push(
                Transaction {
                    chain_id: chain.to_string(),
                    sender: admin.public_key(),
                    nonce,
                    payload,
                }
                .sign(admin),
            );
            nonce += 1;
        }
    }
    // In waves within the mempool's nonce gap, each committed before the next goes.
    for wave in txs.chunks(200) {
        let answer = client
            .submit_batch(wave, true)
            .await
            .map_err(|e| anyhow!("funding the load accounts: {e}"))?;
        if let Some(e) = answer.results.iter().find_map(|r| r.error.as_ref()) {
            return Err(anyhow!(
                "funding the load accounts: {}: {}",
                e.code,
                e.message
            ));
        }
    }
    Ok(())
}

/// Runs chaos on the testnet in `dir`. `Ok(false)`: the checker found violations.
pub async fn run(dir: &Path, st: &State, s: Settings) -> anyhow::Result<bool> {
    if !(s.minutes.is_finite() && s.minutes > 0.0 && s.minutes <= 7.0 * 24.0 * 60.0) {
        return Err(anyhow!(
            "--minutes must be a positive number of minutes (at most a week), not {}",
            s.minutes
        ));
    }
    let n = st.nodes.len();
    let f = tolerance(st.consensus, n);
    let seed = s.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let (kinds, skipped) = usable(&st.hosts, &s.faults);
    let say = |m: String| {
        if !s.json {
            eprintln!("{m}");
        }
    };
    say(format!(
        "chaos: {n}-node {:?}, tolerates {f}; seed {seed}; faults {}",
        st.consensus,
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
    ));
    for sk in &skipped {
        say(format!("  skipped {sk}"));
    }
    crate::procs::wait_ready(dir, &st.nodes, Duration::from_secs(60)).await?;
    let clients: Vec<Client> = st
        .nodes
        .iter()
        .map(|nd| Client::new(&nd.api(), Duration::from_secs(10)))
        .collect::<Result<_, _>>()?;
    let genesis = clients[0].genesis().await.context("reading the genesis")?;
    let chain = genesis.chain_id.clone();
    let admin = Keystore::new(dir.join("accounts"))
        .load("account0")?
        .open(|| Err("account0 must be the unencrypted demo admin".into()))?;
    let keys: Vec<SigningKey> = (0..s.accounts.max(2))
        .map(|_| SigningKey::generate())
        .collect();
    say(format!("  funding {} load accounts…", keys.len()));
    fund(&clients[0], &chain, &admin, &keys).await?;

    let load = Arc::new(Load {
        chain: chain.clone(),
        clients: clients.clone(),
        up: Arc::new(Mutex::new(vec![true; n])),
        lives: Arc::new(Mutex::new(vec![0; n])),
        history: Arc::new(Mutex::new(History::default())),
        stop: Arc::new(AtomicBool::new(false)),
        began: Instant::now(),
        accounts: keys.iter().map(SigningKey::public_key).collect(),
    });
    let mut tasks = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let l = load.clone();
        tasks.push(tokio::spawn(l.client(
            k.clone(),
            0,
            splitmix(seed ^ (i as u64 + 1)),
        )));
    }
    // The chain's height over time, as the highest any node reports.
    let progress: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let monitor = {
        let (progress, stop, began) = (progress.clone(), load.stop.clone(), load.began);
        let apis: Vec<String> = st.nodes.iter().map(crate::NodeInfo::api).collect();
        tokio::spawn(async move {
            let quick: Vec<Client> = apis
                .iter()
                .filter_map(|a| Client::new(a, Duration::from_millis(800)).ok())
                .collect();
            while !stop.load(Ordering::Relaxed) {
                let mut best = 0;
                for c in &quick {
                    if let Ok(st) = c.status().await {
                        best = best.max(st.height);
                    }
                }
                if let Ok(mut p) = progress.lock()
                    && p.last().is_none_or(|&(_, h)| best > h)
                {
                    p.push((began.elapsed().as_secs_f64(), best));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    // The nemesis.
    let mut schedule = Schedule::new(seed, n, f, &kinds);
    let mut events: Vec<Event> = Vec::new();
    let mut restarts: Vec<(usize, Duration)> = Vec::new();
    let deadline = load.began + Duration::from_secs_f64(s.minutes * 60.0);
    let mut undo_heights = Vec::new();
    // Ctrl-C ends the run early, and the faults in force are still undone below.
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
            }
        });
    }
    // A first stretch without faults, so the run shows the network working.
    nap(
        (Instant::now() + Duration::from_secs(3)).min(deadline),
        &interrupted,
    )
    .await;
    let mut failure = None;
    while Instant::now() + Duration::from_secs(2) < deadline && !interrupted.load(Ordering::Relaxed)
    {
        let Some(step) = schedule.step() else {
            nap(deadline, &interrupted).await;
            break;
        };
        let start = load.began.elapsed();
        say(format!(
            "  {:>6.1} s  {}{} for {:.1} s",
            start.as_secs_f64(),
            step.fault.describe(),
            if step.beyond {
                " (beyond tolerance)"
            } else {
                ""
            },
            step.hold.as_secs_f64()
        ));
        if let Err(e) = inject(dir, st, &load, &step.fault, &mut restarts).await {
            failure = Some(e.context(format!("injecting {}", step.fault.describe())));
            break;
        }
        if let nemesis::Fault::Clock { node, .. } = step.fault {
            wait_rejoin(st, node, &say).await;
        }
        nap((Instant::now() + step.hold).min(deadline), &interrupted).await;
        if let Err(e) = undo(dir, st, &load, &step.fault, &mut restarts).await {
            failure = Some(e.context(format!("undoing {}", step.fault.describe())));
            break;
        }
        for i in step.fault.restarted() {
            wait_rejoin(st, i, &say).await;
        }
        let end = load.began.elapsed();
        let h = progress
            .lock()
            .ok()
            .and_then(|p| p.last().map(|&(_, h)| h))
            .unwrap_or(0);
        undo_heights.push(h);
        events.push(Event {
            kind: step.fault.kind().name(),
            what: step.fault.describe(),
            beyond_tolerance: step.beyond,
            start_s: start.as_secs_f64(),
            end_s: end.as_secs_f64(),
            recovery_s: None,
        });
        nap((Instant::now() + step.quiet).min(deadline), &interrupted).await;
    }

    // Stop the load, heal everything, and wait for the nodes to agree.
    load.stop.store(true, Ordering::Relaxed);
    let stopped_s = load.began.elapsed().as_secs_f64();
    for mut t in tasks {
        // A client still waiting on an answer after this is cut off: nothing it sends may
        // land during the heal and the checks.
        if tokio::time::timeout(Duration::from_secs(15), &mut t)
            .await
            .is_err()
        {
            t.abort();
        }
    }
    let _ = monitor.await;
    say("  load stopped; healing".into());
    heal_all(dir, st, &load, &mut restarts).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    if interrupted.load(Ordering::Relaxed) {
        return Err(anyhow!(
            "interrupted: the load stopped and every fault was undone; nothing was checked"
        ));
    }
    let converge_start = Instant::now();
    let converged = converge(&clients, Duration::from_secs(s.converge_timeout)).await;
    let converged_after_s = converged.then(|| converge_start.elapsed().as_secs_f64());
    say(format!(
        "  {}; checking every node's chain…",
        match converged_after_s {
            Some(t) => format!("converged after {t:.1} s"),
            None => format!("NOT converged within {} s", s.converge_timeout),
        }
    ));

    let history = std::mem::take(&mut *load.history.lock().map_err(|_| anyhow!("history lock"))?);
    let load_accounts: HashSet<_> = keys.iter().map(SigningKey::public_key).collect();
    let findings = check::check(
        &clients,
        &check::Facts {
            genesis: &genesis,
            history: &history,
            load_accounts: &load_accounts,
            restarts: &restarts,
        },
    )
    .await;

    // Figures.
    let progress = progress.lock().map(|p| p.clone()).unwrap_or_default();
    for (e, h) in events.iter_mut().zip(undo_heights) {
        e.recovery_s = progress
            .iter()
            .find(|&&(t, ph)| t >= e.end_s && ph > h)
            .map(|&(t, _)| t - e.end_s);
    }
    // Gaps between height increases, and the one from the last increase to the load's end.
    let mut gaps: Vec<f64> = progress.windows(2).map(|w| w[1].0 - w[0].0).collect();
    if let Some(&(t, _)) = progress.last() {
        gaps.push((stopped_s - t).max(0.0));
    }
    let mut answers = BTreeMap::new();
    for a in &history.attempts {
        let key = match &a.answer {
            Answer::Committed { .. } => "committed".to_string(),
            Answer::Acked => "acknowledged".to_string(),
            Answer::Refused(c) => format!("refused:{c}"),
            Answer::Unknown(r) => format!("unknown:{r}"),
        };
        *answers.entry(key).or_insert(0) += 1;
    }
    let mut faults_by_kind = BTreeMap::new();
    for e in &events {
        *faults_by_kind.entry(e.kind).or_insert(0) += 1;
    }
    let mut violations = findings.violations;
    if converged_after_s.is_none() {
        violations.insert(
            0,
            format!(
                "the nodes did not agree (same height and head, empty mempools) within {} s of the heal",
                s.converge_timeout
            ),
        );
    }
    let report = Report {
        engine: format!("{:?}", st.consensus).to_lowercase(),
        seed,
        minutes: s.minutes,
        faults_used: kinds.iter().map(|k| k.name()).collect(),
        skipped,
        events,
        faults_by_kind,
        answers,
        signed: history.signed.len(),
        committed: findings.committed_signed,
        seen_committed_by_asking: history.seen_committed,
        stalls: gaps.iter().filter(|&&g| g >= 2.0).count(),
        longest_stall_s: gaps.iter().copied().fold(0.0, f64::max),
        converged_after_s,
        height: findings.height,
        blocks_checked: findings.blocks,
        txs_checked: findings.txs,
        accounts_checked: findings.accounts_checked,
        violations,
    };
    print_report(&report, s.json)?;
    Ok(report.violations.is_empty())
}

fn print_report(r: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "chaos report: {} for {:.1} min, seed {} (replay: --seed {})",
        r.engine, r.minutes, r.seed, r.seed
    );
    println!("  faults used: {}", r.faults_used.join(", "));
    for sk in &r.skipped {
        println!("  skipped {sk}");
    }
    let kinds: Vec<String> = r
        .faults_by_kind
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let beyond = r.events.iter().filter(|e| e.beyond_tolerance).count();
    println!(
        "  faults injected: {} ({}), {beyond} beyond tolerance",
        r.events.len(),
        kinds.join(", ")
    );
    let recoveries: Vec<f64> = r.events.iter().filter_map(|e| e.recovery_s).collect();
    if !recoveries.is_empty() {
        let max = recoveries.iter().copied().fold(0.0, f64::max);
        let mean = recoveries.iter().sum::<f64>() / recoveries.len() as f64;
        println!(
            "  recovery after a fault is undone (until the chain grows): mean {mean:.1} s, max {max:.1} s"
        );
    }
    println!(
        "  stalls (2 s or more without a block): {}, longest {:.1} s",
        r.stalls, r.longest_stall_s
    );
    println!(
        "  transactions: {} signed, {} committed ({} learnt by asking)",
        r.signed, r.committed, r.seen_committed_by_asking
    );
    let answers: Vec<String> = r.answers.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  answers: {}", answers.join(", "));
    match r.converged_after_s {
        Some(t) => println!("  converged {t:.1} s after the heal"),
        None => println!("  did NOT converge after the heal"),
    }
    println!(
        "  checked: height {}, {} blocks, {} transactions, {} accounts on every node",
        r.height, r.blocks_checked, r.txs_checked, r.accounts_checked
    );
    if r.violations.is_empty() {
        println!("  0 violations");
    } else {
        println!("  {} VIOLATIONS:", r.violations.len());
        for v in &r.violations {
            println!("    - {v}");
        }
    }
    Ok(())
}

/// Waits for a restarted node to catch up before the nemesis goes on (30 s at most).
async fn wait_rejoin(st: &State, i: usize, say: &impl Fn(String)) {
    if !inject::rejoin(st, i, Duration::from_secs(30)).await {
        say(format!(
            "  node{i} had not caught up 30 s after its restart; going on"
        ));
    }
}

/// Sleeps until `until`, or until `interrupted` is set.
async fn nap(until: Instant, interrupted: &AtomicBool) {
    while Instant::now() < until && !interrupted.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}
