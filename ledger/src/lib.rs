//! `cairn-ledger`: what the ledger is and how it changes.
//!
//! - Data model ([`transaction`], [`block`], [`certificate`], [`genesis`]): the structures
//!   every node, wallet and explorer agrees on, byte for byte (`docs/PROTOCOL.md`).
//! - Rules ([`validation`]): stateless and stateful validity, with one typed list of
//!   rejection reasons ([`TxRejection`]).
//! - The state machine ([`Ledger`]): deterministic execution, block building and validation,
//!   atomic commits; equal inputs give equal state roots on every machine.
//! - Storage ([`store`]): the [`BlockStore`] trait, a memory store and (feature `rocksdb`,
//!   on by default) the RocksDB store, with one conformance suite for both.
//! - The [`mempool`].
//!
//! Must not depend on tokio or libp2p. `cairn-consensus` uses this crate with default features
//! off, so that its dependency tree holds no storage engine.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod account_cache;
mod ahead;
pub mod audit;
pub mod block;
pub mod certificate;
pub mod domains;
pub mod genesis;
pub mod governance;
mod ledger;
pub mod mempool;
mod overlay;
pub mod snapshot;
pub mod state;
pub mod state_tree;
pub mod store;
pub mod testkit;
pub mod transaction;
pub mod validation;

pub use account_cache::ACCOUNTS_KEPT;
pub use ahead::AheadView;
pub use block::{Block, BlockHash, BlockHeader, Height, Receipt, Tip, TxLocation};
pub use certificate::{
    CertificateError, CommitCertificate, CommitVote, PbftCertificate, PbftCommitStatement,
    RaftCertificate, RaftCommitStatement,
};
pub use genesis::{
    ConsensusConfig, ConsensusKind, Genesis, GenesisAccount, GenesisError, PbftParams, RaftParams,
    Validator, ValidatorSet, valid_chain_id,
};
pub use governance::{ChangePolicy, PendingChange, SetInForce, ValidatorChange, Vote};
pub use ledger::{BlockError, BlockParams, BuiltBlock, Execution, Ledger, OpenError, Trust};
pub use mempool::{Mempool, MempoolConfig};
pub use state::{Account, StateView};
pub use state_tree::{ProofError, ProofLeaf, PublishedTree, StateProof, StateTree};
pub use store::{
    AccountTx, BlockStore, ChainRead, ConsensusWrite, MemoryStore, RecordEntry, StoreError,
    involved_accounts,
};
#[cfg(feature = "rocksdb")]
pub use store::{RocksReader, RocksStore, StoreMemory};
pub use transaction::{Payload, Role, SignedTransaction, Transaction, TxId, VerifiedTransaction};
pub use validation::{TxRejection, verify_transactions};
