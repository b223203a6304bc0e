//! Committed reads: blocks, transactions, accounts, account histories, records. Each runs on
//! the reader threads through [`read`]; only a transaction not committed yet is looked up in
//! the core's mempool.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use cairn_ledger::{BlockHash, Height, TxId};

use super::{ApiResult, AppState, ask, limit, number, parse_key, path, prove, query, read};
use crate::core::Request;
use crate::reads::{self, BlockRef};
use crate::views::*;

type Q = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Blocks, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/blocks",
    tag = "chain",
    params(
        ("before" = Option<u64>, Query, minimum = 0, maximum = 18446744073709551615_u64, description = "Only blocks below this height (the previous page's `next`)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)."),
    ),
    responses(
        (status = 200, description = "A page of blocks.", body = BlockPage),
        (status = 400, description = "`bad_query`: a malformed or out-of-range parameter.", body = ErrorBody),
    )
)]
pub async fn blocks(State(s): State<AppState>, q: Q) -> ApiResult<BlockPage> {
    let q = query(q)?;
    let before = number(&q, "before")?;
    let limit = limit(&q)?;
    read(&s, move |r| reads::blocks(r, before, limit))
        .await
        .map(axum::Json)
}

/// One block with its commit certificate, by height or hash.
#[utoipa::path(
    get,
    path = "/api/v1/blocks/{id}",
    tag = "chain",
    params(("id" = String, Path, pattern = "^([0-9]{1,20}|[0-9a-fA-F]{64})$", description = "A height, or a block hash (64 hex digits).")),
    responses(
        (status = 200, description = "The block.", body = BlockView),
        (status = 400, description = "`bad_block_id`: neither a height nor a hash.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such block on this node.", body = ErrorBody),
        (status = 410, description = "`not_found`: below the snapshot this node joined from (`cairn-node join`); it holds no block there.", body = ErrorBody),
    )
)]
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

/// A transaction: committed (with its receipt and inclusion proof) from the store, else
/// pending or recently rejected from this node's mempool.
#[utoipa::path(
    get,
    path = "/api/v1/txs/{id}",
    tag = "transactions",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Transaction id (64 hex digits).")),
    responses(
        (status = 200, description = "The transaction and where it stands.", body = TxView),
        (status = 400, description = "`bad_tx_id`: not 64 hex digits.", body = ErrorBody),
        (status = 404, description = "`not_found`: not pending, committed or recently rejected here.", body = ErrorBody),
    )
)]
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

/// An account's balance, nonce and role (an unknown account reads as empty).
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}",
    tag = "accounts",
    params(
        ("id" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Account id: its public key (64 hex digits)."),
        ("prove" = Option<bool>, Query, description = "`true`: add the proof of the account (or of its absence) against the certified block at `height` (PROTOCOL.md §7)."),
    ),
    responses(
        (status = 200, description = "The account at the committed height.", body = AccountView),
        (status = 400, description = "`bad_account_id`: not 64 hex digits; `bad_query`: `prove` is not `true` or `false`.", body = ErrorBody),
        (status = 503, description = "`unavailable`: blocks kept committing while the proof was read; try again.", body = ErrorBody),
    )
)]
pub async fn account(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Q,
) -> ApiResult<AccountView> {
    let id = parse_key(&path(id)?)?;
    if prove(&query(q)?)? {
        let tree = s.tree.clone();
        return read(&s, move |r| reads::proved_account(r, &tree, id))
            .await
            .map(axum::Json);
    }
    read(&s, move |r| reads::account(r, id))
        .await
        .map(axum::Json)
}

/// An account's committed transactions (sent or received), newest first; a page ends on a
/// block boundary.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}/txs",
    tag = "accounts",
    params(
        ("id" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Account id (64 hex digits)."),
        ("before" = Option<u64>, Query, minimum = 0, maximum = 18446744073709551615_u64, description = "Only blocks below this height (the previous page's `next`)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)."),
    ),
    responses(
        (status = 200, description = "A page of the account's transactions.", body = AccountTxPage),
        (status = 400, description = "`bad_account_id` or `bad_query`.", body = ErrorBody),
    )
)]
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

/// An account's records, in key order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}/records",
    tag = "accounts",
    params(
        ("id" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Account id (64 hex digits)."),
        ("after" = Option<String>, Query, description = "Only keys after this one (the previous page's `next`)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)."),
    ),
    responses(
        (status = 200, description = "A page of records.", body = RecordPage),
        (status = 400, description = "`bad_account_id` or `bad_query`.", body = ErrorBody),
    )
)]
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

/// One record of an account, committed state.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}/records/{key}",
    tag = "accounts",
    params(
        ("id" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Account id (64 hex digits)."),
        ("key" = String, Path, min_length = 1, max_length = 128, description = "The record's key, percent-encoded."),
        ("prove" = Option<bool>, Query, description = "`true`: add the proof of the record against the certified block at the committed height (PROTOCOL.md §7)."),
    ),
    responses(
        (status = 200, description = "The record. With `prove=true` an absent record answers 200 too, with `absent: true` and the proof of its absence.", body = RecordView),
        (status = 400, description = "`bad_account_id`, `bad_path`, or `bad_query`: `prove` is not `true` or `false`.", body = ErrorBody),
        (status = 404, description = "`not_found`: the account has no such record (without `prove=true`).", body = ErrorBody),
        (status = 503, description = "`unavailable`: blocks kept committing while the proof was read; try again.", body = ErrorBody),
    )
)]
pub async fn record(
    State(s): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Q,
) -> ApiResult<RecordView> {
    let (id, key) = path(p)?;
    let id = parse_key(&id)?;
    let tree = prove(&query(q)?)?.then(|| s.tree.clone());
    read(&s, move |r| reads::record(r, id, &key, tree.as_ref()))
        .await
        .map(axum::Json)
}
