//! The JSON API every node serves (DESIGN §8), on axum.
//!
//! Handlers parse and check everything a client sends (body size, JSON, signature) before
//! anything reaches the core; every error is `{"error":{"code","message"}}` with its status.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_crypto::PublicKey;
use cairn_ledger::{BlockHash, Height, SignedTransaction, TxId, verify_transactions};
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::core::{BlockRef, Request, TxOutcome};
use crate::metrics::Metrics;
use crate::views::*;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Requests to the core.
    pub requests: mpsc::Sender<Request>,
    /// The core's latest status.
    pub status: watch::Receiver<StatusView>,
    /// Live chain events.
    pub events: broadcast::Sender<ChainEvent>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The network, for `peers`.
    pub net: cairn_p2p::Client,
    /// Validator names by key.
    pub names: Arc<HashMap<PublicKey, String>>,
    /// Chain id, for verifying submitted transactions.
    pub chain_id: Arc<str>,
    /// Longest `?wait=commit`.
    pub wait_timeout: Duration,
    /// Open event streams (each holds a permit for its whole life).
    pub streams: Arc<tokio::sync::Semaphore>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (status, axum::Json(body)).into_response()
    }
}

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// Default page size.
const PAGE_DEFAULT: usize = 20;
/// Largest page size.
const PAGE_MAX: usize = 100;

/// The router: API, metrics, health, with body and concurrency limits.
pub fn router(state: AppState, max_body: usize, max_concurrent: usize) -> Router {
    let api = Router::new()
        .route("/status", get(status))
        .route("/blocks", get(blocks))
        .route("/blocks/{id}", get(block))
        .route("/txs", axum::routing::post(submit))
        .route("/txs/{id}", get(tx))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/txs", get(account_txs))
        .route("/validators", get(validators))
        .route("/peers", get(peers))
        .route("/events", get(events))
        .route("/openapi.json", get(openapi));
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::unavailable(
                        "the node is serving its maximum number of requests; retry shortly",
                    )
                }))
                .load_shed()
                .concurrency_limit(max_concurrent),
        )
        .with_state(state)
}

async fn no_route() -> ApiError {
    ApiError::new(
        404,
        "no_route",
        "no such route: see GET /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        "this route does not take that method",
    )
}

async fn ask<T>(
    s: &AppState,
    make: impl FnOnce(oneshot::Sender<Result<T, ApiError>>) -> Request,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    s.requests
        .send(make(tx))
        .await
        .map_err(|_| ApiError::unavailable("the node is shutting down"))?;
    rx.await
        .map_err(|_| ApiError::unavailable("the node is shutting down"))?
}

fn query(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

fn number(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                "bad_query",
                format!("{name} must be a non-negative integer, not {v:?}"),
            )
        }),
    }
}

fn limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    let l = number(q, "limit")?.unwrap_or(PAGE_DEFAULT as u64);
    if l == 0 || l > PAGE_MAX as u64 {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be in 1..={PAGE_MAX}"),
        ));
    }
    Ok(l as usize)
}

fn parse_key(s: &str) -> Result<PublicKey, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_account_id",
            format!("{s:?} is not an account id (64 hex digits)"),
        )
    })
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn ready(State(s): State<AppState>) -> Response {
    let st = s.status.borrow().clone();
    if st.ready {
        axum::Json(serde_json::json!({"ready": true, "height": st.height, "peers": st.peers}))
            .into_response()
    } else {
        let why = if st.syncing {
            format!("syncing: at height {} of {}", st.height, st.known_height)
        } else {
            format!("connected to {} peers, not enough for a quorum", st.peers)
        };
        ApiError::new(503, "not_ready", why).into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let c = s.net.counters();
    s.metrics
        .refused_connections
        .set(c.refused.load(Relaxed) as i64);
    s.metrics
        .misbehaving_peers
        .set(c.misbehaving.load(Relaxed) as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn status(State(s): State<AppState>) -> axum::Json<StatusView> {
    axum::Json(s.status.borrow().clone())
}

async fn blocks(
    State(s): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<BlockPage> {
    let q = query(q)?;
    let before = number(&q, "before")?;
    let limit = limit(&q)?;
    ask(&s, |reply| Request::Blocks {
        before,
        limit,
        reply,
    })
    .await
    .map(axum::Json)
}

async fn block(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<BlockView> {
    let at = if let Ok(h) = id.parse::<Height>() {
        BlockRef::Height(h)
    } else if let Ok(hash) = id.parse::<BlockHash>() {
        BlockRef::Hash(hash)
    } else {
        return Err(ApiError::bad_request(
            "bad_block_id",
            format!("{id:?} is neither a height nor a block hash (64 hex digits)"),
        ));
    };
    ask(&s, |reply| Request::Block { at, reply })
        .await
        .map(axum::Json)
}

async fn tx(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<TxView> {
    let id: TxId = id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_tx_id",
            format!("{id:?} is not a transaction id (64 hex digits)"),
        )
    })?;
    ask(&s, |reply| Request::Tx { id, reply })
        .await
        .map(axum::Json)
}

/// Parses a submitted body: the JSON form of a signed transaction, or
/// `{"encoded": "<hex of its canonical bytes>"}`.
pub fn parse_submission(body: &[u8]) -> Result<SignedTransaction, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body is not JSON: {e}")))?;
    if let Some(enc) = v.get("encoded") {
        let hex_str = enc.as_str().ok_or_else(|| {
            ApiError::bad_request("invalid_transaction", "\"encoded\" must be a hex string")
        })?;
        let bytes = hex::decode(hex_str).map_err(|_| {
            ApiError::bad_request("invalid_transaction", "\"encoded\" is not valid hex")
        })?;
        return SignedTransaction::decode(&bytes).map_err(|e| {
            ApiError::bad_request(
                "invalid_transaction",
                format!("cannot decode the transaction: {e}"),
            )
        });
    }
    serde_json::from_value(v).map_err(|e| {
        ApiError::bad_request(
            "invalid_transaction",
            format!("body is not a signed transaction: {e}"),
        )
    })
}

async fn submit(
    State(s): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match submit_inner(s, q, body).await {
        Ok((code, v)) => (code, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn submit_inner(
    s: AppState,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, TxView), ApiError> {
    let q = query(q)?;
    let wait = match q.get("wait").map(String::as_str) {
        None => false,
        Some("commit") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("wait must be \"commit\", not {other:?}"),
            ));
        }
    };
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(f) if f.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                413,
                "body_too_large",
                "request body is larger than this node accepts",
            )
        }
        other => ApiError::bad_request("bad_body", other.body_text()),
    })?;
    let signed = parse_submission(&body)?;
    // Verified here, once, before the core sees it.
    let verified = verify_transactions(vec![signed], &s.chain_id)
        .pop()
        .ok_or_else(|| ApiError::internal("verification returned nothing"))?
        .map_err(|r| {
            s.metrics.rejected(r.code());
            ApiError::rejected(&r)
        })?;
    s.metrics.verified_txs.inc();
    let (view, waiter) = ask(&s, |reply| Request::Submit {
        tx: verified,
        wait,
        reply,
    })
    .await?;
    let Some(waiter) = waiter else {
        return Ok((StatusCode::ACCEPTED, view));
    };
    let id = view.id;
    match tokio::time::timeout(s.wait_timeout, waiter).await {
        Ok(Ok(TxOutcome::Committed(_))) => {
            let full = ask(&s, |reply| Request::Tx { id, reply }).await?;
            Ok((StatusCode::OK, full))
        }
        Ok(Ok(TxOutcome::Rejected(r))) => Err(ApiError::rejected(&r)),
        Ok(Err(_)) => Err(ApiError::unavailable("the node is shutting down")),
        Err(_) => Err(ApiError::new(
            504,
            "wait_timeout",
            format!(
                "transaction {id} is pending, not final after {} ms: follow it with GET /api/v1/txs/{id}",
                s.wait_timeout.as_millis()
            ),
        )),
    }
}

async fn account(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<AccountView> {
    let id = parse_key(&id)?;
    ask(&s, |reply| Request::Account { id, reply })
        .await
        .map(axum::Json)
}

async fn account_txs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<AccountTxPage> {
    let id = parse_key(&id)?;
    let q = query(q)?;
    let before = number(&q, "before")?;
    let limit = limit(&q)?;
    ask(&s, |reply| Request::AccountTxs {
        id,
        before,
        limit,
        reply,
    })
    .await
    .map(axum::Json)
}

async fn validators(State(s): State<AppState>) -> ApiResult<Vec<ValidatorView>> {
    ask(&s, |reply| Request::Validators { reply })
        .await
        .map(axum::Json)
}

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

struct Follow {
    _permit: tokio::sync::OwnedSemaphorePermit,
    s: AppState,
    rx: broadcast::Receiver<ChainEvent>,
    next: Height,
    replaying: bool,
}

fn sse_event(e: &ChainEvent) -> SseEvent {
    let name = match e {
        ChainEvent::Block { .. } => "block",
        ChainEvent::TxRejected { .. } => "tx_rejected",
    };
    let ev = SseEvent::default().event(name);
    let ev = match e.height() {
        Some(h) => ev.id(h.to_string()),
        None => ev,
    };
    ev.json_data(e)
        .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"))
}

async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let q = query(q)?;
    let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::unavailable("this node serves its maximum number of event streams; retry later")
    })?;
    // Subscribe before reading the tip, so nothing falls between replay and live.
    let rx = s.events.subscribe();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Height>().ok())
        .map(|h| h.saturating_add(1));
    // A reconnecting EventSource repeats its URL and adds Last-Event-ID: that one wins.
    let from = match resume.or(number(&q, "from_height")?) {
        Some(h) => h.max(1),
        None => s.status.borrow().height.saturating_add(1),
    };
    let follow = Follow {
        _permit: permit,
        s,
        rx,
        next: from,
        replaying: true,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        loop {
            if f.replaying {
                let from = f.next;
                match ask(&f.s, |reply| Request::Range {
                    from,
                    limit: 64,
                    reply,
                })
                .await
                {
                    Err(_) => return None,
                    Ok(v) if v.is_empty() => f.replaying = false,
                    Ok(v) => {
                        if let Some(h) = v.last().and_then(ChainEvent::height) {
                            f.next = h + 1;
                        }
                        return Some((v, f));
                    }
                }
            } else {
                match f.rx.recv().await {
                    Ok(ev) => {
                        if let Some(h) = ev.height() {
                            if h < f.next {
                                continue;
                            }
                            if h > f.next {
                                // Missed some: read them from the store.
                                f.replaying = true;
                                continue;
                            }
                            f.next = h + 1;
                        }
                        return Some((vec![ev], f));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => f.replaying = true,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
    .flat_map(|v| futures::stream::iter(v.into_iter().map(|e| Ok(sse_event(&e)))));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT,
    )
        .into_response()
}
