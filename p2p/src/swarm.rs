//! The libp2p swarm Cairn runs: TCP + Noise + Yamux, and its behaviours.

use std::collections::HashMap;
use std::time::Duration;

use cairn_crypto::PublicKey;
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{
    PeerId, StreamProtocol, Swarm, allow_block_list, gossipsub, identify, identity, kad, mdns,
    noise, ping, request_response, tcp, yamux,
};

use crate::frames::Frames;
use crate::{NetworkConfig, P2pError, gossip_id, setup};

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) gossip: gossipsub::Behaviour,
    pub(crate) direct: libp2p_stream::Behaviour,
    pub(crate) sync: request_response::Behaviour<Frames>,
}

/// Builds the swarm for `cfg`, admitting only the keys in `keys`.
pub(crate) fn build(
    cfg: &NetworkConfig,
    keypair: identity::Keypair,
    keys: &HashMap<PeerId, PublicKey>,
    kad_protocol: StreamProtocol,
    sync_protocol: StreamProtocol,
) -> Result<Swarm<Behaviour>, P2pError> {
    let me = keypair.public().to_peer_id();
    let chain = &cfg.chain_id;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
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
    Ok(swarm)
}
