//! Deterministic chains for tests, benchmarks, the simulator and the crash test: keys from
//! indexes, a genesis with funded members, and valid certificates for blocks.
//!
//! Keys here are derived from public strings: never use them for anything real.

use cairn_crypto::{Hash, PublicKey, SigningKey};

use crate::block::{Block, Height};
use crate::certificate::{
    CommitCertificate, CommitVote, PbftCertificate, PbftCommitStatement, RaftCertificate,
    RaftCommitStatement,
};
use crate::genesis::{
    ConsensusConfig, ConsensusKind, Genesis, GenesisAccount, PbftParams, RaftParams, Validator,
};
use crate::ledger::{BlockError, BlockParams, Ledger};
use crate::store::BlockStore;
use crate::transaction::{
    Payload, Role, SignedTransaction, Transaction, TxId, VerifiedTransaction,
};

/// The key with index `i` in namespace `ns` (e.g. "validator", "account").
pub fn key(ns: &str, i: u64) -> SigningKey {
    let seed = Hash::sha256(format!("cairn-testkit/{ns}/{i}").as_bytes());
    SigningKey::from_seed(seed.0)
}

/// A test chain: its genesis and every key in it.
#[derive(Debug, Clone)]
pub struct TestChain {
    /// The genesis.
    pub genesis: Genesis,
    /// Validator keys, in genesis order.
    pub validators: Vec<SigningKey>,
    /// Account keys, in genesis order; account 0 is an admin, the rest users.
    pub accounts: Vec<SigningKey>,
}

impl TestChain {
    /// A chain with `validators` validators and `accounts` members holding `balance` each.
    pub fn new(kind: ConsensusKind, validators: usize, accounts: usize, balance: u64) -> Self {
        let vkeys: Vec<SigningKey> = (0..validators as u64)
            .map(|i| key("validator", i))
            .collect();
        let akeys: Vec<SigningKey> = (0..accounts as u64).map(|i| key("account", i)).collect();
        let genesis = Genesis {
            chain_id: "cairn-test".into(),
            genesis_time_ms: 1_700_000_000_000,
            consensus: match kind {
                ConsensusKind::Raft => ConsensusConfig::Raft(RaftParams::default()),
                ConsensusKind::Pbft => ConsensusConfig::Pbft(PbftParams::default()),
            },
            validators: vkeys
                .iter()
                .enumerate()
                .map(|(i, k)| Validator {
                    name: format!("node{i}"),
                    public_key: k.public_key(),
                })
                .collect(),
            accounts: akeys
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisAccount {
                    public_key: k.public_key(),
                    balance,
                    role: Some(if i == 0 { Role::Admin } else { Role::User }),
                })
                .collect(),
        };
        TestChain {
            genesis,
            validators: vkeys,
            accounts: akeys,
        }
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.genesis.chain_id
    }

    /// A signed transaction from `from` with `nonce`.
    pub fn tx(&self, from: &SigningKey, nonce: u64, payload: Payload) -> SignedTransaction {
        Transaction {
            chain_id: self.genesis.chain_id.clone(),
            sender: from.public_key(),
            nonce,
            payload,
        }
        .sign(from)
    }

    /// A signed transfer.
    pub fn transfer(
        &self,
        from: &SigningKey,
        nonce: u64,
        to: PublicKey,
        amount: u64,
    ) -> SignedTransaction {
        self.tx(from, nonce, Payload::Transfer { to, amount })
    }

    /// Proposer inputs for the block at `height`: validator 0, round 1, a timestamp
    /// `height` ms after genesis, room for 20,000 transactions.
    pub fn params(&self, height: Height) -> BlockParams {
        BlockParams {
            proposer: self.validators[0].public_key(),
            round: 1,
            timestamp_ms: self.genesis.genesis_time_ms + height,
            max_txs: 20_000,
        }
    }

    /// Builds the next block from `txs`, certifies it and commits it. Every transaction must
    /// execute: the first one that does not is returned as `BlockError::InvalidTx`, and
    /// nothing is committed. Returns the block and its transaction ids.
    pub fn commit<S: BlockStore>(
        &self,
        ledger: &mut Ledger<S>,
        txs: &[VerifiedTransaction],
    ) -> Result<(Block, Vec<TxId>), BlockError> {
        self.commit_by(ledger, txs, &self.validators)
    }

    /// [`TestChain::commit`] by another validator set (after a change): `signers[0]` proposes,
    /// and the certificate is theirs, as [`TestChain::certify_by`] makes it.
    pub fn commit_by<S: BlockStore>(
        &self,
        ledger: &mut Ledger<S>,
        txs: &[VerifiedTransaction],
        signers: &[SigningKey],
    ) -> Result<(Block, Vec<TxId>), BlockError> {
        let mut params = self.params(ledger.tip().height + 1);
        params.proposer = signers[0].public_key();
        let built = ledger.build_block(txs, params)?;
        if let Some((id, reason)) = built.dropped.first() {
            let index = txs.iter().position(|t| t.id() == *id).unwrap_or(0);
            return Err(BlockError::InvalidTx {
                index,
                id: *id,
                reason: reason.clone(),
            });
        }
        let ids = built.execution.tx_ids().to_vec();
        let block = built.block.clone();
        let certificate = self.certify_by(&built.block, signers);
        ledger.commit(built.block, certificate, built.execution)?;
        Ok((block, ids))
    }

    /// A valid certificate for `block`: signed by validator 0 as Raft leader, or by the first
    /// quorum of validators for PBFT.
    pub fn certify(&self, block: &Block) -> CommitCertificate {
        self.certify_by(block, &self.validators)
    }

    /// A certificate for `block` by the validators `signers` (in set order): `signers[0]` as
    /// Raft leader, or the first n − f of them for PBFT.
    pub fn certify_by(&self, block: &Block, signers: &[SigningKey]) -> CommitCertificate {
        let hash = block.hash();
        let chain = self.chain_id();
        match self.genesis.consensus.kind() {
            ConsensusKind::Raft => {
                let term = block.header.round;
                let statement = RaftCommitStatement {
                    height: block.header.height,
                    block_hash: hash,
                    term,
                };
                CommitCertificate::Raft(RaftCertificate {
                    term,
                    leader: signers[0].public_key(),
                    signature: statement.sign(chain, &signers[0]),
                })
            }
            ConsensusKind::Pbft => {
                let statement = PbftCommitStatement {
                    view: block.header.round,
                    seq: block.header.height,
                    block_hash: hash,
                };
                let n = signers.len();
                let quorum = n - n.saturating_sub(1) / 3;
                CommitCertificate::Pbft(PbftCertificate {
                    view: statement.view,
                    seq: statement.seq,
                    votes: signers[..quorum]
                        .iter()
                        .map(|k| CommitVote {
                            validator: k.public_key(),
                            signature: statement.sign(chain, k),
                        })
                        .collect(),
                })
            }
        }
    }
}
