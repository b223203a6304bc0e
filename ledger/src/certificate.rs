//! Commit certificates: proof, checkable offline against the genesis validator set, that
//! consensus committed a block.

use cairn_crypto::{BatchVerifier, PublicKey, Signature, SigningKey, codec};
use serde::{Deserialize, Serialize};

use crate::block::{BlockHash, Height};
use crate::domains;
use crate::genesis::{ConsensusKind, ValidatorSet};

/// What a Raft leader signs to certify a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RaftCommitStatement {
    /// Block height.
    pub height: Height,
    /// Block hash.
    pub block_hash: BlockHash,
    /// The leader's term.
    pub term: u64,
}

/// What a PBFT replica signs in its COMMIT message; 2f+1 of them make a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PbftCommitStatement {
    /// The view.
    pub view: u64,
    /// Sequence number; Cairn orders one block per sequence number, so seq = height.
    pub seq: u64,
    /// Block hash.
    pub block_hash: BlockHash,
}

impl RaftCommitStatement {
    /// The leader's signature over this statement.
    pub fn sign(&self, chain_id: &str, key: &SigningKey) -> Signature {
        key.sign(domains::RAFT_COMMIT, chain_id, &codec::encode(self))
    }
}

impl PbftCommitStatement {
    /// A replica's signature over this statement.
    pub fn sign(&self, chain_id: &str, key: &SigningKey) -> Signature {
        key.sign(domains::PBFT_COMMIT, chain_id, &codec::encode(self))
    }
}

/// Raft: the leader's signature. Under Raft's crash-fault model validators do not lie, so the
/// leader's word that a majority stored the block is the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RaftCertificate {
    /// Leader's term when the block committed.
    pub term: u64,
    /// The leader.
    pub leader: PublicKey,
    /// Its signature over [`RaftCommitStatement`].
    pub signature: Signature,
}

/// One validator's commit vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitVote {
    /// The validator.
    pub validator: PublicKey,
    /// Its signature over [`PbftCommitStatement`].
    pub signature: Signature,
}

/// PBFT: commit votes from a Byzantine quorum (2f+1) of distinct validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PbftCertificate {
    /// The view the block committed in.
    pub view: u64,
    /// Sequence number (= height).
    pub seq: u64,
    /// The votes.
    pub votes: Vec<CommitVote>,
}

/// Proof that a block committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommitCertificate {
    /// From a Raft chain.
    Raft(RaftCertificate),
    /// From a PBFT chain.
    Pbft(PbftCertificate),
}

/// Why a certificate does not prove a commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// A Raft certificate on a PBFT chain, or the other way round.
    #[error("certificate is for {got:?} but the chain runs {expected:?}")]
    WrongKind {
        /// The chain's engine.
        expected: ConsensusKind,
        /// The certificate's.
        got: ConsensusKind,
    },
    /// The signer is not a validator.
    #[error("signer {0} is not a validator")]
    NotValidator(PublicKey),
    /// The PBFT sequence number is not the block height.
    #[error("certificate seq {seq} does not match block height {height}")]
    WrongSeq {
        /// Certificate's seq.
        seq: u64,
        /// Block height.
        height: Height,
    },
    /// One validator voted twice.
    #[error("validator {0} votes twice")]
    DuplicateVote(PublicKey),
    /// Too few votes.
    #[error("{got} votes, quorum is {need}")]
    NoQuorum {
        /// Distinct valid votes.
        got: usize,
        /// Quorum.
        need: usize,
    },
    /// A signature does not verify.
    #[error("signature of {0} does not verify")]
    BadSignature(PublicKey),
}

impl CommitCertificate {
    /// The engine that made it.
    pub fn kind(&self) -> ConsensusKind {
        match self {
            CommitCertificate::Raft(_) => ConsensusKind::Raft,
            CommitCertificate::Pbft(_) => ConsensusKind::Pbft,
        }
    }

    /// The consensus round (term or view) it was made in.
    pub fn round(&self) -> u64 {
        match self {
            CommitCertificate::Raft(c) => c.term,
            CommitCertificate::Pbft(c) => c.view,
        }
    }

    /// Checks that this certificate proves the block `(height, block_hash)` committed on
    /// `chain_id`, run by `kind` with `validators`. Needs nothing but genesis.
    pub fn verify(
        &self,
        chain_id: &str,
        kind: ConsensusKind,
        validators: &ValidatorSet,
        height: Height,
        block_hash: &BlockHash,
    ) -> Result<(), CertificateError> {
        if self.kind() != kind {
            return Err(CertificateError::WrongKind {
                expected: kind,
                got: self.kind(),
            });
        }
        match self {
            CommitCertificate::Raft(c) => {
                if !validators.contains(&c.leader) {
                    return Err(CertificateError::NotValidator(c.leader));
                }
                let statement = RaftCommitStatement {
                    height,
                    block_hash: *block_hash,
                    term: c.term,
                };
                c.leader
                    .verify(
                        domains::RAFT_COMMIT,
                        chain_id,
                        &codec::encode(&statement),
                        &c.signature,
                    )
                    .map_err(|_| CertificateError::BadSignature(c.leader))
            }
            CommitCertificate::Pbft(c) => {
                if c.seq != height {
                    return Err(CertificateError::WrongSeq { seq: c.seq, height });
                }
                let statement = codec::encode(&PbftCommitStatement {
                    view: c.view,
                    seq: c.seq,
                    block_hash: *block_hash,
                });
                let mut seen = std::collections::BTreeSet::new();
                let mut batch = BatchVerifier::with_capacity(c.votes.len());
                for v in &c.votes {
                    if !validators.contains(&v.validator) {
                        return Err(CertificateError::NotValidator(v.validator));
                    }
                    if !seen.insert(v.validator) {
                        return Err(CertificateError::DuplicateVote(v.validator));
                    }
                    batch.push(
                        &v.validator,
                        domains::PBFT_COMMIT,
                        chain_id,
                        &statement,
                        &v.signature,
                    );
                }
                // Never fewer than one vote, even for a (refused) empty validator set.
                let need = validators.byzantine_quorum().max(1);
                if seen.len() < need {
                    return Err(CertificateError::NoQuorum {
                        got: seen.len(),
                        need,
                    });
                }
                batch
                    .verify()
                    .map_err(|bad| CertificateError::BadSignature(c.votes[bad[0].0].validator))
            }
        }
    }
}
