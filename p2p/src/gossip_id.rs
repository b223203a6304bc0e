//! Gossip message ids. Messages are not signed (see the gossip configuration), so the id
//! must pin a message's bytes: author, sequence number and data, hashed.

use libp2p::gossipsub;

/// A gossip message's id: its author, sequence number and data, hashed.
pub(crate) fn gossip_message_id(m: &gossipsub::Message) -> gossipsub::MessageId {
    let author = m.source.map(|p| p.to_bytes()).unwrap_or_default();
    let seq = m.sequence_number.unwrap_or_default().to_be_bytes();
    let digest = cairn_crypto::Hash::tagged(GOSSIP_ID, &[&author, &seq, &m.data]);
    gossipsub::MessageId::from(digest.0.to_vec())
}

/// Domain of gossip message ids (node-local: never signed, never stored).
const GOSSIP_ID: cairn_crypto::Domain = cairn_crypto::Domain::new("cairn/p2p/gossip-id");

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    fn message(author: PeerId, data: &[u8], seq: u64) -> gossipsub::Message {
        gossipsub::Message {
            source: Some(author),
            data: data.to_vec(),
            sequence_number: Some(seq),
            topic: gossipsub::IdentTopic::new("t").hash(),
        }
    }

    #[test]
    fn a_gossip_message_id_covers_its_data() {
        let (x, y) = (PeerId::random(), PeerId::random());
        let a = message(x, b"one", 7);
        assert_eq!(
            gossip_message_id(&a),
            gossip_message_id(&message(x, b"one", 7))
        );
        assert_ne!(
            gossip_message_id(&a),
            gossip_message_id(&message(x, b"two", 7))
        );
        assert_ne!(
            gossip_message_id(&a),
            gossip_message_id(&message(x, b"one", 8))
        );
        assert_ne!(
            gossip_message_id(&a),
            gossip_message_id(&message(y, b"one", 7))
        );
    }
}
