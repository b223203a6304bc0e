//! The JSON API every node serves (DESIGN §8), on axum behind our own accept loop
//! ([`server`]: header, body and idle timeouts, a connection bound).
//!
//! Committed reads go to the store through a `RocksReader` on the reader threads ([`read`],
//! `read_pool`: their own threads at a lower CPU priority); only submissions and mempool
//! lookups go to the core task.
//! Handlers check everything a client sends before anything else sees it, and every error,
//! including a path or query that does not decode, is `{"error":{"code","message"}}` with
//! its status.

pub mod doc;
mod events;
mod handlers;
pub mod intake;
pub mod server;
mod snapshots;
pub mod submit;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_crypto::PublicKey;
use cairn_ledger::{Genesis, RocksReader};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};

use crate::core::Request;
use crate::metrics::Metrics;
use crate::read_pool::ReadPool;
use crate::views::*;

/// Reader threads (at a lower CPU priority, see `read_pool`).
pub const READER_THREADS: usize = 2;
/// Reads queued for them; more wait for room.
pub const READ_QUEUE: usize = 256;
/// Most event streams open at once.
pub const STREAMS_MAX: usize = 128;
/// A status older than this means the consensus task stopped reporting.
const STATUS_STALE: Duration = Duration::from_secs(5);

/// Why the node is failing, once a part of it died (for `/health`).
#[derive(Debug, Default, Clone)]
pub struct Failure(Arc<Mutex<Option<String>>>);

impl Failure {
    /// Records the first failure.
    pub fn set(&self, why: String) {
        if let Ok(mut f) = self.0.lock()
            && f.is_none()
        {
            *f = Some(why);
        }
    }

    /// The failure, if any.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|f| f.clone())
    }
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Requests to the core (mempool lookups).
    pub requests: mpsc::Sender<Request>,
    /// Submissions: verified in batches, then admitted by the core.
    pub intake: intake::Intake,
    /// The core's latest status.
    pub status: watch::Receiver<Published>,
    /// Live chain events.
    pub events: broadcast::Sender<ChainEvent>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The network, for `peers` and `validators`.
    pub net: cairn_p2p::Client,
    /// The chain's genesis.
    pub genesis: Arc<Genesis>,
    /// Validator names by key.
    pub names: Arc<HashMap<PublicKey, String>>,
    /// Committed reads.
    pub reader: RocksReader,
    /// The committed state tree, for proofs.
    pub tree: cairn_ledger::PublishedTree,
    /// The state snapshots kept for joining nodes.
    pub snapshots: crate::snapshots::Snapshots,
    /// The threads committed reads run on.
    pub reads: ReadPool,
    /// Longest `?wait=commit`.
    pub wait_timeout: Duration,
    /// Longest wait for a request body.
    pub body_timeout: Duration,
    /// Largest request body.
    pub max_body: usize,
    /// Largest transaction batch body.
    pub max_batch_body: usize,
    /// Open event streams (each holds a permit for its whole life).
    pub streams: Arc<Semaphore>,
    /// False once the node is shutting down: submissions are refused.
    pub accepting: Arc<AtomicBool>,
    /// A part of the node that died.
    pub failure: Failure,
}

impl AppState {
    /// Whether submissions are still taken.
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }
}

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// Default page size.
const PAGE_DEFAULT: usize = 20;
/// Largest page size.
const PAGE_MAX: usize = 100;

/// The router: API, metrics, health. `max_concurrent` API requests are served at once across
/// the whole node (one limit shared by every `/api/v1` route); more get 503 at once. The
/// probes (`/health`, `/ready`, `/metrics`) are outside the limit.
pub fn router(state: AppState, max_concurrent: usize) -> Router {
    let api = Router::new()
        .route("/status", get(status))
        .route("/blocks", get(handlers::blocks))
        .route("/blocks/{id}", get(handlers::block))
        .route("/txs", post(submit::submit))
        .route("/txs/batch", post(submit::submit_batch))
        .route("/txs/{id}", get(handlers::tx))
        .route("/accounts/{id}", get(handlers::account))
        .route("/accounts/{id}/txs", get(handlers::account_txs))
        .route("/accounts/{id}/records", get(handlers::records))
        .route("/accounts/{id}/records/{key}", get(handlers::record))
        .route("/genesis", get(genesis))
        .route("/validators", get(validators))
        .route("/validators/changes", get(validator_changes))
        .route("/peers", get(peers))
        .route("/events", get(events::events))
        .route("/snapshots", get(snapshots::snapshots))
        .route("/snapshots/{height}", get(snapshots::manifest))
        .route("/snapshots/{height}/chunks/{index}", get(snapshots::chunk))
        .route("/openapi.json", get(openapi));
    // The limit covers the API, not the probes: a node busy with clients is still alive and
    // ready, and `/health`, `/ready` and `/metrics` must say so.
    let api = api.layer(
        tower::ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                ApiError::unavailable(
                    "the node is serving its maximum number of requests; retry shortly",
                )
            }))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                max_concurrent,
            )),
    );
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(crate::explorer::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn no_route() -> ApiError {
    ApiError::new(
        404,
        ErrorCode::NoRoute,
        "no such route: see GET /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// Asks the core; a closed channel means it is shutting down.
async fn ask<T>(
    s: &AppState,
    make: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    s.requests
        .send(make(tx))
        .await
        .map_err(|_| ApiError::unavailable("the node is shutting down"))?;
    rx.await
        .map_err(|_| ApiError::unavailable("the node is shutting down"))
}

/// Runs a committed read on the reader threads.
async fn read<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&RocksReader) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let reader = s.reader.clone();
    s.reads
        .run(move || f(&reader))
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read: {e}")))?
}

fn query(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::bad_request(ErrorCode::BadQuery, e.body_text()))
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request(ErrorCode::BadPath, e.body_text()))
}

fn number(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::BadQuery,
                format!("{name} must be a non-negative integer, not {v:?}"),
            )
        }),
    }
}

/// `?prove=true|false` (default false).
fn prove(q: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q.get("prove").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ApiError::bad_request(
            ErrorCode::BadQuery,
            format!("prove must be true or false, not {v:?}"),
        )),
    }
}

fn limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    let l = number(q, "limit")?.unwrap_or(PAGE_DEFAULT as u64);
    if l == 0 || l > PAGE_MAX as u64 {
        return Err(ApiError::bad_request(
            ErrorCode::BadQuery,
            format!("limit must be in 1..={PAGE_MAX}"),
        ));
    }
    Ok(l as usize)
}

fn parse_key(s: &str) -> Result<PublicKey, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            ErrorCode::BadAccountId,
            format!("{s:?} is not an account id (64 hex digits)"),
        )
    })
}

fn core_stale(st: &Published) -> Option<String> {
    let age = st.at.map(|at| at.elapsed());
    match age {
        Some(a) if a <= STATUS_STALE => None,
        Some(a) => Some(format!(
            "the consensus task has not reported for {:.0} s",
            a.as_secs_f64()
        )),
        None => Some("the consensus task has not started".into()),
    }
}

/// Liveness: every part of the node runs and the consensus task reports.
#[utoipa::path(
    get,
    path = "/health",
    tag = "probes",
    responses(
        (status = 200, description = "Alive.", body = HealthView),
        (status = 503, description = "`unhealthy`: the message names the part that failed.", body = ErrorBody),
    )
)]
async fn health(State(s): State<AppState>) -> Response {
    if let Some(why) = s.failure.get() {
        return ApiError::new(503, ErrorCode::Unhealthy, why).into_response();
    }
    let st = s.status.borrow().clone();
    if let Some(why) = core_stale(&st) {
        return ApiError::new(503, ErrorCode::Unhealthy, why).into_response();
    }
    axum::Json(HealthView {
        status: "ok".into(),
    })
    .into_response()
}

/// Readiness: synced, a quorum of validators heard from in the last few seconds, and no stall
/// while transactions wait (see `core::status`); every failing condition is named.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "probes",
    responses(
        (status = 200, description = "Ready.", body = ReadyView),
        (status = 503, description = "`not_ready`: the message names every failing condition.", body = ErrorBody),
    )
)]
async fn ready(State(s): State<AppState>) -> Response {
    let published = s.status.borrow().clone();
    if let Some(why) = s.failure.get().or_else(|| core_stale(&published)) {
        return ApiError::new(503, ErrorCode::NotReady, why).into_response();
    }
    let st = published.view;
    if st.ready {
        axum::Json(ReadyView {
            ready: true,
            height: st.height,
            peers: st.peers,
            heard: st.heard,
        })
        .into_response()
    } else {
        ApiError::new(503, ErrorCode::NotReady, st.not_ready.join("; ")).into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "The metrics in Prometheus' text format (0.0.4), or OpenMetrics when the `Accept` header prefers `application/openmetrics-text`.", content(
        (String = "text/plain"),
        (String = "application/openmetrics-text"),
    )))
)]
async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    use crate::metrics::{catch_up, exposition};
    use std::sync::atomic::Ordering::Relaxed;
    let c = s.net.counters();
    let m = &s.metrics;
    catch_up(&m.refused_connections, c.refused.load(Relaxed));
    catch_up(&m.misbehaving_peers, c.misbehaving.load(Relaxed));
    catch_up(&m.dead_links, c.dead_links.load(Relaxed));
    catch_up(&m.failed_sends, c.failed_sends.load(Relaxed));
    catch_up(&m.dropped_network_events, c.dropped_events.load(Relaxed));
    // Read at scrape time, off the consensus task.
    if let Some(bytes) = s.reader.memtable_bytes() {
        m.store_memtables.set(bytes as i64);
    }
    if let Some(bytes) = s.reader.block_cache_bytes() {
        m.store_block_cache.set(bytes as i64);
    }
    if let Some(bytes) = s.reader.table_readers_bytes() {
        m.store_table_readers.set(bytes as i64);
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let openmetrics = exposition::wants_openmetrics(accept);
    let content_type = if openmetrics {
        exposition::OPENMETRICS
    } else {
        exposition::TEXT
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        m.render(openmetrics),
    )
        .into_response()
}

/// Counts each answer by route template (not the raw path: ids would make a series each),
/// method and status, with its latency.
async fn count_requests(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    // A client can send any method name: only the ones the API serves are labels.
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let start = std::time::Instant::now();
    let r = next.run(req).await;
    s.metrics.http(
        &route,
        method,
        r.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    r
}

/// This node's view of the chain and of itself.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "node",
    responses((status = 200, description = "The node's status.", body = StatusView))
)]
async fn status(State(s): State<AppState>) -> axum::Json<StatusView> {
    axum::Json(s.status.borrow().view.clone())
}

/// The chain's genesis document, as in `genesis.json`. A verifying client checks that its
/// hash (PROTOCOL.md §9) is the one it expects before trusting the validators in it.
#[utoipa::path(
    get,
    path = "/api/v1/genesis",
    tag = "chain",
    responses((status = 200, description = "The genesis document.", body = cairn_ledger::Genesis))
)]
async fn genesis(State(s): State<AppState>) -> axum::Json<cairn_ledger::Genesis> {
    axum::Json(s.genesis.as_ref().clone())
}

/// The validators in force at this node's tip, and whether this node reaches each.
#[utoipa::path(
    get,
    path = "/api/v1/validators",
    tag = "node",
    responses((status = 200, description = "Every validator in force, in order (the genesis order until a change).", body = Vec<ValidatorView>))
)]
async fn validators(State(s): State<AppState>) -> ApiResult<Vec<ValidatorView>> {
    let (st, set) = {
        let p = s.status.borrow();
        (p.view.clone(), p.validators.clone())
    };
    let addresses: HashMap<PublicKey, String> = s
        .net
        .peers()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .into_iter()
        .map(|p| (p.key, p.addr))
        .collect();
    let v = set
        .iter()
        .enumerate()
        .map(|(i, v)| ValidatorView {
            index: i,
            name: v.name.clone(),
            public_key: v.public_key,
            address: addresses.get(&v.public_key).cloned(),
            connected: v.public_key == st.public_key || s.net.is_connected(&v.public_key),
            leader: st.leader == Some(v.public_key),
        })
        .collect();
    Ok(axum::Json(v))
}

/// The approved validator change waiting for its epoch boundary, and the validators' votes
/// that count now (under the `validators` policy), as of this node's tip.
#[utoipa::path(
    get,
    path = "/api/v1/validators/changes",
    tag = "node",
    responses((status = 200, description = "The policy, the pending change and the votes.", body = ValidatorChangesView))
)]
async fn validator_changes(State(s): State<AppState>) -> axum::Json<ValidatorChangesView> {
    let changes = s.status.borrow().changes.clone();
    axum::Json(changes.as_ref().clone())
}

/// The peers this node is connected to.
#[utoipa::path(
    get,
    path = "/api/v1/peers",
    tag = "node",
    responses((status = 200, description = "Connected peers, by key.", body = Vec<PeerView>))
)]
async fn peers(State(s): State<AppState>) -> ApiResult<Vec<PeerView>> {
    let peers = s
        .net
        .peers()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let mut v: Vec<PeerView> = peers
        .into_iter()
        .map(|p| PeerView {
            validator: s.names.get(&p.key).cloned(),
            public_key: p.key,
            address: p.addr,
        })
        .collect();
    v.sort_by_key(|p| p.public_key);
    Ok(axum::Json(v))
}

/// This document (OpenAPI 3.1), generated from the types the node serves.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "node",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object))
)]
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc::json()).into_response()
}
