//! The node's handle on the network: commands in, and what the network knows about peers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cairn_crypto::PublicKey;
use tokio::sync::{mpsc, oneshot};

use crate::{Command, Counters, Heard, P2pError, PeerInfo, RequestId, Topic, to_peer_id};

/// Sends commands to the network. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) connected: Arc<RwLock<HashSet<PublicKey>>>,
    pub(crate) heard: Heard,
    pub(crate) next_request: Arc<AtomicU64>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) peer_id: String,
}

impl Client {
    fn queue(&self, c: Command) -> Result<(), P2pError> {
        self.commands.try_send(c).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => P2pError::Busy,
            mpsc::error::TrySendError::Closed(_) => P2pError::Closed,
        })
    }

    /// Sends a direct message (best effort: consensus tolerates loss).
    pub fn send(&self, to: PublicKey, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.queue(Command::Send { to, bytes })
    }

    /// Publishes on a gossip topic.
    pub fn publish(&self, topic: Topic, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.queue(Command::Publish { topic, bytes })
    }

    /// Asks a peer for blocks; the answer comes as [`Event::SyncResponse`] with the number
    /// returned here.
    pub fn request(&self, to: PublicKey, bytes: Vec<u8>) -> Result<u64, P2pError> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        self.queue(Command::Request { to, bytes, request })?;
        Ok(request)
    }

    /// Answers a sync request.
    pub fn respond(&self, id: RequestId, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.queue(Command::Respond { id, bytes })
    }

    /// Disconnects a peer that sent bytes the application could not decode, and counts it.
    pub fn report(&self, peer: PublicKey, reason: impl Into<String>) -> Result<(), P2pError> {
        self.queue(Command::Report {
            peer,
            reason: reason.into(),
        })
    }

    /// Replaces the allow-list (when the validator set changes): keys no longer on it are
    /// disconnected now and refused from then on, new ones are admitted. An invalid key is
    /// refused here, before anything changes.
    pub fn set_allowed(&self, keys: Vec<PublicKey>) -> Result<(), P2pError> {
        for k in &keys {
            to_peer_id(k)?;
        }
        self.queue(Command::SetAllowed { keys })
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Peers { reply })
            .await
            .map_err(|_| P2pError::Closed)?;
        rx.await.map_err(|_| P2pError::Closed)
    }

    /// Whether an allow-listed peer is connected now. This is the network's own record, so
    /// it stays right even when the node's event queue overflowed and dropped a
    /// `Connected`/`Disconnected` event.
    pub fn is_connected(&self, peer: &PublicKey) -> bool {
        self.connected
            .read()
            .map(|c| c.contains(peer))
            .unwrap_or(false)
    }

    /// The connected allow-listed peers.
    pub fn connected(&self) -> Vec<PublicKey> {
        self.connected
            .read()
            .map(|c| c.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How long since anything arrived from a connected peer (a pong or a message); `None`
    /// if it is not connected.
    pub fn silent_for(&self, peer: &PublicKey) -> Option<Duration> {
        let heard = self.heard.read().ok()?;
        heard.get(peer).map(Instant::elapsed)
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// This node's libp2p peer id (derived from its key), for bootstrap addresses.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }
}
