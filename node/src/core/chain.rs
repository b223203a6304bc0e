//! The ledger as the core changes it: the one validate → execute → commit path, for blocks from
//! consensus and from block sync alike.
//!
//! - A block is executed once: executions of blocks built or validated here are kept by hash
//!   (a few at a time) and reused when the block commits.
//! - A pipelining leader builds block h+1 before h commits: the blocks it built and has not
//!   seen commit are kept in order (`ahead`), the next one is built on top of them, and each
//!   commits with the execution made then. A commit of any other block at their height means
//!   they lost (a new leader), and they are dropped; their transactions never left the
//!   mempool. A PBFT replica likewise validates block h+1 on its execution of block h when h
//!   is validated here and not committed yet.
//! - Transaction signatures are verified once per node: only those of transactions this node
//!   has not verified yet are checked, in one batch ([`TxCheck`]), before a block executes.
//! - Consensus can run ahead of the ledger (after a restart or a partition): validations and
//!   commits above the next height are held, bounded, and done once block sync fills the gap.
//! - Storage failures are fatal ([`Fatal`]); an invalid block is an answer, not a failure.

use std::collections::{BTreeMap, HashMap};

use cairn_ledger::{
    Block, BlockError, BlockHash, BlockParams, BlockStore, BuiltBlock, CommitCertificate,
    Execution, Height, Ledger, SignedTransaction, Tip, Trust, TxId, TxRejection,
    VerifiedTransaction,
};

use crate::fatal::Fatal;

/// How far ahead of this node's clock a proposed block's timestamp may be.
pub const CLOCK_DRIFT_MAX_MS: u64 = 30_000;
/// Most heights with held validations, and blocks held per height.
const HELD_VALIDATION_HEIGHTS: usize = 64;
const HELD_VALIDATIONS_PER_HEIGHT: usize = 8;
/// Most commits held above the next height.
const HELD_COMMITS: usize = 64;
/// Most executions of validated blocks kept for reuse (and to validate blocks built on them).
const EXECUTIONS_KEPT: usize = 32;
/// Most blocks built ahead of the tip (the node's `consensus.blocks_in_flight` is at most
/// this; a request beyond it waits for commits).
const AHEAD_MAX: usize = crate::config::BLOCKS_IN_FLIGHT_MAX;

/// Verifies, in one batch, the signatures of a block's transactions this node has not
/// verified before, and remembers them.
pub trait TxCheck {
    /// `Err` names the first transaction whose signature (or stateless rules) fail.
    fn check_block_txs(&mut self, txs: &[SignedTransaction]) -> Result<(), (TxId, TxRejection)>;
}

/// Raft's check of the blocks its consensus commits: none. The leader built them from
/// transactions it verified, and under Raft's crash-fault model a leader is honest; the
/// certificate the leader signs vouches for the block. (Block sync never uses this: blocks
/// from a sync peer are checked in full.)
pub struct TrustLeader;

impl TxCheck for TrustLeader {
    fn check_block_txs(&mut self, _: &[SignedTransaction]) -> Result<(), (TxId, TxRejection)> {
        Ok(())
    }
}

/// A block now in the ledger.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The block.
    pub block: Block,
    /// Its hash.
    pub hash: BlockHash,
    /// Its transactions' ids, in order.
    pub ids: Vec<TxId>,
}

/// The answer to "is this the block at its height?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// Yes.
    Valid,
    /// No, and why.
    Invalid(String),
    /// Above the next height: held until the ledger gets there.
    Later,
}

/// What a commit from consensus did.
#[derive(Debug)]
pub enum CommitOutcome {
    /// Applied, with any held commits it unblocked, in height order.
    Applied(Vec<Committed>),
    /// Above the next height (this one): held until block sync fills the gap.
    Held(Height),
    /// At or below the tip: the ledger has it already.
    AlreadyHeld,
}

/// The ledger and the bookkeeping around changing it.
pub struct Chain<S: BlockStore> {
    ledger: Ledger<S>,
    executions: HashMap<BlockHash, Execution>,
    /// Executions of blocks built here and not committed yet, the first on the tip and each
    /// on the one before (at most [`AHEAD_MAX`]).
    ahead: Vec<Execution>,
    held_validations: BTreeMap<Height, Vec<Block>>,
    held_commits: BTreeMap<Height, (Block, CommitCertificate)>,
}

/// Splits a block error into "the block is invalid" and "the store failed".
fn split(e: BlockError) -> Result<String, Fatal> {
    match e {
        BlockError::Store(source) => Err(Fatal::Read { source }),
        other => Ok(other.to_string()),
    }
}

impl<S: BlockStore> Chain<S> {
    /// Wraps an opened ledger.
    pub fn new(ledger: Ledger<S>) -> Chain<S> {
        Chain {
            ledger,
            executions: HashMap::new(),
            ahead: Vec::new(),
            held_validations: BTreeMap::new(),
            held_commits: BTreeMap::new(),
        }
    }

    /// The ledger, for reads.
    pub fn ledger(&self) -> &Ledger<S> {
        &self.ledger
    }

    /// The newest committed block.
    pub fn tip(&self) -> Tip {
        self.ledger.tip()
    }

    /// The height the ledger reaches once the blocks built here commit.
    pub fn built_to(&self) -> Height {
        self.ahead
            .last()
            .map_or(self.tip().height, |e| e.tip().height)
    }

    /// How many transactions the blocks built here and not committed yet hold.
    pub fn ahead_txs(&self) -> usize {
        self.ahead.iter().map(|e| e.tx_ids().len()).sum()
    }

    /// The state once the blocks built here commit: what the next block's candidates are
    /// picked from.
    pub fn view_ahead(&self) -> cairn_ledger::AheadView<'_, Ledger<S>> {
        let ahead: Vec<&Execution> = self.ahead.iter().collect();
        self.ledger.view_on(&ahead)
    }

    /// The engine asks for the block at `height` again (a new term or view): the blocks built
    /// at or above it will not commit.
    pub fn drop_ahead_from(&mut self, height: Height) {
        let keep = self
            .ahead
            .iter()
            .take_while(|e| e.tip().height < height)
            .count();
        self.ahead.truncate(keep);
    }

    /// The store, for the consensus engine's writes.
    pub fn store_mut(&mut self) -> &mut S {
        self.ledger.store_mut()
    }

    /// The hash of the block at `height` (the genesis hash at 0), if the ledger holds it.
    pub fn hash_at(&self, height: Height) -> Result<Option<BlockHash>, Fatal> {
        if height == 0 {
            return Ok(Some(self.ledger.genesis_hash()));
        }
        Ok(self.ledger.store().header(height)?.map(|h| h.hash()))
    }

    fn keep_execution(&mut self, exec: Execution) {
        if self.executions.len() >= EXECUTIONS_KEPT {
            let tip = self.tip().height;
            self.executions.retain(|_, e| e.tip().height > tip);
            if self.executions.len() >= EXECUTIONS_KEPT {
                self.executions.clear();
            }
        }
        self.executions.insert(exec.block_hash(), exec);
    }

    /// An execution of the block with this hash, validated or built here, not committed yet.
    fn execution_of(&self, hash: &BlockHash) -> Option<&Execution> {
        self.executions
            .get(hash)
            .or_else(|| self.ahead.iter().find(|e| e.block_hash() == *hash))
    }

    /// The executions `block` is built on, from the one on the tip up to its parent, when its
    /// parent is a block validated (or built) here and not committed yet. `Err` if that chain
    /// leads to a block that lost its height; `Ok(None)` if this node lacks a link.
    fn executions_under(&self, block: &Block) -> Result<Option<Vec<&Execution>>, String> {
        let tip = self.tip();
        let mut chain = Vec::new();
        let mut hash = block.header.prev_hash;
        while hash != tip.hash {
            let Some(e) = self.execution_of(&hash) else {
                return Ok(None);
            };
            if e.tip().height <= tip.height {
                return Err(format!(
                    "built on block {} at height {}, which did not commit",
                    e.block_hash(),
                    e.tip().height
                ));
            }
            chain.push(e);
            hash = e.parent();
        }
        chain.reverse();
        Ok(Some(chain))
    }

    /// Executes `block` on `under` (executions of the blocks between the tip and it), verifying
    /// first the signatures not verified here yet.
    fn execute(
        &self,
        under: &[&Execution],
        block: &Block,
        txs: &mut impl TxCheck,
    ) -> Result<Result<Execution, String>, Fatal> {
        if let Err((id, why)) = txs.check_block_txs(&block.txs) {
            return Ok(Err(format!("transaction {id}: {why}")));
        }
        match self
            .ledger
            .execute_block_on(under, block, Trust::PreVerified)
        {
            Ok(e) => Ok(Ok(e)),
            Err(e) => split(e).map(Err),
        }
    }

    /// Checks a proposed block: at a held height it must be the block held; at the next it
    /// must come from a validator, carry a sane time and execute. Above the next height it
    /// executes on the blocks validated here below it (pipelined consensus), or, when this node
    /// lacks one of them, it is held (bounded: a faulty proposer cannot grow this).
    pub fn validate(
        &mut self,
        block: Block,
        now_ms: u64,
        txs: &mut impl TxCheck,
    ) -> Result<Validation, Fatal> {
        let tip = self.tip();
        let h = block.header.height;
        if h == 0 {
            return Ok(Validation::Invalid("height 0 is the genesis".into()));
        }
        if h <= tip.height {
            let held = self.hash_at(h)?;
            return Ok(if held == Some(block.hash()) {
                Validation::Valid
            } else {
                Validation::Invalid(format!("the ledger holds another block at {h}"))
            });
        }
        let mut under = Vec::new();
        if h > tip.height + 1 {
            match self.executions_under(&block) {
                Ok(Some(chain)) => under = chain,
                Err(why) => return Ok(Validation::Invalid(why)),
                Ok(None) => {}
            }
        }
        if h > tip.height + 1 && under.is_empty() {
            if self.held_validations.len() < HELD_VALIDATION_HEIGHTS
                || self.held_validations.contains_key(&h)
            {
                let v = self.held_validations.entry(h).or_default();
                if v.len() < HELD_VALIDATIONS_PER_HEIGHT {
                    v.push(block);
                }
            }
            return Ok(Validation::Later);
        }
        // Proposed by a validator (not necessarily the current primary: a new PBFT view
        // re-proposes blocks prepared in an earlier one, unchanged), with a sane clock.
        if !self.ledger.validators().contains(&block.header.proposer) {
            return Ok(Validation::Invalid("proposer is not a validator".into()));
        }
        if block.header.timestamp_ms > now_ms.saturating_add(CLOCK_DRIFT_MAX_MS) {
            return Ok(Validation::Invalid("timestamped in the future".into()));
        }
        let executed = self.execute(&under, &block, txs)?;
        Ok(match executed {
            Ok(exec) => {
                self.keep_execution(exec);
                Validation::Valid
            }
            Err(why) => Validation::Invalid(why),
        })
    }

    /// Held validations the ledger has caught up with, to validate now.
    pub fn take_ready_validations(&mut self) -> Vec<Block> {
        let next = self.tip().height + 1;
        let later = self.held_validations.split_off(&(next + 1));
        let ready = std::mem::replace(&mut self.held_validations, later);
        ready.into_values().flatten().collect()
    }

    /// Applies a block consensus committed. A block that does not execute here is fatal: the
    /// validators agreed on it, so this node's state is the one that is wrong.
    pub fn commit(
        &mut self,
        block: Block,
        cert: CommitCertificate,
        txs: &mut impl TxCheck,
    ) -> Result<CommitOutcome, Fatal> {
        let tip = self.tip().height;
        let h = block.header.height;
        if h <= tip {
            let held = self.hash_at(h)?;
            if held != Some(block.hash()) {
                // Consensus and the ledger disagree on a committed block: a safety failure or
                // a bug. Going on would build on one of them and contradict the other.
                return Err(Fatal::Fork {
                    height: h,
                    committed: block.hash(),
                    held,
                });
            }
            return Ok(CommitOutcome::AlreadyHeld);
        }
        if h > tip + 1 {
            if self.held_commits.len() < HELD_COMMITS || self.held_commits.contains_key(&h) {
                self.held_commits.insert(h, (block, cert));
            }
            return Ok(CommitOutcome::Held(h));
        }
        let mut done = vec![self.apply(block, cert, txs)?];
        done.extend(self.apply_held(txs)?);
        Ok(CommitOutcome::Applied(done))
    }

    /// Applies held commits that now extend the tip.
    pub fn apply_held(&mut self, txs: &mut impl TxCheck) -> Result<Vec<Committed>, Fatal> {
        let mut done = Vec::new();
        loop {
            let next = self.tip().height + 1;
            self.held_commits = self.held_commits.split_off(&next);
            let Some((block, cert)) = self.held_commits.remove(&next) else {
                return Ok(done);
            };
            done.push(self.apply(block, cert, txs)?);
        }
    }

    /// Executes (or reuses the execution of) the next block and writes it.
    fn apply(
        &mut self,
        block: Block,
        cert: CommitCertificate,
        txs: &mut impl TxCheck,
    ) -> Result<Committed, Fatal> {
        let h = block.header.height;
        let hash = block.hash();
        let built_here = self.ahead.first().is_some_and(|e| e.block_hash() == hash);
        let reused = if built_here {
            Some(self.ahead.remove(0))
        } else {
            // Another block at this height: what was built ahead was built on a loser.
            self.ahead.clear();
            self.executions.remove(&hash)
        };
        let exec = match reused {
            Some(e) => e,
            None => {
                // Signatures of transactions this node never saw are checked too.
                if let Err((id, reason)) = txs.check_block_txs(&block.txs) {
                    let index = block.txs.iter().position(|t| t.id() == id).unwrap_or(0);
                    let source = BlockError::InvalidTx { index, id, reason };
                    return Err(Fatal::Diverged { height: h, source });
                }
                match self.ledger.execute_block(&block, Trust::PreVerified) {
                    Ok(e) => e,
                    Err(BlockError::Store(source)) => return Err(Fatal::Read { source }),
                    Err(source) => return Err(Fatal::Diverged { height: h, source }),
                }
            }
        };
        // Executions of blocks still above the new tip stay: blocks in flight commit with them.
        self.executions.retain(|_, e| e.tip().height > h);
        let ids = exec.tx_ids().to_vec();
        match self.ledger.commit(block.clone(), cert, exec) {
            Ok(_) => Ok(Committed { block, hash, ids }),
            Err(BlockError::Store(source)) => Err(Fatal::Commit { height: h, source }),
            Err(source) => Err(Fatal::Diverged { height: h, source }),
        }
    }

    /// Applies a block fetched by block sync: it must carry a certificate valid against the
    /// genesis validators, extend the tip, and carry valid signatures. `Ok(Err)` blames the
    /// peer that sent it; a certified, well-signed block that does not execute here is fatal,
    /// as for consensus commits.
    pub fn apply_synced(
        &mut self,
        block: Block,
        cert: CommitCertificate,
        txs: &mut impl TxCheck,
    ) -> Result<Result<Committed, String>, Fatal> {
        let tip = self.tip();
        if block.header.height != tip.height + 1 || block.header.prev_hash != tip.hash {
            return Ok(Err(format!(
                "block {} does not extend the tip {}",
                block.header.height, tip.height
            )));
        }
        if let Err(e) = self.ledger.verify_certificate(&block, &cert) {
            return Ok(Err(format!("bad certificate: {e}")));
        }
        // The certificate covers the block hash, which covers transaction ids, not their
        // signatures: a peer could send the certified block with a signature altered. Those
        // not verified here are checked now, and a bad one is the peer's fault.
        if let Err((id, why)) = txs.check_block_txs(&block.txs) {
            return Ok(Err(format!("transaction {id}: {why}")));
        }
        let committed = self.apply(block, cert, txs)?;
        Ok(Ok(committed))
    }

    /// Builds the next block from `candidates` on top of the tip and the blocks built here
    /// before it, keeping its execution for the commit. The caller hands it to the engine;
    /// `None` if [`AHEAD_MAX`] blocks are already waiting.
    pub fn build(
        &mut self,
        candidates: &[VerifiedTransaction],
        params: BlockParams,
    ) -> Result<Option<BuiltBlock>, Fatal> {
        if self.ahead.len() >= AHEAD_MAX {
            return Ok(None);
        }
        let ahead: Vec<&Execution> = self.ahead.iter().collect();
        match self.ledger.build_block_on(&ahead, candidates, params) {
            Ok(built) => Ok(Some(built)),
            Err(BlockError::Store(source)) => Err(Fatal::Read { source }),
            // The only other refusal is the handover gate: nothing is built above a block
            // that changes the validator set until it commits.
            Err(_) => Ok(None),
        }
    }

    /// The block just built goes to the engine: keep its execution for its commit, on top of
    /// the ones before it.
    pub fn built(&mut self, execution: Execution) {
        if self.ahead.len() < AHEAD_MAX && execution.parent() == self.built_to_hash() {
            self.ahead.push(execution);
        }
    }

    fn built_to_hash(&self) -> BlockHash {
        self.ahead
            .last()
            .map_or(self.tip().hash, |e| e.block_hash())
    }

    /// Tries one transaction against the committed state, as if it were the next block's only
    /// one: `Some(reason)` if it would not execute.
    pub fn dry_run(&self, tx: &VerifiedTransaction) -> Result<Option<TxRejection>, Fatal> {
        Ok(self.ledger.dry_run(tx)?)
    }
}

#[cfg(test)]
mod tests;
