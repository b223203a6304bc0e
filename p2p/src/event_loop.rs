//! The swarm and the loop that drives it: connections, the allow-list, discovery, gossip,
//! direct links and block sync.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cairn_crypto::PublicKey;
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub, identify, identity, kad, mdns,
    request_response,
};
use tokio::sync::mpsc;

use crate::frames::Frame;
use crate::swarm::{self, Behaviour, BehaviourEvent};
use crate::{
    Client, Command, Counters, Event, Heard, Names, NetworkConfig, P2pError, PeerInfo, RequestId,
    Topic, direct, parse_addr, peer_address, setup, to_peer_id,
};

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
    // Version 3: consensus messages name their engine instance (version 2 did not; version 1
    // was one request per message, version 2 brought a stream of frames per peer).
    let direct_protocol =
        StreamProtocol::try_from_owned(format!("/cairn/{chain}/direct/3")).map_err(setup)?;
    let sync_protocol =
        StreamProtocol::try_from_owned(format!("/cairn/{chain}/sync/1")).map_err(setup)?;
    let mut swarm = swarm::build(&cfg, keypair, &keys, kad_protocol, sync_protocol)?;
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
        connected: shared_connected.clone(),
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
                    let link = direct::open_link(&self.direct, self.control.clone(), peer_id, key);
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
