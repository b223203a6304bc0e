//! `GET /events`: server-sent events, a replay of committed blocks from a height (read from
//! the store on the reader threads), then live blocks and rejections as the core publishes
//! them. A reconnecting client's `Last-Event-ID` wins over the URL's `from_height`. A stream
//! that falls behind the live channel reads what it missed from the store.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use cairn_ledger::Height;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{AppState, number, query, read};
use crate::reads;
use crate::views::*;

/// Blocks read from the store per replay step.
const REPLAY_PAGE: usize = 64;

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

/// Server-sent events: `block` (a committed block with its transaction ids; the event's `id`
/// is its height) and `tx_rejected` (live only). With `from_height`, or a reconnecting
/// client's `Last-Event-ID` (which wins), committed blocks are replayed from there, then
/// followed live; without either, live events only. Each event's `data` is one
/// [`ChainEvent`] as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "chain",
    params(
        ("from_height" = Option<u64>, Query, minimum = 0, maximum = 18446744073709551615_u64, description = "Replay committed blocks from this height, then follow live."),
        ("Last-Event-ID" = Option<u64>, Header, description = "The last height a reconnecting client saw: replay resumes after it."),
    ),
    responses(
        (status = 200, description = "An endless stream of events; each `data` is a ChainEvent.", content_type = "text/event-stream", body = ChainEvent),
        (status = 400, description = "`bad_query`.", body = ErrorBody),
    )
)]
pub async fn events(
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
        None => s.status.borrow().view.height.saturating_add(1),
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
                match read(&f.s, move |r| reads::range(r, from, REPLAY_PAGE)).await {
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
