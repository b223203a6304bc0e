//! `POST /txs` and `POST /txs/batch`: read and parse the body, hand the transactions to the
//! intake (which verifies them in batches and admits them through the core), and with
//! `?wait=commit` wait for the outcomes.
//!
//! The body is read with a size limit and a deadline (`api.body_timeout_ms`): a client that
//! sends headers and then stalls gets 408 and its connection closed, instead of holding a
//! request slot.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use cairn_ledger::{SignedTransaction, TxId};
use http_body_util::BodyExt;

use super::{AppState, query};
use crate::core::TxOutcome;
use crate::reads;
use crate::views::*;

/// Parses a submitted body: the JSON form of a signed transaction, or
/// `{"encoded": "<hex of its canonical bytes>"}`.
pub fn parse_submission(body: &[u8]) -> Result<SignedTransaction, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidJson, format!("body is not JSON: {e}"))
    })?;
    if let Some(enc) = v.get("encoded") {
        let hex_str = enc.as_str().ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidTransaction,
                "\"encoded\" must be a hex string",
            )
        })?;
        let bytes = hex::decode(hex_str).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidTransaction,
                "\"encoded\" is not valid hex",
            )
        })?;
        return SignedTransaction::decode(&bytes).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidTransaction,
                format!("cannot decode the transaction: {e}"),
            )
        });
    }
    serde_json::from_value(v).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidTransaction,
            format!("body is not a signed transaction: {e}"),
        )
    })
}

/// Reads the whole body within the size limit and the deadline.
async fn read_body(s: &AppState, body: Body, max: usize) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(s.body_timeout, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            408,
            ErrorCode::BodyTimeout,
            format!(
                "the request body did not arrive within {} ms",
                s.body_timeout.as_millis()
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            413,
            ErrorCode::BodyTooLarge,
            format!("request body is larger than this node accepts ({max} bytes)"),
        )),
        Ok(Err(e)) => Err(ApiError::bad_request(ErrorCode::BadBody, e.to_string())),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// `POST /txs[?wait=commit]`.
/// Submit a signed transaction. The node checks it, admits it to its mempool and gossips it:
/// 202 with the pending view. With `?wait=commit`, it answers once the transaction is final:
/// 200 with the receipt, an error if it is rejected meanwhile, or 504 `wait_timeout` after the
/// node's wait limit (it may still commit: follow it with `GET /api/v1/txs/{id}`).
#[utoipa::path(
    post,
    path = "/api/v1/txs",
    tag = "transactions",
    params(("wait" = Option<String>, Query, pattern = "^commit$", description = "`commit`: answer when the transaction is final.")),
    request_body(content = Submission, content_type = "application/json", description = "A signed transaction (JSON form), or {\"encoded\": hex of its canonical bytes}."),
    responses(
        (status = 200, description = "With `wait=commit`: committed, with its receipt.", body = TxView),
        (status = 202, description = "Admitted: pending in the mempool.", body = TxView),
        (status = 400, description = "`invalid_json`, `invalid_transaction`, `bad_body` or `bad_query`.", body = ErrorBody),
        (status = 403, description = "`not_member` or `not_admin`.", body = ErrorBody),
        (status = 408, description = "`body_timeout`: the body did not arrive in time.", body = ErrorBody),
        (status = 409, description = "`stale_nonce`, `already_committed`, `duplicate` or `nonce_in_use`.", body = ErrorBody),
        (status = 413, description = "`body_too_large` or `too_large`.", body = ErrorBody),
        (status = 422, description = "A rule the transaction breaks: `wrong_chain`, `bad_signature`, `zero_amount`, `insufficient_balance`, …", body = ErrorBody),
        (status = 503, description = "`mempool_full`, or `unavailable` (shutting down, or at a limit); retry.", body = ErrorBody),
        (status = 504, description = "`wait_timeout`: still pending after the node's wait limit.", body = ErrorBody),
    )
)]
pub async fn submit(
    State(s): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Body,
) -> Response {
    match submit_inner(s, q, body).await {
        Ok((code, v)) => (code, axum::Json(v)).into_response(),
        Err(e) => close_if_unread(e),
    }
}

/// An error answer; after 408 or 413 the rest of the body may never come, so the connection
/// is closed rather than waited on.
fn close_if_unread(e: ApiError) -> Response {
    let close = e.status == 408 || e.status == 413;
    let mut r = e.into_response();
    if close {
        r.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    r
}

async fn submit_inner(
    s: AppState,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Body,
) -> Result<(StatusCode, TxView), ApiError> {
    let wait = wait_flag(q)?;
    if !s.accepting() {
        return Err(shutting_down());
    }
    let body = read_body(&s, body, s.max_body).await?;
    let signed = parse_submission(&body)?;
    drop(body);
    #[cfg(debug_assertions)]
    if !wait && planted::ack_without_admit() {
        return Ok((StatusCode::ACCEPTED, planted::pending(signed)));
    }
    let admit = s
        .intake
        .submit(vec![signed], wait)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("admission answered nothing"))??;
    let Some(waiter) = admit.waiter else {
        return Ok((StatusCode::ACCEPTED, admit.view));
    };
    let id = admit.view.id;
    match tokio::time::timeout(s.wait_timeout, waiter).await {
        Ok(Ok(TxOutcome::Committed(_))) => {
            let full = super::read(&s, move |r| reads::committed_tx(r, id))
                .await?
                .ok_or_else(|| ApiError::internal("a committed transaction is not indexed"))?;
            Ok((StatusCode::OK, full))
        }
        Ok(Ok(TxOutcome::Rejected(r))) => Err(ApiError::rejected(&r)),
        Ok(Err(_)) => Err(ApiError::unavailable("the node is shutting down")),
        Err(_) => Err(wait_timeout(&s, id)),
    }
}

/// A bug planted on purpose, in debug builds only, so that the chaos checker's test can show
/// it catches one: with `CAIRN_PLANTED_BUG=ack_without_admit` in the node's environment,
/// every fifth submission without `wait` is answered 202 and then forgotten, as a node that
/// acknowledges what it does not hold would.
#[cfg(debug_assertions)]
mod planted {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    use cairn_ledger::SignedTransaction;

    use crate::views::{TxStatus, TxView};

    static ON: LazyLock<bool> = LazyLock::new(|| {
        std::env::var("CAIRN_PLANTED_BUG").is_ok_and(|v| v == "ack_without_admit")
    });
    static COUNT: AtomicU64 = AtomicU64::new(0);

    pub fn ack_without_admit() -> bool {
        *ON && COUNT.fetch_add(1, Ordering::Relaxed) % 5 == 4
    }

    pub fn pending(tx: SignedTransaction) -> TxView {
        TxView {
            id: tx.id(),
            status: TxStatus::Pending,
            tx: Some(tx),
            receipt: None,
            proof: None,
            reason: None,
        }
    }
}

fn shutting_down() -> ApiError {
    ApiError::unavailable("the node is shutting down; submit to another node")
}

fn wait_timeout(s: &AppState, id: TxId) -> ApiError {
    ApiError::new(
        504,
        ErrorCode::WaitTimeout,
        format!(
            "transaction {id} is pending, not final after {} ms: follow it with GET /api/v1/txs/{id}",
            s.wait_timeout.as_millis()
        ),
    )
}

/// `?wait=commit` or nothing.
fn wait_flag(q: Result<Query<HashMap<String, String>>, QueryRejection>) -> Result<bool, ApiError> {
    let q = query(q)?;
    match q.get("wait").map(String::as_str) {
        None => Ok(false),
        Some("commit") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            ErrorCode::BadQuery,
            format!("wait must be \"commit\", not {other:?}"),
        )),
    }
}

/// Parses a batch body: JSON ([`BatchSubmission`]) or, as `application/octet-stream`, the
/// canonical encoding of a sequence of signed transactions. An entry that does not decode is
/// answered on its own (JSON); a binary body that does not decode is refused whole.
pub fn parse_batch(
    body: &[u8],
    binary: bool,
) -> Result<Vec<Result<SignedTransaction, ApiError>>, ApiError> {
    let too_many = |n: usize| {
        ApiError::new(
            413,
            ErrorCode::BodyTooLarge,
            format!("a batch holds at most {BATCH_TXS_MAX} transactions, not {n}: split it"),
        )
    };
    if binary {
        let txs: Vec<SignedTransaction> = cairn_crypto::codec::decode_limited(body, body.len())
            .map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::InvalidTransaction,
                    format!("cannot decode the batch (a sequence of signed transactions): {e}"),
                )
            })?;
        if txs.len() > BATCH_TXS_MAX {
            return Err(too_many(txs.len()));
        }
        return Ok(txs.into_iter().map(Ok).collect());
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidJson, format!("body is not JSON: {e}"))
    })?;
    let Some(entries) = v.get("txs").and_then(serde_json::Value::as_array) else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTransaction,
            "a batch is {\"txs\": [...]}: an array of signed transactions",
        ));
    };
    if entries.len() > BATCH_TXS_MAX {
        return Err(too_many(entries.len()));
    }
    Ok(entries
        .iter()
        .map(|e| {
            let bytes = serde_json::to_vec(e).map_err(|e| ApiError::internal(e.to_string()))?;
            parse_submission(&bytes)
        })
        .collect())
}

/// `POST /txs/batch[?wait=commit]`.
/// Submit up to 1,024 signed transactions at once: each is checked and admitted as by
/// `POST /api/v1/txs`, and answered on its own, in order (200 whatever each one's fate;
/// `admitted` and `refused` count them). The body is JSON, `{"txs": [...]}` with entries in
/// either form `POST /api/v1/txs` takes, or `application/octet-stream`: the canonical
/// encoding of a sequence of signed transactions. With `?wait=commit` it answers once every
/// admitted transaction is final (or the node's wait limit passed: those stay `pending` with
/// `wait_timeout`). 503 with `Retry-After` when nothing was admitted because the node is full.
#[utoipa::path(
    post,
    path = "/api/v1/txs/batch",
    tag = "transactions",
    params(("wait" = Option<String>, Query, pattern = "^commit$", description = "`commit`: answer when every admitted transaction is final.")),
    request_body(content = BatchSubmission, content_type = "application/json", description = "Up to 1,024 transactions; or application/octet-stream: their canonical encoding as a sequence."),
    responses(
        (status = 200, description = "One result per transaction, in order.", body = BatchAnswer),
        (status = 400, description = "`invalid_json`, `invalid_transaction` (the body is not a batch), `bad_body` or `bad_query`.", body = ErrorBody),
        (status = 408, description = "`body_timeout`: the body did not arrive in time.", body = ErrorBody),
        (status = 413, description = "`body_too_large`: more bytes or transactions than a batch may hold.", body = ErrorBody),
        (status = 503, description = "`mempool_full` (none admitted), or `unavailable` (shutting down, or at a limit); retry after `Retry-After` seconds.", body = ErrorBody),
    )
)]
pub async fn submit_batch(
    State(s): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    match submit_batch_inner(s, q, &headers, body).await {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => close_if_unread(e),
    }
}

async fn submit_batch_inner(
    s: AppState,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<BatchAnswer, ApiError> {
    let wait = wait_flag(q)?;
    if !s.accepting() {
        return Err(shutting_down());
    }
    let binary = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"));
    let body = read_body(&s, body, s.max_batch_body).await?;
    let parsed = parse_batch(&body, binary)?;
    // Decoded: the bytes are not held while the batch is admitted and waited for.
    drop(body);
    let mut answers: Vec<Option<BatchItem>> = Vec::with_capacity(parsed.len());
    let mut txs = Vec::new();
    for p in parsed {
        match p {
            Ok(t) => {
                txs.push(t);
                answers.push(None);
            }
            Err(e) => answers.push(Some(refused(None, &e))),
        }
    }
    let ids: Vec<TxId> = txs.iter().map(SignedTransaction::id).collect();
    let admitted = if txs.is_empty() {
        Vec::new()
    } else {
        s.intake.submit(txs, wait).await?
    };
    let mut waiting = Vec::new();
    let mut results = admitted.into_iter().zip(ids);
    let mut items = Vec::with_capacity(answers.len());
    for a in answers {
        if let Some(item) = a {
            items.push(item);
            continue;
        }
        let Some((r, id)) = results.next() else {
            return Err(ApiError::internal("admission answered too few"));
        };
        match r {
            Ok(admit) => {
                if let Some(w) = admit.waiter {
                    waiting.push((items.len(), w));
                }
                items.push(BatchItem {
                    id: Some(id),
                    status: Some(TxStatus::Pending),
                    receipt: None,
                    error: None,
                });
            }
            Err(e) => items.push(refused(Some(id), &e)),
        }
    }
    let admitted = items.iter().filter(|i| i.status.is_some()).count();
    let full = items
        .iter()
        .filter_map(|i| i.error.as_ref())
        .any(|e| e.code == ErrorCode::MempoolFull);
    if admitted == 0 && full {
        return Err(ApiError::rejected(&cairn_ledger::TxRejection::MempoolFull));
    }
    if !waiting.is_empty() {
        let deadline = tokio::time::Instant::now() + s.wait_timeout;
        for (i, w) in waiting {
            let item = &mut items[i];
            match tokio::time::timeout_at(deadline, w).await {
                Ok(Ok(TxOutcome::Committed(receipt))) => {
                    item.status = Some(TxStatus::Committed);
                    item.receipt = Some(receipt);
                }
                Ok(Ok(TxOutcome::Rejected(r))) => {
                    item.status = Some(TxStatus::Rejected);
                    item.error = Some(ApiError::rejected(&r).body().error);
                }
                Ok(Err(_)) => {
                    item.error = Some(
                        ApiError::unavailable("the node is shutting down")
                            .body()
                            .error,
                    )
                }
                Err(_) => {
                    if let Some(id) = item.id {
                        item.error = Some(wait_timeout(&s, id).body().error);
                    }
                }
            }
        }
    }
    Ok(BatchAnswer {
        admitted,
        refused: items.len() - admitted,
        results: items,
    })
}

fn refused(id: Option<TxId>, e: &ApiError) -> BatchItem {
    BatchItem {
        id,
        status: None,
        receipt: None,
        error: Some(e.body().error),
    }
}
