//! The block explorer page every node serves at `/`: static files compiled into the binary
//! (no network at build or run time), which read the node's own JSON API and check blocks and
//! certificates in the browser (`verify.js`).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The page may load only its own files and talk only to this node.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse + Clone {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The explorer's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let index = asset("text/html; charset=utf-8", include_str!("index.html"));
    let app = asset("text/javascript; charset=utf-8", include_str!("app.js"));
    let verify = asset("text/javascript; charset=utf-8", include_str!("verify.js"));
    let style = asset("text/css; charset=utf-8", include_str!("style.css"));
    Router::new()
        .route("/", get(move || async move { index }))
        .route("/explorer/app.js", get(move || async move { app }))
        .route("/explorer/verify.js", get(move || async move { verify }))
        .route("/explorer/style.css", get(move || async move { style }))
}
