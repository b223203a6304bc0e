//! Byzantine validators: an honest engine behind a proxy that rewrites what it sends, as in
//! malachite's and Twins' test harnesses. Besides lying (bad signatures, wrong digests,
//! equivocation, replays, twins), the flood behaviours try to make honest replicas keep
//! unbounded state: far-future views and checkpoints, sequence numbers at and beyond the high
//! watermark, high-rate duplicates and replays, and garbage on an authenticated channel.

use cairn_consensus::pbft::{
    CHECKPOINT, Checkpoint, PRE_PREPARE, PREPARE, PbftMessage, Signed, VIEW_CHANGE, ViewChange,
    Vote,
};
use cairn_consensus::{DetRng, NodeId, Seq, View};
use cairn_crypto::{Domain, Hash, Signature, SigningKey, codec};
use cairn_ledger::{BlockHash, PbftCommitStatement};

/// How a Byzantine validator misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Sends nothing.
    Silent,
    /// Corrupts every signature.
    BadSignature,
    /// Re-signs its votes for digests of blocks that do not exist.
    WrongDigest,
    /// As primary, sends different blocks to different replicas; as replica, votes for
    /// different digests to different replicas.
    Equivocate,
    /// Replays its own old messages instead of (or besides) new ones.
    Replay,
    /// Runs twice with the same key (two honest engines that together equivocate).
    Twin,
    /// Besides each message, asks (properly signed) for views far in the future.
    FarFutureView,
    /// Besides each message, signs checkpoints at far-future multiples of K.
    FarFutureCheckpoint,
    /// Besides each vote, signs votes for sequence numbers at and beyond the high watermark.
    BeyondWatermark,
    /// Sends each message many times, with many replays of old ones.
    Flood,
    /// Besides each message, sends random votes, checkpoints and view changes with random
    /// fields and signatures.
    Garbage,
}

impl Behaviour {
    /// The first this many of [`Behaviour::ALL`] lie; the rest flood.
    pub const CLASSIC: usize = 6;

    /// Every behaviour.
    pub const ALL: [Behaviour; 11] = [
        Behaviour::Silent,
        Behaviour::BadSignature,
        Behaviour::WrongDigest,
        Behaviour::Equivocate,
        Behaviour::Replay,
        Behaviour::Twin,
        Behaviour::FarFutureView,
        Behaviour::FarFutureCheckpoint,
        Behaviour::BeyondWatermark,
        Behaviour::Flood,
        Behaviour::Garbage,
    ];
}

/// What the adversary proxy has to work with.
pub struct Adversary<'a, M> {
    /// The Byzantine node's key.
    pub key: &'a SigningKey,
    /// The Byzantine node.
    pub me: NodeId,
    /// The chain id, for signing commit votes.
    pub chain_id: &'a str,
    /// What its set's other messages are signed in (`PbftConfig::context`).
    pub context: &'a str,
    /// Randomness.
    pub rng: &'a mut DetRng,
    /// Messages this node sent before.
    pub history: &'a [M],
}

impl<M> Adversary<'_, M> {
    /// Signs `body` as the Byzantine node.
    pub fn sign<T: serde::Serialize + Clone>(
        &self,
        author: NodeId,
        domain: Domain,
        body: &T,
    ) -> Signed<T> {
        Signed {
            author,
            body: body.clone(),
            signature: self.key.sign(
                domain,
                if domain == cairn_ledger::domains::PBFT_COMMIT {
                    self.chain_id
                } else {
                    self.context
                },
                &codec::encode(body),
            ),
        }
    }

    fn digest(&mut self) -> BlockHash {
        BlockHash(Hash::sha256(&self.rng.next_u64().to_le_bytes()))
    }

    fn replay(&mut self) -> Option<M>
    where
        M: Clone,
    {
        if self.history.is_empty() {
            return None;
        }
        let i = self.rng.range(0, self.history.len() as u64) as usize;
        Some(self.history[i].clone())
    }
}

/// How many copies and replays a flooding validator sends per message.
const FLOOD: usize = 12;

/// What a Byzantine PBFT replica with `behaviour` sends instead of `msg` to `to`, into `out`.
/// `k` is the checkpoint interval.
pub fn corrupt_pbft(
    msg: &PbftMessage,
    behaviour: Behaviour,
    adv: &mut Adversary<'_, PbftMessage>,
    to: usize,
    k: u64,
    out: &mut Vec<PbftMessage>,
) {
    match behaviour {
        Behaviour::Silent => {}
        Behaviour::Twin => out.push(msg.clone()),
        Behaviour::Replay => match adv.replay() {
            Some(old) if adv.rng.chance(0.5) => out.push(old),
            _ => out.push(msg.clone()),
        },
        Behaviour::BadSignature => {
            let mut m = msg.clone();
            let sig = match &mut m {
                PbftMessage::PrePrepare { vote, .. } | PbftMessage::Prepare(vote) => {
                    &mut vote.signature
                }
                PbftMessage::Commit(c) => &mut c.signature,
                PbftMessage::Checkpoint(c) => &mut c.signature,
                PbftMessage::ViewChange(v) => &mut v.signature,
                PbftMessage::NewView(v) => &mut v.signature,
            };
            sig.0[7] ^= 0x20;
            out.push(m);
        }
        Behaviour::WrongDigest | Behaviour::Equivocate => {
            // Equivocation lies to every other replica; wrong digests lie to everyone.
            if behaviour == Behaviour::Equivocate && to.is_multiple_of(2) {
                return out.push(msg.clone());
            }
            out.push(lie(msg, adv));
        }
        Behaviour::FarFutureView => {
            out.push(msg.clone());
            // Near views (which replace each other in a replica's store) and far ones.
            let ahead = if adv.rng.chance(0.5) {
                adv.rng.range(1, 4)
            } else {
                adv.rng.range(4, 1 << 40)
            };
            let view = msg.view().unwrap_or_default().plus(ahead);
            let vc = ViewChange {
                new_view: view,
                checkpoint: None,
                prepared: vec![],
            };
            out.push(PbftMessage::ViewChange(Box::new(adv.sign(
                adv.me,
                VIEW_CHANGE,
                &vc,
            ))));
        }
        Behaviour::FarFutureCheckpoint => {
            out.push(msg.clone());
            let c = Checkpoint {
                seq: Seq(k * adv.rng.range(3, 1 << 40)),
                digest: adv.digest(),
            };
            out.push(PbftMessage::Checkpoint(adv.sign(adv.me, CHECKPOINT, &c)));
        }
        Behaviour::BeyondWatermark => {
            out.push(msg.clone());
            if let PbftMessage::Prepare(p) | PbftMessage::PrePrepare { vote: p, .. } = msg {
                // From inside the window up to its edge and beyond it: the receivers' low
                // watermarks differ, so a spread of offsets hits each one's edge.
                for ahead in [
                    1,
                    k,
                    2 * k - 1,
                    2 * k,
                    2 * k + 1,
                    adv.rng.range(2 * k, 1 << 40),
                ] {
                    let body = Vote {
                        seq: p.body.seq.plus(ahead),
                        digest: adv.digest(),
                        ..p.body
                    };
                    out.push(PbftMessage::Prepare(adv.sign(adv.me, PREPARE, &body)));
                    let commit = PbftCommitStatement {
                        view: body.view.0,
                        seq: body.seq.0,
                        block_hash: body.digest,
                    };
                    out.push(PbftMessage::Commit(adv.sign(
                        adv.me,
                        cairn_ledger::domains::PBFT_COMMIT,
                        &commit,
                    )));
                }
            }
        }
        Behaviour::Flood => {
            for _ in 0..FLOOD {
                out.push(msg.clone());
                if let Some(old) = adv.replay() {
                    out.push(old);
                }
            }
        }
        Behaviour::Garbage => {
            out.push(msg.clone());
            out.push(garbage(adv));
        }
    }
}

/// A properly signed lie about `msg`: another block, or another digest.
fn lie(msg: &PbftMessage, adv: &mut Adversary<'_, PbftMessage>) -> PbftMessage {
    match msg {
        PbftMessage::PrePrepare { vote, block } => {
            // A different block at the same height, properly signed.
            let mut b = block.clone();
            b.header.timestamp_ms += 1 + adv.rng.range(0, 1000);
            let body = Vote {
                digest: b.hash(),
                ..vote.body
            };
            PbftMessage::PrePrepare {
                vote: adv.sign(vote.author, PRE_PREPARE, &body),
                block: b,
            }
        }
        PbftMessage::Prepare(p) => {
            let body = Vote {
                digest: adv.digest(),
                ..p.body
            };
            PbftMessage::Prepare(adv.sign(p.author, PREPARE, &body))
        }
        PbftMessage::Commit(c) => {
            let mut body = c.body.clone();
            body.block_hash = adv.digest();
            PbftMessage::Commit(adv.sign(c.author, cairn_ledger::domains::PBFT_COMMIT, &body))
        }
        other => other.clone(),
    }
}

/// A message with random fields: sometimes signed, sometimes with random signature bytes,
/// sometimes naming another author.
fn garbage(adv: &mut Adversary<'_, PbftMessage>) -> PbftMessage {
    let author = if adv.rng.chance(0.8) {
        adv.me
    } else {
        NodeId(adv.rng.range(0, 64) as u32)
    };
    let big = |adv: &mut Adversary<'_, PbftMessage>| {
        if adv.rng.chance(0.5) {
            adv.rng.range(0, 64)
        } else {
            adv.rng.next_u64()
        }
    };
    let vote = Vote {
        view: View(big(adv)),
        seq: Seq(big(adv)),
        digest: adv.digest(),
    };
    let mut m = match adv.rng.range(0, 4) {
        0 => PbftMessage::Prepare(adv.sign(author, PREPARE, &vote)),
        1 => PbftMessage::Commit(adv.sign(
            author,
            cairn_ledger::domains::PBFT_COMMIT,
            &PbftCommitStatement {
                view: vote.view.0,
                seq: vote.seq.0,
                block_hash: vote.digest,
            },
        )),
        2 => PbftMessage::Checkpoint(adv.sign(
            author,
            CHECKPOINT,
            &Checkpoint {
                seq: vote.seq,
                digest: vote.digest,
            },
        )),
        _ => PbftMessage::ViewChange(Box::new(adv.sign(
            author,
            VIEW_CHANGE,
            &ViewChange {
                new_view: vote.view,
                checkpoint: None,
                prepared: vec![],
            },
        ))),
    };
    if adv.rng.chance(0.3) {
        let mut bytes = [0u8; 64];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&adv.rng.next_u64().to_le_bytes());
        }
        let sig = match &mut m {
            PbftMessage::Prepare(s) => &mut s.signature,
            PbftMessage::Commit(s) => &mut s.signature,
            PbftMessage::Checkpoint(s) => &mut s.signature,
            PbftMessage::ViewChange(s) => &mut s.signature,
            PbftMessage::PrePrepare { vote, .. } => &mut vote.signature,
            PbftMessage::NewView(s) => &mut s.signature,
        };
        *sig = Signature(bytes);
    }
    m
}
