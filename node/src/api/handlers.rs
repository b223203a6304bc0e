//! Committed reads: blocks, transactions, accounts, account histories, records. Each runs on
//! the reader threads through [`read`]; only a transaction not committed yet is looked up in
//! the core's mempool.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use cairn_ledger::{BlockHash, Height, TxId};

use super::{ApiResult, AppState, ask, limit, number, parse_key, path, query, read};
use crate::core::Request;
use crate::reads::{self, BlockRef};
use crate::views::*;

type Q = Result<Query<HashMap<String, String>>, QueryRejection>;

/// `GET /blocks`.
pub async fn blocks(State(s): State<AppState>, q: Q) -> ApiResult<BlockPage> {
    let q = query(q)?;
    let before = number(&q, "before")?;
    let limit = limit(&q)?;
    read(&s, move |r| reads::blocks(r, before, limit))
        .await
        .map(axum::Json)
}

/// `GET /blocks/{id}`: by height or hash.
pub async fn block(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<BlockView> {
    let id = path(id)?;
    let at = if let Ok(h) = id.parse::<Height>() {
        BlockRef::Height(h)
    } else if let Ok(hash) = id.parse::<BlockHash>() {
        BlockRef::Hash(hash)
    } else {
        return Err(ApiError::bad_request(
            ErrorCode::BadBlockId,
            format!("{id:?} is neither a height nor a block hash (64 hex digits)"),
        ));
    };
    read(&s, move |r| reads::block(r, at)).await.map(axum::Json)
}

/// `GET /txs/{id}`: committed from the store, else pending or rejected from the mempool.
pub async fn tx(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<TxView> {
    let id = path(id)?;
    let id: TxId = id.parse().map_err(|_| {
        ApiError::bad_request(
            ErrorCode::BadTxId,
            format!("{id:?} is not a transaction id (64 hex digits)"),
        )
    })?;
    if let Some(v) = read(&s, move |r| reads::committed_tx(r, id)).await? {
        return Ok(axum::Json(v));
    }
    match ask(&s, |reply| Request::Uncommitted { id, reply }).await? {
        Some(v) => Ok(axum::Json(v)),
        None => {
            // It may have committed between the two looks.
            match read(&s, move |r| reads::committed_tx(r, id)).await? {
                Some(v) => Ok(axum::Json(v)),
                None => Err(ApiError::not_found(format!(
                    "transaction {id} is not pending, committed or recently rejected on this node"
                ))),
            }
        }
    }
}

/// `GET /accounts/{id}`.
pub async fn account(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<AccountView> {
    let id = parse_key(&path(id)?)?;
    read(&s, move |r| reads::account(r, id))
        .await
        .map(axum::Json)
}

/// `GET /accounts/{id}/txs`.
pub async fn account_txs(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Q,
) -> ApiResult<AccountTxPage> {
    let id = parse_key(&path(id)?)?;
    let q = query(q)?;
    let before = number(&q, "before")?;
    let limit = limit(&q)?;
    read(&s, move |r| reads::account_txs(r, id, before, limit))
        .await
        .map(axum::Json)
}

/// `GET /accounts/{id}/records`.
pub async fn records(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Q,
) -> ApiResult<RecordPage> {
    let id = parse_key(&path(id)?)?;
    let q = query(q)?;
    let after = q.get("after").cloned();
    let limit = limit(&q)?;
    read(&s, move |r| reads::records(r, id, after.as_deref(), limit))
        .await
        .map(axum::Json)
}

/// `GET /accounts/{id}/records/{key}`.
pub async fn record(
    State(s): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<RecordView> {
    let (id, key) = path(p)?;
    let id = parse_key(&id)?;
    read(&s, move |r| reads::record(r, id, &key))
        .await
        .map(axum::Json)
}
