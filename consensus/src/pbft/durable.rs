//! PBFT's durable state and its keyed layout.
//!
//! Keys: `pbft/safety` (what safety signed and the highest view entered), `pbft/stable` (the
//! stable checkpoint's proof), `pbft/checkpoint` (this replica's latest checkpoint signature)
//! and one key per prepared certificate, `pbft/p/<seq, big-endian>`. A new stable checkpoint
//! removes the certificates at or below it, as garbage collection does in memory (§4.3).

use cairn_ledger::{ConsensusWrite, Height};

use super::{PbftDurable, PbftPersist};
use crate::Seq;
use crate::durable::{
    DurableError, DurableState, after_prefix, decode, number_of, numbered, put, show,
};

/// Every key starts with this.
const PREFIX: &[u8] = b"pbft/";
const SAFETY: &[u8] = b"pbft/safety";
const STABLE: &[u8] = b"pbft/stable";
const CHECKPOINT: &[u8] = b"pbft/checkpoint";
const PREPARED: &[u8] = b"pbft/p/";

impl DurableState for PbftDurable {
    type Op = PbftPersist;

    fn apply(&mut self, op: &PbftPersist) {
        match op {
            PbftPersist::Safety(s) => self.safety = s.clone(),
            // The engine prepares only in its current view, and views never go back, so a
            // certificate always replaces an older one for its sequence number.
            PbftPersist::Prepared(p) => {
                self.prepared.insert(p.pre_prepare.body.seq, p.clone());
            }
            PbftPersist::Stable(c) => {
                self.prepared = self.prepared.split_off(&c.checkpoint.seq.next());
                self.stable = Some(c.clone());
            }
            PbftPersist::Checkpoint(c) => self.checkpoint = Some(c.clone()),
        }
    }

    fn writes(op: &PbftPersist, out: &mut Vec<ConsensusWrite>) {
        match op {
            PbftPersist::Safety(s) => out.push(put(SAFETY.to_vec(), s)),
            PbftPersist::Prepared(p) => {
                out.push(put(numbered(PREPARED, p.pre_prepare.body.seq.0), p));
            }
            PbftPersist::Stable(c) => {
                out.push(ConsensusWrite::DeleteRange {
                    from: PREPARED.to_vec(),
                    to: numbered(PREPARED, c.checkpoint.seq.0.saturating_add(1)),
                });
                out.push(put(STABLE.to_vec(), c));
            }
            PbftPersist::Checkpoint(c) => out.push(put(CHECKPOINT.to_vec(), c)),
        }
    }

    fn starting_at(_height: Height, out: &mut Vec<ConsensusWrite>) -> PbftDurable {
        // The engine's configuration carries where the set starts (`PbftConfig::base`).
        out.push(ConsensusWrite::DeleteRange {
            from: PREFIX.to_vec(),
            to: after_prefix(PREFIX),
        });
        PbftDurable::default()
    }

    fn load(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<PbftDurable, DurableError> {
        let mut d = PbftDurable::default();
        for (k, v) in entries {
            if k == SAFETY {
                d.safety = decode(k, v)?;
            } else if k == STABLE {
                d.stable = Some(decode(k, v)?);
            } else if k == CHECKPOINT {
                d.checkpoint = Some(decode(k, v)?);
            } else if let Some(seq) = number_of(PREPARED, k) {
                let p: super::PreparedProof = decode(k, v)?;
                if p.pre_prepare.body.seq != Seq(seq) {
                    return Err(DurableError::Gap {
                        what: "a prepared certificate is stored under another sequence number",
                        expected: seq,
                        found: p.pre_prepare.body.seq.0,
                    });
                }
                d.prepared.insert(Seq(seq), p);
            } else {
                return Err(DurableError::UnknownKey { key: show(k) });
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use cairn_crypto::{Hash, Signature};
    use cairn_ledger::{Block, BlockHash, BlockHeader};

    use super::*;
    use crate::durable::testing::Keys;
    use crate::pbft::{Checkpoint, CheckpointProof, PreparedProof, SafetyData, Signed, Vote};

    fn signed<T>(body: T) -> Signed<T> {
        Signed {
            author: crate::NodeId(0),
            body,
            signature: Signature([0; 64]),
        }
    }

    fn prepared(view: u64, seq: u64) -> PbftPersist {
        let digest = BlockHash(Hash::sha256(&[view as u8, seq as u8]));
        let vote = Vote {
            view: crate::View(view),
            seq: Seq(seq),
            digest,
        };
        let block = Block {
            header: BlockHeader {
                chain_id: "c".into(),
                height: seq,
                prev_hash: digest,
                timestamp_ms: view,
                tx_root: Hash::ZERO,
                tx_count: 0,
                state_root: Hash::ZERO,
                proposer: cairn_crypto::PublicKey([0; 32]),
                round: view,
                validators_hash: Hash::ZERO,
                next_validators: None,
            },
            txs: vec![],
        };
        PbftPersist::Prepared(PreparedProof {
            pre_prepare: signed(vote),
            block: std::sync::Arc::new(block),
            prepares: vec![signed(vote)],
        })
    }

    fn checkpoint(seq: u64) -> Checkpoint {
        Checkpoint {
            seq: Seq(seq),
            digest: BlockHash(Hash::sha256(&seq.to_le_bytes())),
        }
    }

    #[test]
    fn every_kind_of_op_loads_back_equal() {
        let safety = SafetyData {
            view: crate::View(2),
            ..SafetyData::default()
        };
        let ops = [
            PbftPersist::Safety(safety),
            prepared(0, 1),
            prepared(0, 2),
            prepared(0, 3),
            // A later view's certificate replaces the earlier one for its sequence number.
            prepared(1, 3),
            PbftPersist::Checkpoint(signed(checkpoint(2))),
            prepared(1, 4),
            // A stable checkpoint at 2 removes certificates 1 and 2, keeps 3 and 4.
            PbftPersist::Stable(CheckpointProof {
                checkpoint: checkpoint(2),
                votes: vec![signed(checkpoint(2))],
            }),
            prepared(2, 5),
            PbftPersist::Stable(CheckpointProof {
                checkpoint: checkpoint(4),
                votes: vec![],
            }),
        ];
        let mut model = PbftDurable::default();
        let mut keys = Keys::default();
        for op in &ops {
            model.apply(op);
            let mut w = Vec::new();
            PbftDurable::writes(op, &mut w);
            keys.write(&w);
            let loaded = PbftDurable::load(&keys.entries()).expect("load");
            assert_eq!(loaded, model, "after {op:?}");
        }
        assert_eq!(model.prepared.keys().copied().collect::<Vec<_>>(), [Seq(5)]);
        assert_eq!(
            model.prepared[&Seq(5)].pre_prepare.body.view,
            crate::View(2)
        );
    }

    #[test]
    fn a_certificate_under_the_wrong_key_is_refused() {
        let mut w = Vec::new();
        PbftDurable::writes(&prepared(0, 3), &mut w);
        let mut keys = Keys::default();
        keys.write(&w);
        let (k, v) = keys.0.pop_first().expect("one key");
        let moved = vec![(numbered(PREPARED, 4), v)];
        assert!(PbftDurable::load(&moved).is_err(), "{k:?}");
        assert!(PbftDurable::load(&[(b"raft/vote".to_vec(), vec![])]).is_err());
    }
}
