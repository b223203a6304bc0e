//! What the p2p tests share: waiting for an event or a condition, with a deadline.

use std::time::Duration;

use cairn_p2p::Event;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// How long any one wait may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The next event that `pick` accepts, skipping others; panics at the deadline.
pub async fn next<T>(
    events: &mut mpsc::Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => {
                if let Some(t) = pick(ev) {
                    return t;
                }
            }
            other => panic!("waiting for {what}: {other:?}"),
        }
    }
}

/// Waits until `cond` holds; panics at the deadline.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
