//! `/api/v1/snapshots…`: the state snapshots this node keeps, for nodes joining with
//! `cairn-node join` (the manifest as JSON, each chunk in the codec).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cairn_ledger::Height;
use cairn_ledger::snapshot::SnapshotManifest;

use super::{ApiResult, AppState, path, read};
use crate::views::*;

/// The snapshots this node serves.
#[utoipa::path(
    get,
    path = "/api/v1/snapshots",
    tag = "chain",
    responses((status = 200, description = "Their heights, newest first (none when snapshots are off or none was taken yet).", body = SnapshotList))
)]
pub async fn snapshots(State(s): State<AppState>) -> ApiResult<SnapshotList> {
    let snaps = s.snapshots.clone();
    read(&s, move |_| {
        Ok(SnapshotList {
            heights: snaps.heights(),
        })
    })
    .await
    .map(axum::Json)
}

/// A snapshot's manifest: the hash and size of each chunk, to check against the `state_root`
/// of the block at its height (PROTOCOL.md §7).
#[utoipa::path(
    get,
    path = "/api/v1/snapshots/{height}",
    tag = "chain",
    params(("height" = u64, Path, minimum = 1, description = "A height `GET /api/v1/snapshots` lists.")),
    responses(
        (status = 200, description = "The manifest.", body = SnapshotManifest),
        (status = 400, description = "`bad_path`: not a height.", body = ErrorBody),
        (status = 404, description = "`not_found`: no snapshot at that height (any more).", body = ErrorBody),
    )
)]
pub async fn manifest(
    State(s): State<AppState>,
    h: Result<Path<Height>, PathRejection>,
) -> ApiResult<SnapshotManifest> {
    let h = path(h)?;
    let snaps = s.snapshots.clone();
    read(&s, move |_| {
        snaps
            .manifest(h)
            .ok_or_else(|| ApiError::not_found(format!("no snapshot at height {h}")))
    })
    .await
    .map(axum::Json)
}

/// One chunk of a snapshot: the canonical encoding of `StateChunk { index: u32, entries:
/// Vec<(Vec<u8>, Vec<u8>)> }`, entries sorted by the SHA-256 of their key.
#[utoipa::path(
    get,
    path = "/api/v1/snapshots/{height}/chunks/{index}",
    tag = "chain",
    params(
        ("height" = u64, Path, minimum = 1, description = "The snapshot's height."),
        ("index" = u32, Path, description = "The chunk, from 0."),
    ),
    responses(
        (status = 200, description = "The chunk's bytes.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "`bad_path`.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such snapshot or chunk.", body = ErrorBody),
    )
)]
pub async fn chunk(
    State(s): State<AppState>,
    p: Result<Path<(Height, u32)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (h, i) = path(p)?;
    let snaps = s.snapshots.clone();
    let bytes = read(&s, move |_| {
        snaps
            .chunk(h, i)
            .ok_or_else(|| ApiError::not_found(format!("no chunk {i} of a snapshot at {h}")))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
