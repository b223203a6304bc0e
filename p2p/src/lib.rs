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

mod direct;
mod frames;
mod gossip_id;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cairn_crypto::PublicKey;
use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, gossipsub, identify, identity, kad,
    mdns, noise, ping, request_response, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use frames::{Frame, Frames};

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

/// Sends commands to the network. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    connected: Arc<RwLock<HashSet<PublicKey>>>,
    heard: Heard,
    next_request: Arc<AtomicU64>,
    counters: Arc<Counters>,
    peer_id: String,
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

/// The libp2p peer id of an ed25519 public key, as text (for `/p2p/…` address suffixes).
pub fn peer_id_of(key: &PublicKey) -> Result<String, P2pError> {
    Ok(to_peer_id(key)?.to_string())
}

fn to_peer_id(key: &PublicKey) -> Result<PeerId, P2pError> {
    let pk =
        identity::ed25519::PublicKey::try_from_bytes(&key.0).map_err(|_| P2pError::BadKey(*key))?;
    Ok(identity::PublicKey::from(pk).to_peer_id())
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossip: gossipsub::Behaviour,
    direct: libp2p_stream::Behaviour,
    sync: request_response::Behaviour<Frames>,
}

/// Drives the swarm. Run it with [`EventLoop::run`] on a tokio runtime.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    counters: Arc<Counters>,
    shared_connected: Arc<RwLock<HashSet<PublicKey>>>,
    /// Allow-listed peers by id.
    keys: HashMap<PeerId, PublicKey>,
    /// Keys taken off the allow-list while connected, until their connections have closed
    /// (so their departure is still reported).
    former: HashMap<PeerId, PublicKey>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    topics: [(Topic, gossipsub::IdentTopic); 2],
    /// Inbound sync requests waiting for an answer.
    pending: HashMap<u64, request_response::ResponseChannel<Vec<u8>>>,
    next_inbound: u64,
    /// Outbound sync requests: libp2p's id → ours.
    outbound: HashMap<request_response::OutboundRequestId, (PublicKey, u64)>,
    connected: HashMap<PeerId, Multiaddr>,
    /// Each connected peer's queue of direct messages, drained by its writer task.
    links: HashMap<PeerId, mpsc::Sender<Vec<u8>>>,
    /// Opens direct streams.
    control: libp2p_stream::Control,
    /// Peers' direct streams, until [`EventLoop::run`] starts reading them.
    incoming: Option<libp2p_stream::IncomingStreams>,
    direct: direct::Shared,
    heard: Heard,
    dead_after: Duration,
    names: Names,
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

/// Builds the network: a client, the event stream, and the loop to run.
pub fn start(cfg: NetworkConfig) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), P2pError> {
    let keypair = identity::Keypair::ed25519_from_bytes(cfg.key_seed).map_err(setup)?;
    let me = keypair.public().to_peer_id();
    let mut keys = HashMap::new();
    for k in &cfg.allowed {
        keys.insert(to_peer_id(k)?, *k);
    }
    let mut bootstrap = Vec::new();
    for a in &cfg.bootstrap {
        let (peer, addr) = peer_address(a)?;
        if peer != me {
            bootstrap.push((peer, addr));
        }
    }
    let chain = &cfg.chain_id;
    let kad_protocol =
        StreamProtocol::try_from_owned(format!("/cairn/{chain}/kad/1")).map_err(setup)?;
    // Version 2: a stream of frames per peer (version 1 was one request per message).
    let direct_protocol =
        StreamProtocol::try_from_owned(format!("/cairn/{chain}/direct/2")).map_err(setup)?;
    let sync_protocol =
        StreamProtocol::try_from_owned(format!("/cairn/{chain}/sync/1")).map_err(setup)?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(setup)?
        .with_behaviour(|key| {
            let mut allow = allow_block_list::Behaviour::default();
            for peer in keys.keys() {
                allow.allow_peer(*peer);
            }
            let gossip_cfg = gossipsub::ConfigBuilder::default()
                .max_transmit_size(cfg.max_gossip_bytes)
                // Messages name their author but are not signed: every hop is a Noise
                // channel to an allow-listed key, receivers act on the peer that handed them
                // a message (not on its author), and what the messages carry (signed
                // transactions, tips to check by sync) is verified on its own. A signature
                // per message would cost each receiver one more ed25519 check per block.
                .validation_mode(gossipsub::ValidationMode::Permissive)
                // Unsigned, a message's author and sequence number no longer pin its bytes: a
                // relay could pass on other data under them, and receivers would then drop
                // the genuine copy as already seen. The id covers the data too.
                .message_id_fn(gossip_id::gossip_message_id)
                .heartbeat_interval(Duration::from_millis(700))
                .build()
                .map_err(|e| e.to_string())?;
            let gossip =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Author(me), gossip_cfg)?;
            let mut kad = kad::Behaviour::with_config(
                me,
                kad::store::MemoryStore::new(me),
                kad::Config::new(kad_protocol),
            );
            kad.set_mode(Some(kad::Mode::Server));
            let mdns = if cfg.mdns {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), me)?)
            } else {
                None
            };
            let rr = request_response::Config::default().with_request_timeout(cfg.request_timeout);
            Ok(Behaviour {
                allow,
                identify: identify::Behaviour::new(identify::Config::new(
                    format!("/cairn/{chain}/1"),
                    key.public(),
                )),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(cfg.ping_interval)
                        .with_timeout(cfg.ping_timeout),
                ),
                kad,
                mdns: Toggle::from(mdns),
                gossip,
                direct: libp2p_stream::Behaviour::new(),
                sync: request_response::Behaviour::with_codec(
                    Frames {
                        max_request: cfg.max_sync_request_bytes,
                        max_response: cfg.max_sync_response_bytes,
                    },
                    [(sync_protocol, request_response::ProtocolSupport::Full)],
                    rr,
                ),
            })
        })
        .map_err(setup)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for a in &cfg.listen {
        swarm.listen_on(parse_addr(a)?).map_err(|e| {
            // The transport's own text can be empty: name the address and every cause.
            let mut why = format!("cannot listen on {a}: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                why.push_str(&format!(": {c}"));
                cause = c.source();
            }
            P2pError::Setup(why)
        })?;
    }
    let topics = [
        (
            Topic::Txs,
            gossipsub::IdentTopic::new(format!("/cairn/{chain}/txs")),
        ),
        (
            Topic::Blocks,
            gossipsub::IdentTopic::new(format!("/cairn/{chain}/blocks")),
        ),
    ];
    for (_, t) in &topics {
        swarm.behaviour_mut().gossip.subscribe(t).map_err(setup)?;
    }
    for (peer, addr) in &bootstrap {
        swarm.behaviour_mut().kad.add_address(peer, addr.clone());
    }
    let mut control = swarm.behaviour().direct.new_control();
    let incoming = control.accept(direct_protocol.clone()).map_err(setup)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(cfg.queue);
    let (ev_tx, ev_rx) = mpsc::channel(cfg.queue);
    let counters = Arc::new(Counters::default());
    let shared_connected: Arc<RwLock<HashSet<PublicKey>>> = Arc::default();
    let heard: Heard = Arc::default();
    let client = Client {
        commands: cmd_tx,
        connected: shared_connected.clone(),
        heard: heard.clone(),
        next_request: Arc::new(AtomicU64::new(1)),
        counters: counters.clone(),
        peer_id: me.to_string(),
    };
    let direct = direct::Shared {
        protocol: direct_protocol,
        max_bytes: cfg.max_direct_bytes,
        counters: counters.clone(),
        heard: heard.clone(),
        events: ev_tx.clone(),
        commands: client.commands.downgrade(),
        keys: Arc::new(RwLock::new(keys.clone())),
    };
    let event_loop = EventLoop {
        swarm,
        commands: cmd_rx,
        events: ev_tx,
        counters,
        shared_connected,
        keys,
        former: HashMap::new(),
        bootstrap,
        topics,
        pending: HashMap::new(),
        next_inbound: 0,
        outbound: HashMap::new(),
        connected: HashMap::new(),
        links: HashMap::new(),
        control,
        incoming: Some(incoming),
        direct,
        heard,
        dead_after: cfg.dead_after,
        names: Names(Arc::new(cfg.names.clone())),
    };
    Ok((client, ev_rx, event_loop))
}

impl EventLoop {
    /// Runs until every [`Client`] is dropped.
    pub async fn run(mut self) {
        let reader = self
            .incoming
            .take()
            .map(|incoming| tokio::spawn(direct::accept_streams(self.direct.clone(), incoming)));
        let mut redial = tokio::time::interval(Duration::from_millis(1000));
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = self.commands.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => {
                        if let Some(r) = &reader {
                            r.abort();
                        }
                        return;
                    }
                },
                _ = redial.tick() => {
                    self.drop_dead_links();
                    self.redial();
                }
            }
        }
    }

    fn emit(&mut self, ev: Event) {
        if self.events.try_send(ev).is_err() {
            self.counters.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn redial(&mut self) {
        let missing: Vec<(PeerId, Multiaddr)> = self
            .bootstrap
            .iter()
            // A bootstrap address of a key taken off the allow-list is not dialled.
            .filter(|(p, _)| self.keys.contains_key(p) && !self.swarm.is_connected(p))
            .cloned()
            .collect();
        for (peer, addr) in missing {
            // One dial at a time per peer: a peer that accepts TCP but never answers (a paused
            // process) would otherwise collect a dial a second. A failed dial is retried on
            // the next round.
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(vec![addr])
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    fn name(&self, peer: &PeerId) -> String {
        match self.keys.get(peer) {
            Some(k) => self.names.of(k),
            None => peer.to_string(),
        }
    }

    fn misbehaved(&mut self, peer: PeerId, reason: &str) {
        self.counters.misbehaving.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(peer = %self.name(&peer), reason, "disconnecting misbehaving peer");
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// Something arrived from `peer`: it is alive.
    fn heard_from(&mut self, peer: &PeerId) {
        if let Some(k) = self.keys.get(peer)
            && let Ok(mut h) = self.heard.write()
        {
            h.insert(*k, Instant::now());
        }
    }

    /// Disconnects connected peers that were silent for `dead_after`.
    fn drop_dead_links(&mut self) {
        let dead: Vec<(PeerId, PublicKey, Duration)> = match self.heard.read() {
            Ok(h) => self
                .connected
                .keys()
                .filter_map(|p| {
                    let k = self.keys.get(p)?;
                    let silent = h.get(k)?.elapsed();
                    (silent > self.dead_after).then_some((*p, *k, silent))
                })
                .collect(),
            Err(_) => return,
        };
        for (peer, key, silent) in dead {
            self.counters.dead_links.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                peer = %self.names.of(&key),
                silent_s = silent.as_secs(),
                "link is dead (nothing heard, pings unanswered): disconnecting; it is redialled"
            );
            if let Ok(mut h) = self.heard.write() {
                h.remove(&key);
            }
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn set_allowed(&mut self, keys: Vec<PublicKey>) {
        let mut next = HashMap::new();
        for k in keys {
            // Checked by the client.
            if let Ok(p) = to_peer_id(&k) {
                next.insert(p, k);
            }
        }
        let gone: Vec<(PeerId, PublicKey)> = self
            .keys
            .iter()
            .filter(|(p, _)| !next.contains_key(p))
            .map(|(p, k)| (*p, *k))
            .collect();
        for (peer, _) in next.iter().filter(|(p, _)| !self.keys.contains_key(p)) {
            self.swarm.behaviour_mut().allow.allow_peer(*peer);
        }
        self.keys = next;
        if let Ok(mut shared) = self.direct.keys.write() {
            shared.clone_from(&self.keys);
        }
        for (peer, key) in gone {
            self.swarm.behaviour_mut().allow.disallow_peer(peer);
            if self.swarm.is_connected(&peer) {
                tracing::info!(peer = %self.names.of(&key), "no longer allowed: disconnecting");
                self.former.insert(peer, key);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Send { to, bytes } => {
                let queued = to_peer_id(&to)
                    .ok()
                    .and_then(|p| self.links.get(&p))
                    .is_some_and(|link| link.try_send(bytes).is_ok());
                if !queued {
                    self.counters.failed_sends.fetch_add(1, Ordering::Relaxed);
                }
            }
            Command::Publish { topic, bytes } => {
                let Some((_, t)) = self.topics.iter().find(|(k, _)| *k == topic) else {
                    return;
                };
                let t = t.clone();
                // No subscribed peer yet is not an error worth more than a debug line.
                if let Err(e) = self.swarm.behaviour_mut().gossip.publish(t, bytes) {
                    tracing::debug!(?topic, error = %e, "gossip publish failed");
                }
            }
            Command::Request { to, bytes, request } => {
                let peer = match to_peer_id(&to) {
                    Ok(p) => p,
                    Err(e) => {
                        self.emit(Event::SyncResponse {
                            from: to,
                            request,
                            result: Err(e.to_string()),
                        });
                        return;
                    }
                };
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, Frame::Data(bytes));
                self.outbound.insert(id, (to, request));
            }
            Command::Respond { id, bytes } => {
                if let Some(ch) = self.pending.remove(&id.0) {
                    // The requester may have gone; nothing to do then.
                    let _ = self.swarm.behaviour_mut().sync.send_response(ch, bytes);
                }
            }
            Command::SetAllowed { keys } => self.set_allowed(keys),
            Command::Report { peer, reason } => {
                if let Ok(p) = to_peer_id(&peer) {
                    self.misbehaved(p, &reason);
                }
            }
            Command::Peers { reply } => {
                let peers = self
                    .connected
                    .iter()
                    .filter_map(|(p, a)| {
                        self.keys.get(p).map(|k| PeerInfo {
                            key: *k,
                            addr: a.to_string(),
                        })
                    })
                    .collect();
                let _ = reply.send(peers);
            }
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let me = *self.swarm.local_peer_id();
                let addr = address.with(libp2p::multiaddr::Protocol::P2p(me));
                tracing::info!(%addr, "listening");
                self.emit(Event::Listening {
                    addr: addr.to_string(),
                });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                let Some(key) = self.keys.get(&peer_id).copied() else {
                    // The allow-list refuses these before they are established.
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                self.connected
                    .insert(peer_id, endpoint.get_remote_address().clone());
                if let Ok(mut c) = self.shared_connected.write() {
                    c.insert(key);
                }
                if let Ok(mut h) = self.heard.write() {
                    h.insert(key, Instant::now());
                }
                if num_established.get() == 1 {
                    let link = direct::open_link(&self.direct, self.control.clone(), peer_id);
                    self.links.insert(peer_id, link);
                    tracing::info!(peer = %self.names.of(&key), "peer connected");
                    self.emit(Event::Connected { peer: key });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                self.links.remove(&peer_id);
                let key = match self.keys.get(&peer_id) {
                    Some(k) => Some(*k),
                    None => self.former.remove(&peer_id),
                };
                if let Some(key) = key {
                    if let Ok(mut c) = self.shared_connected.write() {
                        c.remove(&key);
                    }
                    if let Ok(mut h) = self.heard.write() {
                        h.remove(&key);
                    }
                    tracing::info!(peer = %self.names.of(&key), "peer disconnected");
                    self.emit(Event::Disconnected { peer: key });
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                if matches!(error, libp2p::swarm::ListenError::Denied { .. }) {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "refused a connection from a key outside the allow-list");
                }
            }
            SwarmEvent::Behaviour(b) => self.on_behaviour(b),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match &ev {
            BehaviourEvent::Ping(p) => {
                if p.result.is_ok() {
                    let peer = p.peer;
                    self.heard_from(&peer);
                }
                return;
            }
            BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source, ..
            }) => self.heard_from(&propagation_source.clone()),
            BehaviourEvent::Sync(request_response::Event::Message { peer, .. }) => {
                self.heard_from(&peer.clone())
            }
            _ => {}
        }
        match ev {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if self.keys.contains_key(&peer_id) =>
            {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if self.keys.contains_key(&peer) && !self.swarm.is_connected(&peer) {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, addr.clone());
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) if self.keys.contains_key(&peer) && !self.swarm.is_connected(&peer) => {
                let _ = self.swarm.dial(addresses.first().clone());
            }
            BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            }) => {
                let Some(from) = self.keys.get(&propagation_source).copied() else {
                    return;
                };
                let Some(topic) = self
                    .topics
                    .iter()
                    .find(|(_, t)| t.hash() == message.topic)
                    .map(|(k, _)| *k)
                else {
                    return;
                };
                self.emit(Event::Gossip {
                    from,
                    topic,
                    bytes: message.data,
                });
            }
            BehaviourEvent::Sync(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                if let request_response::InboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    self.misbehaved(peer, &e.to_string());
                }
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                let Some(from) = self.keys.get(&peer).copied() else {
                    return;
                };
                match message {
                    request_response::Message::Request {
                        request: Frame::Oversized(max),
                        ..
                    } => self.misbehaved(peer, &format!("sync request over {max} bytes")),
                    request_response::Message::Request {
                        request: Frame::Data(request),
                        channel,
                        ..
                    } => {
                        let id = self.next_inbound;
                        self.next_inbound += 1;
                        // Bounded: requests the node never answered are forgotten.
                        if self.pending.len() >= 1024 {
                            self.pending.clear();
                        }
                        self.pending.insert(id, channel);
                        self.emit(Event::SyncRequest {
                            from,
                            id: RequestId(id),
                            bytes: request,
                        });
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some((from, request)) = self.outbound.remove(&request_id) {
                            self.emit(Event::SyncResponse {
                                from,
                                request,
                                result: Ok(response),
                            });
                        }
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                if let request_response::OutboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    self.misbehaved(peer, &e.to_string());
                }
                if let Some((from, request)) = self.outbound.remove(&request_id) {
                    self.emit(Event::SyncResponse {
                        from,
                        request,
                        result: Err(error.to_string()),
                    });
                }
            }
            _ => {}
        }
    }
}
