//! Starting, supervising and stopping a node.
//!
//! Start-up refuses, with a message that says what to do: a key that is neither a genesis
//! validator nor listed in `p2p.observers`; a store of another chain or schema version; a
//! store whose write-ahead log is damaged or lost acknowledged writes; consensus state that
//! does not load.
//!
//! Three tasks run: the network, the consensus core, the API. [`run`] watches all three: if one
//! ends (a [`Fatal`] error in the core, a panic anywhere), the node logs the cause, fails
//! `/health`, stops the others and returns an error, so the process exits non-zero and a
//! supervisor can restart it. On SIGINT or SIGTERM it stops in order: the API refuses new
//! submissions, the core answers what was queued and hands every admitted transaction to the
//! network, the network gets a moment to send it, then everything stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_consensus::pbft::Pbft;
use cairn_consensus::raft::Raft;
use cairn_crypto::{PublicKey, SigningKey};
use cairn_ledger::{ConsensusKind, Genesis, Ledger, RocksReader, RocksStore, StoreError};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};

use crate::api::{AppState, Failure, READ_QUEUE, READER_THREADS, STREAMS_MAX, router, server};
use crate::config::{Config, Home, read_key};
use crate::core::{Core, CoreParts};
use crate::engines::NodeEngine;
use crate::fatal::Fatal;
use crate::metrics::Metrics;
use crate::read_pool::ReadPool;
use crate::views::{Published, StatusView};

/// How long the network may keep sending after the core stopped (the last gossip).
const NETWORK_DRAIN: Duration = Duration::from_millis(500);

/// What a node needs before it opens anything, checked.
pub struct Preflight {
    /// The node's key.
    pub key: SigningKey,
    /// The chain.
    pub genesis: Genesis,
    /// `p2p.observers`, parsed.
    pub observers: Vec<PublicKey>,
}

impl Preflight {
    /// Whether this node is a genesis validator (else an observer).
    pub fn is_validator(&self) -> bool {
        let me = self.key.public_key();
        self.genesis.validators.iter().any(|v| v.public_key == me)
    }
}

/// Reads and checks the key and the genesis against the (already checked) config: what `run`
/// does before opening the store, and all of what `config validate` does.
pub fn preflight(home: &Home, config: &Config) -> anyhow::Result<Preflight> {
    let key = read_key(&home.key())?;
    let genesis = Genesis::load(&home.genesis())
        .with_context(|| format!("reading {}", home.genesis().display()))?;
    let me = key.public_key();
    let mut observers = Vec::new();
    for o in &config.p2p.observers {
        observers.push(o.parse::<PublicKey>().map_err(|_| {
            anyhow::anyhow!(
                "{}: p2p.observers: {o:?} is not a public key (64 hex digits)",
                home.config().display()
            )
        })?);
    }
    let p = Preflight {
        key,
        genesis,
        observers,
    };
    // A validator added on the running chain is in its store's set, not the genesis one: that
    // is checked once the store is open (`run`). A node without a store must be known here.
    if !p.is_validator() && !p.observers.contains(&me) && !home.data().exists() {
        bail!("{}", outsider(home, &me));
    }
    Ok(p)
}

/// Why a key that neither the chain nor the config knows cannot run.
fn outsider(home: &Home, me: &PublicKey) -> String {
    format!(
        "this node's key {me} is neither a validator in {} nor listed in p2p.observers in {}: \
         the validators would refuse its connections. Run it with a validator's key, or add \
         the key to p2p.observers here and on the validators (which must allow it). A \
         validator joining a running chain starts this way too: list its key in p2p.observers \
         here; the validators admit it once the change adding it is approved, and it takes \
         part from the boundary where the change takes effect",
        home.genesis().display(),
        home.config().display()
    )
}

/// Runs the node in `home` until SIGINT or SIGTERM, or until a part of it fails.
pub async fn run(home: Home, config: Config) -> anyhow::Result<()> {
    let Preflight {
        key,
        genesis,
        observers,
    } = preflight(&home, &config)?;
    let me = key.public_key();
    let store = open_store(&home, &genesis, &config)?;
    let reader = store.reader();
    let ledger = Ledger::open(store, genesis.clone()).context("opening the ledger")?;
    let known = ledger
        .validators_in_force()
        .list()
        .iter()
        .any(|v| v.public_key == me)
        || genesis.validators.iter().any(|v| v.public_key == me)
        || observers.contains(&me)
        || ledger
            .pending_change()
            .context("reading the pending validator change")?
            .is_some_and(|p| p.validators.iter().any(|v| v.public_key == me));
    if !known {
        bail!("{}", outsider(&home, &me));
    }
    tracing::info!(
        chain = %genesis.chain_id,
        consensus = %format!("{:?}", genesis.consensus.kind()).to_lowercase(),
        height = ledger.tip().height,
        key = %me,
        "starting"
    );
    let start = Start {
        home,
        config,
        key,
        genesis,
        ledger,
        reader,
        observers,
    };
    match start.genesis.consensus.kind() {
        ConsensusKind::Raft => run_with::<Raft>(start).await,
        ConsensusKind::Pbft => run_with::<Pbft>(start).await,
    }
}

/// Opens the store, turning refusals into what an operator should do.
fn open_store(home: &Home, genesis: &Genesis, config: &Config) -> anyhow::Result<RocksStore> {
    let data = home.data();
    let recover = format!(
        "To recover: move {} aside (keep it for inspection) and start the node again; it \
         re-syncs the chain from its peers. A validator started this way has no record of \
         the votes it cast before, so do it while the rest of the network is healthy",
        data.display()
    );
    let memory = cairn_ledger::StoreMemory {
        memtable_bytes: config.storage.memtable_bytes,
        block_cache_bytes: config.storage.block_cache_bytes,
    };
    match RocksStore::open_with(&data, &genesis.hash(), memory) {
        Ok(s) => Ok(s),
        Err(e @ (StoreError::RolledBack { .. } | StoreError::Corrupt(_))) => {
            bail!("refusing to start: {e}. {recover}")
        }
        Err(e @ StoreError::UnsupportedSchema { .. }) => {
            bail!("refusing to start on {}: {e}. {recover}", data.display())
        }
        Err(e) => Err(e).with_context(|| format!("opening the store in {}", data.display())),
    }
}

struct Start {
    home: Home,
    config: Config,
    key: SigningKey,
    genesis: Genesis,
    ledger: Ledger<RocksStore>,
    reader: RocksReader,
    observers: Vec<PublicKey>,
}

/// The engine of the set in force, restored from the store (`None` on an observer), and
/// whether its state was reset because the set changed since it was written.
fn restore<P: NodeEngine>(s: &mut Start) -> anyhow::Result<(Option<P>, bool)> {
    let set = s.ledger.validators_in_force().clone();
    let data = s.home.data();
    let loaded = crate::core::epoch::load::<P>(s.ledger.store_mut(), set.since())
        .with_context(|| format!("the consensus state in {} does not load", data.display()))?;
    // A reset state starts where its set does; the engine learns the tip by sync.
    let height = if loaded.fresh {
        set.since()
    } else {
        s.ledger.tip().height
    };
    let engine = crate::core::epoch::engine::<P>(
        &s.genesis,
        &set,
        &s.key,
        &loaded.durable,
        height,
        &s.config.consensus,
    );
    Ok((engine, loaded.fresh))
}

async fn run_with<P: NodeEngine>(mut s: Start) -> anyhow::Result<()> {
    let (engine, fresh) = restore::<P>(&mut s)?;
    let Start {
        home,
        config,
        key,
        genesis,
        ledger,
        reader,
        observers,
    } = s;
    let set = ledger.validators_in_force().clone();
    let tree = ledger.published_tree();
    let snapshots = crate::snapshots::Snapshots::new(home.0.join("snapshots"));
    let genesis_hash = genesis.hash();
    let changes = crate::core::epoch::changes_view(&ledger)
        .context("reading the pending validator change")?;
    let pending = changes.pending.as_ref().map(|p| &p.change);
    let names: HashMap<PublicKey, String> = crate::core::epoch::names(&genesis, &set, pending);

    // The network: the validators in force and those a pending change adds (and configured
    // observers) only; the core keeps the list up to date as the set changes.
    let mut net_cfg = cairn_p2p::NetworkConfig::new(&genesis.chain_id, key.to_seed());
    net_cfg.listen = vec![config.p2p.listen.clone()];
    net_cfg.mdns = config.p2p.mdns;
    net_cfg.max_direct_bytes = crate::wire::DIRECT_BYTES_MAX;
    net_cfg.max_gossip_bytes = crate::wire::GOSSIP_BYTES_MAX;
    net_cfg.max_sync_response_bytes = crate::wire::SYNC_RESPONSE_BYTES_MAX;
    net_cfg.allowed = crate::core::epoch::allowed(&set, pending, &observers);
    net_cfg.names = names.clone();
    // Where the others run is configuration: the genesis names them by key only.
    net_cfg.bootstrap = config.p2p.bootstrap.clone();
    if net_cfg.bootstrap.is_empty() && !config.p2p.mdns && set.list().len() > 1 {
        tracing::warn!(
            "no peers to dial: [p2p] bootstrap is empty and mDNS is off, so this node waits \
             for the others to dial it; list their addresses (/ip4/<host>/tcp/<port>/p2p/<peer \
             id>) under [p2p] bootstrap"
        );
    }
    let (net, net_events, net_loop) = cairn_p2p::start(net_cfg)?;
    let mut net_task = tokio::spawn(net_loop.run());

    let metrics = Arc::new(Metrics::new());
    let reads = ReadPool::start(READER_THREADS, READ_QUEUE).context("starting reader threads")?;
    let (req_tx, req_rx) = mpsc::channel(1024);
    let (events, _) = broadcast::channel(4096);
    let tip = ledger.tip();
    let (status_tx, status_rx) = watch::channel(Published {
        at: None,
        validators: set.list().into(),
        changes: Arc::new(changes.clone()),
        view: StatusView {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            moniker: config.moniker.clone(),
            version: crate::VERSION.to_string(),
            public_key: key.public_key(),
            consensus: genesis.consensus.kind(),
            height: tip.height,
            head_hash: tip.hash,
            state_root: tip.state_root,
            head_time_ms: tip.timestamp_ms,
            role: crate::views::node_role(engine.as_ref().map(|e| e.status().role)),
            round: 0,
            leader: None,
            peers: 0,
            heard: 0,
            validators: set.list().len(),
            mempool_txs: 0,
            mempool_bytes: 0,
            syncing: false,
            known_height: tip.height,
            ready: false,
            not_ready: vec!["starting".into()],
        },
    });
    let core = Core::<P>::new(
        CoreParts {
            config: config.clone(),
            key: key.clone(),
            ledger,
            reader: reader.clone(),
            reads: reads.clone(),
            network: net.clone(),
            net_events,
            requests: req_rx,
            events: events.clone(),
            status: status_tx,
            metrics: metrics.clone(),
            observers,
            changes,
        },
        engine,
        fresh,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut core_task = tokio::spawn(core.run(stop_rx.clone()));

    let accepting = Arc::new(AtomicBool::new(true));
    let failure = Failure::default();
    let intake = crate::api::intake::Intake::start(
        req_tx.clone(),
        genesis.chain_id.clone(),
        metrics.clone(),
    );
    let state = AppState {
        requests: req_tx,
        intake,
        status: status_rx,
        events,
        metrics,
        net,
        genesis: Arc::new(genesis),
        names: Arc::new(names),
        reader: reader.clone(),
        tree,
        snapshots: snapshots.clone(),
        reads,
        wait_timeout: Duration::from_millis(config.api.wait_timeout_ms),
        body_timeout: Duration::from_millis(config.api.body_timeout_ms),
        max_body: config.api.max_body_bytes,
        max_batch_body: config.api.max_batch_bytes,
        streams: Arc::new(Semaphore::new(STREAMS_MAX)),
        accepting: accepting.clone(),
        failure: failure.clone(),
    };
    let admin_reader = reader.clone();
    let app = router(state, config.api.max_concurrent_requests);
    let listener = tokio::net::TcpListener::bind(&config.api.listen)
        .await
        .with_context(|| format!("binding the API to {}", config.api.listen))?;
    let api_addr = listener.local_addr()?;
    // Tools (and tests) that asked for port 0 read the real address here.
    std::fs::write(home.0.join("api_addr"), format!("{api_addr}\n")).context("writing api_addr")?;
    tracing::info!(addr = %api_addr, "API listening");
    let limits = server::Limits {
        header_timeout: Duration::from_millis(config.api.header_timeout_ms),
        idle_timeout: Duration::from_millis(config.api.idle_timeout_ms),
        max_connections: config.api.max_connections,
    };
    let mut api_task = tokio::spawn(server::serve(listener, app, limits, stop_rx));
    // Snapshots for joining nodes, and backups while running: not vital, so a failure to
    // start either is only logged.
    if let Err(e) = crate::snapshots::start_taker(
        snapshots,
        reader,
        genesis_hash,
        config.storage.snapshot_interval,
        config.storage.snapshots_kept,
    ) {
        tracing::warn!(error = %e, "no state snapshots: the thread that takes them did not start");
    }
    let admin_path = home.0.join(crate::backup::ADMIN_SOCKET);
    if let Err(e) = crate::backup::serve_admin(&admin_path, admin_reader) {
        tracing::warn!(
            error = %e,
            socket = %admin_path.display(),
            "no admin socket: `cairn-node backup` cannot reach this node while it runs"
        );
    }

    // Which task ended, and how (a task that ended must not be awaited again).
    let died: Option<(&str, Fatal)> = tokio::select! {
        _ = shutdown_signal() => None,
        r = &mut core_task => Some(("core", match r {
            Ok(Err(fatal)) => fatal,
            Ok(Ok(())) => ended("core", "returned".into()),
            Err(e) => ended("core", e.to_string()),
        })),
        r = &mut net_task => Some(("network", ended("network", match r {
            Ok(()) => "returned".into(),
            Err(e) => e.to_string(),
        }))),
        r = &mut api_task => Some(("API", ended("API", match r {
            Ok(Ok(())) => "returned".into(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        }))),
    };
    if let Some((task, fatal)) = died {
        let why = format!("{fatal}; {}", fatal.advice());
        failure.set(why.clone());
        tracing::error!(error = %why, "stopping the node");
        accepting.store(false, Ordering::Release);
        let _ = stop_tx.send(true);
        if task != "core" {
            // Let the core finish its step and close the store.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut core_task).await;
        }
        core_task.abort();
        net_task.abort();
        api_task.abort();
        let _ = std::fs::remove_file(&admin_path);
        bail!("{why}");
    }
    tracing::info!("shutting down");
    accepting.store(false, Ordering::Release);
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(10), &mut core_task).await {
        Ok(Ok(Err(fatal))) => tracing::error!(error = %fatal, "while stopping"),
        Err(_) => tracing::warn!("the core did not stop within 10 s"),
        _ => {}
    }
    // The core handed its last gossip to the network; let it go out.
    tokio::time::sleep(NETWORK_DRAIN).await;
    net_task.abort();
    let _ = tokio::time::timeout(Duration::from_secs(3), &mut api_task).await;
    api_task.abort();
    let _ = std::fs::remove_file(&admin_path);
    tracing::info!("stopped");
    Ok(())
}

fn ended(task: &'static str, reason: String) -> Fatal {
    Fatal::TaskEnded { task, reason }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
