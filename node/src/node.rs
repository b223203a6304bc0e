//! Starting and stopping a node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_ledger::{Genesis, Ledger, RocksStore};
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::{AppState, router};
use crate::config::{Config, Home, read_key};
use crate::core::{Core, CoreParts};
use crate::metrics::Metrics;
use crate::views::StatusView;

/// Most SSE streams open at once.
const STREAMS_MAX: usize = 128;

/// Runs the node in `home` until SIGINT or SIGTERM.
pub async fn run(home: Home, config: Config) -> anyhow::Result<()> {
    let key = read_key(&home.key())?;
    let genesis = Genesis::load(&home.genesis())
        .with_context(|| format!("reading {}", home.genesis().display()))?;
    let genesis_hash = genesis.hash();
    let store = RocksStore::open(&home.data(), &genesis_hash)
        .with_context(|| format!("opening the store in {}", home.data().display()))?;
    let ledger = Ledger::open(store, genesis.clone()).context("opening the ledger")?;
    tracing::info!(
        chain = %genesis.chain_id,
        consensus = ?genesis.consensus.kind(),
        height = ledger.tip().height,
        key = %key.public_key(),
        "starting"
    );

    // The network: genesis validators (and configured observers) only.
    let mut net_cfg = cairn_p2p::NetworkConfig::new(&genesis.chain_id, key.to_seed());
    net_cfg.listen = vec![config.p2p.listen.clone()];
    net_cfg.mdns = config.p2p.mdns;
    net_cfg.max_direct_bytes = crate::wire::DIRECT_BYTES_MAX;
    net_cfg.max_gossip_bytes = crate::wire::GOSSIP_BYTES_MAX;
    net_cfg.max_sync_response_bytes = crate::wire::SYNC_RESPONSE_BYTES_MAX;
    net_cfg.allowed = genesis.validators.iter().map(|v| v.public_key).collect();
    for o in &config.p2p.observers {
        net_cfg.allowed.push(o.parse().map_err(|_| {
            anyhow::anyhow!("p2p.observers: {o:?} is not a public key (64 hex digits)")
        })?);
    }
    net_cfg.bootstrap = config.p2p.bootstrap.clone();
    for v in &genesis.validators {
        if v.public_key != key.public_key() && !v.address.is_empty() {
            let peer = cairn_p2p::peer_id_of(&v.public_key)?;
            net_cfg.bootstrap.push(format!("{}/p2p/{peer}", v.address));
        }
    }
    let (net, net_events, net_loop) = cairn_p2p::start(net_cfg)?;
    let net_task = tokio::spawn(net_loop.run());

    let metrics = Arc::new(Metrics::new());
    let (req_tx, req_rx) = mpsc::channel(1024);
    let (events, _) = broadcast::channel(4096);
    let tip = ledger.tip();
    let (status_tx, status_rx) = watch::channel(StatusView {
        chain_id: genesis.chain_id.clone(),
        genesis_hash,
        moniker: config.moniker.clone(),
        public_key: key.public_key(),
        consensus: genesis.consensus.kind(),
        height: tip.height,
        head_hash: tip.hash,
        state_root: tip.state_root,
        head_time_ms: tip.timestamp_ms,
        role: "follower".into(),
        round: 0,
        leader: None,
        peers: 0,
        validators: genesis.validators.len(),
        mempool_txs: 0,
        mempool_bytes: 0,
        syncing: false,
        known_height: tip.height,
        ready: false,
    });
    let core = Core::new(CoreParts {
        config: config.clone(),
        key: key.clone(),
        ledger,
        net: net.clone(),
        net_events,
        requests: req_rx,
        events: events.clone(),
        status: status_tx,
        metrics: metrics.clone(),
    })
    .context("restoring consensus state")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let core_task = tokio::spawn(core.run(stop_rx.clone()));

    let names: HashMap<_, _> = genesis
        .validators
        .iter()
        .map(|v| (v.public_key, v.name.clone()))
        .collect();
    let state = AppState {
        requests: req_tx,
        status: status_rx,
        events,
        metrics,
        net,
        names: Arc::new(names),
        chain_id: genesis.chain_id.clone().into(),
        wait_timeout: Duration::from_millis(config.api.wait_timeout_ms),
        streams: Arc::new(tokio::sync::Semaphore::new(STREAMS_MAX)),
    };
    let app = router(
        state,
        config.api.max_body_bytes,
        config.api.max_concurrent_requests,
    );
    let listener = tokio::net::TcpListener::bind(&config.api.listen)
        .await
        .with_context(|| format!("binding the API to {}", config.api.listen))?;
    let api_addr = listener.local_addr()?;
    // Tools (and tests) that asked for port 0 read the real address here.
    std::fs::write(home.0.join("api_addr"), format!("{api_addr}\n")).context("writing api_addr")?;
    tracing::info!(addr = %api_addr, "API listening");

    let mut stop_api = stop_rx.clone();
    let api_task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_api.wait_for(|s| *s).await;
            })
            .await
    });

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // The core finishes its current step (every write is already synced) and closes the store.
    let _ = core_task.await;
    // Open SSE streams would hold the server: give it a moment, then go.
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    net_task.abort();
    tracing::info!("stopped");
    Ok(())
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
