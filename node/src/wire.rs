//! What nodes say to each other, in the one codec (`docs/PROTOCOL.md`). Every decoder here
//! takes untrusted bytes from the network: it checks sizes before it allocates, and refuses
//! anything that does not re-encode to the same bytes.

use cairn_consensus::pbft::PbftMessage;
use cairn_consensus::raft::RaftMessage;
use cairn_crypto::Signature;
use cairn_crypto::codec::{self, CodecError};
use cairn_ledger::block::BLOCK_TXS_MAX;
use cairn_ledger::{Block, BlockHash, CommitCertificate, Height, SignedTransaction, TxId};
use serde::{Deserialize, Serialize};

/// Largest direct (consensus) message: a PBFT pre-prepare or a Raft append carries blocks.
pub const DIRECT_BYTES_MAX: usize = 8 << 20;
/// Largest gossip message.
pub const GOSSIP_BYTES_MAX: usize = 1 << 20;
/// Most transactions in one gossip batch.
pub const TX_BATCH_MAX: usize = 1024;
/// Largest sync response.
pub const SYNC_RESPONSE_BYTES_MAX: usize = 32 << 20;
/// Most blocks asked for in one sync request.
pub const SYNC_BLOCKS_MAX: u32 = 256;

/// A consensus message between validators. (Decoded once and handed on: boxing the large
/// variant would add an allocation per message and save nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direct {
    /// A consensus message, whole.
    Engine(EngineMessage),
    /// Transactions a validator admitted, announced to each other validator once, directly
    /// (re-announcements go through gossip, which relays them around a missing link).
    Txs(TxBatch),
    /// A consensus message whose blocks' transactions travel as ids (see [`Compact`]).
    Compact(Compact),
    /// Asks the sender of a compact message for the transactions of one of its blocks that
    /// the receiver could not find.
    WantTxs(WantTxs),
    /// The answer to [`WantTxs`].
    BlockTxs(BlockTxs),
}

/// A consensus message (`Raft` or `Pbft`) sent with its blocks' transactions taken out, each
/// replaced by its [`TxKey`]: the receiver holds most of them already, since every
/// transaction is announced to each validator when it is admitted. So a transaction crosses
/// each link about once. The receiver puts the transactions back from what it holds and asks
/// the sender for the rest ([`WantTxs`]) before the engine sees the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compact {
    /// The message, every block in it (see [`blocks_mut`]) with no transactions.
    pub message: EngineMessage,
    /// For each of those blocks, in order, its transactions' keys.
    pub ids: Vec<Vec<TxKey>>,
}

/// One signed transaction, named: its id and its signature. The id covers the unsigned
/// transaction only (and a block's transaction root covers ids), so without the signature a
/// copy of a pending transaction carrying a different signature could be put into a block in
/// place of the one its proposer sent.
pub type TxKey = (TxId, Signature);

/// A consensus message with the instance it belongs to. Each validator set is ordered by an
/// engine instance of its own (ARCHITECTURE.md, "Reconfiguration"), named by its `epoch`: the
/// last height of the set before it (0 for the genesis set). A receiver hands the engine only
/// messages of its own instance; one from a later instance tells it that it is behind, one
/// from an earlier one that the sender is. (A type of its own inside [`Compact`]: a decoder
/// must never recurse on what a peer sends.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineMessage {
    /// The sender's instance.
    pub epoch: Height,
    /// The message.
    pub body: EngineBody,
}

/// What an [`EngineMessage`] carries, tagged by engine so a message of the other kind is
/// refused when it is decoded.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineBody {
    /// Raft.
    Raft(RaftMessage),
    /// PBFT.
    Pbft(PbftMessage),
}

impl EngineMessage {
    /// As the direct message it stands for.
    pub fn into_direct(self) -> Direct {
        Direct::Engine(self)
    }
}

/// Transactions of the block `block` at `height`, by position in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WantTxs {
    /// The block's height.
    pub height: Height,
    /// Its hash.
    pub block: BlockHash,
    /// Positions wanted, ascending.
    pub at: Vec<u32>,
}

/// Transactions of a block, by position, answering [`WantTxs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockTxs {
    /// The block's hash.
    pub block: BlockHash,
    /// `(position, transaction)`.
    pub txs: Vec<(u32, SignedTransaction)>,
}

/// The blocks a consensus message carries that travel compactly: a PBFT pre-prepare's and a
/// Raft append's (the messages every block goes out in; the rare NEW-VIEW goes whole).
pub fn blocks_mut(d: &mut EngineMessage) -> Vec<&mut Block> {
    match &mut d.body {
        EngineBody::Pbft(PbftMessage::PrePrepare { block, .. }) => vec![block],
        EngineBody::Raft(RaftMessage::AppendEntries { entries, .. }) => entries
            .iter_mut()
            .filter_map(|e| e.block.as_mut())
            .collect(),
        _ => Vec::new(),
    }
}

/// A gossip message on the transactions topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBatch {
    /// Signed transactions, unverified.
    pub txs: Vec<SignedTransaction>,
}

/// A gossip message on the blocks topic: "I committed this block".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Height.
    pub height: Height,
    /// Hash.
    pub hash: BlockHash,
}

/// Asks for committed blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// First height wanted.
    pub from: Height,
    /// Most blocks wanted.
    pub max_blocks: u32,
}

/// Committed blocks with their certificates, contiguous from the requested height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The responder's tip height.
    pub tip: Height,
    /// Blocks from the requested height on.
    pub blocks: Vec<(Block, CommitCertificate)>,
}

/// Decodes a direct message.
pub fn decode_direct(bytes: &[u8]) -> Result<Direct, CodecError> {
    let mut d: Direct = codec::decode_limited(bytes, DIRECT_BYTES_MAX)?;
    match &mut d {
        Direct::Txs(b) => check_tx_batch(b, bytes.len())?,
        Direct::Compact(c) => {
            // Its blocks are empty, with one key list for each, no longer than a block may be.
            let ids = c.ids.len();
            let too_long = c.ids.iter().any(|l| l.len() > BLOCK_TXS_MAX);
            let blocks = blocks_mut(&mut c.message);
            if too_long || blocks.len() != ids || blocks.iter().any(|b| !b.txs.is_empty()) {
                return Err(CodecError::Malformed {
                    reason: "a compact message has one id list per block, each no longer than \
                             a block, and empty blocks"
                        .into(),
                });
            }
        }
        Direct::WantTxs(w) => {
            // Each position once, within a block: an answer is never larger than the block.
            let ascending = w.at.windows(2).all(|p| p[0] < p[1]);
            let in_block =
                w.at.last()
                    .is_none_or(|&last| (last as usize) < BLOCK_TXS_MAX);
            if !ascending || !in_block {
                return Err(CodecError::Malformed {
                    reason: "transactions are asked for by ascending position within a block"
                        .into(),
                });
            }
        }
        Direct::BlockTxs(b) => {
            // No more than a block holds: what fills nothing goes on as announced transactions.
            if b.txs.len() > BLOCK_TXS_MAX {
                return Err(CodecError::TooLarge {
                    len: b.txs.len(),
                    max: BLOCK_TXS_MAX,
                });
            }
        }
        Direct::Engine(_) => {}
    }
    Ok(d)
}

/// A transaction batch holds at most [`TX_BATCH_MAX`] transactions in at most
/// [`GOSSIP_BYTES_MAX`] bytes, however it arrives.
fn check_tx_batch(b: &TxBatch, len: usize) -> Result<(), CodecError> {
    if len > GOSSIP_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len,
            max: GOSSIP_BYTES_MAX,
        });
    }
    if b.txs.len() > TX_BATCH_MAX {
        return Err(CodecError::TooLarge {
            len: b.txs.len(),
            max: TX_BATCH_MAX,
        });
    }
    Ok(())
}

/// Decodes a transaction batch.
pub fn decode_tx_batch(bytes: &[u8]) -> Result<TxBatch, CodecError> {
    let b: TxBatch = codec::decode_limited(bytes, GOSSIP_BYTES_MAX)?;
    if b.txs.len() > TX_BATCH_MAX {
        return Err(CodecError::TooLarge {
            len: b.txs.len(),
            max: TX_BATCH_MAX,
        });
    }
    Ok(b)
}

/// Decodes a block announcement.
pub fn decode_announce(bytes: &[u8]) -> Result<Announce, CodecError> {
    codec::decode_limited(bytes, 64)
}

/// Decodes a sync request.
pub fn decode_sync_request(bytes: &[u8]) -> Result<SyncRequest, CodecError> {
    codec::decode_limited(bytes, 64)
}

/// Decodes a sync response.
pub fn decode_sync_response(bytes: &[u8]) -> Result<SyncResponse, CodecError> {
    codec::decode_limited(bytes, SYNC_RESPONSE_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Random bytes never panic a decoder (and practically never decode).
        #[test]
        fn decoders_survive_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode_direct(&bytes);
            let _ = decode_tx_batch(&bytes);
            let _ = decode_announce(&bytes);
            let _ = decode_sync_request(&bytes);
            let _ = decode_sync_response(&bytes);
        }

        /// Valid messages with bytes flipped or cut never panic a decoder either.
        #[test]
        fn decoders_survive_mutated_messages(flip in 0usize..4096, cut in 0usize..4096, bit in 0u8..8) {
            let chain = cairn_ledger::testkit::TestChain::new(
                cairn_ledger::ConsensusKind::Pbft, 4, 2, 1);
            let tx = chain.transfer(&chain.accounts[0], 0, chain.accounts[1].public_key(), 5);
            let msgs = [
                codec::encode(&TxBatch { txs: vec![tx.clone(), tx] }),
                codec::encode(&Announce { height: 7, hash: chain.genesis.hash() }),
                codec::encode(&SyncRequest { from: 3, max_blocks: 9 }),
                codec::encode(&SyncResponse { tip: 0, blocks: vec![] }),
            ];
            for m in msgs {
                let mut m = m.clone();
                let i = flip % m.len();
                m[i] ^= 1 << bit;
                m.truncate(cut.max(1).min(m.len()));
                let _ = decode_direct(&m);
                let _ = decode_tx_batch(&m);
                let _ = decode_announce(&m);
                let _ = decode_sync_request(&m);
                let _ = decode_sync_response(&m);
            }
        }
    }

    #[test]
    fn oversized_batches_are_refused() {
        let chain =
            cairn_ledger::testkit::TestChain::new(cairn_ledger::ConsensusKind::Pbft, 4, 2, 1);
        let tx = chain.transfer(&chain.accounts[0], 0, chain.accounts[1].public_key(), 5);
        let batch = TxBatch {
            txs: vec![tx; TX_BATCH_MAX + 1],
        };
        assert!(decode_tx_batch(&codec::encode(&batch)).is_err());
        let ok = TxBatch {
            txs: batch.txs[..3].to_vec(),
        };
        assert_eq!(decode_tx_batch(&codec::encode(&ok)).expect("decode"), ok);
        // The same bounds hold for a batch sent directly.
        assert!(decode_direct(&codec::encode(&Direct::Txs(batch))).is_err());
        let direct = Direct::Txs(ok);
        assert_eq!(
            decode_direct(&codec::encode(&direct)).expect("decode"),
            direct
        );
    }

    #[test]
    fn a_request_for_transactions_asks_for_each_position_once() {
        let chain =
            cairn_ledger::testkit::TestChain::new(cairn_ledger::ConsensusKind::Pbft, 4, 2, 1);
        let want = |at: Vec<u32>| {
            codec::encode(&Direct::WantTxs(WantTxs {
                height: 3,
                block: chain.genesis.hash(),
                at,
            }))
        };
        assert!(decode_direct(&want(vec![0, 2, 7])).is_ok());
        assert!(decode_direct(&want(vec![])).is_ok());
        // Repeating a position would make the answer larger than the block.
        assert!(decode_direct(&want(vec![2; 1000])).is_err());
        assert!(decode_direct(&want(vec![3, 1])).is_err());
        assert!(decode_direct(&want(vec![BLOCK_TXS_MAX as u32])).is_err());
    }
}
