//! The OpenAPI document, generated from the handlers' annotations and the `cairn-api` types
//! they serve (utoipa), so the document cannot drift from the code. Served at
//! `GET /api/v1/openapi.json`; the API tests validate every answer they get against it.

use std::sync::OnceLock;

use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};

use crate::views::*;

/// The document's description: what holds for every route.
const ABOUT: &str = "Every Cairn node serves this API. Errors are `{\"error\":{\"code\",\"message\"}}` \
with the matching HTTP status; `code` is one of the `ErrorCode` values and stable, `message` is \
for people. Integers are JSON numbers (u64 values fit below 2^64; parse them as 64-bit \
integers). Hashes, keys and signatures are lowercase hex. See docs/PROTOCOL.md for the bytes \
behind the JSON.";

#[derive(OpenApi)]
#[openapi(
    info(title = "Cairn node API", version = "1", description = ABOUT),
    paths(
        super::status,
        super::handlers::blocks,
        super::handlers::block,
        super::submit::submit,
        super::submit::submit_batch,
        super::handlers::tx,
        super::handlers::account,
        super::handlers::account_txs,
        super::handlers::records,
        super::handlers::record,
        super::genesis,
        super::validators,
        super::validator_changes,
        super::peers,
        super::snapshots::snapshots,
        super::snapshots::manifest,
        super::snapshots::chunk,
        super::events::events,
        super::openapi,
        super::health,
        super::ready,
        super::metrics,
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode, ChainEvent, Submission)),
    tags(
        (name = "chain", description = "Committed blocks, and the live event stream."),
        (name = "transactions", description = "Submitting transactions and looking them up."),
        (name = "accounts", description = "Account state, history and records."),
        (name = "node", description = "This node: status, validators, peers, this document."),
        (name = "probes", description = "Liveness, readiness and metrics, for orchestrators and scrapers."),
    ),
    modifiers(&CommonAnswers)
)]
struct ApiDoc;

/// Adds the answers every route can give to each operation that does not list them: 405 for
/// another method, 500 when the node's storage fails, and on the `/api/v1` routes 503 when
/// the node is at its request limit or shutting down.
struct CommonAnswers;

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .into()
}

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            let ops: [&mut Option<Operation>; 2] = [&mut item.get, &mut item.post];
            for op in ops.into_iter().flatten() {
                let r = &mut op.responses.responses;
                let mut add = |code: &str, what: &str| {
                    r.entry(code.to_string()).or_insert_with(|| error(what));
                };
                add(
                    "405",
                    "`method_not_allowed`: the route does not take this method.",
                );
                if api {
                    add(
                        "500",
                        "`internal`: the node failed (its storage), not the request.",
                    );
                    add(
                        "503",
                        "`unavailable`: the node serves its maximum number of requests, or is shutting down; retry.",
                    );
                }
            }
        }
    }
}

/// The document as JSON, with two corrections to what utoipa writes: heights are
/// `cairn_ledger::Height`, an alias of `u64` that utoipa names after the primitive (the
/// component is renamed `Height`, with what it means), and unsigned formats are spelled
/// `uint64` (utoipa writes `u-int64`).
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
        && let Some(mut height) = schemas.remove("u64")
    {
        height["description"] =
            "A block height: 0 is the genesis state, the first block is 1.".into();
        schemas.insert("Height".into(), height);
    }
    fix(&mut doc);
    doc
}

/// Renames the `u64` references and the unsigned formats, everywhere in the document.
fn fix(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), x.as_str()) {
                    ("$ref", Some("#/components/schemas/u64")) => {
                        *x = "#/components/schemas/Height".into();
                    }
                    ("format", Some(f)) if f.starts_with("u-int") => {
                        *x = f.replacen("u-int", "uint", 1).into();
                    }
                    _ => fix(x),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(fix),
        _ => {}
    }
}

/// The document as JSON text, built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_string_pretty(&document()).unwrap_or_default())
}
