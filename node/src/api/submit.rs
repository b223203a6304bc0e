//! `POST /txs`: parse, check the signature here (once, before the core sees it), admit through
//! the core, and with `?wait=commit` wait for the outcome.
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

use cairn_ledger::{SignedTransaction, verify_transactions};
use http_body_util::BodyExt;

use super::{AppState, ask, query};
use crate::core::{Request, TxOutcome};
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
async fn read_body(s: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, s.max_body);
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
            format!(
                "request body is larger than this node accepts ({} bytes)",
                s.max_body
            ),
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
        Err(e) => {
            let close = e.status == 408 || e.status == 413;
            let mut r = e.into_response();
            if close {
                // The rest of the body may never come: do not wait for it on this connection.
                r.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            r
        }
    }
}

async fn submit_inner(
    s: AppState,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Body,
) -> Result<(StatusCode, TxView), ApiError> {
    let q = query(q)?;
    let wait = match q.get("wait").map(String::as_str) {
        None => false,
        Some("commit") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::BadQuery,
                format!("wait must be \"commit\", not {other:?}"),
            ));
        }
    };
    if !s.accepting() {
        return Err(ApiError::unavailable(
            "the node is shutting down; submit to another node",
        ));
    }
    let body = read_body(&s, body).await?;
    let signed = parse_submission(&body)?;
    // Verified here, once, before the core sees it.
    let verified = verify_transactions(vec![signed], &s.genesis.chain_id)
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
    .await??;
    let Some(waiter) = waiter else {
        return Ok((StatusCode::ACCEPTED, view));
    };
    let id = view.id;
    match tokio::time::timeout(s.wait_timeout, waiter).await {
        Ok(Ok(TxOutcome::Committed(_))) => {
            let full = super::read(&s, move |r| reads::committed_tx(r, id))
                .await?
                .ok_or_else(|| ApiError::internal("a committed transaction is not indexed"))?;
            Ok((StatusCode::OK, full))
        }
        Ok(Ok(TxOutcome::Rejected(r))) => Err(ApiError::rejected(&r)),
        Ok(Err(_)) => Err(ApiError::unavailable("the node is shutting down")),
        Err(_) => Err(ApiError::new(
            504,
            ErrorCode::WaitTimeout,
            format!(
                "transaction {id} is pending, not final after {} ms: follow it with GET /api/v1/txs/{id}",
                s.wait_timeout.as_millis()
            ),
        )),
    }
}
