//! Direct (consensus) messages on one long-lived stream per peer.
//!
//! A request-response exchange per message cost a new Yamux stream, a protocol negotiation
//! and an empty answer for every vote: at a hundred blocks a second that work was a quarter
//! of a node's CPU. Here each connected peer gets a *link*: a bounded queue drained by one
//! writer task, which keeps a stream open to the peer and writes the queued messages as
//! length-prefixed frames ([`crate::frames`]), everything queued at once in one write. The
//! peer's reader task reads frames off that stream, one at a time and at most
//! `max_direct_bytes` each, and hands them to the node.
//!
//! Messages stay best effort, as the engines expect: a full queue, a failed write or a
//! stream that cannot be opened drops messages and counts them in `failed_sends`. A write
//! that fails drops its stream; the next message opens a new one. Messages to one peer arrive
//! in the order they were sent, unless some are dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cairn_crypto::PublicKey;
use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::mpsc;

use crate::frames::read_frame;
use crate::{Command, Counters, Event, Heard};

/// Messages waiting for one peer's writer. Beyond this the peer is not keeping up (or the
/// link is being re-established) and new messages are dropped.
pub(crate) const LINK_QUEUE: usize = 1024;
/// Most messages written in one go.
const WRITE_BATCH: usize = 256;
/// A stream that cannot be opened, or a write that does not finish, within this long fails.
const STREAM_DEADLINE: Duration = Duration::from_secs(5);
/// Inbound direct streams one peer may hold open at once. A peer opens one per connection;
/// a few more cover a reconnection whose old streams have not closed yet.
const STREAMS_PER_PEER: usize = 4;

/// What the reader and writer tasks share with the event loop.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The peers connected now, as the event loop records them.
    pub(crate) connected: Arc<RwLock<HashSet<PublicKey>>>,
    pub(crate) protocol: StreamProtocol,
    pub(crate) max_bytes: usize,
    pub(crate) counters: Arc<Counters>,
    pub(crate) heard: Heard,
    pub(crate) events: mpsc::Sender<Event>,
    /// Weak, so that the event loop still stops when every client is gone.
    pub(crate) commands: mpsc::WeakSender<Command>,
    /// The allow-list, as the event loop last set it.
    pub(crate) keys: Arc<RwLock<HashMap<PeerId, PublicKey>>>,
}

/// Starts the writer task for a newly connected peer; returns its queue. Dropping the queue
/// ends the task once it has written (or dropped) what is queued.
pub(crate) fn open_link(
    shared: &Shared,
    control: libp2p_stream::Control,
    peer: PeerId,
    key: PublicKey,
) -> mpsc::Sender<Vec<u8>> {
    let (tx, rx) = mpsc::channel(LINK_QUEUE);
    tokio::spawn(write_link(shared.clone(), control, peer, key, rx));
    tx
}

async fn write_link(
    shared: Shared,
    mut control: libp2p_stream::Control,
    peer: PeerId,
    key: PublicKey,
    mut queue: mpsc::Receiver<Vec<u8>>,
) {
    let mut stream: Option<Stream> = None;
    let mut batch = Vec::new();
    let mut buf = Vec::new();
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        buf.clear();
        let mut sent = 0u64;
        for m in batch.drain(..) {
            if m.len() > shared.max_bytes {
                shared.counters.failed_sends.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            buf.extend_from_slice(&(m.len() as u32).to_le_bytes());
            buf.extend_from_slice(&m);
            sent += 1;
        }
        if sent == 0 {
            continue;
        }
        // Opening a stream to a peer without a connection would dial it (libp2p-stream does):
        // a link whose peer is gone drops what is left in its queue instead.
        let connected = shared
            .connected
            .read()
            .map(|c| c.contains(&key))
            .unwrap_or(false);
        if !connected {
            stream = None;
        } else if stream.is_none() {
            let open = control.open_stream(peer, shared.protocol.clone());
            match tokio::time::timeout(STREAM_DEADLINE, open).await {
                Ok(Ok(s)) => stream = Some(s),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "cannot open a direct stream");
                }
                Err(_) => tracing::debug!(%peer, "opening a direct stream timed out"),
            }
        }
        let written = match stream.as_mut() {
            Some(s) => {
                let write = async {
                    s.write_all(&buf).await?;
                    s.flush().await
                };
                matches!(
                    tokio::time::timeout(STREAM_DEADLINE, write).await,
                    Ok(Ok(()))
                )
            }
            None => false,
        };
        if !written {
            // Part of the batch may have gone out; the rest is lost with the stream.
            stream = None;
            shared
                .counters
                .failed_sends
                .fetch_add(sent, Ordering::Relaxed);
        }
    }
}

/// Accepts peers' direct streams and reads each on its own task, until the network stops.
pub(crate) async fn accept_streams(shared: Shared, mut incoming: libp2p_stream::IncomingStreams) {
    let open: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
    while let Some((peer, stream)) = incoming.next().await {
        let from = shared.keys.read().ok().and_then(|k| k.get(&peer).copied());
        let Some(from) = from else {
            // The allow-list refuses other keys before any stream: nothing to read.
            continue;
        };
        {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(peer).or_default();
            if *n >= STREAMS_PER_PEER {
                tracing::debug!(%peer, "too many direct streams from one peer: dropping one");
                continue;
            }
            *n += 1;
        }
        let shared = shared.clone();
        let open = open.clone();
        tokio::spawn(async move {
            read_stream(&shared, peer, from, stream).await;
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&peer);
                }
            }
        });
    }
}

async fn read_stream(shared: &Shared, peer: PeerId, from: PublicKey, mut stream: Stream) {
    loop {
        match read_frame(&mut stream, shared.max_bytes).await {
            Ok(bytes) => {
                if let Ok(mut h) = shared.heard.write() {
                    h.insert(from, Instant::now());
                }
                if shared
                    .events
                    .try_send(Event::Direct { from, bytes })
                    .is_err()
                {
                    shared
                        .counters
                        .dropped_events
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                // Over the limit: the event loop disconnects and counts the peer.
                if let Some(commands) = shared.commands.upgrade() {
                    let _ = commands.try_send(Command::Report {
                        peer: from,
                        reason: format!("direct message: {e}"),
                    });
                }
                return;
            }
            // The stream or its connection closed.
            Err(e) => {
                tracing::debug!(%peer, error = %e, "direct stream ended");
                return;
            }
        }
    }
}
