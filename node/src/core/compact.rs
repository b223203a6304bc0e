//! Blocks on the wire without the transactions their receivers hold ([`wire::Compact`]).
//!
//! Every transaction is announced to each validator when a node admits it, so by the time a
//! block goes out its receivers hold nearly all of its transactions. Sending, each block in a
//! pre-prepare or append goes out as ids, and its transactions stay here for the last
//! [`SENT_KEPT`] blocks to answer receivers that miss some. Receiving, the ids are looked up
//! in what this node holds; a message with transactions missing waits here (one per peer)
//! while its sender is asked for them ([`WantTxs`]), and the engine sees it only once the
//! answer ([`BlockTxs`]) completes it. If the answer never comes, the peer's next message
//! replaces the waiting one: both engines send again what is still in flight.
//!
//! Nothing here is trusted more than a whole block would be: a transaction put back is the
//! one its id names (checked for answers; the mempool's own for what this node holds), and
//! the block is validated as before, so its header's transaction root covers the list.

use std::collections::{HashMap, VecDeque};

use cairn_crypto::PublicKey;
use cairn_ledger::{Block, BlockHash, Height, SignedTransaction};

#[cfg(test)]
use crate::wire::EngineBody;
use crate::wire::{self, BlockTxs, Compact, Direct, EngineMessage, TxKey, WantTxs};

/// Blocks sent whose transactions are kept for the receivers that ask.
pub const SENT_KEPT: usize = 8;
/// How far below the tip a block's transactions are still read from the store for a peer
/// that asks.
pub const STORE_ANSWERS: u64 = 64;

/// A block sent: its transactions and their keys.
struct Sent {
    hash: BlockHash,
    txs: Vec<SignedTransaction>,
    ids: Vec<TxKey>,
}

/// A block of a waiting message.
struct Slots {
    hash: BlockHash,
    height: Height,
    ids: Vec<TxKey>,
    txs: Vec<Option<SignedTransaction>>,
}

impl Slots {
    fn missing(&self) -> Vec<u32> {
        self.txs
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_none())
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect()
    }
}

/// A message waiting for some of its transactions.
struct Waiting {
    message: EngineMessage,
    blocks: Vec<Slots>,
}

/// What became of a compact message. (Returned once and matched at once: boxing the message
/// would add an allocation per message and save nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Received {
    /// Complete: on to the engine.
    Whole(EngineMessage),
    /// Waiting: ask its sender for these.
    Asks(Vec<WantTxs>),
}

/// The sent blocks kept and the messages waiting.
pub struct Compactor {
    /// Whether blocks go out compact (`consensus.compact_blocks`); they are taken in either
    /// form.
    enabled: bool,
    sent: VecDeque<Sent>,
    waiting: HashMap<PublicKey, Waiting>,
}

impl Default for Compactor {
    fn default() -> Self {
        Compactor::new(true)
    }
}

impl Compactor {
    /// Sends compact blocks if `enabled`.
    pub fn new(enabled: bool) -> Compactor {
        Compactor {
            enabled,
            sent: VecDeque::new(),
            waiting: HashMap::new(),
        }
    }

    /// The wire form of `m`: compact if it carries blocks (and compact blocks are on).
    pub fn compact(&mut self, mut m: EngineMessage) -> Direct {
        if !self.enabled {
            return m.into_direct();
        }
        let mut ids = Vec::new();
        for b in wire::blocks_mut(&mut m) {
            ids.push(self.keep(b));
        }
        if ids.is_empty() {
            m.into_direct()
        } else {
            Direct::Compact(Compact { message: m, ids })
        }
    }

    /// Takes the block's transactions out, keeps them, and returns their keys (computed once
    /// per block, however many peers it goes to).
    fn keep(&mut self, b: &mut Block) -> Vec<TxKey> {
        let hash = b.hash();
        let txs = std::mem::take(&mut b.txs);
        if let Some(s) = self.sent.iter().find(|s| s.hash == hash) {
            return s.ids.clone();
        }
        let ids: Vec<TxKey> = txs.iter().map(|t| (t.id(), t.signature)).collect();
        if self.sent.len() >= SENT_KEPT {
            self.sent.pop_front();
        }
        self.sent.push_back(Sent {
            hash,
            txs,
            ids: ids.clone(),
        });
        ids
    }

    /// Answers a peer's [`WantTxs`] from the blocks kept, if the block is one of them.
    pub fn answer(&self, want: &WantTxs) -> Option<BlockTxs> {
        let s = self.sent.iter().find(|s| s.hash == want.block)?;
        Some(pick(want, &s.txs))
    }

    /// A compact message from `from`. `find` looks up what this node holds, one answer per
    /// key asked: the signed transaction with that id and that signature, or nothing.
    pub fn receive(
        &mut self,
        from: PublicKey,
        c: Compact,
        find: impl FnOnce(&[TxKey]) -> Vec<Option<SignedTransaction>>,
    ) -> Received {
        let Compact { mut message, ids } = c;
        let all: Vec<TxKey> = ids.iter().flatten().copied().collect();
        let mut found = find(&all).into_iter();
        let mut blocks = Vec::with_capacity(ids.len());
        for (b, ids) in wire::blocks_mut(&mut message).into_iter().zip(ids) {
            let txs: Vec<Option<SignedTransaction>> =
                ids.iter().map(|_| found.next().flatten()).collect();
            blocks.push(Slots {
                hash: b.hash(),
                height: b.header.height,
                ids,
                txs,
            });
        }
        let asks: Vec<WantTxs> = blocks
            .iter()
            .map(|s| (s, s.missing()))
            .filter(|(_, at)| !at.is_empty())
            .map(|(s, at)| WantTxs {
                height: s.height,
                block: s.hash,
                at,
            })
            .collect();
        let waiting = Waiting { message, blocks };
        if asks.is_empty() {
            // An older message still waiting keeps waiting: Raft, for one, needs the entries
            // it carries before this one's.
            return Received::Whole(fill(waiting));
        }
        tracing::debug!(peer = %from, missing = asks.iter().map(|a| a.at.len()).sum::<usize>(), "asking for transactions of a compact block");
        self.waiting.insert(from, waiting);
        Received::Asks(asks)
    }

    /// `from` answered: its waiting message if this completes it, and the transactions that
    /// filled no slot (the message they were for was replaced by a later one, or they are not
    /// what its keys name), for the caller to treat as announced ones. So a transaction fetched
    /// is never lost to a race, and the next block that needs it finds it here.
    pub fn on_block_txs(
        &mut self,
        from: PublicKey,
        answer: BlockTxs,
    ) -> (Option<EngineMessage>, Vec<SignedTransaction>) {
        let Some(slots) = self
            .waiting
            .get_mut(&from)
            .and_then(|w| w.blocks.iter_mut().find(|s| s.hash == answer.block))
        else {
            return (None, answer.txs.into_iter().map(|(_, t)| t).collect());
        };
        let mut unused = Vec::new();
        for (at, tx) in answer.txs {
            let i = at as usize;
            match (slots.txs.get_mut(i), slots.ids.get(i)) {
                (Some(slot @ None), Some((id, sig))) if tx.signature == *sig && tx.id() == *id => {
                    *slot = Some(tx)
                }
                _ => unused.push(tx),
            }
        }
        let complete = self
            .waiting
            .get(&from)
            .is_some_and(|w| w.blocks.iter().all(|s| s.txs.iter().all(Option::is_some)));
        let whole = if complete {
            self.waiting.remove(&from).map(fill)
        } else {
            None
        };
        (whole, unused)
    }

    /// Messages waiting (for tests and status).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// The transactions at the positions asked for, from a block's list (positions past its end
/// are skipped).
pub fn pick(want: &WantTxs, txs: &[SignedTransaction]) -> BlockTxs {
    BlockTxs {
        block: want.block,
        txs: want
            .at
            .iter()
            .filter_map(|&at| Some((at, txs.get(at as usize)?.clone())))
            .collect(),
    }
}

/// Puts every block's transactions back.
fn fill(w: Waiting) -> EngineMessage {
    let Waiting {
        mut message,
        blocks,
    } = w;
    for (b, s) in wire::blocks_mut(&mut message).into_iter().zip(blocks) {
        b.txs = s.txs.into_iter().flatten().collect();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::pbft::{PbftMessage, Signed, Vote};
    use cairn_consensus::{NodeId, Seq, View};
    use cairn_crypto::Signature;
    use cairn_ledger::testkit::TestChain;
    use cairn_ledger::{ConsensusKind, Ledger, MemoryStore, VerifiedTransaction};

    /// A pre-prepare (its signature is not checked here).
    fn pre_prepare_of(block: Block) -> EngineMessage {
        let vote = Signed {
            author: NodeId(0),
            body: Vote {
                view: View(0),
                seq: Seq::at(block.header.height),
                digest: block.hash(),
            },
            signature: Signature([0; 64]),
        };
        EngineMessage {
            epoch: 0,
            body: EngineBody::Pbft(PbftMessage::PrePrepare { vote, block }),
        }
    }

    fn pre_prepare() -> (TestChain, EngineMessage, Vec<SignedTransaction>) {
        let c = TestChain::new(ConsensusKind::Pbft, 4, 6, 1_000);
        let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
        let to = c.accounts[0].public_key();
        let txs: Vec<SignedTransaction> = (1..6)
            .map(|a| c.transfer(&c.accounts[a], 0, to, 1))
            .collect();
        let verified: Vec<VerifiedTransaction> = txs
            .iter()
            .cloned()
            .map(VerifiedTransaction::trusted)
            .collect();
        let (block, _) = c.commit(&mut l, &verified).expect("built");
        (c, pre_prepare_of(block), txs)
    }

    fn compact_of(d: Direct) -> Compact {
        match d {
            Direct::Compact(c) => c,
            other => panic!("not compact: {other:?}"),
        }
    }

    #[test]
    fn a_block_travels_as_ids_and_comes_back_whole() {
        let (c, m, txs) = pre_prepare();
        let mut sender = Compactor::default();
        let wire_form = sender.compact(m.clone());
        let bytes = cairn_crypto::codec::encode(&wire_form);
        let cm = compact_of(wire::decode_direct(&bytes).expect("decodes"));
        let keys: Vec<TxKey> = txs.iter().map(|t| (t.id(), t.signature)).collect();
        assert_eq!(cm.ids, vec![keys]);
        let full = cairn_crypto::codec::encode(&m.clone().into_direct()).len();
        assert!(
            bytes.len() < full,
            "{} bytes compact, {full} whole",
            bytes.len()
        );
        // The receiver holds all but the first two.
        let held: HashMap<TxKey, SignedTransaction> = txs[2..]
            .iter()
            .map(|t| ((t.id(), t.signature), t.clone()))
            .collect();
        let peer = c.validators[0].public_key();
        let mut receiver = Compactor::default();
        let asks = match receiver.receive(peer, cm, |keys| {
            keys.iter().map(|k| held.get(k).cloned()).collect()
        }) {
            Received::Asks(a) => a,
            Received::Whole(_) => panic!("two are missing"),
        };
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].at, vec![0, 1]);
        assert_eq!(receiver.waiting(), 1);
        let answer = sender.answer(&asks[0]).expect("kept");
        assert_eq!(answer.txs.len(), 2);
        // A transaction that is not the one its slot's id names fills nothing: it is handed
        // back, as are the transactions of an answer from another peer.
        let mut wrong = answer.clone();
        wrong.txs[0].1 = txs[4].clone();
        wrong.txs.truncate(1);
        assert_eq!(
            receiver.on_block_txs(peer, wrong),
            (None, vec![txs[4].clone()])
        );
        let other = c.validators[1].public_key();
        let (whole, unused) = receiver.on_block_txs(other, answer.clone());
        assert!(whole.is_none());
        assert_eq!(unused, txs[..2].to_vec());
        let (whole, unused) = receiver.on_block_txs(peer, answer);
        assert_eq!(whole, Some(m));
        assert!(unused.is_empty());
        assert_eq!(receiver.waiting(), 0);
    }

    #[test]
    fn a_receiver_holding_everything_needs_no_round_trip() {
        let (c, m, txs) = pre_prepare();
        let mut sender = Compactor::default();
        let cm = compact_of(sender.compact(m.clone()));
        let mut receiver = Compactor::default();
        let peer = c.validators[0].public_key();
        match receiver.receive(peer, cm, |keys| {
            keys.iter()
                .map(|k| txs.iter().find(|t| (t.id(), t.signature) == *k).cloned())
                .collect()
        }) {
            Received::Whole(w) => assert_eq!(w, m),
            Received::Asks(_) => panic!("nothing is missing"),
        }
    }

    #[test]
    fn a_malformed_compact_message_is_refused() {
        let (_, m, _) = pre_prepare();
        let mut cm = compact_of(Compactor::default().compact(m.clone()));
        cm.ids.push(Vec::new());
        let two_lists = cairn_crypto::codec::encode(&Direct::Compact(cm));
        assert!(
            wire::decode_direct(&two_lists).is_err(),
            "one list per block"
        );
        // A block that still carries its transactions.
        let full = Direct::Compact(Compact {
            message: m,
            ids: vec![Vec::new()],
        });
        assert!(wire::decode_direct(&cairn_crypto::codec::encode(&full)).is_err());
    }

    #[test]
    fn messages_without_blocks_go_as_they_are_and_the_blocks_kept_are_bounded() {
        let (_, m, _) = pre_prepare();
        let mut sender = Compactor::default();
        let EngineBody::Pbft(PbftMessage::PrePrepare { vote, .. }) = &m.body else {
            unreachable!()
        };
        let prepare = EngineMessage {
            epoch: 0,
            body: EngineBody::Pbft(PbftMessage::Prepare(vote.clone())),
        };
        assert!(matches!(sender.compact(prepare), Direct::Engine(_)));
        let c = TestChain::new(ConsensusKind::Pbft, 4, 2, 1_000);
        let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
        for _ in 0..SENT_KEPT + 3 {
            let (block, _) = c.commit(&mut l, &[]).expect("commit");
            sender.compact(pre_prepare_of(block));
        }
        assert_eq!(sender.sent.len(), SENT_KEPT);
    }
}
