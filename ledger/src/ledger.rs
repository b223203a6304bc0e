//! The state machine: executes blocks deterministically, builds blocks for proposers,
//! validates blocks from others and commits them to a [`BlockStore`].
//!
//! Determinism: execution reads only the store and the block, iterates only ordered maps,
//! and uses no clock (the block's timestamp is the proposer's, checked only for order).

use cairn_crypto::{Hash, PublicKey};

use crate::account_cache::AccountCache;
use crate::ahead::AheadView;
use crate::block::{
    BLOCK_BYTES_MAX, BLOCK_TXS_MAX, Block, BlockHash, BlockHeader, Height, Receipt, Tip, TxLocation,
};
use crate::certificate::{CertificateError, CommitCertificate};
use crate::genesis::{Genesis, GenesisError, Validator, ValidatorSet};
use crate::governance::{PendingChange, SetInForce, SetRecord, Vote};
use crate::overlay::{BlockContext, Overlay};
use crate::state::{Account, StateKey, StateView, WriteSet, genesis_writes};
use crate::state_tree::{PublishedTree, StateTree};
use crate::store::{BlockCommit, BlockStore, SCHEMA_VERSION, StoreError};
use crate::transaction::{TxId, VerifiedTransaction};
use crate::validation::{TxRejection, check_stateless, check_stateless_sized, verify_transactions};

/// Whether a block's transaction signatures and certificate still need checking here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Check everything (blocks from peers, block sync).
    Verify,
    /// Already checked on this node (blocks this node built from verified transactions, or
    /// whose transactions it verified on admission): skip signatures and certificate.
    PreVerified,
}

/// Why a block cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// Header names another chain.
    #[error("block is for chain {got:?}")]
    WrongChain {
        /// The header's chain id.
        got: String,
    },
    /// Not the next height.
    #[error("block height {got}, expected {expected}")]
    WrongHeight {
        /// Tip + 1.
        expected: Height,
        /// The header's.
        got: Height,
    },
    /// Parent is not the tip.
    #[error("block's parent {got} is not the tip {expected}")]
    WrongParent {
        /// Tip hash.
        expected: BlockHash,
        /// The header's prev_hash.
        got: BlockHash,
    },
    /// Timestamp goes backwards.
    #[error("block timestamp {got} is before its parent's {parent}")]
    TimestampBeforeParent {
        /// Parent's timestamp.
        parent: u64,
        /// The header's.
        got: u64,
    },
    /// Proposer is not a validator.
    #[error("proposer {0} is not a validator")]
    ProposerNotValidator(PublicKey),
    /// The header names another validator set than the one in force at its height.
    #[error("header's validators_hash {got} is not the set in force at this height ({expected})")]
    WrongValidatorSet {
        /// The hash of the set in force.
        expected: Hash,
        /// The header's.
        got: Hash,
    },
    /// The header's `next_validators` is not what the chain's approved changes make it at
    /// this height (a new set where none takes effect, none where one does, or another list).
    #[error(
        "header at height {height} announces {claimed}, and the chain's approved changes make \
         it {derived}"
    )]
    WrongNextValidators {
        /// The block's height.
        height: Height,
        /// What the header says, in words.
        claimed: String,
        /// What execution derives, in words.
        derived: String,
    },
    /// A block above a block that changes the validator set, while that block is not
    /// committed: the new set's first block is ordered only once the old set's last one is.
    #[error(
        "block at height {height} is above the validator-set change at {boundary}, which is not \
         committed yet"
    )]
    AcrossHandover {
        /// The block's height.
        height: Height,
        /// The height of the uncommitted block whose successor has a new set.
        boundary: Height,
    },
    /// More transactions than a block may hold.
    #[error("block has {got} transactions, the limit is {max}")]
    TooManyTxs {
        /// Count.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// Encoded block larger than a block may be.
    #[error("block is {size} bytes, the limit is {max}")]
    TooLarge {
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// `tx_count` does not match the transactions.
    #[error("header says {claimed} transactions, the block has {actual}")]
    TxCountMismatch {
        /// Header's.
        claimed: u32,
        /// Actual.
        actual: usize,
    },
    /// `tx_root` does not match the transactions.
    #[error("tx_root does not match the transactions")]
    TxRootMismatch,
    /// `state_root` does not match execution.
    #[error("state_root {claimed} does not match the executed {computed}")]
    StateRootMismatch {
        /// Header's.
        claimed: Hash,
        /// Computed.
        computed: Hash,
    },
    /// A transaction is invalid (every transaction in a block must execute).
    #[error("transaction {index} ({id}) is invalid: {reason}")]
    InvalidTx {
        /// Position.
        index: usize,
        /// Id.
        id: TxId,
        /// Why.
        reason: TxRejection,
    },
    /// The certificate does not prove the commit.
    #[error("certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The execution passed to `commit` is of another block.
    #[error("execution result belongs to another block")]
    ExecutionMismatch,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of executing a block: what committing it will write. Only the ledger makes
/// one, so [`Ledger::commit`] can trust that its writes are the block's. Executions of blocks
/// not committed yet, each on the one before, are what later blocks can be built and executed
/// on ([`Ledger::build_block_on`], [`Ledger::execute_block_on`]).
#[derive(Debug, Clone)]
pub struct Execution {
    /// The block's parent: what the tip must be when it commits.
    parent: BlockHash,
    /// The tip once the block is committed.
    tip: Tip,
    tx_ids: Vec<TxId>,
    writes: WriteSet,
    receipts: Vec<Receipt>,
    /// The set in force after this block, when it changes here.
    next_validators: Option<Vec<Validator>>,
    /// The state tree after this block.
    tree: StateTree,
}

impl Execution {
    /// The block executed.
    pub fn block_hash(&self) -> BlockHash {
        self.tip.hash
    }

    /// The block it executed on.
    pub fn parent(&self) -> BlockHash {
        self.parent
    }

    /// The ledger's tip once the block is committed.
    pub fn tip(&self) -> Tip {
        self.tip
    }

    /// Its transaction ids, in order.
    pub fn tx_ids(&self) -> &[TxId] {
        &self.tx_ids
    }

    /// State changes, sorted by key.
    pub fn writes(&self) -> &WriteSet {
        &self.writes
    }

    /// Root after the block.
    pub fn state_root(&self) -> Hash {
        self.tip.state_root
    }

    /// One receipt per transaction.
    pub fn receipts(&self) -> &[Receipt] {
        &self.receipts
    }

    /// The validator list in force after this block, when this block changes it: nothing
    /// above it may be built or executed until it commits.
    pub fn next_validators(&self) -> Option<&[Validator]> {
        self.next_validators.as_deref()
    }
}

/// Why a ledger could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The genesis document breaks a rule.
    #[error("invalid genesis: {0}")]
    Genesis(#[from] GenesisError),
    /// The store refused (another chain, another schema version) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored state is not the one the stored tip's header commits to.
    #[error(
        "the stored state has root {computed}, but the block at height {height} commits to {certified}: the store is damaged; move it aside and let the node sync or restore a backup"
    )]
    StateMismatch {
        /// The stored tip's height.
        height: Height,
        /// The root of the stored state.
        computed: Hash,
        /// The tip's `state_root`.
        certified: Hash,
    },
}

/// A block built by a proposer, and what was left out of it.
#[derive(Debug, Clone)]
pub struct BuiltBlock {
    /// The block.
    pub block: Block,
    /// Its execution, ready to commit.
    pub execution: Execution,
    /// Candidates that did not execute, with why. Drop them from the mempool.
    pub dropped: Vec<(TxId, TxRejection)>,
}

/// Proposer inputs for [`Ledger::build_block`].
#[derive(Debug, Clone, Copy)]
pub struct BlockParams {
    /// The proposing validator.
    pub proposer: PublicKey,
    /// Term or view.
    pub round: u64,
    /// The proposer's clock (raised to the parent's timestamp if behind).
    pub timestamp_ms: u64,
    /// Most transactions to include (capped at [`BLOCK_TXS_MAX`]).
    pub max_txs: usize,
}

/// One chain's ledger: genesis, store and tip.
#[derive(Debug)]
pub struct Ledger<S> {
    genesis: Genesis,
    genesis_hash: BlockHash,
    /// The set in force for the block after the tip.
    validators: SetInForce,
    store: S,
    tip: Tip,
    /// Committed accounts read lately, kept up to date by [`Ledger::commit`].
    accounts: AccountCache,
    /// The committed state as a Merkle tree: its root is the tip's `state_root`.
    tree: StateTree,
    /// The committed tree for readers on other threads.
    published: PublishedTree,
}

impl<S: BlockStore> Ledger<S> {
    /// Opens the ledger on `store`, writing the genesis state if the store is empty. Refuses
    /// an invalid genesis, and a store of another chain or schema version.
    pub fn open(mut store: S, genesis: Genesis) -> Result<Self, OpenError> {
        genesis.validate()?;
        let genesis_hash = genesis.hash();
        let (tip, tree) = match store.meta()? {
            None => {
                let writes = genesis_writes(&genesis);
                let tree = StateTree::default().apply(&writes);
                let tip = Tip {
                    height: 0,
                    hash: genesis_hash,
                    state_root: tree.root_hash(),
                    timestamp_ms: genesis.genesis_time_ms,
                };
                store.initialize(genesis_hash, &writes, tip)?;
                (tip, tree)
            }
            Some(meta) => {
                if meta.schema_version != SCHEMA_VERSION {
                    return Err(StoreError::UnsupportedSchema {
                        found: meta.schema_version,
                        supported: SCHEMA_VERSION,
                    }
                    .into());
                }
                if meta.genesis_hash != genesis_hash {
                    return Err(StoreError::GenesisMismatch {
                        found: meta.genesis_hash,
                        expected: genesis_hash,
                    }
                    .into());
                }
                let tip = store.tip()?;
                // The stored state must be the one the tip certifies: this catches a store
                // damaged or changed behind the node's back before anything uses it.
                let entries = store.state_entries()?;
                let tree = StateTree::from_entries(
                    entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
                );
                if tree.root_hash() != tip.state_root {
                    return Err(OpenError::StateMismatch {
                        height: tip.height,
                        computed: tree.root_hash(),
                        certified: tip.state_root,
                    });
                }
                (tip, tree)
            }
        };
        let validators = match decode_entry::<SetRecord>(store.entry(&StateKey::Validators)?)? {
            Some(record) => SetInForce::new(record.validators, record.since),
            None => SetInForce::genesis(&genesis),
        };
        Ok(Ledger {
            validators,
            genesis,
            genesis_hash,
            store,
            tip,
            accounts: AccountCache::default(),
            published: PublishedTree::new(tip, tree.clone()),
            tree,
        })
    }

    /// The genesis document.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The chain's identity.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis_hash
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.genesis.chain_id
    }

    /// The keys of the validators in force for the next block.
    pub fn validators(&self) -> &ValidatorSet {
        self.validators.set()
    }

    /// The validator set in force for the next block: names, keys, hash, since when.
    pub fn validators_in_force(&self) -> &SetInForce {
        &self.validators
    }

    /// The approved validator change waiting for its boundary, if any.
    pub fn pending_change(&self) -> Result<Option<PendingChange>, StoreError> {
        decode_entry(self.store.entry(&StateKey::PendingChange)?)
    }

    /// The votes for validator changes that count now (cast by validators in force, in this
    /// epoch or the one before), by voter.
    pub fn validator_votes(&self) -> Result<Vec<(PublicKey, Vote)>, StoreError> {
        let now = self.tip.height + 1;
        let k = self.genesis.consensus.epoch_length();
        let mut out = Vec::new();
        for key in self.validators.set().keys() {
            if let Some(v) = decode_entry::<Vote>(self.store.entry(&StateKey::Vote(*key))?)?
                && crate::governance::vote_counts(v.height, now, k)
            {
                out.push((*key, v));
            }
        }
        Ok(out)
    }

    /// What executing the block at `height` needs to know besides the state.
    fn context(&self, height: Height) -> BlockContext<'_> {
        BlockContext {
            kind: self.genesis.consensus.kind(),
            policy: self.genesis.consensus.change_policy(),
            epoch_length: self.genesis.consensus.epoch_length(),
            height,
            validators: &self.validators,
        }
    }

    /// The newest committed block.
    pub fn tip(&self) -> Tip {
        self.tip
    }

    /// The store, for reads.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for the consensus engine's durable state. Not for the state machine's
    /// keys: the ledger keeps committed accounts in memory and only its own commits update them.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Committed accounts held in memory now (at most [`crate::ACCOUNTS_KEPT`]).
    pub fn accounts_kept(&self) -> usize {
        self.accounts.len()
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Whether `tx` would execute on the committed state, alone in the next block: its
    /// rejection if not. What `build_block` would decide for a one-transaction block, without
    /// building one (no header, no roots).
    pub fn dry_run(&self, tx: &VerifiedTransaction) -> Result<Option<TxRejection>, StoreError> {
        if let Err(reason) = check_stateless_sized(tx.signed(), tx.size(), &self.genesis.chain_id) {
            return Ok(Some(reason));
        }
        let mut overlay = Overlay::new(self, self.context(self.tip.height + 1));
        Ok(overlay.apply(tx.tx())?.err())
    }

    /// Builds the next block from candidates in order, leaving out those that do not execute
    /// (with why). Stops at `max_txs` or when the next transaction would take the block over
    /// [`BLOCK_BYTES_MAX`]; candidates not reached are neither included nor dropped.
    pub fn build_block(
        &self,
        candidates: &[VerifiedTransaction],
        params: BlockParams,
    ) -> Result<BuiltBlock, BlockError> {
        self.build_block_on(&[], candidates, params)
    }

    /// The tip once the blocks of `ahead` are committed.
    fn tip_after(&self, ahead: &[&Execution]) -> Tip {
        debug_assert!(
            chained(self.tip.hash, ahead),
            "executions ahead must each be on the one before"
        );
        ahead.last().map_or(self.tip, |e| e.tip)
    }

    /// The state tree once the blocks of `ahead` are committed.
    fn tree_after<'a>(&'a self, ahead: &[&'a Execution]) -> &'a StateTree {
        ahead.last().map_or(&self.tree, |e| &e.tree)
    }

    /// The committed state tree (its root is the tip's `state_root`).
    pub fn state_tree(&self) -> &StateTree {
        &self.tree
    }

    /// A handle on the committed state tree that follows every commit, for readers on other
    /// threads (account and record proofs).
    pub fn published_tree(&self) -> PublishedTree {
        self.published.clone()
    }

    /// Refuses to go above an uncommitted block that changes the validator set (the handover
    /// gate, ARCHITECTURE.md "Reconfiguration"): the set of every block ahead is then the one
    /// in force now.
    fn check_handover(&self, ahead: &[&Execution], height: Height) -> Result<(), BlockError> {
        match ahead.iter().find(|e| e.next_validators.is_some()) {
            Some(e) => Err(BlockError::AcrossHandover {
                height,
                boundary: e.tip.height,
            }),
            None => Ok(()),
        }
    }

    /// The state once the blocks of `ahead` (executions of blocks after the tip, each on the
    /// one before) are committed: what the mempool picks the next block's candidates from.
    pub fn view_on<'a>(&'a self, ahead: &[&'a Execution]) -> AheadView<'a, Self> {
        AheadView::new(self, ahead)
    }

    /// [`Ledger::build_block`] on top of blocks not committed yet: `ahead` holds their
    /// executions, the first on the tip and each on the one before. The block built commits
    /// only after them. Refused ([`BlockError::AcrossHandover`]) above a block ahead that
    /// changes the validator set; that and [`BlockError::Store`] are its only errors.
    pub fn build_block_on(
        &self,
        ahead: &[&Execution],
        candidates: &[VerifiedTransaction],
        params: BlockParams,
    ) -> Result<BuiltBlock, BlockError> {
        let parent = self.tip_after(ahead);
        let height = parent.height + 1;
        self.check_handover(ahead, height)?;
        let max = params.max_txs.min(BLOCK_TXS_MAX);
        let view = self.view_on(ahead);
        let mut overlay = Overlay::new(&view, self.context(height));
        let mut txs = Vec::new();
        let mut ids = Vec::new();
        let mut receipts = Vec::new();
        let mut dropped = Vec::new();
        // Header (its chain id is the only variable part) and the transaction list's length.
        let mut bytes = HEADER_FIXED_BYTES + self.genesis.chain_id.len() + 8;
        for c in candidates {
            if txs.len() == max || bytes + c.size() > BLOCK_BYTES_MAX {
                break;
            }
            // Cheap rules hold for every transaction, however it got here.
            if let Err(reason) = check_stateless_sized(c.signed(), c.size(), &self.genesis.chain_id)
            {
                dropped.push((c.id(), reason));
                continue;
            }
            match overlay.apply(c.tx())? {
                Ok(sender) => {
                    receipts.push(receipt(c.id(), height, txs.len(), &sender));
                    ids.push(c.id());
                    txs.push(c.signed().clone());
                    bytes += c.size();
                }
                Err(reason) => dropped.push((c.id(), reason)),
            }
        }
        let next_validators = overlay.finish()?;
        let writes = overlay.into_writes();
        let tree = self.tree_after(ahead).apply(&writes);
        let state_root = tree.root_hash();
        let header = BlockHeader {
            chain_id: self.genesis.chain_id.clone(),
            height,
            prev_hash: parent.hash,
            timestamp_ms: params.timestamp_ms.max(parent.timestamp_ms),
            tx_root: Block::tx_root_of(&ids),
            tx_count: ids.len() as u32,
            state_root,
            proposer: params.proposer,
            round: params.round,
            validators_hash: self.validators.hash(),
            next_validators: next_validators.clone(),
        };
        let tip = Tip {
            height,
            hash: header.hash(),
            state_root,
            timestamp_ms: header.timestamp_ms,
        };
        Ok(BuiltBlock {
            block: Block { header, txs },
            execution: Execution {
                parent: parent.hash,
                tip,
                tx_ids: ids,
                writes,
                receipts,
                next_validators,
                tree,
            },
            dropped,
        })
    }

    /// Checks a proposed or fetched block against the tip and executes it, without writing.
    pub fn execute_block(&self, block: &Block, trust: Trust) -> Result<Execution, BlockError> {
        self.execute_block_on(&[], block, trust)
    }

    /// [`Ledger::execute_block`] on top of blocks not committed yet (`ahead`, as for
    /// [`Ledger::build_block_on`]).
    pub fn execute_block_on(
        &self,
        ahead: &[&Execution],
        block: &Block,
        trust: Trust,
    ) -> Result<Execution, BlockError> {
        let parent = self.tip_after(ahead);
        let h = &block.header;
        self.check_handover(ahead, h.height)?;
        if h.chain_id != self.genesis.chain_id {
            return Err(BlockError::WrongChain {
                got: h.chain_id.clone(),
            });
        }
        if h.height != parent.height + 1 {
            return Err(BlockError::WrongHeight {
                expected: parent.height + 1,
                got: h.height,
            });
        }
        if h.prev_hash != parent.hash {
            return Err(BlockError::WrongParent {
                expected: parent.hash,
                got: h.prev_hash,
            });
        }
        if h.timestamp_ms < parent.timestamp_ms {
            return Err(BlockError::TimestampBeforeParent {
                parent: parent.timestamp_ms,
                got: h.timestamp_ms,
            });
        }
        if !self.validators.set().contains(&h.proposer) {
            return Err(BlockError::ProposerNotValidator(h.proposer));
        }
        if h.validators_hash != self.validators.hash() {
            return Err(BlockError::WrongValidatorSet {
                expected: self.validators.hash(),
                got: h.validators_hash,
            });
        }
        if block.txs.len() > BLOCK_TXS_MAX {
            return Err(BlockError::TooManyTxs {
                got: block.txs.len(),
                max: BLOCK_TXS_MAX,
            });
        }
        let size = block.encoded_len();
        if size > BLOCK_BYTES_MAX {
            return Err(BlockError::TooLarge {
                size,
                max: BLOCK_BYTES_MAX,
            });
        }
        if h.tx_count as usize != block.txs.len() {
            return Err(BlockError::TxCountMismatch {
                claimed: h.tx_count,
                actual: block.txs.len(),
            });
        }
        let ids: Vec<TxId> = match trust {
            Trust::Verify => verify_transactions(block.txs.clone(), &self.genesis.chain_id)
                .into_iter()
                .enumerate()
                .map(|(index, r)| {
                    r.map(|v| v.id()).map_err(|reason| BlockError::InvalidTx {
                        index,
                        id: block.txs[index].id(),
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?,
            Trust::PreVerified => block.tx_ids(),
        };
        if Block::tx_root_of(&ids) != h.tx_root {
            return Err(BlockError::TxRootMismatch);
        }
        let view = self.view_on(ahead);
        let mut overlay = Overlay::new(&view, self.context(h.height));
        let mut receipts = Vec::with_capacity(block.txs.len());
        for (index, tx) in block.txs.iter().enumerate() {
            if trust == Trust::PreVerified {
                // Cheap rules still hold for blocks we trust; signatures are what we skip.
                check_stateless(tx, &self.genesis.chain_id).map_err(|reason| {
                    BlockError::InvalidTx {
                        index,
                        id: ids[index],
                        reason,
                    }
                })?;
            }
            match overlay.apply(&tx.tx)? {
                Ok(sender) => receipts.push(receipt(ids[index], h.height, index, &sender)),
                Err(reason) => {
                    return Err(BlockError::InvalidTx {
                        index,
                        id: ids[index],
                        reason,
                    });
                }
            }
        }
        let next_validators = overlay.finish()?;
        if next_validators != h.next_validators {
            let words = |n: &Option<Vec<Validator>>| match n {
                None => "no new validator set".to_string(),
                Some(list) => format!("a set of {} validators", list.len()),
            };
            return Err(BlockError::WrongNextValidators {
                height: h.height,
                claimed: words(&h.next_validators),
                derived: words(&next_validators),
            });
        }
        let writes = overlay.into_writes();
        let tree = self.tree_after(ahead).apply(&writes);
        let computed = tree.root_hash();
        if computed != h.state_root {
            return Err(BlockError::StateRootMismatch {
                claimed: h.state_root,
                computed,
            });
        }
        Ok(Execution {
            parent: parent.hash,
            tip: Tip {
                height: h.height,
                hash: block.hash(),
                state_root: computed,
                timestamp_ms: h.timestamp_ms,
            },
            tx_ids: ids,
            writes,
            receipts,
            next_validators,
            tree,
        })
    }

    /// Writes an executed block and its certificate: one atomic, synced store commit.
    pub fn commit(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
        execution: Execution,
    ) -> Result<Vec<Receipt>, BlockError> {
        // An execution made on top of a block that did not commit is not this block's.
        if execution.tip.hash != block.hash()
            || execution.tip.state_root != block.header.state_root
            || execution.parent != self.tip.hash
            || block.header.height != self.tip.height + 1
        {
            return Err(BlockError::ExecutionMismatch);
        }
        let tip = execution.tip;
        let next_validators = execution.next_validators;
        let tree = execution.tree;
        let commit = BlockCommit {
            block,
            hash: tip.hash,
            certificate,
            tx_ids: execution.tx_ids,
            writes: execution.writes,
        };
        if let Err(e) = self.store.commit(&commit, tip) {
            self.accounts.clear();
            return Err(e.into());
        }
        self.accounts.on_commit(&commit.writes);
        self.tip = tip;
        self.published.set(tip, tree.clone());
        self.tree = tree;
        if let Some(list) = next_validators {
            self.validators = SetInForce::new(list, tip.height);
        }
        Ok(execution.receipts)
    }

    /// Verifies (as `trust` says), executes and commits a block with its certificate.
    pub fn apply_block(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
        trust: Trust,
    ) -> Result<Vec<Receipt>, BlockError> {
        if trust == Trust::Verify {
            self.verify_certificate(&block, &certificate)?;
        }
        let execution = self.execute_block(&block, trust)?;
        self.commit(block, certificate, execution)
    }

    /// Checks a certificate for the next block against the validator set in force for it.
    pub fn verify_certificate(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Result<(), CertificateError> {
        certificate.verify(
            &self.genesis.chain_id,
            self.genesis.consensus.kind(),
            self.validators.set(),
            block.header.height,
            &block.hash(),
        )
    }
}

impl<S: BlockStore> StateView for Ledger<S> {
    /// The committed account: from memory when read lately, else from the store.
    fn account(&self, id: &PublicKey) -> Result<Option<Account>, StoreError> {
        if let Some(kept) = self.accounts.get(id) {
            return Ok(kept);
        }
        let account = self.store.account(id)?;
        self.accounts.keep(*id, account);
        Ok(account)
    }

    fn record(&self, owner: &PublicKey, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.record(owner, key)
    }

    fn entry(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.entry(key)
    }
}

fn decode_entry<T: serde::de::DeserializeOwned + serde::Serialize>(
    bytes: Option<Vec<u8>>,
) -> Result<Option<T>, StoreError> {
    match bytes {
        Some(b) => Ok(Some(cairn_crypto::codec::decode(&b)?)),
        None => Ok(None),
    }
}

/// Whether `ahead` is a chain of executions starting on `tip`.
fn chained(tip: BlockHash, ahead: &[&Execution]) -> bool {
    let mut parent = tip;
    ahead.iter().all(|e| {
        let ok = e.parent == parent;
        parent = e.tip.hash;
        ok
    })
}

/// Encoded header size apart from the chain id's bytes: the chain id's length prefix and the
/// fixed-width fields (height, prev_hash, timestamp_ms, tx_root, tx_count, state_root,
/// proposer, round, validators_hash), and an absent `next_validators`.
const HEADER_FIXED_BYTES: usize = 8 + 8 + 32 + 8 + 32 + 4 + 32 + 32 + 8 + 32 + 1;

fn receipt(tx_id: TxId, height: Height, index: usize, sender: &Account) -> Receipt {
    Receipt {
        tx_id,
        location: TxLocation {
            height,
            index: index as u32,
        },
        sender_balance: sender.balance,
        sender_next_nonce: sender.nonce,
    }
}
