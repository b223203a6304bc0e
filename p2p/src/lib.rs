//! `cairn-p2p`: the network between validators, on libp2p.
//!
//! - TCP + Noise + Yamux; the libp2p identity is the validator's ed25519 key, so every
//!   connection is authenticated as one public key.
//! - Only allow-listed keys (the genesis validators and configured observers) get a
//!   connection: anyone else is refused at the connection layer, right after the Noise
//!   handshake proves who they are, before any protocol runs.
//! - Discovery: static bootstrap addresses (redialled while disconnected), identify,
//!   Kademlia on a private protocol name, and mDNS when switched on.
//! - Gossipsub topics for transactions and block announcements; one long-lived stream per peer
//!   for direct (consensus) messages ([`direct`]); request-response for block sync. Every
//!   inbound message has a size limit; a peer that exceeds it, or whose bytes the application
//!   cannot decode ([`Client::report`]), is disconnected and counted.
//! - Liveness: every peer is pinged each `ping_interval`; whatever arrives from a peer (a pong,
//!   a message) counts as hearing from it ([`Client::silent_for`]). A link that brought
//!   nothing for `dead_after` is dead even if TCP still holds it open (a paused process, a cut
//!   link): it is disconnected, and the redial loop brings it back once the peer answers
//!   again. (Counting failed pings would be slower: after a timeout, libp2p's ping opens a
//!   new stream, and on a silent link that waits for the stream upgrade's own timeout.)
//!
//! Content is opaque bytes here: the node decodes and checks it. No libp2p type leaks out; the
//! crate exposes a [`Client`] (commands), a stream of [`Event`]s and an [`EventLoop`] to run.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod client;
mod direct;
mod event_loop;
mod frames;
mod gossip_id;
mod swarm;

pub use client::Client;
pub use event_loop::{EventLoop, start};

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cairn_crypto::PublicKey;
use libp2p::{Multiaddr, PeerId, identity};
use tokio::sync::oneshot;

/// Why the network could not start, or a command could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// An address that is not a valid multiaddr.
    #[error("bad address {addr:?}: {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// An allow-listed key that is not a valid ed25519 point.
    #[error("allow-listed key {0} is not a valid ed25519 public key")]
    BadKey(PublicKey),
    /// The transport or a behaviour failed to start.
    #[error("network setup: {0}")]
    Setup(String),
    /// The command queue is full (the network is overloaded); the command was dropped.
    #[error("network command queue is full")]
    Busy,
    /// The event loop has stopped.
    #[error("network is shut down")]
    Closed,
}

/// A gossip topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Transactions (batches of encoded signed transactions).
    Txs,
    /// Block announcements.
    Blocks,
}

/// Network settings.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Chain id: names the topics and protocols, so two chains never mix.
    pub chain_id: String,
    /// This validator's (or observer's) ed25519 secret seed: the libp2p identity.
    pub key_seed: [u8; 32],
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/26656`.
    pub listen: Vec<String>,
    /// Peers to dial and keep dialling while disconnected, each with its `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// Keys allowed to connect (validators and observers). Everyone else is refused.
    pub allowed: Vec<PublicKey>,
    /// Discover peers on the local network with mDNS (multicast: off unless asked).
    pub mdns: bool,
    /// Largest gossip message.
    pub max_gossip_bytes: usize,
    /// Largest direct message.
    pub max_direct_bytes: usize,
    /// Largest block-sync request.
    pub max_sync_request_bytes: usize,
    /// Largest block-sync response.
    pub max_sync_response_bytes: usize,
    /// Capacity of the event and command queues.
    pub queue: usize,
    /// How long a sync request may take.
    pub request_timeout: Duration,
    /// Ping every connected peer this often.
    pub ping_interval: Duration,
    /// A ping without an answer for this long fails.
    pub ping_timeout: Duration,
    /// A connected peer heard nothing from for this long is disconnected as dead.
    pub dead_after: Duration,
    /// Names of known keys (the genesis monikers), for logs.
    pub names: HashMap<PublicKey, String>,
}

impl NetworkConfig {
    /// Defaults for a chain and key; listen, bootstrap and allow-list still to fill in.
    pub fn new(chain_id: &str, key_seed: [u8; 32]) -> NetworkConfig {
        NetworkConfig {
            chain_id: chain_id.to_string(),
            key_seed,
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            bootstrap: Vec::new(),
            allowed: Vec::new(),
            mdns: false,
            max_gossip_bytes: 1 << 20,
            max_direct_bytes: 8 << 20,
            max_sync_request_bytes: 1 << 10,
            max_sync_response_bytes: 32 << 20,
            queue: 4096,
            request_timeout: Duration::from_secs(20),
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(2),
            dead_after: Duration::from_secs(5),
            names: HashMap::new(),
        }
    }
}

/// How a peer appears in logs: its name if the configuration gave one, else its key.
#[derive(Debug, Clone, Default)]
struct Names(Arc<HashMap<PublicKey, String>>);

impl Names {
    fn of(&self, key: &PublicKey) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string()[..12].to_string())
    }
}

/// An inbound sync request to answer with [`Client::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// What the network tells the node.
#[derive(Debug)]
pub enum Event {
    /// Listening on an address (with `/p2p/<peer id>` appended, ready to give to others).
    Listening {
        /// The address.
        addr: String,
    },
    /// A first connection to an allow-listed peer is up.
    Connected {
        /// The peer.
        peer: PublicKey,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer: PublicKey,
    },
    /// A direct message.
    Direct {
        /// Sender (authenticated by the connection).
        from: PublicKey,
        /// Content.
        bytes: Vec<u8>,
    },
    /// A gossip message.
    Gossip {
        /// The peer that forwarded it (authenticated by the connection).
        from: PublicKey,
        /// Its topic.
        topic: Topic,
        /// Content.
        bytes: Vec<u8>,
    },
    /// A peer asks for blocks: answer with [`Client::respond`].
    SyncRequest {
        /// Who asks.
        from: PublicKey,
        /// Where to send the answer.
        id: RequestId,
        /// The request.
        bytes: Vec<u8>,
    },
    /// The answer to [`Client::request`], or why there is none.
    SyncResponse {
        /// The peer asked.
        from: PublicKey,
        /// The number [`Client::request`] returned.
        request: u64,
        /// The answer.
        result: Result<Vec<u8>, String>,
    },
}

/// Counters, shared with the client.
#[derive(Debug, Default)]
pub struct Counters {
    /// Peers disconnected for sending garbage (oversized or undecodable).
    pub misbehaving: AtomicU64,
    /// Inbound connections refused (key not allow-listed).
    pub refused: AtomicU64,
    /// Events dropped because the node's queue was full.
    pub dropped_events: AtomicU64,
    /// Outbound direct messages dropped: the peer was not connected, its queue was full, or
    /// the write failed.
    pub failed_sends: AtomicU64,
    /// Links disconnected because their pings failed.
    pub dead_links: AtomicU64,
}

enum Command {
    Send {
        to: PublicKey,
        bytes: Vec<u8>,
    },
    Publish {
        topic: Topic,
        bytes: Vec<u8>,
    },
    Request {
        to: PublicKey,
        bytes: Vec<u8>,
        request: u64,
    },
    Respond {
        id: RequestId,
        bytes: Vec<u8>,
    },
    Report {
        peer: PublicKey,
        reason: String,
    },
    SetAllowed {
        keys: Vec<PublicKey>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
}

/// A connected peer, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its key.
    pub key: PublicKey,
    /// The address of one of its connections.
    pub addr: String,
}

/// When each connected peer was last heard from.
type Heard = Arc<RwLock<HashMap<PublicKey, Instant>>>;

/// The libp2p peer id of an ed25519 public key, as text (for `/p2p/…` address suffixes).
pub fn peer_id_of(key: &PublicKey) -> Result<String, P2pError> {
    Ok(to_peer_id(key)?.to_string())
}

fn to_peer_id(key: &PublicKey) -> Result<PeerId, P2pError> {
    let pk =
        identity::ed25519::PublicKey::try_from_bytes(&key.0).map_err(|_| P2pError::BadKey(*key))?;
    Ok(identity::PublicKey::from(pk).to_peer_id())
}

fn parse_addr(a: &str) -> Result<Multiaddr, P2pError> {
    a.parse()
        .map_err(|e: libp2p::multiaddr::Error| P2pError::BadAddress {
            addr: a.to_string(),
            reason: e.to_string(),
        })
}

/// A peer's address: a multiaddr ending in `/p2p/<peer id>`.
fn peer_address(a: &str) -> Result<(PeerId, Multiaddr), P2pError> {
    let addr = parse_addr(a)?;
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Ok((peer, addr)),
        _ => Err(P2pError::BadAddress {
            addr: a.to_string(),
            reason: "must end in /p2p/<peer id>".into(),
        }),
    }
}

/// Checks an address to listen on: a multiaddr with a TCP port, such as
/// `/ip4/0.0.0.0/tcp/26000`.
pub fn check_listen_address(a: &str) -> Result<(), P2pError> {
    let addr = parse_addr(a)?;
    if !addr
        .iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
    {
        return Err(P2pError::BadAddress {
            addr: a.to_string(),
            reason: "needs a TCP port, as in /ip4/0.0.0.0/tcp/26000".into(),
        });
    }
    Ok(())
}

/// Checks a peer's address to dial: a multiaddr ending in `/p2p/<peer id>`.
pub fn check_peer_address(a: &str) -> Result<(), P2pError> {
    peer_address(a).map(|_| ())
}

fn setup<E: std::fmt::Display>(e: E) -> P2pError {
    P2pError::Setup(e.to_string())
}
